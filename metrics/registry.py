"""THE metric registry (SPEC §5): every metric is defined here once, with its SQL.

Consumers: `metrics.compute` (compute_metrics, admin overview, restore drill), `ops.benchmarks`
(benchmark_metrics) and the Grafana dashboard generator. They all run `MetricDef.sql` unchanged.

SQL contract
------------
The SQL reads only the metric views created by `metrics/migrations` (`METRIC_RELATIONS`: the
per-day cubes, the per-ticket facts and the smaller facts behind them, `metric_settings`),
never the raw tables. Ticket metrics read the cubes through `_hybrid` (whole days from the
cube, days cut by a period bound ticket by ticket), so any period stays exact. It takes exactly
these psycopg-style named parameters (see `PARAMS`); a NULL parameter means "no filter":

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
in numeric and rounded once with ``round(x, 2)`` (half away from zero); mean days come from
summed integer microseconds in one division.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

#: Named parameters every metric SQL accepts (name -> PostgreSQL type). NULL = no filter.
PARAMS: dict[str, str] = {"date_from": "timestamptz", "date_to": "timestamptz", "team": "text"}

#: The views over the fact tables, in the build order of `metrics.facts.FACT_TABLES` (one view
#: per table, same position). Defined here, where the SQL that reads them is.
FACT_VIEWS: tuple[str, ...] = (
    "metric_quality_facts",
    "metric_comment_counts",
    "metric_agent_day_facts",
    "metric_linked_timesheet_facts",
    "metric_agent_ticket_facts",
    "metric_ticket_facts",
    "metric_ticket_cube",
    "metric_root_cause_cube",
    "metric_resolved_cube",
)

#: Every relation metric SQL reads: what the read-only Grafana role needs SELECT on. Besides
#: the fact views, the settings row and the live view of root-cause audits.
METRIC_RELATIONS: tuple[str, ...] = ("metric_settings", *FACT_VIEWS, "metric_root_cause_audits")

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
class QualityTier:
    """One quality tier (2.5). `min_score` is the lowest score that earns it when a result has
    no usable stored tier (None: every score below the tiers above); `good` tiers make up
    2.5's status share."""

    name: str
    min_score: Decimal | None
    good: bool = False


#: The quality tiers, best first: their names, score cut-offs and which count as good. The one
#: place for them: the tier facts (`quality_tier_sql`), 2.5's SQL order, description and status
#: summary (admin and Grafana) are all generated from it.
QUALITY_TIERS: tuple[QualityTier, ...] = (
    QualityTier("excellent", Decimal("4.5"), good=True),
    QualityTier("good", Decimal("3.5"), good=True),
    QualityTier("acceptable", Decimal("2.5")),
    QualityTier("poor", None),
)
assert QUALITY_TIERS[-1].min_score is None, "the last tier takes every lower score"
#: The tier names as SQL literals, best first (2.5 lists its rows in this order).
_TIER_NAMES = ", ".join(f"'{tier.name}'" for tier in QUALITY_TIERS)


def quality_tier_sql(stored: str, score: str, indent: str = "") -> str:
    """SQL CASE giving a quality result's tier: the `stored` tier when it names one of
    QUALITY_TIERS (any case, trimmed), else the first tier whose cut-off `score` reaches; NULL
    without either. Lines after the first start with `indent` (it is embedded in fact SQL)."""
    stored_tier = f"lower(btrim({stored}))"
    lines = ["CASE", f"    WHEN {stored_tier} IN ({_TIER_NAMES})", f"        THEN {stored_tier}"]
    for tier in QUALITY_TIERS:
        reached = (
            f"{score} IS NOT NULL" if tier.min_score is None else f"{score} >= {tier.min_score}"
        )
        lines.append(f"    WHEN {reached} THEN '{tier.name}'")
    lines.append("END")
    return f"\n{indent}".join(lines)


def _quality_tier_rule() -> str:
    """`quality_tier_sql` in words, for 2.5's description."""
    names = "/".join(tier.name for tier in QUALITY_TIERS)
    cuts = ", ".join(
        f"else {tier.name}" if tier.min_score is None else f">={tier.min_score} {tier.name}"
        for tier in QUALITY_TIERS
    )
    return f"the stored tier when it is one of {names} (any case), else from the score ({cuts})"


@dataclass(frozen=True)
class ShareSummary:
    """A whole-table status figure (`Thresholds.summary`): the percentage of the `count` column
    in the rows whose `key` column is one of `keys`, rounded half away from zero to 2 places.
    `metrics.compute.summary_value` computes it in Python, `metrics.grafana` in SQL."""

    label: str  # in words: "good + excellent"
    key: str
    count: str
    keys: tuple[str, ...]


#: 2.5's good tiers, worst first as its words say them ("good + excellent").
GOOD_TIERS: tuple[str, ...] = tuple(tier.name for tier in reversed(QUALITY_TIERS) if tier.good)
#: The name of 2.5's summary figure: "good_excellent_pct".
GOOD_TIERS_PCT = "_".join(GOOD_TIERS) + "_pct"

#: Every summary a `Thresholds.summary` may name.
SUMMARIES: dict[str, ShareSummary] = {
    GOOD_TIERS_PCT: ShareSummary(" + ".join(GOOD_TIERS), "tier", "comments", GOOD_TIERS),
}


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

    def threshold_rule(self) -> str:
        """The status rule in words, in the unit of what it is applied to: a share column
        (pct..., ..._pct) is a percentage even when the metric's main unit is tickets."""
        if self.thresholds is None:
            return ""
        judged = self.thresholds.summary or self.thresholds.column
        if judged.startswith("pct") or judged.endswith("_pct") or self.unit == "%":
            unit = "%"
        else:
            unit = f" {self.unit}" if self.unit else ""
        return self.thresholds.describe(unit)


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


_TZ = "(SELECT time_zone FROM metric_settings WHERE id = 1)"


def _covered(x: str) -> str:
    """The creation day of `x` lies wholly inside the period."""
    return (
        f"({_FROM} IS NULL OR {x}.day_start >= {_FROM}) AND ({_TO} IS NULL OR {x}.day_end <= {_TO})"
    )


# The cube's measures, and the same measure for one ticket (rows of days cut by the period).
_CUBE_MEASURES = (
    ("tickets", "1::bigint"),
    ("sla_known", "(f.sla_met IS NOT NULL)::int::bigint"),
    ("sla_met", "coalesce(f.sla_met, false)::int::bigint"),
    ("res_n", "(f.resolution_us IS NOT NULL)::int::bigint"),
    ("res_us", "coalesce(f.resolution_us, 0)::numeric"),
    ("comments", "f.comments::numeric"),
    ("cf_comments", "f.cf_comments::numeric"),
    ("cf_with_quality", "f.cf_with_quality::numeric"),
    ("ts_rows", "f.ts_rows::numeric"),
    ("ts_hours", "f.ts_hours"),
    ("with_ts", "(f.ts_rows > 0)::int::bigint"),
    ("cf0", "(f.cf_comments = 0)::int::bigint"),
    ("cf1", "(f.cf_comments = 1)::int::bigint"),
    ("cf2", "(f.cf_comments = 2)::int::bigint"),
    ("cf3", "(f.cf_comments = 3)::int::bigint"),
    ("cf4", "(f.cf_comments >= 4)::int::bigint"),
    ("ag1", "(f.ts_rows > 0 AND f.ts_agents <= 1)::int::bigint"),
    ("ag2", "(f.ts_rows > 0 AND f.ts_agents = 2)::int::bigint"),
    ("ag3", "(f.ts_rows > 0 AND f.ts_agents = 3)::int::bigint"),
    ("ag4", "(f.ts_rows > 0 AND f.ts_agents >= 4)::int::bigint"),
    ("with_rc", "(f.root_cause IS NOT NULL)::int::bigint"),
    ("response_known", "(f.response_met IS NOT NULL)::int::bigint"),
    ("response_met", "coalesce(f.response_met, false)::int::bigint"),
    ("resolution_known", "(f.resolution_met IS NOT NULL)::int::bigint"),
    ("resolution_met", "coalesce(f.resolution_met, false)::int::bigint"),
)


#: CTE `c`: ticket counts and sums per creation day x team x category x closed, for the period
#: and team. Days wholly inside the period come from the cube; the (at most two) days cut by a
#: period bound are summed from their tickets (found through the created_at index), so the
#: result is exact for any bound.
def _hybrid(
    name: str,
    cube: str,
    columns: tuple[tuple[str, str], ...],
    time_col: str,
    population: str = "true",
    day_start: str = "f.day_start",
    day_end: str = "f.day_end",
    by_team: bool = True,
) -> str:
    """CTE `name` over a per-day cube view, exact for any period and team.

    Days wholly inside the period come from `cube`; the (at most two) days cut by a period bound
    are summed from their tickets (`population` of metric_ticket_facts, found through the index
    on `time_col`), each `columns` entry giving the cube column and the same value for one
    ticket. Without a period the ticket branch is constant-false and costs nothing.
    """
    covered_f = (
        f"({_FROM} IS NULL OR {day_start} >= {_FROM}) AND ({_TO} IS NULL OR {day_end} <= {_TO})"
    )
    # End of the day `from` falls in, start of the day `to` falls in: each cut day is one index
    # range (a NULL bound makes its branch constant-false).
    lower_end = (
        f"((date_trunc('day', {_FROM} AT TIME ZONE {_TZ}) + interval '1 day') AT TIME ZONE {_TZ})"
    )
    upper_start = f"(date_trunc('day', {_TO} AT TIME ZONE {_TZ}) AT TIME ZONE {_TZ})"
    ticket_cols = ", ".join(e for _, e in columns)
    team = _team if by_team else (lambda col: "true")  # by_team=False: every team, always
    ticket_where = f"{population} AND {team('f.team')} AND NOT ({covered_f})"
    return (
        f"{name} AS (\n  SELECT {', '.join(f'x.{c}' for c, _ in columns)}\n"
        f"  FROM {cube} x\n  WHERE {team('x.team')} AND {_covered('x')}\n"
        f"  UNION ALL\n  SELECT {ticket_cols}\n  FROM metric_ticket_facts f\n"
        f"  WHERE {time_col} >= {_FROM} AND {time_col} < least({lower_end}, {_TO})\n"
        f"    AND {ticket_where}\n"
        f"  UNION ALL\n  SELECT {ticket_cols}\n  FROM metric_ticket_facts f\n"
        f"  WHERE {time_col} >= greatest({upper_start}, {lower_end}) AND {time_col} < {_TO}\n"
        f"    AND {ticket_where}\n)"
    )


_CUBE_KEYS = (
    ("day_start", "f.day_start"),
    ("month", "f.created_month"),
    ("team", "f.team"),
    ("category", "f.category"),
    ("is_closed", "f.is_closed"),
    ("is_support", "f.is_support"),
)

#: CTE `c`: ticket counts and sums per creation day x team x category x closed (the cube).
CUBE_CTE = _hybrid("c", "metric_ticket_cube", _CUBE_KEYS + _CUBE_MEASURES, "f.created_at")
#: The same for every team whatever the team filter: the denominator of a team's share.
ALL_TEAMS_CUBE_CTE = _hybrid(
    "c", "metric_ticket_cube", _CUBE_KEYS + _CUBE_MEASURES, "f.created_at", by_team=False
)

#: CTE `rc`: closed tickets with a root cause per creation day x team x root cause.
RC_CUBE_CTE = _hybrid(
    "rc",
    "metric_root_cause_cube",
    (("day_start", "f.day_start"), ("root_cause", "f.root_cause"), ("tickets", "1::bigint")),
    "f.created_at",
    "f.is_closed AND f.root_cause IS NOT NULL",
)

_RESOLVED_DAY = f"(date_trunc('day', f.resolved_at AT TIME ZONE {_TZ}) AT TIME ZONE {_TZ})"
#: CTE `rs`: closed tickets per resolution day x team.
RESOLVED_CUBE_CTE = _hybrid(
    "rs",
    "metric_resolved_cube",
    (("day_start", _RESOLVED_DAY), ("tickets", "1::bigint")),
    "f.resolved_at",
    "f.is_closed AND f.resolved_at IS NOT NULL",
    day_start=_RESOLVED_DAY,
    day_end=f"(((date_trunc('day', f.resolved_at AT TIME ZONE {_TZ}) + interval '1 day'))"
    f" AT TIME ZONE {_TZ})",
)


def _rate(numerator: str, denominator: str, population: str = "true") -> str:
    """Scalar %: sum(numerator) of sum(denominator) over the cube rows of the population."""
    return (
        f"WITH {CUBE_CTE}\n"
        f"SELECT {_pct(f'sum({numerator})', f'sum({denominator})')} AS value\n"
        f"FROM c\nWHERE {population}"
    )


def _cube_share(key: str, order: str) -> str:
    """Table key, tickets, pct: closed tickets per key, pct of all closed tickets with a key."""
    return (
        f"WITH {CUBE_CTE}, p AS (\n  SELECT c.{key} AS {key}, sum(c.tickets) AS tickets\n"
        f"  FROM c\n  WHERE c.is_closed AND c.{key} IS NOT NULL\n  GROUP BY c.{key}\n)\n"
        f"SELECT {key}, tickets, {_pct('tickets', 'sum(tickets) OVER ()')} AS pct\n"
        f"FROM p\nORDER BY {order}"
    )


def _team_share() -> str:
    """Table team, tickets, pct: closed tickets per team, pct of all teams' closed tickets.

    The share is taken over every team even under a team filter, which only picks the rows
    shown: a team's share of its own tickets would always be 100 % (and judged red).
    """
    return (
        f"WITH {ALL_TEAMS_CUBE_CTE}, p AS (\n  SELECT c.team, sum(c.tickets) AS tickets\n"
        f"  FROM c\n  WHERE c.is_closed AND c.team IS NOT NULL\n  GROUP BY c.team\n), s AS (\n"
        f"  SELECT team, tickets, {_pct('tickets', 'sum(tickets) OVER ()')} AS pct\n  FROM p\n)\n"
        f"SELECT team, tickets, pct\nFROM s\nWHERE {_team('s.team')}\nORDER BY tickets DESC, team"
    )


def _team_rate(numerator: str) -> str:
    """Table team, tickets, pct: closed tickets per team with at least MIN_TEAM_SAMPLE."""
    return (
        f"WITH {CUBE_CTE}\n"
        f"SELECT c.team, sum(c.tickets) AS tickets,\n"
        f"       {_pct(f'sum({numerator})', 'sum(c.tickets)')} AS pct\n"
        f"FROM c\nWHERE c.is_closed AND c.team IS NOT NULL\nGROUP BY c.team\n"
        f"HAVING sum(c.tickets) >= {SAMPLE}\n"
        f"ORDER BY sum({numerator}) / sum(c.tickets) DESC, c.team"
    )


def _cube_buckets(buckets: tuple[tuple[str, str], ...], population: str) -> str:
    """Fixed buckets (all always present): sums of cube counts, with pct of the population."""
    sums = ", ".join(f"sum({expr}) AS b{i}" for i, (_, expr) in enumerate(buckets, 1))
    values = ", ".join(f"('{name}', s.b{i}, {i})" for i, (name, _) in enumerate(buckets, 1))
    return (
        f"WITH {CUBE_CTE}, s AS (\n  SELECT {sums}\n  FROM c\n  WHERE {population}\n)\n"
        f"SELECT v.bucket, coalesce(v.n, 0) AS tickets,\n"
        f"       {_pct('coalesce(v.n, 0)', 'sum(coalesce(v.n, 0)) OVER ()')} AS pct\n"
        f"FROM s, LATERAL (VALUES {values}) AS v(bucket, n, ord)\nORDER BY v.ord"
    )


_DAYS_US = "86400000000"


def _avg_days(n: str, us: str) -> str:
    """Mean days from summed microseconds: one exact division, rounded once."""
    return f"round(sum({us}) / (nullif(sum({n}), 0) * {_DAYS_US}), 2)"


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

_SQL_2_2 = f"""WITH {RC_CUBE_CTE}, p AS (
  SELECT rc.root_cause, sum(rc.tickets) AS tickets
  FROM rc
  GROUP BY rc.root_cause
)
SELECT root_cause, tickets, {_pct("tickets", "sum(tickets) OVER ()")} AS pct
FROM p
ORDER BY tickets DESC, root_cause
LIMIT 10"""

_SQL_2_4 = f"""WITH {CUBE_CTE}
SELECT c.team, sum(c.tickets) AS tickets,
       round(sum(c.comments) / sum(c.tickets), 2) AS avg_comments
FROM c
WHERE c.is_closed AND c.is_support AND c.team IS NOT NULL
GROUP BY c.team
HAVING sum(c.tickets) >= {SAMPLE}
ORDER BY sum(c.comments) / sum(c.tickets), c.team"""

_SQL_2_5 = f"""WITH p AS (
  SELECT q.tier, count(*) AS comments
  FROM metric_quality_facts q
  WHERE q.tier IS NOT NULL AND {QUALITY_FILTER}
  GROUP BY q.tier
)
SELECT tier, comments, {_pct("comments", "sum(comments) OVER ()")} AS pct
FROM p
ORDER BY array_position(ARRAY[{_TIER_NAMES}], tier)"""

_SQL_2_6 = f"""WITH {CUBE_CTE}
SELECT c.month, sum(c.tickets) AS tickets
FROM c
GROUP BY c.month
ORDER BY c.month"""

_SQL_2_7 = f"""WITH {CUBE_CTE}
SELECT c.team, sum(c.res_n) AS tickets, {_avg_days("c.res_n", "c.res_us")} AS avg_days
FROM c
WHERE c.team IS NOT NULL
GROUP BY c.team
HAVING sum(c.res_n) > 0 AND sum(c.res_n) >= {SAMPLE}
ORDER BY sum(c.res_us) / sum(c.res_n), c.team"""

_SQL_3_1 = f"""WITH {CUBE_CTE}, p AS (
  SELECT c.team, c.category, sum(c.tickets) AS tickets
  FROM c
  WHERE c.is_closed AND c.team IS NOT NULL AND c.category IS NOT NULL
  GROUP BY c.team, c.category
), s AS (
  SELECT team, category, tickets, sum(tickets) OVER (PARTITION BY team) AS team_tickets FROM p
)
SELECT team, category, tickets, {_pct("tickets", "team_tickets")} AS pct_of_team
FROM s
WHERE tickets >= {MIN_MATRIX_CELL}
ORDER BY team, tickets DESC, category"""

_NO_PERIOD = f"({_FROM} IS NULL AND {_TO} IS NULL)"

# 3.2 without a period reads the per-pair rows (agent x linked ticket); with one, the distinct
# pairs among the period's per-day linked rows (an index range). Hours come from the
# per-agent-day rows (per-pair rows with a team but no period).
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
), k AS (  -- distinct linked tickets: per-pair rows without a period, else the period's rows
  SELECT p.agent, count(*) AS tickets
  FROM metric_agent_ticket_facts p
  WHERE p.agent IS NOT NULL AND {_NO_PERIOD} AND {_team("p.team")}
  GROUP BY p.agent
  UNION ALL
  SELECT d.agent, count(*) AS tickets
  FROM (
    SELECT DISTINCT l.agent, l.ticket_id
    FROM metric_linked_timesheet_facts l
    WHERE l.agent IS NOT NULL AND NOT {_NO_PERIOD} AND {_period("l.work_start")}
      AND {_team("l.team")}
  ) d
  GROUP BY d.agent
)
SELECT h.agent, round(h.hours, 2) AS hours, coalesce(k.tickets, 0) AS tickets,
       round(h.hours / nullif(k.tickets, 0), 2) AS hours_per_ticket
FROM h
LEFT JOIN k ON k.agent = h.agent
ORDER BY h.hours DESC, h.agent
LIMIT 10"""

_SQL_3_3 = f"""WITH {CUBE_CTE}
SELECT c.month, sum(c.res_n) AS tickets, {_avg_days("c.res_n", "c.res_us")} AS avg_days
FROM c
GROUP BY c.month
HAVING sum(c.res_n) > 0
ORDER BY c.month"""

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


def _keys(rows: tuple[tuple[Any, ...], ...]) -> tuple[str, ...]:
    """The keys (first items) of a fixed-row table's row definitions: its `fixed_rows`."""
    return tuple(row[0] for row in rows)


def _lateral_rows(rows: tuple[tuple[str, ...], ...]) -> str:
    """`LATERAL (VALUES ...)` lines of a fixed-row table: ('key', expressions..., ord)."""
    return ",\n".join(
        f"  ('{key}', {', '.join(exprs)}, {ord_})" for ord_, (key, *exprs) in enumerate(rows, 1)
    )


#: 4.2's rows (indicator, numerator, denominator): first the coverage shares its thresholds
#: judge, then the orphan shares (no status).
_COVERAGE_INDICATORS = (
    ("timesheet_coverage", "t.closed_ts", "t.closed"),
    ("root_cause_coverage", "t.closed_rc", "t.closed"),
    ("sla_data_coverage", "t.with_sla", "t.tickets"),
    ("quality_coverage", "t.cf_quality + o.cf_quality", "t.cf + o.cf"),
)
_INDICATORS = _COVERAGE_INDICATORS + (
    ("orphan_comments", "o.comments", "t.comments + o.comments"),
    ("orphan_timesheets", "a.ticket_entries - l.entries", "t.ts_rows + a.entries - l.entries"),
)

_SQL_4_2 = f"""WITH {CUBE_CTE}, t AS (
  SELECT coalesce(sum(c.tickets), 0) AS tickets,
         coalesce(sum(c.tickets) FILTER (WHERE c.is_closed), 0) AS closed,
         coalesce(sum(c.with_ts) FILTER (WHERE c.is_closed), 0) AS closed_ts,
         coalesce(sum(c.with_rc) FILTER (WHERE c.is_closed), 0) AS closed_rc,
         coalesce(sum(c.sla_known), 0) AS with_sla,
         coalesce(sum(c.comments), 0) AS comments,
         coalesce(sum(c.cf_comments), 0) AS cf,
         coalesce(sum(c.cf_with_quality), 0) AS cf_quality,
         coalesce(sum(c.ts_rows), 0) AS ts_rows
  FROM c
), {_UNLINKED_CTES}
SELECT v.indicator, v.numerator, v.denominator,
       {_pct("v.numerator", "v.denominator")} AS pct
FROM t, o, a, l, LATERAL (VALUES
{_lateral_rows(_INDICATORS)}
) AS v(indicator, numerator, denominator, ord)
ORDER BY v.ord"""

#: 4.3's rows (measure, value).
_MEASURES = (
    ("tickets", "t.tickets::numeric"),
    ("closed_tickets", "t.closed::numeric"),
    ("comments", "(t.comments + o.comments)::numeric"),
    ("customer_facing_comments", "(t.cf + o.cf)::numeric"),
    ("timesheet_entries", "(t.ts_rows + a.entries - l.entries)::numeric"),
    ("timesheet_hours", "round(t.ts_hours + a.hours - l.hours, 2)"),
)

_SQL_4_3 = f"""WITH {CUBE_CTE}, t AS (
  SELECT coalesce(sum(c.tickets), 0) AS tickets,
         coalesce(sum(c.tickets) FILTER (WHERE c.is_closed), 0) AS closed,
         coalesce(sum(c.comments), 0) AS comments,
         coalesce(sum(c.cf_comments), 0) AS cf,
         coalesce(sum(c.ts_rows), 0) AS ts_rows,
         coalesce(sum(c.ts_hours), 0) AS ts_hours
  FROM c
), {_UNLINKED_CTES}
SELECT v.measure, v.value
FROM t, o, a, l, LATERAL (VALUES
{_lateral_rows(_MEASURES)}
) AS v(measure, value, ord)
ORDER BY v.ord"""

# Buckets as sums of the cube's exact counts (0-3 comments, 1-3 agents, and 4+).
_CF_BUCKETS = (("0", "c.cf0"), ("1", "c.cf1"), ("2-3", "c.cf2 + c.cf3"), ("4+", "c.cf4"))
_AGENT_BUCKETS = (("1", "c.ag1"), ("2", "c.ag2"), ("3", "c.ag3"), ("4+", "c.ag4"))

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
        _rate("c.sla_met", "c.sla_known"),
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
        f"WITH {CUBE_CTE}\nSELECT {_avg_days('c.res_n', 'c.res_us')} AS value\nFROM c",
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
        _rate("c.cf0 + c.cf1", "c.tickets", "c.is_closed"),
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
        _rate("c.tickets - c.cf0", "c.tickets", "c.is_closed"),
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
        _rate("c.ag2 + c.ag3 + c.ag4", "c.with_ts"),
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
        _SQL_2_2,
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
        # The yellow/red rule is not repeated here: `threshold_rule()` renders it from the
        # thresholds below wherever the description is shown (admin, dashboards).
        "Closed tickets with a team, per team; pct of all such tickets (of every team's, "
        "also when a team is selected).",
        _team_share(),
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
        f"Quality results per tier: {_quality_tier_rule()}. Status: share of "
        f"{SUMMARIES[GOOD_TIERS_PCT].label}.",
        _SQL_2_5,
        _t("60", "40", True, column="pct", summary=GOOD_TIERS_PCT),
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
        _team_rate("c.tickets - c.cf0"),
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
        f"Closed tickets by number of customer-facing comments: {', '.join(_keys(_CF_BUCKETS))}.",
        _cube_buckets(_CF_BUCKETS, "c.is_closed"),
        fixed_rows=_keys(_CF_BUCKETS),
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
        "Tickets with linked timesheet rows by number of distinct timesheet users: "
        f"{', '.join(_keys(_AGENT_BUCKETS))} (rows without any user count as one agent).",
        _cube_buckets(_AGENT_BUCKETS, "true"),
        fixed_rows=_keys(_AGENT_BUCKETS),
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
        _team_rate("c.cf0 + c.cf1"),
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
        _cube_share("category", "tickets DESC, category"),
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
        _t("90", "70", True, column="pct", rows=_keys(_COVERAGE_INDICATORS)),
        fixed_rows=_keys(_INDICATORS),
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
        fixed_rows=_keys(_MEASURES),
    ),
)

# --- Beyond the 23 (SPEC §5.2, last paragraph): same contract, flagged core=False ----------

BEYOND = "Beyond the 23"


def _percentiles(expr: str, population: str) -> str:
    return (
        f"SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY {expr}))::numeric, 2)"
        f" AS value,\n"
        f"       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY {expr}))::numeric, 2)"
        f" AS p90\nFROM metric_ticket_facts f\nWHERE {population} AND {TICKET_FILTER}"
    )


#: 5.4's age buckets, youngest first: (bucket, the age it is below; None: every older age).
_BACKLOG_BUCKETS = (("<1d", "1 day"), ("1-7d", "7 days"), ("7-30d", "30 days"), ("30d+", None))
_BACKLOG_ORDER = ", ".join(f"('{b}', {i})" for i, (b, _) in enumerate(_BACKLOG_BUCKETS, 1))
_BACKLOG_CASE = "\n              ".join(
    f"WHEN ref.at - f.created_at < interval '{below}' THEN '{b}'" if below else f"ELSE '{b}'"
    for b, below in _BACKLOG_BUCKETS
)

_SQL_BACKLOG = f"""WITH ref AS (
  SELECT coalesce({_TO}, max(f.created_at)) AS at FROM metric_ticket_facts f
), b(bucket, ord) AS (VALUES {_BACKLOG_ORDER}),
c AS (
  SELECT CASE {_BACKLOG_CASE} END AS bucket,
         count(*) AS n
  FROM metric_ticket_facts f, ref
  WHERE NOT f.is_closed AND {TICKET_FILTER}
  GROUP BY 1
)
SELECT b.bucket, coalesce(c.n, 0) AS tickets,
       {_pct("coalesce(c.n, 0)", "sum(coalesce(c.n, 0)) OVER ()")} AS pct
FROM b LEFT JOIN c ON c.bucket = b.bucket
ORDER BY b.ord"""

_SQL_WEEKLY = f"""WITH {CUBE_CTE}, {RESOLVED_CUBE_CTE}, created AS (
  SELECT date_trunc('week', c.day_start AT TIME ZONE {_TZ})::date AS week, sum(c.tickets) AS n
  FROM c
  GROUP BY 1
), resolved AS (
  SELECT date_trunc('week', rs.day_start AT TIME ZONE {_TZ})::date AS week,
         sum(rs.tickets) AS n
  FROM rs
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
            "f.response_us / 3600000000::float8",
            "f.response_us >= 0",
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
        _rate("c.response_met", "c.response_known"),
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
        _rate("c.resolution_met", "c.resolution_known"),
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
        fixed_rows=_keys(_BACKLOG_BUCKETS),
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
        _percentiles(f"f.resolution_us / {_DAYS_US}::float8", "f.resolution_us IS NOT NULL"),
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
