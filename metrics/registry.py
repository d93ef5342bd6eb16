"""THE metric registry (SPEC §5): every metric is defined here once, with its SQL.

Consumers: `metrics.compute` (compute_metrics, admin overview, restore drill), `ops.benchmarks`
(benchmark_metrics) and the Grafana dashboard generator. They all run `MetricDef.sql` unchanged.

SQL contract
------------
The SQL reads only the metric views created by `metrics/migrations` (`metric_ticket_facts`,
`metric_quality_facts`, `metric_comment_counts`, `metric_agent_day_facts`,
`metric_linked_timesheet_facts`, `metric_root_cause_audits`, `metric_settings`), never the raw tables. It takes exactly these
psycopg-style named parameters (see `PARAMS`); a NULL parameter means "no filter":

* ``%(date_from)s`` -- timestamptz, inclusive start of the period (Grafana: ``$__timeFrom()``)
* ``%(date_to)s``   -- timestamptz, exclusive end of the period   (Grafana: ``$__timeTo()``)
* ``%(team)s``      -- text, the ticket's current team            (Grafana: ``$team``, NULL = all)

Every placeholder is written with an explicit cast (``%(date_from)s::timestamptz``,
``%(team)s::text``), so a Grafana macro that expands to a quoted literal or NULL works as is.
The period applies to ticket ``created_at`` (a ticket's comments and timesheets count with it),
to the comment time for the quality metrics (1.5, 2.5) and to the work date (at midnight in
TIME_ZONE) for 3.2. Settings of SPEC §5.1 are baked into the facts by
`metrics.facts.refresh_facts`; MIN_TEAM_SAMPLE is read from `metric_settings` at query time.
The SQL contains no literal ``%`` characters, so it can be passed to psycopg with parameters.

Output: scalar metrics return one row whose columns are `MetricDef.columns` (``value`` first);
table metrics return rows with exactly `MetricDef.columns`. Percentages and averages are computed
in numeric and rounded once with ``round(x, 2)`` (half away from zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

#: Named parameters every metric SQL accepts (name -> PostgreSQL type). NULL = no filter.
PARAMS: dict[str, str] = {"date_from": "timestamptz", "date_to": "timestamptz", "team": "text"}

#: Every relation metric SQL reads: what the read-only Grafana role needs SELECT on.
METRIC_RELATIONS: tuple[str, ...] = (
    "metric_settings",
    "metric_ticket_facts",
    "metric_quality_facts",
    "metric_comment_counts",
    "metric_agent_day_facts",
    "metric_linked_timesheet_facts",
    "metric_agent_ticket_facts",
    "metric_root_cause_audits",
)

#: Cells of the team x category matrix (3.1) smaller than this are not shown (SPEC §5.2).
MIN_MATRIX_CELL = 10

GREEN, YELLOW, RED = "green", "yellow", "red"
#: Text labels shown next to every colour (status is never conveyed by colour alone).
STATUS_LABELS = {GREEN: "On target", YELLOW: "Watch", RED: "Off target", None: "No data"}


@dataclass(frozen=True)
class Thresholds:
    """Green/yellow/red rule. `higher_is_better`: green when value >= green, else <= green.

    For tables, `column` names the row column the rule applies to, `rows` (when set) limits it to
    rows whose first column is one of these keys, and `summary` names a whole-table figure
    computed by `metrics.compute.summary_value` instead of a per-row rule.
    """

    green: Decimal
    yellow: Decimal
    higher_is_better: bool
    column: str = "value"
    rows: tuple[str, ...] = ()
    summary: str | None = None

    def status(self, value: Any) -> str | None:
        if value is None:
            return None
        value = Decimal(str(value))
        if self.higher_is_better:
            if value >= self.green:
                return GREEN
            return YELLOW if value >= self.yellow else RED
        if value <= self.green:
            return GREEN
        return YELLOW if value <= self.yellow else RED

    def describe(self, unit: str = "") -> str:
        op, bad = (">=", "<") if self.higher_is_better else ("<=", ">")
        target = f"{self.summary} " if self.summary else ""
        if self.column != "value" and not self.summary:
            target = f"{self.column} per row "
        return (
            f"{target}green {op} {self.green}{unit}, yellow {op} {self.yellow}{unit}, "
            f"red {bad} {self.yellow}{unit}"
        )


def _t(green: str, yellow: str, higher: bool, **kw: Any) -> Thresholds:
    return Thresholds(Decimal(green), Decimal(yellow), higher, **kw)


@dataclass(frozen=True)
class MetricDef:
    id: str  # "1.1"
    slug: str  # "sla_compliance_rate": the JSON key and Grafana panel id
    title: str
    category: str  # topic, for grouping in the overview and dashboards
    priority: int  # 1 = headline KPI ... 4 = data health (the id's major number)
    unit: str  # unit of the value (scalars) or of the main measure column (tables)
    kind: str  # "scalar" | "table"
    columns: tuple[str, ...]
    description: str  # the rule in words
    sql: str
    thresholds: Thresholds | None = None
    fixed_rows: tuple[str, ...] = ()  # tables whose first column always has these keys
    core: bool = True  # one of the 23 of SPEC §5.2 (False: the metrics beyond the 23)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_scalar(self) -> bool:
        return self.kind == "scalar"


# --- SQL building blocks (composed once, at import time; the resulting strings are the SQL) ----

_FROM, _TO, _TEAM = "%(date_from)s::timestamptz", "%(date_to)s::timestamptz", "%(team)s::text"


def _period(col: str) -> str:
    return f"({_FROM} IS NULL OR {col} >= {_FROM}) AND ({_TO} IS NULL OR {col} < {_TO})"


def _team(col: str) -> str:
    return f"({_TEAM} IS NULL OR {col} = {_TEAM})"


TICKET_FILTER = f"{_period('f.created_at')} AND {_team('f.team')}"
QUALITY_FILTER = f"{_period('q.comment_time')} AND {_team('q.team')}"
SAMPLE = "(SELECT min_team_sample FROM metric_settings WHERE id = 1)"


def _pct(num: str, den: str) -> str:
    return f"round(100 * ({num})::numeric / nullif({den}, 0), 2)"


def _rate(condition: str, population: str) -> str:
    """Scalar %: share of the population (ticket facts) meeting `condition`."""
    return (
        f"SELECT {_pct(f'count(*) FILTER (WHERE {condition})', 'count(*)')} AS value\n"
        f"FROM metric_ticket_facts f\nWHERE {population} AND {TICKET_FILTER}"
    )


def _share(key: str, population: str, order: str, limit: str = "") -> str:
    """Table key, tickets, pct: closed tickets per key, pct of the population."""
    return (
        f"WITH p AS (\n  SELECT f.{key} AS {key}, count(*) AS tickets\n"
        f"  FROM metric_ticket_facts f\n  WHERE {population} AND f.{key} IS NOT NULL"
        f" AND {TICKET_FILTER}\n  GROUP BY f.{key}\n)\n"
        f"SELECT {key}, tickets, {_pct('tickets', 'sum(tickets) OVER ()')} AS pct\n"
        f"FROM p\nORDER BY {order}{limit}"
    )


def _team_rate(condition: str, population: str) -> str:
    """Table team, tickets, pct for teams with at least MIN_TEAM_SAMPLE tickets."""
    return (
        f"SELECT f.team, count(*) AS tickets,\n"
        f"       {_pct(f'count(*) FILTER (WHERE {condition})', 'count(*)')} AS pct\n"
        f"FROM metric_ticket_facts f\nWHERE {population} AND f.team IS NOT NULL"
        f" AND {TICKET_FILTER}\nGROUP BY f.team\nHAVING count(*) >= {SAMPLE}\n"
        f"ORDER BY count(*) FILTER (WHERE {condition})::numeric / count(*) DESC, f.team"
    )


def _buckets(expr: str, buckets: tuple[tuple[str, str], ...], population: str) -> str:
    """Fixed buckets (all always present) of a per-ticket count, with pct of the population."""
    values = ", ".join(f"('{name}', {i})" for i, (name, _) in enumerate(buckets, 1))
    cases = " ".join(f"WHEN {cond} THEN '{name}'" for name, cond in buckets)
    return (
        f"WITH b(bucket, ord) AS (VALUES {values}),\n"
        f"c AS (\n  SELECT CASE {cases} END AS bucket, count(*) AS n\n"
        f"  FROM metric_ticket_facts f\n  WHERE {population} AND {TICKET_FILTER}\n"
        f"  GROUP BY 1\n)\n"
        f"SELECT b.bucket, coalesce(c.n, 0) AS tickets,\n"
        f"       {_pct('coalesce(c.n, 0)', 'sum(coalesce(c.n, 0)) OVER ()')} AS pct\n"
        f"FROM b LEFT JOIN c ON c.bucket = b.bucket\nORDER BY b.ord"
    )


VALID_DURATION = "f.resolution_days IS NOT NULL"
CLOSED = "f.is_closed"
PERCENT, DAYS, SCORE, TICKETS = "%", "days", "score", "tickets"

_SQL_1_5 = f"""SELECT round(avg(q.quality_score), 2) AS value,
       round(avg(q.professionalism_score), 2) AS professionalism,
       round(avg(q.clarity_score), 2) AS clarity,
       round(avg(q.empathy_score), 2) AS empathy,
       round(avg(q.actionability_score), 2) AS actionability
FROM metric_quality_facts q
WHERE {QUALITY_FILTER}"""

_SQL_2_4 = f"""SELECT f.team, count(*) AS tickets,
       round(sum(f.comments)::numeric / count(*), 2) AS avg_comments
FROM metric_ticket_facts f
WHERE f.is_closed AND f.is_support AND f.team IS NOT NULL AND {TICKET_FILTER}
GROUP BY f.team
HAVING count(*) >= {SAMPLE}
ORDER BY sum(f.comments)::numeric / count(*), f.team"""

_SQL_2_5 = f"""WITH p AS (
  SELECT q.tier, count(*) AS comments
  FROM metric_quality_facts q
  WHERE q.tier IS NOT NULL AND {QUALITY_FILTER}
  GROUP BY q.tier
)
SELECT tier, comments, {_pct("comments", "sum(comments) OVER ()")} AS pct
FROM p
ORDER BY array_position(ARRAY['excellent', 'good', 'acceptable', 'poor'], tier)"""

_SQL_2_6 = f"""SELECT f.created_month AS month, count(*) AS tickets
FROM metric_ticket_facts f
WHERE {TICKET_FILTER}
GROUP BY f.created_month
ORDER BY f.created_month"""

_SQL_2_7 = f"""SELECT f.team, count(*) AS tickets, round(avg(f.resolution_days), 2) AS avg_days
FROM metric_ticket_facts f
WHERE {VALID_DURATION} AND f.team IS NOT NULL AND {TICKET_FILTER}
GROUP BY f.team
HAVING count(*) >= {SAMPLE}
ORDER BY avg(f.resolution_days), f.team"""

_SQL_3_1 = f"""WITH p AS (
  SELECT f.team, f.category, count(*) AS tickets
  FROM metric_ticket_facts f
  WHERE f.is_closed AND f.team IS NOT NULL AND f.category IS NOT NULL AND {TICKET_FILTER}
  GROUP BY f.team, f.category
), s AS (
  SELECT team, category, tickets, sum(tickets) OVER (PARTITION BY team) AS team_tickets FROM p
)
SELECT team, category, tickets, {_pct("tickets", "team_tickets")} AS pct_of_team
FROM s
WHERE tickets >= {MIN_MATRIX_CELL}
ORDER BY team, tickets DESC, category"""

_NO_PERIOD = f"({_FROM} IS NULL AND {_TO} IS NULL)"

# 3.2 reads per-pair rows (agent x linked ticket, with its first and last work day): a pair
# wholly inside the period counts at once, one wholly outside never, and only pairs crossing a
# period boundary look at their per-day rows. Hours come from the per-agent-day rows (per-pair
# rows with a team but no period).
_SQL_3_2 = f"""WITH h AS (
  SELECT a.agent, sum(a.hours) AS hours
  FROM metric_agent_day_facts a
  WHERE a.agent IS NOT NULL AND {_TEAM} IS NULL AND {_period("a.work_start")}
  GROUP BY a.agent
  UNION ALL
  SELECT l.agent, sum(l.hours) AS hours
  FROM metric_linked_timesheet_facts l
  WHERE l.agent IS NOT NULL AND {_TEAM} IS NOT NULL AND NOT {_NO_PERIOD} AND l.team = {_TEAM}
    AND {_period("l.work_start")}
  GROUP BY l.agent
  UNION ALL
  SELECT p.agent, sum(p.hours) AS hours
  FROM metric_agent_ticket_facts p
  WHERE p.agent IS NOT NULL AND {_TEAM} IS NOT NULL AND {_NO_PERIOD} AND p.team = {_TEAM}
  GROUP BY p.agent
), k AS (
  SELECT p.agent, count(*) AS tickets
  FROM metric_agent_ticket_facts p
  WHERE p.agent IS NOT NULL AND {_team("p.team")}
    AND ({_FROM} IS NULL OR p.last_start >= {_FROM}) AND ({_TO} IS NULL OR p.first_start < {_TO})
    AND ((({_FROM} IS NULL OR p.first_start >= {_FROM}) AND ({_TO} IS NULL OR p.last_start < {_TO}))
         OR EXISTS (
           SELECT 1 FROM metric_linked_timesheet_facts l
           WHERE l.ticket_id = p.ticket_id AND l.agent = p.agent AND {_period("l.work_start")}
         ))
  GROUP BY p.agent
)
SELECT h.agent, round(h.hours, 2) AS hours, coalesce(k.tickets, 0) AS tickets,
       round(h.hours / nullif(k.tickets, 0), 2) AS hours_per_ticket
FROM h
LEFT JOIN k ON k.agent = h.agent
ORDER BY h.hours DESC, h.agent
LIMIT 10"""

_SQL_3_3 = f"""SELECT f.created_month AS month, count(*) AS tickets,
       round(avg(f.resolution_days), 2) AS avg_days
FROM metric_ticket_facts f
WHERE {VALID_DURATION} AND {TICKET_FILTER}
GROUP BY f.created_month
ORDER BY f.created_month"""

_SQL_3_6 = f"""SELECT {_pct("count(*) FILTER (WHERE a.accurate)", "count(*)")} AS value
FROM metric_root_cause_audits a
WHERE a.accurate IS NOT NULL AND {_period("a.created_at")} AND {_team("a.team")}"""

# Orphan comments (ticket not loaded) count by their first comment time; timesheet rows not
# linked to a loaded ticket by work date (all rows minus linked rows). Neither has a current
# team, so a team filter leaves them out.
_UNLINKED_CTES = f"""o AS (
  SELECT coalesce(sum(o.comments), 0) AS comments,
         coalesce(sum(o.cf_comments), 0) AS cf,
         coalesce(sum(o.cf_with_quality), 0) AS cf_quality
  FROM metric_comment_counts o
  WHERE NOT o.loaded AND {_TEAM} IS NULL AND {_period("o.first_comment_at")}
), a AS (
  SELECT coalesce(sum(a.entries), 0) AS entries,
         coalesce(sum(a.ticket_entries), 0) AS ticket_entries,
         coalesce(sum(a.hours), 0) AS hours
  FROM metric_agent_day_facts a
  WHERE {_TEAM} IS NULL AND {_period("a.work_start")}
), l AS (  -- linked rows: per-pair totals without a period, else the per-day rows
  SELECT coalesce(sum(x.entries), 0) AS entries, coalesce(sum(x.hours), 0) AS hours
  FROM (
    SELECT l.entries, l.hours
    FROM metric_linked_timesheet_facts l
    WHERE {_TEAM} IS NULL AND NOT {_NO_PERIOD} AND {_period("l.work_start")}
    UNION ALL
    SELECT p.entries, p.hours
    FROM metric_agent_ticket_facts p
    WHERE {_TEAM} IS NULL AND {_NO_PERIOD}
  ) x
)"""

_SQL_4_2 = f"""WITH t AS (
  SELECT count(*) AS tickets,
         count(*) FILTER (WHERE f.is_closed) AS closed,
         count(*) FILTER (WHERE f.is_closed AND f.ts_rows > 0) AS closed_ts,
         count(*) FILTER (WHERE f.is_closed AND f.root_cause IS NOT NULL) AS closed_rc,
         count(*) FILTER (WHERE f.sla_met IS NOT NULL) AS with_sla,
         coalesce(sum(f.comments), 0) AS comments,
         coalesce(sum(f.cf_comments), 0) AS cf,
         coalesce(sum(f.cf_with_quality), 0) AS cf_quality,
         coalesce(sum(f.ts_rows), 0) AS ts_rows
  FROM metric_ticket_facts f
  WHERE {TICKET_FILTER}
), {_UNLINKED_CTES}
SELECT v.indicator, v.numerator, v.denominator,
       {_pct("v.numerator", "v.denominator")} AS pct
FROM t, o, a, l, LATERAL (VALUES
  ('timesheet_coverage', t.closed_ts, t.closed, 1),
  ('root_cause_coverage', t.closed_rc, t.closed, 2),
  ('sla_data_coverage', t.with_sla, t.tickets, 3),
  ('quality_coverage', t.cf_quality + o.cf_quality, t.cf + o.cf, 4),
  ('orphan_comments', o.comments, t.comments + o.comments, 5),
  ('orphan_timesheets', a.ticket_entries - l.entries, t.ts_rows + a.entries - l.entries, 6)
) AS v(indicator, numerator, denominator, ord)
ORDER BY v.ord"""

_SQL_4_3 = f"""WITH t AS (
  SELECT count(*) AS tickets,
         count(*) FILTER (WHERE f.is_closed) AS closed,
         coalesce(sum(f.comments), 0) AS comments,
         coalesce(sum(f.cf_comments), 0) AS cf,
         coalesce(sum(f.ts_rows), 0) AS ts_rows,
         coalesce(sum(f.ts_hours), 0) AS ts_hours
  FROM metric_ticket_facts f
  WHERE {TICKET_FILTER}
), {_UNLINKED_CTES}
SELECT v.measure, v.value
FROM t, o, a, l, LATERAL (VALUES
  ('tickets', t.tickets::numeric, 1),
  ('closed_tickets', t.closed::numeric, 2),
  ('comments', (t.comments + o.comments)::numeric, 3),
  ('customer_facing_comments', (t.cf + o.cf)::numeric, 4),
  ('timesheet_entries', (t.ts_rows + a.entries - l.entries)::numeric, 5),
  ('timesheet_hours', round(t.ts_hours + a.hours - l.hours, 2), 6)
) AS v(measure, value, ord)
ORDER BY v.ord"""

_CF_BUCKETS = (
    ("0", "f.cf_comments = 0"),
    ("1", "f.cf_comments = 1"),
    ("2-3", "f.cf_comments <= 3"),
    ("4+", "true"),
)
_AGENT_BUCKETS = (
    ("1", "f.ts_agents <= 1"),
    ("2", "f.ts_agents = 2"),
    ("3", "f.ts_agents = 3"),
    ("4+", "true"),
)

_TEAM_RATE = ("team", "tickets", "pct")

METRICS: tuple[MetricDef, ...] = (
    MetricDef(
        "1.1",
        "sla_compliance_rate",
        "SLA compliance",
        "SLA",
        1,
        PERCENT,
        "scalar",
        ("value",),
        "Tickets of any status whose SLA Met is known: percentage with SLA Met = yes.",
        _rate("f.sla_met", "f.sla_met IS NOT NULL"),
        _t("95", "90", True),
    ),
    MetricDef(
        "1.2",
        "avg_resolution_days",
        "Average resolution time",
        "Resolution",
        1,
        DAYS,
        "scalar",
        ("value",),
        "Mean of (resolved - created) in days over closed tickets with both dates and a "
        "non-negative duration (negative durations are excluded as a data-quality issue).",
        f"SELECT round(avg(f.resolution_days), 2) AS value\nFROM metric_ticket_facts f\n"
        f"WHERE {VALID_DURATION} AND {TICKET_FILTER}",
        _t("3", "5", False),
    ),
    MetricDef(
        "1.3",
        "fcr_rate",
        "First contact resolution",
        "Communication",
        1,
        PERCENT,
        "scalar",
        ("value",),
        "Closed tickets: percentage with at most one customer-facing comment.",
        _rate("f.cf_comments <= 1", CLOSED),
        _t("70", "60", True),
    ),
    MetricDef(
        "1.4",
        "customer_communication_coverage",
        "Customer communication coverage",
        "Communication",
        1,
        PERCENT,
        "scalar",
        ("value",),
        "Closed tickets: percentage with at least one customer-facing comment.",
        _rate("f.cf_comments >= 1", CLOSED),
        _t("90", "80", True),
    ),
    MetricDef(
        "1.5",
        "comment_quality_score",
        "Comment quality score",
        "Quality",
        1,
        SCORE,
        "scalar",
        ("value", "professionalism", "clarity", "empathy", "actionability"),
        "Mean overall quality score (1-5) of the quality results in the period (comment "
        "time), with the means of the four dimensions.",
        _SQL_1_5,
        _t("4", "3", True),
    ),
    MetricDef(
        "2.1",
        "reassignment_rate",
        "Reassignment rate",
        "Workload",
        2,
        PERCENT,
        "scalar",
        ("value",),
        "Tickets with at least one linked timesheet row: percentage worked by more than one "
        "distinct timesheet user (username, else full name).",
        _rate("f.ts_agents > 1", "f.ts_rows > 0"),
        _t("20", "30", False),
    ),
    MetricDef(
        "2.2",
        "root_cause_distribution",
        "Root causes (top 10)",
        "Root cause",
        2,
        TICKETS,
        "table",
        ("root_cause", "tickets", "pct"),
        "Closed tickets with a root cause, per root cause; pct of all such tickets; the 10 "
        "largest, by tickets then name.",
        _share("root_cause", CLOSED, "tickets DESC, root_cause", "\nLIMIT 10"),
    ),
    MetricDef(
        "2.3",
        "team_workload_distribution",
        "Team workload",
        "Workload",
        2,
        TICKETS,
        "table",
        ("team", "tickets", "pct"),
        "Closed tickets with a team, per team; pct of all such tickets. A team above 20 % "
        "is yellow, above 30 % red.",
        _share("team", CLOSED, "tickets DESC, team"),
        _t("20", "30", False, column="pct"),
    ),
    MetricDef(
        "2.4",
        "team_efficiency_ranking",
        "Handling events per ticket",
        "Team",
        2,
        "comments",
        "table",
        ("team", "tickets", "avg_comments"),
        "Closed tickets of the support category (setting SUPPORT_CATEGORY): comments per "
        "ticket (all comments), per team with at least MIN_TEAM_SAMPLE such tickets; lowest "
        "first.",
        _SQL_2_4,
        _t("12", "18", False, column="avg_comments"),
    ),
    MetricDef(
        "2.5",
        "quality_tier_distribution",
        "Quality tiers",
        "Quality",
        2,
        "comments",
        "table",
        ("tier", "comments", "pct"),
        "Quality results per tier: the stored tier when it is one of excellent/good/"
        "acceptable/poor (any case), else from the score (>=4.5 excellent, >=3.5 good, "
        ">=2.5 acceptable, else poor). Status: share of good + excellent.",
        _SQL_2_5,
        _t("60", "40", True, column="pct", summary="good_excellent_pct"),
    ),
    MetricDef(
        "2.6",
        "monthly_ticket_volume",
        "Monthly ticket volume",
        "Volume",
        2,
        TICKETS,
        "table",
        ("month", "tickets"),
        "Tickets per month of creation (YYYY-MM in TIME_ZONE), ascending; months without "
        "tickets are absent.",
        _SQL_2_6,
    ),
    MetricDef(
        "2.7",
        "resolution_time_by_team",
        "Resolution time by team",
        "Resolution",
        2,
        DAYS,
        "table",
        ("team", "tickets", "avg_days"),
        "As 1.2 per team, teams with at least MIN_TEAM_SAMPLE valid durations; fastest first.",
        _SQL_2_7,
        _t("3", "7", False, column="avg_days"),
    ),
    MetricDef(
        "2.8",
        "team_communication_coverage",
        "Communication coverage by team",
        "Communication",
        2,
        PERCENT,
        "table",
        _TEAM_RATE,
        "As 1.4 per team, teams with at least MIN_TEAM_SAMPLE closed tickets; highest first.",
        _team_rate("f.cf_comments >= 1", CLOSED),
        _t("90", "75", True, column="pct"),
    ),
    MetricDef(
        "3.1",
        "team_specialization_matrix",
        "Team x category",
        "Team",
        3,
        TICKETS,
        "table",
        ("team", "category", "tickets", "pct_of_team"),
        "Closed tickets per team and category; pct of the team's closed tickets with a "
        f"category; cells with at least {MIN_MATRIX_CELL} tickets; by team, then largest.",
        _SQL_3_1,
    ),
    MetricDef(
        "3.2",
        "agent_productivity",
        "Agent hours (top 10)",
        "Team",
        3,
        "hours",
        "table",
        ("agent", "hours", "tickets", "hours_per_ticket"),
        "Per timesheet user full name, in the period by work date: hours of all rows (admin "
        "time included), distinct linked tickets, hours per ticket (null when 0 tickets); "
        "the 10 with most hours. With a team filter: rows linked to that team's tickets.",
        _SQL_3_2,
    ),
    MetricDef(
        "3.3",
        "resolution_time_trend",
        "Resolution time trend",
        "Resolution",
        3,
        DAYS,
        "table",
        ("month", "tickets", "avg_days"),
        "As 1.2 per month of creation, ascending.",
        _SQL_3_3,
    ),
    MetricDef(
        "3.4",
        "fcr_comment_distribution",
        "Customer comments per ticket",
        "Communication",
        3,
        TICKETS,
        "table",
        ("bucket", "tickets", "pct"),
        "Closed tickets by number of customer-facing comments: 0, 1, 2-3, 4+.",
        _buckets("f.cf_comments", _CF_BUCKETS, CLOSED),
        fixed_rows=("0", "1", "2-3", "4+"),
    ),
    MetricDef(
        "3.5",
        "reassignment_distribution",
        "Agents per ticket",
        "Workload",
        3,
        TICKETS,
        "table",
        ("bucket", "tickets", "pct"),
        "Tickets with linked timesheet rows by number of distinct timesheet users: 1, 2, 3, "
        "4+ (rows without any user count as one agent).",
        _buckets("f.ts_agents", _AGENT_BUCKETS, "f.ts_rows > 0"),
        fixed_rows=("1", "2", "3", "4+"),
    ),
    MetricDef(
        "3.6",
        "root_cause_accuracy_rate",
        "Root-cause accuracy",
        "Root cause",
        3,
        PERCENT,
        "scalar",
        ("value",),
        "Reviewed root-cause audits (admin samples closed tickets per category): percentage "
        "marked accurate. Filters apply to the audited ticket.",
        _SQL_3_6,
        _t("90", "80", True),
    ),
    MetricDef(
        "3.7",
        "team_fcr_ranking",
        "First contact resolution by team",
        "Communication",
        3,
        PERCENT,
        "table",
        _TEAM_RATE,
        "As 1.3 per team, teams with at least MIN_TEAM_SAMPLE closed tickets; highest first.",
        _team_rate("f.cf_comments <= 1", CLOSED),
        _t("70", "60", True, column="pct"),
    ),
    MetricDef(
        "4.1",
        "ticket_category_distribution",
        "Ticket categories",
        "Volume",
        4,
        TICKETS,
        "table",
        ("category", "tickets", "pct"),
        "Closed tickets with a category, per category; pct of all such tickets; largest first.",
        _share("category", CLOSED, "tickets DESC, category"),
    ),
    MetricDef(
        "4.2",
        "data_quality_indicators",
        "Data coverage",
        "Data quality",
        4,
        PERCENT,
        "table",
        ("indicator", "numerator", "denominator", "pct"),
        "Coverage: closed tickets with a linked timesheet, closed with a root cause, tickets "
        "with SLA data, customer-facing comments with a quality result; orphans: comments "
        "whose ticket is not loaded, timesheet rows naming a ticket that is not loaded. "
        "Orphan comments count by their first comment time, unlinked timesheet rows by "
        "work date; having no loaded ticket, both are left out by a team filter.",
        _SQL_4_2,
        _t(
            "90",
            "70",
            True,
            column="pct",
            rows=(
                "timesheet_coverage",
                "root_cause_coverage",
                "sla_data_coverage",
                "quality_coverage",
            ),
        ),
        fixed_rows=(
            "timesheet_coverage",
            "root_cause_coverage",
            "sla_data_coverage",
            "quality_coverage",
            "orphan_comments",
            "orphan_timesheets",
        ),
    ),
    MetricDef(
        "4.3",
        "volume_summary",
        "Totals",
        "Volume",
        4,
        "",
        "table",
        ("measure", "value"),
        "Tickets, closed tickets, comments, customer-facing comments, timesheet entries and "
        "hours in scope (comments and timesheets count with their ticket; orphans by their "
        "own date).",
        _SQL_4_3,
        fixed_rows=(
            "tickets",
            "closed_tickets",
            "comments",
            "customer_facing_comments",
            "timesheet_entries",
            "timesheet_hours",
        ),
    ),
)

# --- Beyond the 23 (SPEC §5.2, last paragraph): same contract, flagged core=False ----------

_TZ = "(SELECT time_zone FROM metric_settings WHERE id = 1)"
BEYOND = "Beyond the 23"


def _percentiles(expr: str, population: str) -> str:
    return (
        f"SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY {expr}))::numeric, 2)"
        f" AS value,\n"
        f"       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY {expr}))::numeric, 2)"
        f" AS p90\nFROM metric_ticket_facts f\nWHERE {population} AND {TICKET_FILTER}"
    )


_SQL_BACKLOG = f"""WITH ref AS (
  SELECT coalesce({_TO}, max(f.created_at)) AS at FROM metric_ticket_facts f
), b(bucket, ord) AS (VALUES ('<1d', 1), ('1-7d', 2), ('7-30d', 3), ('30d+', 4)),
c AS (
  SELECT CASE WHEN ref.at - f.created_at < interval '1 day' THEN '<1d'
              WHEN ref.at - f.created_at < interval '7 days' THEN '1-7d'
              WHEN ref.at - f.created_at < interval '30 days' THEN '7-30d'
              ELSE '30d+' END AS bucket,
         count(*) AS n
  FROM metric_ticket_facts f, ref
  WHERE NOT f.is_closed AND {TICKET_FILTER}
  GROUP BY 1
)
SELECT b.bucket, coalesce(c.n, 0) AS tickets,
       {_pct("coalesce(c.n, 0)", "sum(coalesce(c.n, 0)) OVER ()")} AS pct
FROM b LEFT JOIN c ON c.bucket = b.bucket
ORDER BY b.ord"""

_SQL_WEEKLY = f"""WITH created AS (
  SELECT date_trunc('week', f.created_at AT TIME ZONE {_TZ})::date AS week, count(*) AS n
  FROM metric_ticket_facts f
  WHERE {TICKET_FILTER}
  GROUP BY 1
), resolved AS (
  SELECT date_trunc('week', f.resolved_at AT TIME ZONE {_TZ})::date AS week, count(*) AS n
  FROM metric_ticket_facts f
  WHERE f.is_closed AND f.resolved_at IS NOT NULL AND {_team("f.team")}
    AND {_period("f.resolved_at")}
  GROUP BY 1
)
SELECT to_char(coalesce(c.week, r.week), 'YYYY-MM-DD') AS week,
       coalesce(c.n, 0) AS created, coalesce(r.n, 0) AS resolved
FROM created c FULL JOIN resolved r ON r.week = c.week
ORDER BY 1"""

METRICS = METRICS + (
    MetricDef(
        "5.1",
        "first_response_hours",
        "First response time",
        BEYOND,
        5,
        "hours",
        "scalar",
        ("value", "p90"),
        "Hours from creation to the actual response date: median (value) and 90th "
        "percentile, tickets with a response not before creation.",
        _percentiles(
            "extract(epoch FROM f.responded_at - f.created_at) / 3600",
            "f.responded_at >= f.created_at",
        ),
        core=False,
    ),
    MetricDef(
        "5.2",
        "response_sla_met_rate",
        "Response SLA met",
        BEYOND,
        5,
        PERCENT,
        "scalar",
        ("value",),
        "Tickets whose Response Met is known: percentage met.",
        _rate("f.response_met", "f.response_met IS NOT NULL"),
        _t("95", "90", True),
        core=False,
    ),
    MetricDef(
        "5.3",
        "resolution_sla_met_rate",
        "Resolution SLA met",
        BEYOND,
        5,
        PERCENT,
        "scalar",
        ("value",),
        "Tickets whose Resolution Met is known: percentage met.",
        _rate("f.resolution_met", "f.resolution_met IS NOT NULL"),
        _t("95", "90", True),
        core=False,
    ),
    MetricDef(
        "5.4",
        "open_backlog_age",
        "Open backlog by age",
        BEYOND,
        5,
        TICKETS,
        "table",
        ("bucket", "tickets", "pct"),
        "Tickets not in the closed set by age at the end of the period (or, without one, at "
        "the newest ticket's creation, so history never depends on today's date).",
        _SQL_BACKLOG,
        fixed_rows=("<1d", "1-7d", "7-30d", "30d+"),
        core=False,
    ),
    MetricDef(
        "5.5",
        "weekly_created_resolved",
        "Created vs resolved per week",
        BEYOND,
        5,
        TICKETS,
        "table",
        ("week", "created", "resolved"),
        "Tickets created per week (period on creation) and closed tickets resolved per week "
        "(period on the resolution date); weeks start on Monday in TIME_ZONE.",
        _SQL_WEEKLY,
        core=False,
    ),
    MetricDef(
        "5.6",
        "resolution_days_percentiles",
        "Resolution time median and p90",
        BEYOND,
        5,
        DAYS,
        "scalar",
        ("value", "p90"),
        "As 1.2, the median (value) and 90th percentile instead of the mean.",
        _percentiles("f.resolution_days", VALID_DURATION),
        core=False,
    ),
)

CORE_METRICS: tuple[MetricDef, ...] = tuple(m for m in METRICS if m.core)
BY_ID: dict[str, MetricDef] = {m.id: m for m in METRICS}
BY_SLUG: dict[str, MetricDef] = {m.slug: m for m in METRICS}


def get_metric(key: str) -> MetricDef:
    """A metric by id ("1.1") or slug ("sla_compliance_rate"); KeyError names the choices."""
    metric = BY_ID.get(key) or BY_SLUG.get(key)
    if metric is None:
        raise KeyError(f"unknown metric {key!r}; use an id (1.1 ... 4.3) or a slug")
    return metric


def null_params() -> dict[str, None]:
    """Parameters meaning "no filter" (benchmarks, Grafana defaults)."""
    return dict.fromkeys(PARAMS)
