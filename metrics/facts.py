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

from metrics.registry import FACT_VIEWS, quality_tier_sql

#: Fact tables in build order (each step reads only the ones before it).
FACT_TABLES = (
    "mf_quality",
    "mf_comment_count",
    "mf_agent_day",
    "mf_linked_ts",
    "mf_agent_ticket",
    "mf_ticket",
    "mf_ticket_cube",
    "mf_rc_cube",
    "mf_resolved_cube",
)

#: The views over them that metric SQL reads (`registry.FACT_VIEWS`, one per table in this
#: order; same names as the materialised views of 0002).
assert len(FACT_VIEWS) == len(FACT_TABLES), "one view per fact table"

#: What ops.benchmarks sizes (old name: materialised views until migration 0003): the views
#: for their row counts, the tables for their bytes.
MATERIALIZED_VIEWS = FACT_VIEWS + FACT_TABLES

#: An import touching more than this share of the loaded tickets rebuilds everything: past it a
#: TRUNCATE + single pass is cheaper than deleting and re-inserting most rows.
FULL_REBUILD_SHARE = 0.6

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
    """Built once, and not emptied since: the unlogged fact tables are empty after a crash."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT facts_built_at IS NOT NULL AND (EXISTS (SELECT 1 FROM mf_ticket) "
            "OR NOT EXISTS (SELECT 1 FROM tickets_ticket)) FROM metric_settings WHERE id = 1"
        )
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

# The tier comes from the registry's QUALITY_TIERS (concatenated: this is a format template).
_QUALITY = (
    """
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
       """
    + quality_tier_sql("q.quality_tier", "q.quality_score", indent=" " * 7)
    + """
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
)

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
ORDER BY p.ticket_id
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
INSERT INTO mf_ticket (
    ticket_id, created_at, team, category, root_cause, status, is_closed, is_support, sla_met,
    response_met, resolution_met, responded_at, resolved_at, closed_at, comments, cf_comments,
    cf_with_quality, ts_rows, ts_hours, ts_agents, day_start, resolution_us, response_us
)
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
           date_trunc('day', t.created_at AT TIME ZONE s.time_zone) AT TIME ZONE s.time_zone
               AS day_start
    FROM tickets_ticket t
    CROSS JOIN metric_settings s
    WHERE s.id = 1 AND {tt}
)
SELECT b.ticket_id,
       b.created_at,
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
       coalesce(c.comments, 0),
       coalesce(c.cf_comments, 0),
       coalesce(c.cf_with_quality, 0),
       coalesce(ts.ts_rows, 0),
       coalesce(ts.ts_hours, 0),
       coalesce(ts.ts_agents, 0),
       b.day_start,
       -- float8 epoch: exact to the microsecond for any realistic span, far cheaper than numeric
       CASE WHEN b.is_closed AND b.resolved_at >= b.created_at
            THEN round(date_part('epoch', b.resolved_at - b.created_at) * 1000000)::bigint END,
       round(date_part('epoch', b.responded_at - b.created_at) * 1000000)::bigint
FROM base b
LEFT JOIN mf_comment_count c ON c.ticket_id = b.ticket_id
LEFT JOIN timesheet_counts ts ON ts.ticket_id = b.ticket_id
ORDER BY b.ticket_id  -- key order: the primary key index is filled sequentially
"""

# Per creation day x team x category x closed: every ticket metric's counts and sums.
_CUBE = """
INSERT INTO mf_ticket_cube
SELECT f.day_start,
       ((f.day_start AT TIME ZONE s.time_zone) + interval '1 day') AT TIME ZONE s.time_zone,
       to_char(f.day_start AT TIME ZONE s.time_zone, 'YYYY-MM'),
       f.team,
       f.category,
       f.is_closed,
       f.is_support,
       count(*),
       count(f.sla_met),
       count(*) FILTER (WHERE f.sla_met),
       count(f.resolution_us),
       coalesce(sum(f.resolution_us), 0),
       sum(f.comments),
       sum(f.cf_comments),
       sum(f.cf_with_quality),
       sum(f.ts_rows),
       coalesce(sum(f.ts_hours) FILTER (WHERE f.ts_rows > 0), 0),
       count(*) FILTER (WHERE f.ts_rows > 0),
       count(*) FILTER (WHERE f.cf_comments = 0),
       count(*) FILTER (WHERE f.cf_comments = 1),
       count(*) FILTER (WHERE f.cf_comments = 2),
       count(*) FILTER (WHERE f.cf_comments = 3),
       count(*) FILTER (WHERE f.cf_comments >= 4),
       count(*) FILTER (WHERE f.ts_rows > 0 AND f.ts_agents <= 1),
       count(*) FILTER (WHERE f.ts_rows > 0 AND f.ts_agents = 2),
       count(*) FILTER (WHERE f.ts_rows > 0 AND f.ts_agents = 3),
       count(*) FILTER (WHERE f.ts_rows > 0 AND f.ts_agents >= 4),
       count(f.root_cause),
       count(f.response_met),
       count(*) FILTER (WHERE f.response_met),
       count(f.resolution_met),
       count(*) FILTER (WHERE f.resolution_met)
FROM mf_ticket f
CROSS JOIN metric_settings s
WHERE s.id = 1 AND ({c})
GROUP BY f.day_start, s.time_zone, f.team, f.category, f.is_closed, f.is_support
"""

# Closed tickets with a root cause per creation day x team x root cause (2.2).
_RC_CUBE = """
INSERT INTO mf_rc_cube
SELECT f.day_start,
       ((f.day_start AT TIME ZONE s.time_zone) + interval '1 day') AT TIME ZONE s.time_zone,
       f.team,
       f.root_cause,
       count(*)
FROM mf_ticket f
CROSS JOIN metric_settings s
WHERE s.id = 1 AND f.is_closed AND f.root_cause IS NOT NULL AND ({c})
GROUP BY f.day_start, s.time_zone, f.team, f.root_cause
"""

# Closed tickets per resolution day x team (5.5).
_RESOLVED_DAY = "date_trunc('day', f.resolved_at AT TIME ZONE s.time_zone) AT TIME ZONE s.time_zone"
_RESOLVED_CUBE = f"""
INSERT INTO mf_resolved_cube
SELECT r.day_start,
       ((r.day_start AT TIME ZONE s.time_zone) + interval '1 day') AT TIME ZONE s.time_zone,
       f.team,
       count(*)
FROM mf_ticket f
CROSS JOIN metric_settings s
CROSS JOIN LATERAL (SELECT {_RESOLVED_DAY} AS day_start) r
WHERE s.id = 1 AND f.is_closed AND f.resolved_at IS NOT NULL AND ({{rr}})
GROUP BY r.day_start, s.time_zone, f.team
HAVING {{r}}  -- the days in scope, kept after grouping the range (no per-day index loops)
"""

_ALL = dict.fromkeys(("t", "tf", "tt", "ts", "q", "d", "c", "r", "rr"), "true")


def lock(cursor: Any) -> None:
    """The facts' transaction lock. Whoever also locks a warehouse table exclusively (a first
    bulk load) takes this one first: a refresh holds it while it reads those tables, so the
    opposite order deadlocks."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def mark_stale(cursor: Any) -> None:
    """In the transaction of data committed without its facts (migrate_legacy refreshes once,
    after its last table): if the load stops before that, the facts are known to be stale and
    the beat or compute_metrics rebuilds them."""
    lock(cursor)
    cursor.execute("UPDATE metric_settings SET facts_built_at = NULL WHERE id = 1")


def _tuned(cursor: Any) -> None:
    # Whole-table aggregations: JIT compilation costs seconds and buys nothing here, and
    # hash aggregates must not spill. SET LOCAL ends with the (caller's) transaction.
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL work_mem = '256MB'")
    lock(cursor)


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
        ("mf_ticket_cube", _CUBE),
        ("mf_rc_cube", _RC_CUBE),
        ("mf_resolved_cube", _RESOLVED_CUBE),
    )
    for table, sql in steps:
        started = time.perf_counter()
        cursor.execute(sql.format(**_ALL))
        phases[table] = time.perf_counter() - started
    started = time.perf_counter()
    # Statistics for the metric queries' plans: only tables never analysed need them now
    # (ANALYZE of every fact table costs ~1-2 s at 10x; autovacuum refreshes changed ones soon).
    cursor.execute(
        "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) "
        "AND last_analyze IS NULL AND last_autoanalyze IS NULL",
        [list(FACT_TABLES)],
    )
    unanalysed = [row[0] for row in cursor.fetchall()]
    if unanalysed:
        cursor.execute(f"ANALYZE {', '.join(unanalysed)}")
    cursor.execute("UPDATE metric_settings SET facts_built_at = now() WHERE id = 1")
    phases["analyze"] = time.perf_counter() - started
    return phases


# --- Incremental: which tickets / quality results / days an import's rows can change --------

#: Steps per entity (in this order). Sentiment and roster feed no fact.
_STEPS = {
    "tickets": ("quality", "comment_loaded", "linked", "ticket"),
    "comments": ("quality", "comment_count", "ticket"),
    "timesheets": ("agent_day", "linked", "ticket"),
    "comment_quality": ("quality", "comment_count", "ticket"),
}

_INTO_TICKETS = (
    "INSERT INTO mf_scope_ticket SELECT DISTINCT ticket_id FROM ({}) x "
    "WHERE ticket_id IS NOT NULL ON CONFLICT DO NOTHING"
)
_INTO_QUALITY = "INSERT INTO mf_scope_quality {} ON CONFLICT DO NOTHING"

#: Seed scope per entity, read from the run's staged rows.
_SEEDS: dict[str, tuple[str, ...]] = {
    # New or changed tickets; the quality results matched to them carry their team.
    "tickets": (
        _INTO_TICKETS.format("SELECT ticket_id FROM stg"),
        _INTO_QUALITY.format(
            "SELECT quality_id FROM mf_quality "
            "WHERE ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)"
        ),
    ),
    # The comments' tickets; quality results whose key is one of the comments, whose
    # (ticket, time) match may have changed, or that matched one of them before (a comment
    # that moved takes its match with it: the old ticket is recounted too).
    "comments": (
        _INTO_TICKETS.format("SELECT ticket_id FROM stg"),
        _INTO_QUALITY.format(
            "SELECT q.id FROM tickets_commentquality q "
            "WHERE q.comment_key IN (SELECT comment_id::text FROM stg) "
            "UNION SELECT q.id FROM tickets_commentquality q "
            "WHERE q.ticket_id IN (SELECT ticket_id FROM mf_scope_ticket) "
            "UNION SELECT quality_id FROM mf_quality "
            "WHERE comment_id IN (SELECT comment_id FROM stg)"
        ),
    ),
    # New rows' tickets and every ticket with linked rows in the file's window: the pipeline
    # deletes the window's rows that are not in the file.
    "timesheets": (
        _INTO_TICKETS.format(
            "SELECT s.ticket_id FROM stg s JOIN tickets_ticket t ON t.ticket_id = s.ticket_id "
            "UNION ALL SELECT ticket_id FROM mf_linked_ts "
            "WHERE work_date BETWEEN %(lo)s AND %(hi)s"
        ),
    ),
    "comment_quality": (
        _INTO_QUALITY.format(
            "SELECT q.id FROM tickets_commentquality q "
            "WHERE q.comment_key IN (SELECT comment_key FROM stg)"
        ),
    ),
}

#: Tickets of the quality results in scope (matched before, or after the update).
_QUALITY_TICKETS = _INTO_TICKETS.format(
    "SELECT ticket_id FROM mf_quality WHERE quality_id IN (SELECT quality_id FROM mf_scope_quality)"
)

_IN_T = "ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)"
_SCOPED = {
    "t": _IN_T,
    "tf": "f." + _IN_T,
    "tt": "t." + _IN_T,
    "ts": "ts." + _IN_T,
    "q": "q.id IN (SELECT quality_id FROM mf_scope_quality)",
    "d": "work_date BETWEEN %(lo)s AND %(hi)s",
    "c": "f.day_start IN (SELECT day_start FROM mf_scope_day) OR (f.day_start IS NULL AND "
    "EXISTS (SELECT 1 FROM mf_scope_day WHERE day_start IS NULL))",
    "r": "r.day_start IN (SELECT day_start FROM mf_scope_rday)",
    # The same days as a resolved_at range (index scan instead of computing every day).
    "rr": "f.resolved_at >= (SELECT min(day_start) FROM mf_scope_rday) "
    "AND f.resolved_at < (SELECT max(day_start) FROM mf_scope_rday) + interval '2 days'",
}

#: Creation days of the scoped tickets (run before and after their rows change).
_SCOPE_DAYS = (
    "INSERT INTO mf_scope_day SELECT DISTINCT day_start FROM mf_ticket "
    "WHERE ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)"
)
_SCOPE_RDAYS = (
    f"INSERT INTO mf_scope_rday SELECT DISTINCT {_RESOLVED_DAY} FROM mf_ticket f "
    "CROSS JOIN metric_settings s WHERE s.id = 1 AND f.resolved_at IS NOT NULL "
    "AND f.ticket_id IN (SELECT ticket_id FROM mf_scope_ticket)"
)

_UPDATES: dict[str, tuple[str, ...]] = {
    "quality": (
        _QUALITY_TICKETS,
        "DELETE FROM mf_quality WHERE quality_id IN (SELECT quality_id FROM mf_scope_quality)",
        _QUALITY.format(**_SCOPED),
        _QUALITY_TICKETS,
        "ANALYZE mf_scope_ticket",
    ),
    # New tickets: their comments stop being orphans (the pipeline never deletes tickets).
    "comment_loaded": (f"UPDATE mf_comment_count SET loaded = true WHERE {_IN_T} AND NOT loaded",),
    "comment_count": (
        f"DELETE FROM mf_comment_count WHERE {_IN_T}",
        _COMMENT_COUNT.format(**_SCOPED),
    ),
    "agent_day": (
        "DELETE FROM mf_agent_day WHERE work_date BETWEEN %(lo)s AND %(hi)s",
        _AGENT_DAY.format(**_SCOPED),
    ),
    "linked": (
        f"DELETE FROM mf_linked_ts WHERE {_IN_T}",
        _LINKED.format(**_SCOPED),
        f"DELETE FROM mf_agent_ticket WHERE {_IN_T}",
        _AGENT_TICKET.format(**_SCOPED),
    ),
    # The cube rows of every creation day the tickets had or have are re-aggregated.
    "ticket": (
        _SCOPE_DAYS,
        _SCOPE_RDAYS,
        f"DELETE FROM mf_ticket WHERE {_IN_T}",
        _TICKET.format(**_SCOPED),
        _SCOPE_DAYS,
        _SCOPE_RDAYS,
        "DELETE FROM mf_ticket_cube f WHERE " + _SCOPED["c"],
        _CUBE.format(**_SCOPED),
        "DELETE FROM mf_rc_cube f WHERE " + _SCOPED["c"],
        _RC_CUBE.format(**_SCOPED),
        "DELETE FROM mf_resolved_cube r WHERE " + _SCOPED["r"],
        _RESOLVED_CUBE.format(**_SCOPED),
    ),
}


def _stg_exists(cursor: Any) -> bool:
    cursor.execute("SELECT to_regclass('pg_temp.stg') IS NOT NULL")
    return cursor.fetchone()[0]


def update(cursor: Any, entity: str) -> dict[str, float] | None:
    """Recompute the facts the run's staged rows (`stg`) can have changed.

    Returns seconds per step, or None when the import touched so many tickets that a full
    rebuild is cheaper (nothing has been changed then).
    """
    steps = _STEPS.get(entity)
    if steps is None:
        return {}
    phases: dict[str, float] = {}
    started = time.perf_counter()
    for name in ("mf_scope_ticket (ticket_id", "mf_scope_quality (quality_id"):
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} bigint PRIMARY KEY) ON COMMIT DROP")
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS mf_scope_day (day_start timestamptz) ON COMMIT DROP"
    )
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS mf_scope_rday (day_start timestamptz) ON COMMIT DROP"
    )
    cursor.execute("TRUNCATE mf_scope_ticket, mf_scope_quality, mf_scope_day, mf_scope_rday")
    window: dict[str, Any] = {"lo": None, "hi": None}
    if entity == "timesheets":
        cursor.execute("SELECT min(work_date), max(work_date) FROM stg")
        window["lo"], window["hi"] = cursor.fetchone()
    for sql in _SEEDS[entity]:
        cursor.execute(sql, window)
    cursor.execute(
        "SELECT (SELECT count(*) FROM mf_scope_ticket), (SELECT count(*) FROM mf_ticket)"
    )
    affected, loaded = cursor.fetchone()
    if affected > FULL_REBUILD_SHARE * max(loaded, 1000):
        return None
    cursor.execute("ANALYZE mf_scope_ticket, mf_scope_quality")
    phases["scope"] = time.perf_counter() - started
    for step in steps:
        if step == "agent_day" and window["lo"] is None:
            continue
        started = time.perf_counter()
        for sql in _UPDATES[step]:
            cursor.execute(sql, window if "%(" in sql else None)
        phases[step] = time.perf_counter() - started
    return phases


#: Seconds per step of the last refresh in this process (benchmarks report them).
LAST_PHASES: dict[str, float] = {}


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
        write_settings(using)
        phases = None if full else update(cursor, entity)
        if phases is None:
            phases = {"full": 1.0, **rebuild(cursor)}
        elif entity == "comments" and not _comment_totals_agree(cursor):
            # A comment moved away from a ticket unseen: recount everything.
            phases = {"full": 1.0, **rebuild(cursor)}
    LAST_PHASES.clear()
    LAST_PHASES.update({k: round(v, 3) for k, v in phases.items()})
    return time.perf_counter() - started


def refresh_if_stale(using: str = "default") -> bool:
    """Rebuild when a settings change or a crash (the unlogged fact tables come back empty)
    left the facts behind. Grafana reads them directly, so the beat runs this every minute
    instead of waiting for the next import or compute_metrics. Returns True if it rebuilt."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [REFRESH_LOCK])
        if not cursor.fetchone()[0]:
            return False  # another process is refreshing right now
        try:
            if not settings_stale(using) or _import_running(cursor):
                return False
            refresh_facts(using)
            return True
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [REFRESH_LOCK])


def _import_running(cursor: Any) -> bool:
    """A running import refreshes the facts when it ends (a dead one is marked failed by the
    beat, and the next check rebuilds): rebuilding meanwhile would only be redone."""
    cursor.execute("SELECT EXISTS (SELECT 1 FROM tickets_importrun WHERE status = 'running')")
    return cursor.fetchone()[0]


#: Session lock of the beat's staleness check (imports refresh inside their own transaction).
REFRESH_LOCK = 0x6D665F72  # "mf_r"


def _comment_totals_agree(cursor: Any) -> bool:
    """Per-ticket counts are exact for every recomputed ticket; a stale one (a comment moved
    away from it) can only over-count, which the grand total shows."""
    cursor.execute(
        "SELECT (SELECT coalesce(sum(comments), 0) FROM mf_comment_count) = "
        "(SELECT count(*) FROM tickets_comment)"
    )
    return cursor.fetchone()[0]
