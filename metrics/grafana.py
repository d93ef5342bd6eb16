"""Grafana dashboards as code, generated from the metric registry (SPEC §5.3, §6).

Every metric panel runs the registry's SQL unchanged except for its parameters, which become
Grafana macros (`GRAFANA_PARAMS`): the period is the time picker (`$__timeFrom()`,
`$__timeTo()`), the team is the `$team` variable (All = NULL = no filter). Wrappers only add
columns or filter rows around that SQL (`SELECT m.*, <status> FROM (<registry sql>) AS m`); they
never restate a metric. The Platform dashboard reads the `platform_*` views of
`metrics.readonly_role`, filtered with `$__timeFilter`. No query uses NOW()/CURRENT_DATE.

`build_dashboards()` is pure and deterministic (stable ids, sorted keys), so the committed JSON
must equal a fresh build; `expand_macros()` substitutes the macros the way Grafana's PostgreSQL
datasource does, for the contract tests and `bench/dashboards.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from metrics.registry import (
    GREEN,
    METRICS,
    PARAMS,
    RED,
    STATUS_LABELS,
    SUMMARIES,
    YELLOW,
    MetricDef,
    ShareSummary,
    Thresholds,
    get_metric,
)

DATASOURCE_UID = "servicedesk-pg"
DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39
TAG = "servicedesk"

#: Registry parameter -> Grafana expression. Every registry placeholder is cast in the SQL
#: (`%(date_from)s::timestamptz`), and Grafana renders these as quoted literals or NULL.
GRAFANA_PARAMS: dict[str, str] = {
    "date_from": "$__timeFrom()",
    "date_to": "$__timeTo()",
    "team": "$team",
}
assert set(GRAFANA_PARAMS) == set(PARAMS), "every registry parameter needs a Grafana macro"

# Okabe-Ito palette: distinguishable with the common colour-vision deficiencies. Status is
# blue / orange / vermillion (never red vs green) and always carries a text label and a symbol.
BLUE, ORANGE, VERMILLION, SKY, BLUISH_GREEN, PURPLE, GREY = (
    "#0072B2",
    "#E69F00",
    "#D55E00",
    "#56B4E9",
    "#009E73",
    "#CC79A7",
    "#8C8C8C",
)
SERIES_COLOURS = (BLUE, ORANGE, SKY, BLUISH_GREEN, PURPLE, VERMILLION)
STATUS_COLOURS = {GREEN: BLUE, YELLOW: ORANGE, RED: VERMILLION, None: GREY}
STATUS_SYMBOLS = {GREEN: "✔", YELLOW: "▲", RED: "✖", None: "–"}
#: Platform states (import runs, backups, drills, health) -> status level.
STATE_LEVELS = {
    "succeeded": GREEN,
    "ok": GREEN,
    "pass": GREEN,
    "queued": YELLOW,
    "running": YELLOW,
    "previewed": YELLOW,
    "warning": YELLOW,
    "pruned": None,
    "cancelled": None,
    "failed": RED,
    "fail": RED,
    "critical": RED,
}


def share_sql(summary: ShareSummary) -> str:
    """A registry summary as SQL over the metric's own rows `m` (as
    `metrics.compute.summary_value` computes it; PostgreSQL rounds half away from zero)."""
    keys = ", ".join(f"'{key}'" for key in summary.keys)
    return (
        f"round(100 * coalesce(sum(m.{summary.count}) FILTER (WHERE m.{summary.key} IN ({keys})),"
        f" 0)::numeric / nullif(sum(m.{summary.count}), 0), 2)"
    )


#: Whole-table figures a summary threshold applies to (the registry's `SUMMARIES`): panel
#: title and SQL. A summary missing here fails the build.
SUMMARY_SQL: dict[str, tuple[str, str]] = {
    name: (f"{summary.label.capitalize()} share", share_sql(summary))
    for name, summary in SUMMARIES.items()
}

#: First columns that are time buckets (bar charts over time) and count columns.
TIME_BUCKETS = ("month", "week")
COUNTS = ("tickets", "comments")

#: Table metrics with a `category` column follow the `$category` variable.
CATEGORY_COLUMN = "category"


# --- SQL --------------------------------------------------------------------------------------


def grafana_sql(sql: str) -> str:
    """Registry SQL with its psycopg parameters replaced by Grafana macros/variables."""
    for name, macro in GRAFANA_PARAMS.items():
        sql = sql.replace(f"%({name})s", macro)
    if "%(" in sql:
        raise ValueError(f"unmapped parameter in metric SQL: {sql[sql.index('%(') :][:40]!r}")
    return sql


def _literal(value: Decimal) -> str:
    return format(value, "f")


def status_case(th: Thresholds, expr: str) -> str:
    """SQL CASE giving the STATUS_LABELS text of `expr` under `th` (as `Thresholds.status`)."""
    op = ">=" if th.higher_is_better else "<="
    return (
        f"CASE WHEN {expr} IS NULL THEN '{STATUS_LABELS[None]}' "
        f"WHEN {expr} {op} {_literal(th.green)} THEN '{STATUS_LABELS[GREEN]}' "
        f"WHEN {expr} {op} {_literal(th.yellow)} THEN '{STATUS_LABELS[YELLOW]}' "
        f"ELSE '{STATUS_LABELS[RED]}' END"
    )


def _wrap(sql: str, select: str, where: str = "") -> str:
    return f"SELECT {select}\nFROM (\n{sql}\n) AS m{where}"


def metric_panel_sql(
    metric: MetricDef, variant: str = "auto", variables: Iterable[str] = ("team",)
) -> str:
    """The SQL of a metric's panel: registry SQL, plus a status column, and a `$category`
    filter on tables with a category column when the dashboard has that variable."""
    sql = grafana_sql(metric.sql)
    th = metric.thresholds
    where = ""
    if "category" in variables and CATEGORY_COLUMN in metric.columns and not metric.is_scalar:
        where = f"\nWHERE ($category::text IS NULL OR m.{CATEGORY_COLUMN} = $category::text)"
    if variant == "summary":
        if th is None or th.summary not in SUMMARY_SQL:
            raise ValueError(f"{metric.id}: no summary SQL for {th and th.summary!r}")
        inner = _wrap(sql, f"{SUMMARY_SQL[th.summary][1]} AS value")
        return _wrap(inner, f"m.value, {status_case(th, 'm.value')} AS status")
    if variant == "dims" or th is None or th.summary:
        return _wrap(sql, "m.*", where) if where else sql
    status = status_case(th, f"m.{th.column}")
    if th.rows:
        keys = ", ".join(f"'{key}'" for key in th.rows)
        status = f"CASE WHEN m.{metric.columns[0]} IN ({keys}) THEN {status} END"
    return _wrap(sql, f"m.*, {status} AS status", where)


def panel_columns(metric: MetricDef, variant: str = "auto") -> tuple[str, ...]:
    """Columns a metric panel returns: the registry's, then `status` when it has one."""
    if variant == "summary":
        return ("value", "status")
    th = metric.thresholds
    if variant == "dims" or th is None or th.summary:
        return metric.columns
    return (*metric.columns, "status")


# --- Field configuration ----------------------------------------------------------------------


def grafana_unit(unit: str) -> str:
    if unit == "%":
        return "percent"
    return f"suffix: {unit}" if unit else "none"


def threshold_steps(th: Thresholds | None) -> list[dict[str, Any]]:
    """Grafana steps (colour from `value` up). Values have 2 decimals, so `+ 0.005` makes a
    lower-is-better boundary inclusive exactly like `Thresholds.status`."""
    if th is None:
        return [{"color": BLUE, "value": None}]
    if th.higher_is_better:
        return [
            {"color": STATUS_COLOURS[RED], "value": None},
            {"color": STATUS_COLOURS[YELLOW], "value": float(th.yellow)},
            {"color": STATUS_COLOURS[GREEN], "value": float(th.green)},
        ]
    return [
        {"color": STATUS_COLOURS[GREEN], "value": None},
        {"color": STATUS_COLOURS[YELLOW], "value": float(th.green + Decimal("0.005"))},
        {"color": STATUS_COLOURS[RED], "value": float(th.yellow + Decimal("0.005"))},
    ]


def _mapping(texts: Mapping[str, str | None]) -> list[dict[str, Any]]:
    options = {
        text: {
            "color": STATUS_COLOURS[level],
            "index": index,
            "text": f"{STATUS_SYMBOLS[level]} {text}",
        }
        for index, (text, level) in enumerate(texts.items())
    }
    return [{"options": options, "type": "value"}]


#: Status texts of the metric status columns -> coloured text with a symbol.
STATUS_MAPPINGS = _mapping({label: level for level, label in STATUS_LABELS.items()})
STATE_MAPPINGS = _mapping(STATE_LEVELS)


def _by_name(name: str, *properties: tuple[str, Any]) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key, "value": value} for key, value in properties],
    }


def _status_cell(name: str, mappings: list[dict[str, Any]], display: str) -> dict[str, Any]:
    return _by_name(
        name,
        ("displayName", display),
        ("mappings", mappings),
        ("custom.cellOptions", {"type": "color-text"}),
    )


def _column_units(metric: MetricDef) -> list[dict[str, Any]]:
    """Units per column: pct columns in percent, the threshold column in the metric unit."""
    overrides = []
    for column in metric.columns:
        if column.startswith("pct"):
            overrides.append(_by_name(column, ("unit", "percent")))
        elif metric.thresholds and column == metric.thresholds.column and metric.unit != "%":
            overrides.append(_by_name(column, ("unit", grafana_unit(metric.unit))))
    return overrides


def _description(metric: MetricDef) -> str:
    text = f"{metric.id} {metric.slug}: {metric.description}"
    if metric.thresholds:
        text += f" Status: {metric.threshold_rule()}."
    return text


def _target(sql: str) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "format": "table",
        "rawQuery": True,
        "rawSql": sql,
        "refId": "A",
    }


# --- Panels -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One panel on a dashboard: a metric (by id) or a platform query, and its size."""

    key: str
    w: int
    h: int
    variant: str = "auto"  # metrics: auto | dims | summary; platform: the panel type


@dataclass(frozen=True)
class PlatformQuery:
    title: str
    description: str
    sql: str
    columns: tuple[str, ...]
    units: tuple[tuple[str, str], ...] = ()
    states: tuple[str, ...] = ()  # columns holding a state shown as coloured text


def metric_kind(metric: MetricDef, variant: str = "auto") -> str:
    """Grafana panel type of a metric: stat for scalars and summaries, bar chart for
    distributions and monthly series, table for rankings, matrices and anything with a status."""
    if metric.is_scalar or variant == "summary":
        return "bargauge" if variant == "dims" else "stat"
    th = metric.thresholds
    if th is not None and not th.summary:
        return "table"
    if metric.columns[0] in TIME_BUCKETS:
        return "barchart"
    if len(metric.columns) >= 4 or metric.columns[1] not in COUNTS:
        return "table"
    return "barchart"


def _stat(metric: MetricDef, variant: str) -> dict[str, Any]:
    th = metric.thresholds
    title = f"{metric.id} {metric.title}"
    if variant == "summary":
        title = f"{metric.id} {SUMMARY_SQL[th.summary][0]}"  # type: ignore[union-attr]
    unit = "percent" if variant == "summary" else grafana_unit(metric.unit)
    # Companion figures (p90 ...) show beside the value; 1.5's four dimensions get their own
    # bar gauge instead.
    extra = list(metric.columns[1:]) if variant != "summary" and len(metric.columns) <= 3 else []
    return {
        "type": "stat",
        "title": title,
        "description": _description(metric),
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "decimals": 2,
                "mappings": STATUS_MAPPINGS,
                "noValue": STATUS_LABELS[None],
                "thresholds": {"mode": "absolute", "steps": threshold_steps(th)},
                "unit": unit,
            },
            "overrides": [
                _by_name("value", ("displayName", title)),
                _by_name("status", ("displayName", "Status")),
            ],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "center",
            "orientation": "vertical",
            "reduceOptions": {
                "calcs": ["lastNotNull"],
                "fields": f"/^({'|'.join(['value', *extra, 'status'])})$/",
                "values": False,
            },
            "showPercentChange": False,
            "textMode": "value_and_name",
            "wideLayout": True,
        },
    }


def _dims(metric: MetricDef) -> dict[str, Any]:
    dims = metric.columns[1:]
    return {
        "type": "bargauge",
        "title": f"{metric.id} {metric.title}: dimensions",
        "description": _description(metric),
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "decimals": 2,
                "max": 5,
                "min": 1,
                "noValue": STATUS_LABELS[None],
                "thresholds": {"mode": "absolute", "steps": threshold_steps(metric.thresholds)},
                "unit": "none",
            },
            "overrides": [],
        },
        "options": {
            "displayMode": "basic",
            "orientation": "horizontal",
            "reduceOptions": {
                "calcs": ["lastNotNull"],
                "fields": f"/^({'|'.join(dims)})$/",
                "values": False,
            },
            "showUnfilled": True,
            "valueMode": "text",
        },
    }


def _barchart(metric: MetricDef) -> dict[str, Any]:
    x = metric.columns[0]
    if x in TIME_BUCKETS:  # a measure per period: all of them, the volume only when alone
        shown = [c for c in metric.columns[1:] if c != "tickets"] or ["tickets"]
    else:  # a distribution: the count, pct in the tooltip
        shown = [metric.columns[1]]
    hidden = [c for c in metric.columns[1:] if c not in shown]
    counts = all(c in COUNTS or c in ("created", "resolved") for c in shown)
    return {
        "type": "barchart",
        "title": f"{metric.id} {metric.title}",
        "description": _description(metric),
        "fieldConfig": {
            "defaults": {
                "color": {"fixedColor": BLUE, "mode": "fixed"},
                "custom": {"fillOpacity": 85, "lineWidth": 0},
                "decimals": 0 if counts else 2,
                "unit": "none" if counts else grafana_unit(metric.unit),
            },
            "overrides": [
                *[
                    _by_name(
                        c,
                        ("custom.hideFrom", {"legend": True, "tooltip": False, "viz": True}),
                        ("unit", "percent" if c.startswith("pct") else "none"),
                    )
                    for c in hidden
                ],
                *[
                    _by_name(
                        c,
                        ("displayName", c.replace("_", " ")),
                        ("color", {"fixedColor": SERIES_COLOURS[i], "mode": "fixed"}),
                    )
                    for i, c in enumerate(shown)
                ],
            ],
        },
        "options": {
            "barWidth": 0.8,
            "groupWidth": 0.7,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": len(shown) > 1},
            "orientation": "vertical" if x in TIME_BUCKETS else "horizontal",
            "showValue": "always",
            "stacking": "none",
            "tooltip": {"mode": "multi", "sort": "none"},
            "xField": x,
            "xTickLabelRotation": 0,
        },
    }


def _table(
    title: str,
    description: str,
    overrides: list[dict[str, Any]],
    sort_by: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "fixed", "fixedColor": BLUE},
                "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
                "noValue": STATUS_LABELS[None],
            },
            "overrides": overrides,
        },
        "options": {
            "cellHeight": "sm",
            "footer": {"countRows": False, "reducer": ["sum"], "show": False},
            "showHeader": True,
            "sortBy": sort_by or [],
        },
    }


def metric_panel(
    metric: MetricDef, variant: str = "auto", variables: Iterable[str] = ("team",)
) -> dict[str, Any]:
    """A panel (without id/gridPos) for a registry metric."""
    kind = metric_kind(metric, variant)
    if variant == "dims":
        panel = _dims(metric)
    elif kind == "stat":
        panel = _stat(metric, variant)
    elif kind == "barchart":
        panel = _barchart(metric)
    else:
        overrides = _column_units(metric)
        if "status" in panel_columns(metric, variant):
            overrides.append(_status_cell("status", STATUS_MAPPINGS, "Status"))
        panel = _table(f"{metric.id} {metric.title}", _description(metric), overrides)
    panel["targets"] = [_target(metric_panel_sql(metric, variant, variables))]
    panel["datasource"] = DATASOURCE
    return panel


def platform_panel(query: PlatformQuery, kind: str) -> dict[str, Any]:
    """A panel for a platform query: stat, table, timeseries or state-timeline."""
    units = [_by_name(c, ("unit", u)) for c, u in query.units]
    states = [_status_cell(c, STATE_MAPPINGS, c.replace("_", " ")) for c in query.states]
    if kind == "table":
        panel = _table(query.title, query.description, units + states)
    elif kind == "stat":
        panel = {
            "type": "stat",
            "title": query.title,
            "description": query.description,
            "fieldConfig": {
                "defaults": {
                    "color": {"fixedColor": BLUE, "mode": "fixed"},
                    "mappings": STATE_MAPPINGS,
                    "noValue": STATUS_LABELS[None],
                },
                "overrides": units,
            },
            "options": {
                "colorMode": "background",
                "graphMode": "none",
                "justifyMode": "center",
                "orientation": "vertical",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/.*/", "values": False},
                "showPercentChange": False,
                "textMode": "value_and_name",
                "wideLayout": True,
            },
        }
    elif kind == "state-timeline":
        panel = {
            "type": "state-timeline",
            "title": query.title,
            "description": query.description,
            "fieldConfig": {
                "defaults": {
                    "color": {"mode": "fixed", "fixedColor": GREY},
                    "custom": {"fillOpacity": 80, "lineWidth": 0},
                    "mappings": STATE_MAPPINGS,
                },
                "overrides": [],
            },
            "options": {
                "alignValue": "left",
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "mergeValues": True,
                "rowHeight": 0.9,
                "showValue": "auto",
                "tooltip": {"mode": "single", "sort": "none"},
            },
        }
    elif kind == "timeseries":
        series = [c for c in query.columns if c != "time"]
        panel = {
            "type": "timeseries",
            "title": query.title,
            "description": query.description,
            "fieldConfig": {
                "defaults": {
                    "color": {"mode": "fixed", "fixedColor": BLUE},
                    "custom": {
                        "drawStyle": "points",
                        "lineWidth": 1,
                        "pointSize": 7,
                        "showPoints": "always",
                        "spanNulls": False,
                    },
                },
                "overrides": units
                + [
                    _by_name(c, ("color", {"fixedColor": SERIES_COLOURS[i], "mode": "fixed"}))
                    for i, c in enumerate(series)
                ],
            },
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "none"},
            },
        }
    else:
        raise ValueError(f"unknown platform panel type {kind!r}")
    panel["targets"] = [_target(query.sql)]
    panel["datasource"] = DATASOURCE
    return panel


# --- Platform queries (over the platform_* views) ---------------------------------------------

#: Stats show timestamps as epoch milliseconds (unit dateTimeAsIso): a stat reduces numbers.
#: The import-run table's columns after its time: what the run was, the counters a user reads
#: (superseded duplicates are in the run's report, not here), its window, duration and error.
_IMPORT_RUN_COUNTERS = ("read", "inserted", "updated", "unchanged", "deleted", "rejected", "warned")
_IMPORT_RUN_COLUMNS = (
    "entity",
    "source_kind",
    "file_name",
    "status",
    "dry_run",
    *(f"rows_{counter}" for counter in _IMPORT_RUN_COUNTERS),
    "window_start",
    "window_end",
    "duration_s",
    "error_summary",
)


PLATFORM: dict[str, PlatformQuery] = {
    "last_import": PlatformQuery(
        "Last successful import",
        "Finish time of the latest successful (not dry-run) import in the period.",
        "SELECT (extract(epoch FROM max(finished_at)) * 1000)::bigint AS last_success,\n"
        "       count(*) AS runs\nFROM platform_import_runs\n"
        "WHERE status = 'succeeded' AND NOT dry_run AND $__timeFilter(at)",
        ("last_success", "runs"),
        units=(("last_success", "dateTimeAsIso"), ("runs", "none")),
    ),
    "last_backup": PlatformQuery(
        "Last backup",
        "State, time and size of the latest backup in the period.",
        "SELECT status, (extract(epoch FROM started_at) * 1000)::bigint AS last_backup,\n"
        "       size_bytes\nFROM platform_backups\n"
        "WHERE $__timeFilter(started_at)\nORDER BY started_at DESC, id DESC\nLIMIT 1",
        ("status", "last_backup", "size_bytes"),
        units=(("last_backup", "dateTimeAsIso"), ("size_bytes", "bytes")),
    ),
    "last_drill": PlatformQuery(
        "Last restore drill",
        "Result and measured recovery time of the latest restore drill in the period.",
        "SELECT CASE WHEN passed THEN 'pass' WHEN NOT passed THEN 'fail' ELSE 'running' END"
        " AS result,\n       recovery_time_s\nFROM platform_restore_drills\n"
        "WHERE $__timeFilter(started_at)\nORDER BY started_at DESC, id DESC\nLIMIT 1",
        ("result", "recovery_time_s"),
        units=(("recovery_time_s", "s"),),
    ),
    "last_health": PlatformQuery(
        "Health",
        "Overall state of the latest health snapshot in the period.",
        "SELECT overall, (extract(epoch FROM taken_at) * 1000)::bigint AS checked_at\n"
        "FROM platform_health_snapshots\n"
        "WHERE $__timeFilter(taken_at)\nORDER BY taken_at DESC, id DESC\nLIMIT 1",
        ("overall", "checked_at"),
        units=(("checked_at", "dateTimeAsIso"),),
    ),
    "import_runs": PlatformQuery(
        "Import runs",
        "What was imported when: rows read, inserted, updated, unchanged, deleted, rejected "
        "and warned, data window and duration (latest 100 in the period).",
        f"SELECT at AS time, {', '.join(_IMPORT_RUN_COLUMNS)}\n"
        "FROM platform_import_runs\nWHERE $__timeFilter(at)\nORDER BY at DESC, id DESC\n"
        "LIMIT 100",
        ("time", *_IMPORT_RUN_COLUMNS),
        units=(("duration_s", "s"),),
        states=("status",),
    ),
    "import_rows": PlatformQuery(
        "Rows per import",
        "Rows inserted, updated and rejected by each committed import.",
        "SELECT at AS time, rows_inserted, rows_updated, rows_rejected\n"
        "FROM platform_import_runs\nWHERE NOT dry_run AND $__timeFilter(at)\nORDER BY at",
        ("time", "rows_inserted", "rows_updated", "rows_rejected"),
    ),
    "benchmark_runs": PlatformQuery(
        "Metric benchmark: slowest p95 and total of medians",
        "Per benchmark run: the slowest metric's p95 against the p95 budget per metric, and "
        "the sum of per-metric medians (the time to compute them all once) (ms).",
        "SELECT r.started_at AS time,\n"
        "       (SELECT max(x.p95_ms) FROM platform_benchmark_results x WHERE x.run_id = r.id)"
        " AS max_p95_ms,\n"
        "       r.budget_ms AS p95_budget_ms, r.total_ms\nFROM platform_benchmark_runs r\n"
        "WHERE $__timeFilter(r.started_at)\nORDER BY r.started_at",
        ("time", "max_p95_ms", "p95_budget_ms", "total_ms"),
        units=(("max_p95_ms", "ms"), ("p95_budget_ms", "ms"), ("total_ms", "ms")),
    ),
    "benchmark_results": PlatformQuery(
        "Latest benchmark per metric",
        "Median, p95 and max per metric of the latest benchmark run in the period; status "
        "against the run's budget (p95).",
        "SELECT metric_id, slug, median_ms, p95_ms, max_ms,\n"
        "       CASE WHEN budget_ms IS NULL THEN NULL WHEN p95_ms <= budget_ms THEN 'pass'"
        " ELSE 'fail' END AS budget\n"
        "FROM platform_benchmark_results\n"
        "WHERE run_id = (SELECT max(id) FROM platform_benchmark_runs"
        " WHERE $__timeFilter(started_at))\nORDER BY median_ms DESC, metric_id",
        ("metric_id", "slug", "median_ms", "p95_ms", "max_ms", "budget"),
        units=(("median_ms", "ms"), ("p95_ms", "ms"), ("max_ms", "ms")),
        states=("budget",),
    ),
    "backups": PlatformQuery(
        "Backups",
        "Backups in the period: state, reason, size, duration and error (latest 50).",
        "SELECT started_at AS time, status, reason, size_bytes, duration_s, sha256, error\n"
        "FROM platform_backups\nWHERE $__timeFilter(started_at)\n"
        "ORDER BY started_at DESC, id DESC\nLIMIT 50",
        ("time", "status", "reason", "size_bytes", "duration_s", "sha256", "error"),
        units=(("size_bytes", "bytes"), ("duration_s", "s")),
        states=("status",),
    ),
    "restore_drills": PlatformQuery(
        "Restore drills",
        "Restore drills in the period: result and measured recovery time (latest 50).",
        "SELECT started_at AS time,\n"
        "       CASE WHEN passed THEN 'pass' WHEN NOT passed THEN 'fail' ELSE 'running' END"
        " AS result,\n       recovery_time_s, backup_id, error\n"
        "FROM platform_restore_drills\nWHERE $__timeFilter(started_at)\n"
        "ORDER BY started_at DESC, id DESC\nLIMIT 50",
        ("time", "result", "recovery_time_s", "backup_id", "error"),
        units=(("recovery_time_s", "s"),),
        states=("result",),
    ),
    "recovery_time": PlatformQuery(
        "Recovery time and backup duration",
        "Measured recovery time of each restore drill and duration of each backup (seconds).",
        "SELECT started_at AS time, recovery_time_s, NULL::float AS backup_s\n"
        "FROM platform_restore_drills\nWHERE $__timeFilter(started_at)\nUNION ALL\n"
        "SELECT started_at, NULL, duration_s\nFROM platform_backups\n"
        "WHERE $__timeFilter(started_at)\nORDER BY 1",
        ("time", "recovery_time_s", "backup_s"),
        units=(("recovery_time_s", "s"), ("backup_s", "s")),
    ),
    "health_history": PlatformQuery(
        "Health history",
        "Overall state of every health snapshot in the period.",
        "SELECT taken_at AS time, overall\nFROM platform_health_snapshots\n"
        "WHERE $__timeFilter(taken_at)\nORDER BY taken_at",
        ("time", "overall"),
    ),
    "health_checks": PlatformQuery(
        "Latest health checks",
        "Every check of the latest health snapshot in the period.",
        "SELECT name, status, message, taken_at AS time\nFROM platform_health_checks\n"
        "WHERE snapshot_id = (SELECT max(id) FROM platform_health_snapshots"
        " WHERE $__timeFilter(taken_at))\nORDER BY name",
        ("name", "status", "message", "time"),
        states=("status",),
    ),
}


# --- Dashboards -------------------------------------------------------------------------------

TEAM_QUERY = "SELECT DISTINCT team FROM metric_ticket_facts WHERE team IS NOT NULL ORDER BY team"
CATEGORY_QUERY = (
    "SELECT DISTINCT category FROM metric_ticket_facts WHERE category IS NOT NULL ORDER BY category"
)
VARIABLE_QUERIES = {"team": TEAM_QUERY, "category": CATEGORY_QUERY}
VARIABLE_DESCRIPTIONS = {
    "team": "The metrics of one team; All: the whole service desk.",
    "category": "Only tables with a category column follow it; the other panels are not split "
    "by category.",
}


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[Item, ...], ...]
    variables: tuple[str, ...] = ("team",)
    platform: bool = False
    tags: tuple[str, ...] = field(default=())
    #: Also show every registry metric no dashboard lays out explicitly (new metrics land here
    #: until someone places them, so "every metric on a dashboard" holds by construction).
    rest: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.uid.removeprefix('servicedesk-')}.json"


def _m(key: str, w: int, h: int, variant: str = "auto") -> Item:
    return Item(key, w, h, variant)


DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard(
        "servicedesk-executive",
        "Executive",
        "Headline KPIs with their status, resolution trend and monthly volume.",
        (
            tuple(_m(i, 6, 6) for i in ("1.1", "1.2", "1.3", "1.4")),
            (_m("1.5", 6, 9), _m("3.3", 9, 9), _m("2.6", 9, 9)),
            (_m("4.3", 12, 8), _m("4.1", 12, 8)),
        ),
    ),
    Dashboard(
        "servicedesk-operations",
        "Operations",
        "Workload, reassignment, resolution and communication across teams.",
        (
            (_m("2.1", 6, 8), _m("3.5", 9, 8), _m("3.4", 9, 8)),
            (_m("2.3", 12, 9), _m("2.2", 12, 9)),
            (_m("2.4", 12, 9), _m("2.7", 12, 9)),
            (_m("2.8", 12, 9), _m("2.5", 12, 9)),
            (_m("2.6", 12, 8), _m("3.3", 12, 8)),
        ),
    ),
    Dashboard(
        "servicedesk-quality",
        "Quality",
        "Comment quality, quality tiers, communication coverage, root-cause accuracy and "
        "data coverage.",
        (
            (
                _m("1.5", 6, 6),
                _m("1.5", 6, 6, "dims"),
                _m("2.5", 6, 6, "summary"),
                _m("3.6", 6, 6),
            ),
            (_m("2.5", 12, 9), _m("2.8", 12, 9)),
            (_m("4.2", 24, 9),),
        ),
    ),
    Dashboard(
        "servicedesk-team-performance",
        "Team performance",
        "Per team: first contact resolution, resolution time, communication coverage, agent "
        "hours and the team x category matrix.",
        (
            (_m("3.7", 12, 9), _m("2.7", 12, 9)),
            (_m("2.8", 12, 9), _m("3.2", 12, 9)),
            (_m("3.1", 24, 10),),
        ),
        variables=("team", "category"),
    ),
    Dashboard(
        "servicedesk-service-levels",
        "Service levels",
        "Beyond the 23: first response, response and resolution SLA, open backlog by age, "
        "created vs resolved per week, median and p90 resolution; and any newer registry "
        "metric not yet placed on another dashboard.",
        (),
        rest=True,
    ),
    Dashboard(
        "servicedesk-platform",
        "Platform",
        "Import runs, metric benchmarks, backups and restore drills, health history.",
        (
            (
                Item("last_import", 6, 5, "stat"),
                Item("last_backup", 6, 5, "stat"),
                Item("last_drill", 6, 5, "stat"),
                Item("last_health", 6, 5, "stat"),
            ),
            (Item("import_runs", 24, 9, "table"),),
            (
                Item("import_rows", 12, 8, "timeseries"),
                Item("health_history", 12, 8, "state-timeline"),
            ),
            (
                Item("benchmark_runs", 12, 8, "timeseries"),
                Item("benchmark_results", 12, 8, "table"),
            ),
            (Item("backups", 12, 8, "table"), Item("restore_drills", 12, 8, "table")),
            (Item("recovery_time", 12, 8, "timeseries"), Item("health_checks", 12, 8, "table")),
        ),
        variables=(),
        platform=True,
    ),
)


def _variable(name: str) -> dict[str, Any]:
    query = VARIABLE_QUERIES[name]
    return {
        "allValue": "NULL",
        "current": {"selected": True, "text": "All", "value": "$__all"},
        "datasource": DATASOURCE,
        "definition": query,
        "description": VARIABLE_DESCRIPTIONS[name],
        "hide": 0,
        "includeAll": True,
        "label": name.capitalize(),
        "multi": False,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def _explicit_metric_ids() -> set[str]:
    return {
        item.key for board in DASHBOARDS if not board.platform for row in board.rows for item in row
    }


def board_rows(board: Dashboard) -> tuple[tuple[Item, ...], ...]:
    """The board's rows, plus (for a `rest` board) rows of the metrics placed nowhere else:
    scalars four to a row, tables and charts two to a row, in registry order."""
    if not board.rest:
        return board.rows
    placed = _explicit_metric_ids()
    rest = [m for m in METRICS if m.id not in placed]
    scalars = [_m(m.id, 6, 6) for m in rest if m.is_scalar]
    others = [_m(m.id, 12, 9) for m in rest if not m.is_scalar]
    extra = [tuple(scalars[i : i + 4]) for i in range(0, len(scalars), 4)]
    extra += [tuple(others[i : i + 2]) for i in range(0, len(others), 2)]
    return board.rows + tuple(extra)


def dashboard_items(board: Dashboard) -> list[Item]:
    return [item for row in board_rows(board) for item in row]


def build_dashboard(board: Dashboard, time_zone: str = "utc") -> dict[str, Any]:
    """The dashboard JSON of one board: stable panel ids and positions, no placeholders."""
    panels = []
    y = 0
    for row in board_rows(board):
        if sum(item.w for item in row) > 24:
            raise ValueError(f"{board.uid}: a row is wider than 24 columns")
        x = 0
        for item in row:
            if board.platform:
                panel = platform_panel(PLATFORM[item.key], item.variant)
            else:
                panel = metric_panel(get_metric(item.key), item.variant, board.variables)
            panel["id"] = len(panels) + 1
            panel["gridPos"] = {"h": item.h, "w": item.w, "x": x, "y": y}
            panels.append(panel)
            x += item.w
        y += max(item.h for item in row)
    return {
        "annotations": {"list": []},
        "description": board.description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": [TAG],
                "targetBlank": False,
                "title": "Service desk",
                "type": "dashboards",
            }
        ],
        "panels": panels,
        "refresh": "",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG, *board.tags],
        "templating": {"list": [_variable(name) for name in board.variables]},
        "time": {"from": "now-5y", "to": "now"},
        "timepicker": {},
        "timezone": time_zone,
        "title": f"Service desk - {board.title}",
        "uid": board.uid,
        "version": 1,
        "weekStart": "monday",
    }


def grafana_time_zone(time_zone: str) -> str:
    """Grafana's name for the TIME_ZONE setting (months and periods are cut there)."""
    return "utc" if time_zone.upper() in ("UTC", "ETC/UTC", "Z") else time_zone


def build_dashboards(time_zone: str = "UTC") -> dict[str, str]:
    """{file name: JSON text} for every dashboard; deterministic (sorted keys, stable ids)."""
    tz = grafana_time_zone(time_zone)
    return {
        board.file_name: json.dumps(
            build_dashboard(board, tz), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
        for board in DASHBOARDS
    }


def write_dashboards(out_dir: Path, time_zone: str = "UTC") -> dict[str, bool]:
    """Write the dashboards; {file name: changed}. Stale generated files are removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built = build_dashboards(time_zone)
    changed = {}
    for name, text in built.items():
        path = out_dir / name
        old = path.read_text(encoding="utf-8") if path.exists() else None
        changed[name] = old != text
        if changed[name]:
            path.write_text(text, encoding="utf-8")
    for path in out_dir.glob("*.json"):
        if path.name not in built:
            path.unlink()
            changed[path.name] = True
    return changed


def metrics_on_dashboards() -> set[str]:
    return {
        item.key for board in DASHBOARDS if not board.platform for item in dashboard_items(board)
    }


def missing_metrics(metrics: Iterable[MetricDef] = METRICS) -> list[str]:
    """Registry metric ids shown on no dashboard (must be empty)."""
    shown = metrics_on_dashboards()
    return [m.id for m in metrics if m.id not in shown]


# --- Macro expansion (tests and benchmarks: what Grafana sends to PostgreSQL) -----------------

_MACRO = re.compile(r"\$__(\w+)(?:\(([^()]*)\))?")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand_macros(
    sql: str,
    time_from: dt.datetime,
    time_to: dt.datetime,
    variables: Mapping[str, str | None] | None = None,
    interval_s: int = 86400,
) -> str:
    """Expand Grafana PostgreSQL macros and single-value variables like Grafana does.

    A variable that is None or missing stands for "All": its custom all value `NULL`.
    Unknown macros raise ValueError, so a panel using one is caught by the tests.
    """
    variables = dict(variables or {})
    start, end = _quote(_iso(time_from)), _quote(_iso(time_to))

    def macro(match: re.Match[str]) -> str:
        name, arg = match.group(1), (match.group(2) or "").strip()
        if name == "timeFilter":
            return f"{arg} BETWEEN {start} AND {end}"
        if name == "timeFrom":
            return start
        if name == "timeTo":
            return end
        if name == "unixEpochFilter":
            return f"{arg} >= {int(time_from.timestamp())} AND {arg} <= {int(time_to.timestamp())}"
        if name == "interval":
            return f"'{interval_s}s'"
        if name == "interval_ms":
            return str(interval_s * 1000)
        raise ValueError(f"unsupported Grafana macro $__{name}")

    sql = _MACRO.sub(macro, sql)

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        value = variables.get(name)
        if name not in variables and name not in VARIABLE_QUERIES:
            raise ValueError(f"unknown dashboard variable ${name}")
        return "NULL" if value is None else _quote(value)

    return _VARIABLE.sub(variable, sql)


def panel_queries(board_json: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, rawSql) of every target of a dashboard JSON."""
    return [
        (panel["title"], target["rawSql"])
        for panel in board_json["panels"]
        for target in panel.get("targets", [])
    ]
