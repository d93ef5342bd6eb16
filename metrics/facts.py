"""Metric facts (SPEC §5.3): the settings row and the `mf_*` fact tables behind the views.

The views are frozen SQL, so the settings of SPEC §5.1 reach them through the one-row
`metric_settings` table; this module is the only writer of that row and of the fact tables.

Two ways to bring the facts up to date, both inside the caller's transaction (an import's facts
commit or roll back with its rows):

* full rebuild: TRUNCATE and one single-pass aggregate per table (migrate_legacy, a settings
  change, the first build, or an import touching a large share of the tickets);
* incremental: after an import run, only the tickets (and quality results) the run's staged rows
  `stg` can have changed are recomputed; for timesheets the whole [min, max] work-date window
  of the file (the pipeline deletes inside it) is re-aggregated.

A ticket's facts depend on the ticket row, its comments, its quality results and its linked
timesheet rows, so "affected tickets" is the unit: every step below is scoped by the temp
table `mf_scope_ticket` (and quality results by `mf_scope_quality`).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connections, transaction

#: Fact tables in build order (each step reads only the ones before it).
FACT_TABLES = (
    "mf_quality",
    "mf_comment_count",
    "mf_agent_day",
    "mf_linked_ts",
    "mf_agent_ticket",
    "mf_ticket",
)

#: An import touching more than this share of the loaded tickets rebuilds everything: past it a
#: TRUNCATE + single pass is cheaper than deleting and re-inserting most rows.
FULL_REBUILD_SHARE = 0.3

#: Serialises fact maintenance between concurrent imports of different entities (held until
#: the caller's transaction ends). Arbitrary constant: "metric facts".
_LOCK_KEY = 0x6D65747269630F

_SETTINGS_COLUMNS = (
    "closed_statuses",
    "automation_users",
    "min_team_sample",
    "support_category",
    "time_zone",
)


def desired_settings() -> dict[str, Any]:
    """Django settings normalised the way the views compare them (trimmed, lower case)."""
    return {
        "closed_statuses": sorted({s.strip().lower() for s in settings.CLOSED_STATUSES}),
        "automation_users": sorted({u.strip().lower() for u in settings.AUTOMATION_USERS}),
        "min_team_sample": int(settings.MIN_TEAM_SAMPLE),
        "support_category": settings.SUPPORT_CATEGORY.strip().lower(),
        "time_zone": settings.TIME_ZONE,
    }


def stored_settings(using: str = "default") -> dict[str, Any] | None:
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(_SETTINGS_COLUMNS)} FROM metric_settings WHERE id = 1")
        row = cursor.fetchone()
    if row is None:
        return None
    stored = dict(zip(_SETTINGS_COLUMNS, row, strict=True))
    stored["closed_statuses"] = sorted(stored["closed_statuses"])
    stored["automation_users"] = sorted(stored["automation_users"])
    return stored


def facts_built(using: str = "default") -> bool:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT facts_built_at IS NOT NULL FROM metric_settings WHERE id = 1")
        row = cursor.fetchone()
    return bool(row and row[0])


def settings_stale(using: str = "default") -> bool:
    """True when the facts were never built or built with other settings than Django's."""
    return stored_settings(using) != desired_settings() or not facts_built(using)


def write_settings(using: str = "default") -> None:
    values = desired_settings()
    with connections[using].cursor() as cursor:
        cursor.execute(
            "INSERT INTO metric_settings (id, closed_statuses, automation_users, "
            "min_team_sample, support_category, time_zone, updated_at) "
            "VALUES (1, %(closed_statuses)s, %(automation_users)s, %(min_team_sample)s, "
            "%(support_category)s, %(time_zone)s, now()) "
            "ON CONFLICT (id) DO UPDATE SET closed_statuses = EXCLUDED.closed_statuses, "
            "automation_users = EXCLUDED.automation_users, "
            "min_team_sample = EXCLUDED.min_team_sample, "
            "support_category = EXCLUDED.support_category, "
            "time_zone = EXCLUDED.time_zone, updated_at = EXCLUDED.updated_at",
            values,
        )


# --- The fact SQL, one statement per table; {t} / {q} / {d} are the scope predicates -------
# Full rebuild: every predicate is `true`. Incremental: tickets in mf_scope_ticket, quality
# results in mf_scope_quality, work dates in the import's window.

_QUALITY = """
INSERT INTO mf_quality
SELECT q.id,
       coalesce(c1.comment_id, c2.comment_id),
       coalesce(c1.ticket_id, c2.ticket_id, q.ticket_id),
       coalesce(c1.created_at, c2.created_at, q.created_at),
       coalesce(t.team, q.team),
       coalesce(c1.customer_facing, c2.customer_facing, false),
       q.quality_score,
       q.professionalism_score,
       q.clarity_score,
       q.empathy_score,
       q.actionability_score,
       CASE
           WHEN lower(btrim(q.quality_tier)) IN ('excellent', 'good', 'acceptable', 'poor')
               THEN lower(btrim(q.quality_tier))
           WHEN q.quality_score >= 4.5 THEN 'excellent'
           WHEN q.quality_score >= 3.5 THEN 'good'
           WHEN q.quality_score >= 2.5 THEN 'acceptable'
           WHEN q.quality_score IS NOT NULL THEN 'poor'
       END
FROM tickets_commentquality q
LEFT JOIN LATERAL (  -- the comment whose id, as text, is the key
    SELECT f.comment_id, f.ticket_id, f.created_at, f.customer_facing
    FROM metric_comment_flags f
    WHERE f.comment_id = CASE WHEN q.comment_key ~ '^[0-9]{{1,18}}$'
                              THEN q.comment_key::bigint END
      AND f.comment_id::text = q.comment_key
    OFFSET 0  -- a per-row index probe, never a hash over all comments
) c1 ON true
LEFT JOIN LATERAL (  -- else the single comment of the result's ticket at its time
    SELECT min(f.comment_id) AS comment_id,
           min(f.ticket_id) AS ticket_id,
           min(f.created_at) AS created_at,
           bool_or(f.customer_facing) AS customer_facing
    FROM metric_comment_flags f
    WHERE c1.comment_id IS NULL AND f.ticket_id = q.ticket_id AND f.created_at = q.created_at
    HAVING count(*) = 1
) c2 ON true
LEFT JOIN tickets_ticket t ON t.ticket_id = coalesce(c1.ticket_id, c2.ticket_id, q.ticket_id)
WHERE {q}
"""

_COMMENT_COUNT = """
INSERT INTO mf_comment_count
WITH per_ticket AS (
    SELECT f.ticket_id,
           count(*) AS comments,
           count(*) FILTER (WHERE f.customer_facing) AS cf_comments,
           min(f.created_at) AS first_comment_at
    FROM metric_comment_flags f
    WHERE {tf}
    GROUP BY f.ticket_id
), quality AS (
    SELECT ticket_id, count(DISTINCT comment_id) AS cf_with_quality
    FROM mf_quality
    WHERE comment_id IS NOT NULL AND customer_facing AND {t}
    GROUP BY ticket_id
)
SELECT p.ticket_id, p.comments, p.cf_comments, coalesce(q.cf_with_quality, 0),
       p.first_comment_at, (t.ticket_id IS NOT NULL)
FROM per_ticket p
LEFT JOIN quality q ON q.ticket_id = p.ticket_id
LEFT JOIN tickets_ticket t ON t.ticket_id = p.ticket_id
"""

_AGENT_DAY = """
INSERT INTO mf_agent_day
WITH raw AS (  -- group on the raw name first: trimming 1.4M names costs more than 80k
    SELECT user_full_name,
           work_date,
           count(*) AS entries,
           sum(hours) AS hours,
           count(ticket_id) AS ticket_entries
    FROM tickets_timesheetentry
    WHERE {d}
    GROUP BY user_full_name, work_date
)
SELECT nullif(btrim(r.user_full_name), ''),
       r.work_date,
       (r.work_date::timestamp AT TIME ZONE s.time_zone),
       sum(r.entries),
       sum(r.hours),
       sum(r.ticket_entries)
FROM raw r
CROSS JOIN metric_settings s
WHERE s.id = 1
GROUP BY 1, 2, 3
"""

_LINKED = """
INSERT INTO mf_linked_ts
SELECT ts.ticket_id,
       nullif(btrim(t.team), ''),
       nullif(btrim(ts.user_full_name), ''),
       coalesce(nullif(btrim(ts.username), ''), nullif(btrim(ts.user_full_name), '')),
       ts.work_date,
       (ts.work_date::timestamp AT TIME ZONE s.time_zone),
       count(*),
       sum(ts.hours)
FROM tickets_timesheetentry ts
JOIN tickets_ticket t ON t.ticket_id = ts.ticket_id
CROSS JOIN metric_settings s
WHERE s.id = 1 AND {ts}
GROUP BY 1, 2, 3, 4, 5, 6
"""

_AGENT_TICKET = """
INSERT INTO mf_agent_ticket
SELECT agent, ticket_id, min(team), min(work_start), max(work_start), sum(entries),
       sum(hours)
FROM mf_linked_ts
WHERE {t}
GROUP BY agent, ticket_id
"""

_TICKET = """
INSERT INTO mf_ticket
WITH timesheet_counts AS (
    SELECT ticket_id,
           sum(entries) AS ts_rows,
           sum(hours) AS ts_hours,
           greatest(count(DISTINCT identity), 1) AS ts_agents
    FROM mf_linked_ts
    WHERE {t}
    GROUP BY ticket_id
), base AS (
    SELECT t.ticket_id, t.created_at, t.team, t.category, t.root_cause_category, t.status,
           t.sla_met, t.response_met, t.resolution_met, t.responded_at, t.resolved_at,
           t.closed_at,
           coalesce(lower(btrim(t.status)) = ANY (s.closed_statuses), false) AS is_closed,
           coalesce(lower(btrim(t.category)) = s.support_category, false) AS is_support,
           to_char(t.created_at AT TIME ZONE s.time_zone, 'YYYY-MM') AS created_month
    FROM tickets_ticket t
    CROSS JOIN metric_settings s
    WHERE s.id = 1 AND {tt}
)
SELECT b.ticket_id,
       b.created_at,
       b.created_month,
       nullif(btrim(b.team), ''),
       nullif(btrim(b.category), ''),
       nullif(btrim(b.root_cause_category), ''),
       btrim(b.status),
       b.is_closed,
       b.is_support,
       b.sla_met,
       b.response_met,
       b.resolution_met,
       b.responded_at,
       b.resolved_at,
       b.closed_at,
       CASE WHEN b.is_closed AND b.resolved_at >= b.created_at
            THEN extract(epoch FROM b.resolved_at - b.created_at) / 86400 END,
       coalesce(b.is_closed AND b.resolved_at < b.created_at, false),
       coalesce(c.comments, 0),
       coalesce(c.cf_comments, 0),
       coalesce(c.cf_with_quality, 0),
       coalesce(ts.ts_rows, 0),
       coalesce(ts.ts_hours, 0),
       coalesce(ts.ts_agents, 0)
FROM base b
LEFT JOIN mf_comment_count c ON c.ticket_id = b.ticket_id
LEFT JOIN timesheet_counts ts ON ts.ticket_id = b.ticket_id
"""

_ALL = dict.fromkeys(("t", "tf", "tt", "ts", "q", "d"), "true")
_SCOPED = {
    "t": "ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)",
    "tf": "f.ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)",
    "tt": "t.ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)",
    "ts": "ts.ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)",
    "q": "q.id IN (SELECT quality_id FROM mf_scope_quality)",
    "d": "work_date BETWEEN %(lo)s AND %(hi)s",
}


def _tuned(cursor: Any) -> None:
    # Whole-table aggregations: JIT compilation costs seconds and buys nothing here, and
    # hash aggregates must not spill. SET LOCAL ends with the (caller's) transaction.
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL work_mem = '256MB'")
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _mark_built(cursor: Any) -> None:
    cursor.execute("UPDATE metric_settings SET facts_built_at = now() WHERE id = 1")


def rebuild(cursor: Any) -> dict[str, float]:
    """Every fact table from scratch, one aggregate pass each; returns seconds per table."""
    phases = {}
    cursor.execute(f"TRUNCATE {', '.join(FACT_TABLES)}")
    steps = (
        ("mf_quality", _QUALITY),
        ("mf_comment_count", _COMMENT_COUNT),
        ("mf_agent_day", _AGENT_DAY),
        ("mf_linked_ts", _LINKED),
        ("mf_agent_ticket", _AGENT_TICKET),
        ("mf_ticket", _TICKET),
    )
    for table, sql in steps:
        started = time.perf_counter()
        cursor.execute(sql.format(**_ALL))
        # Fresh statistics at once: the next step's plan joins this table.
        cursor.execute(f"ANALYZE {table}")
        phases[table] = time.perf_counter() - started
    _mark_built(cursor)
    return phases


def _stg_exists(cursor: Any) -> bool:
    cursor.execute("SELECT to_regclass('pg_temp.stg') IS NOT NULL")
    return cursor.fetchone()[0]


def _scope_for_import(cursor: Any, entity: str) -> dict[str, Any] | None:
    """Fill mf_scope_ticket / mf_scope_quality for this run's `stg`; the timesheet window.

    Returns None when a full rebuild is the better (or the only correct) choice.
    """
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS mf_scope_ticket (ticket_id bigint PRIMARY KEY) "
        "ON COMMIT DROP"
    )
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS mf_scope_quality (quality_id bigint PRIMARY KEY) "
        "ON COMMIT DROP"
    )
    cursor.execute("TRUNCATE mf_scope_ticket, mf_scope_quality")
    window: dict[str, Any] = {"lo": None, "hi": None}
    into_tickets = "INSERT INTO mf_scope_ticket SELECT DISTINCT ticket_id FROM ({}) x " + (
        "WHERE ticket_id IS NOT NULL ON CONFLICT DO NOTHING"
    )
    if entity == "tickets":
        cursor.execute(into_tickets.format("SELECT ticket_id FROM stg"))
    elif entity == "comments":
        cursor.execute(into_tickets.format("SELECT ticket_id FROM stg"))
        # Quality results matched to one of these comments before (a comment that moved
        # ticket takes its match with it: the old ticket is recounted too).
        cursor.execute(
            "INSERT INTO mf_scope_quality SELECT m.quality_id FROM mf_quality m "
            "WHERE m.comment_id IN (SELECT comment_id FROM stg) ON CONFLICT DO NOTHING"
        )
    elif entity == "timesheets":
        cursor.execute("SELECT min(work_date), max(work_date) FROM stg")
        window["lo"], window["hi"] = cursor.fetchone()
        # New rows' tickets, and every ticket with linked rows in the window: the pipeline may
        # have deleted some of them.
        cursor.execute(
            into_tickets.format(
                "SELECT ticket_id FROM stg UNION ALL SELECT ticket_id FROM mf_linked_ts "
                "WHERE work_date BETWEEN %(lo)s AND %(hi)s"
            ),
            window,
        )
    elif entity == "comment_quality":
        cursor.execute(
            "INSERT INTO mf_scope_quality SELECT q.id FROM tickets_commentquality q "
            "WHERE q.comment_key IN (SELECT comment_key FROM stg) ON CONFLICT DO NOTHING"
        )
    else:  # sentiment, roster: no fact reads them
        return window
    cursor.execute("SELECT count(*) FROM mf_scope_ticket")
    (affected,) = cursor.fetchone()
    cursor.execute("SELECT count(*) FROM mf_ticket")
    (loaded,) = cursor.fetchone()
    if affected > FULL_REBUILD_SHARE * max(loaded, 1):
        return None
    return window


def _expand_scope(cursor: Any) -> None:
    """Quality results of the affected tickets join the scope, and the tickets of every quality
    result in scope (before and after) join the affected tickets."""
    cursor.execute(
        """
        INSERT INTO mf_scope_quality
        SELECT q.id FROM tickets_commentquality q
        WHERE q.ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)
        UNION
        SELECT q.id FROM tickets_comment c
        JOIN tickets_commentquality q ON q.comment_key = c.comment_id::text
        WHERE c.ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)
        UNION
        SELECT m.quality_id FROM mf_quality m
        WHERE m.ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)
        ON CONFLICT DO NOTHING
        """
    )
    cursor.execute(
        "INSERT INTO mf_scope_ticket SELECT DISTINCT m.ticket_id FROM mf_quality m "
        "WHERE m.quality_id IN (SELECT quality_id FROM mf_scope_quality) "
        "AND m.ticket_id IS NOT NULL ON CONFLICT DO NOTHING"
    )


def update(cursor: Any, window: dict[str, Any]) -> dict[str, float]:
    """Recompute the facts of the scoped tickets / quality results / work-date window."""
    phases: dict[str, float] = {}

    def step(name: str, *statements: tuple[str, dict[str, Any] | None]) -> None:
        started = time.perf_counter()
        for sql, params in statements:
            cursor.execute(sql, params)
        phases[name] = time.perf_counter() - started

    scoped = {k: v for k, v in _SCOPED.items() if k != "d"}
    in_t = "WHERE ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)"
    started = time.perf_counter()
    _expand_scope(cursor)
    phases["scope"] = time.perf_counter() - started
    step(
        "mf_quality",
        (
            "DELETE FROM mf_quality WHERE quality_id IN (SELECT quality_id FROM mf_scope_quality)",
            None,
        ),
        (_QUALITY.format(**scoped), None),
    )
    # The new matches' tickets count their quality results afresh too.
    cursor.execute(
        "INSERT INTO mf_scope_ticket SELECT DISTINCT m.ticket_id FROM mf_quality m "
        "WHERE m.quality_id IN (SELECT quality_id FROM mf_scope_quality) "
        "AND m.ticket_id IS NOT NULL ON CONFLICT DO NOTHING"
    )
    cursor.execute("ANALYZE mf_scope_ticket")
    step(
        "mf_comment_count",
        (f"DELETE FROM mf_comment_count {in_t}", None),
        (_COMMENT_COUNT.format(**scoped), None),
    )
    if window.get("lo") is not None:
        step(
            "mf_agent_day",
            ("DELETE FROM mf_agent_day WHERE work_date BETWEEN %(lo)s AND %(hi)s", window),
            (_AGENT_DAY.format(d=_SCOPED["d"]), window),
        )
    step(
        "mf_linked_ts",
        (f"DELETE FROM mf_linked_ts {in_t}", None),
        (_LINKED.format(**scoped), None),
    )
    step(
        "mf_agent_ticket",
        (f"DELETE FROM mf_agent_ticket {in_t}", None),
        (_AGENT_TICKET.format(**scoped), None),
    )
    step(
        "mf_ticket",
        (f"DELETE FROM mf_ticket {in_t}", None),
        (_TICKET.format(**scoped), None),
    )
    return phases


def refresh_facts(using: str = "default", entity: str | None = None) -> float:
    """Bring the facts up to date; returns seconds taken.

    Runs in the caller's transaction (the import pipeline calls it inside its run, with the
    run's `stg` table still there), so a failed import never leaves facts that disagree with
    the tables. `entity` names the run's entity: only what its rows can change is recomputed.
    Without it (migrate_legacy, tests, settings changes) everything is rebuilt.
    """
    started = time.perf_counter()
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        _tuned(cursor)
        full = entity is None or settings_stale(using) or not _stg_exists(cursor)
        window = None if full else _scope_for_import(cursor, entity)
        write_settings(using)
        if window is None:
            rebuild(cursor)
        else:
            update(cursor, window)
            if entity == "comments" and not _comment_totals_agree(cursor):
                rebuild(cursor)  # a comment moved between tickets: recount everything
    return time.perf_counter() - started


def _comment_totals_agree(cursor: Any) -> bool:
    """Per-ticket counts are exact for every recomputed ticket; a stale one (a comment moved
    away from it) can only over-count, which the grand total shows."""
    cursor.execute(
        "SELECT (SELECT coalesce(sum(comments), 0) FROM mf_comment_count) = "
        "(SELECT count(*) FROM tickets_comment)"
    )
    return cursor.fetchone()[0]
