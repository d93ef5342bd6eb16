"""Run registry metrics with filters -> the JSON shape of SPEC §8.

Used by compute_metrics, the admin overview and the restore drill; benchmarks time the same SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connections

from metrics import facts
from metrics.registry import CORE_METRICS, SUMMARIES, MetricDef, get_metric


def period_bound(value: dt.date | dt.datetime | str | None) -> dt.datetime | None:
    """A period bound as an aware datetime: a date means its midnight in TIME_ZONE."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = (
            dt.datetime.fromisoformat(value)
            if "T" in value or ":" in value
            else (dt.date.fromisoformat(value))
        )
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(settings.TIME_ZONE))
    return value


def params(
    date_from: dt.date | dt.datetime | str | None = None,
    date_to: dt.date | dt.datetime | str | None = None,
    team: str | None = None,
) -> dict[str, Any]:
    """The SQL parameters of `metrics.registry.PARAMS` for these filters."""
    return {
        "date_from": period_bound(date_from),
        "date_to": period_bound(date_to),
        "team": (team or "").strip() or None,
    }


def _json_value(value: Any) -> Any:
    """Decimal -> int when it is a count, else float (values are already rounded to 2 places)."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and value.as_tuple().exponent >= 0:
            return int(value)
        return float(value)
    return value


def run_metric(metric: MetricDef, sql_params: dict[str, Any], using: str = "default") -> dict:
    """One metric: {"value": ...} (plus extra scalar columns) or {"rows": [...]}."""
    with connections[using].cursor() as cursor:
        cursor.execute(metric.sql, sql_params)
        names = [c.name for c in cursor.description]
        rows = [
            {n: _json_value(v) for n, v in zip(names, row, strict=True)}
            for row in cursor.fetchall()
        ]
    if metric.is_scalar:
        first = rows[0] if rows else dict.fromkeys(metric.columns)
        return {c: first.get(c) for c in metric.columns}
    return {"rows": [{c: row[c] for c in metric.columns} for row in rows]}


def resolve(metric_ids: Iterable[str] | None) -> list[MetricDef]:
    """Registry metrics by id or slug, each once in the order first named; all of the 23 when
    none are given."""
    if not metric_ids:
        return list(CORE_METRICS)
    return list(dict.fromkeys(get_metric(key) for key in metric_ids))


def compute(
    metric_ids: Iterable[str] | None = None,
    date_from: dt.date | dt.datetime | str | None = None,
    date_to: dt.date | dt.datetime | str | None = None,
    team: str | None = None,
    using: str = "default",
) -> dict[str, dict]:
    """{slug: {"value": ...} | {"rows": [...]}} for the chosen metrics (default: the 23).

    Refreshes the facts first when they were built with other settings (SPEC §5.1 settings
    are honoured even after a configuration change without a new import).
    """
    metrics = resolve(metric_ids)
    if facts.settings_stale(using):
        facts.refresh_facts(using)
    sql_params = params(date_from, date_to, team)
    return {m.slug: run_metric(m, sql_params, using) for m in metrics}


# --- Status (admin overview and human output; not part of the JSON contract) ----------------


def summary_value(metric: MetricDef, result: dict) -> Any:
    """The whole-table figure a summary threshold applies to (2.5: good + excellent share),
    as the registry's `SUMMARIES` defines it; None for other metrics or an empty table."""
    summary = SUMMARIES.get(metric.thresholds.summary) if metric.thresholds else None
    if summary is None:
        return None
    rows = result.get("rows") or []
    total = sum(r[summary.count] for r in rows)
    if not total:
        return None
    part = sum(r[summary.count] for r in rows if r[summary.key] in summary.keys)
    # Half away from zero (SPEC §5.1), as PostgreSQL's round() in the registry SQL and the
    # dashboards' summary: Python's round() of a Decimal rounds half to even.
    share = Decimal(100 * part) / Decimal(total)
    return float(share.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def status(metric: MetricDef, result: dict) -> str | None:
    """Overall status of a metric: scalar value, summary figure, or the worst row status."""
    th = metric.thresholds
    if th is None:
        return None
    if metric.is_scalar:
        return th.status(result.get("value"))
    if th.summary:
        return th.status(summary_value(metric, result))
    statuses = [row_status(metric, row) for row in result.get("rows") or []]
    for level in ("red", "yellow", "green"):
        if level in statuses:
            return level
    return None


def row_status(metric: MetricDef, row: dict) -> str | None:
    th = metric.thresholds
    if th is None or th.summary or metric.is_scalar:
        return None
    if th.rows and str(row[metric.columns[0]]) not in th.rows:
        return None
    return th.status(row.get(th.column))
