"""Admin metric overview: the 23 metrics with status (colour and text), filters, definitions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.decorators import permission_required
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from metrics.compute import compute, row_status, status, summary_value
from metrics.registry import (
    CORE_METRICS,
    METRICS,
    STATUS_LABELS,
    SUMMARIES,
    MetricDef,
    get_metric,
)

#: Columns drawn as a small inline bar (tables and series read better with one).
BAR_COLUMNS = ("pct", "pct_of_team", "tickets", "hours", "comments")


def teams() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT team FROM metric_ticket_facts WHERE team IS NOT NULL ORDER BY team"
        )
        return [row[0] for row in cursor.fetchall()]


def filters(request: HttpRequest, known_teams: list[str]) -> tuple[Any, Any, str | None]:
    """(from, to, team) from the query string. A value that cannot apply is dropped with a
    message saying so, never silently (a manager would read unfiltered numbers as filtered)."""
    problems = []

    def day(name: str) -> dt.date | None:
        raw = request.GET.get(name) or ""
        if not raw:
            return None
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            problems.append(f"The {name} date {raw!r} is not a date (YYYY-MM-DD): it was ignored.")
            return None

    date_from, date_to = day("from"), day("to")
    if date_from and date_to and date_from >= date_to:
        problems.append(
            f"The period {date_from} to {date_to} is empty (the to date is exclusive): "
            "both dates were ignored."
        )
        date_from = date_to = None
    team = request.GET.get("team") or None
    if team is not None and team not in known_teams:
        problems.append(f"No team is named {team!r} in the data: showing all teams.")
        team = None
    for problem in problems:
        messages.error(request, problem)
    return date_from, date_to, team


def _table(metric: MetricDef, rows: list[dict]) -> dict[str, Any]:
    bar = next((c for c in BAR_COLUMNS if c in metric.columns[1:]), None)
    top = max((float(r[bar] or 0) for r in rows), default=0) if bar else 0
    scale = 100.0 if bar and bar.startswith("pct") else top
    out = []
    for row in rows:
        st = row_status(metric, row)
        width = round(100 * float(row[bar] or 0) / scale, 1) if bar and scale else None
        out.append(
            {
                "cells": [row[c] for c in metric.columns],
                "status": st,
                "label": STATUS_LABELS[st] if st else "",
                "bar": width,
            }
        )
    return {"bar_column": bar, "rows": out}


def card(metric: MetricDef, result: dict) -> dict[str, Any]:
    st = status(metric, result)
    data: dict[str, Any] = {
        "metric": metric,
        "status": st,
        "label": STATUS_LABELS[st] if metric.thresholds else "",
        "rule": metric.threshold_rule(),
    }
    if metric.is_scalar:
        data["value"] = result["value"]
        data["extras"] = [(c, result[c]) for c in metric.columns[1:]]
    else:
        data["table"] = _table(metric, result["rows"])
        data["summary"] = summary_value(metric, result)
        if metric.thresholds and metric.thresholds.summary:
            data["summary_label"] = SUMMARIES[metric.thresholds.summary].label
    return data


#: Metrics are aggregates of the tickets: who may not see tickets may not see them either.
METRICS_PERMISSION = "tickets.view_ticket"


@permission_required(METRICS_PERMISSION, raise_exception=True)
def overview(request: HttpRequest) -> HttpResponse:
    known_teams = teams()
    date_from, date_to, team = filters(request, known_teams)
    show_extra = request.GET.get("extra") == "1"
    metrics = METRICS if show_extra else CORE_METRICS
    results = compute([m.id for m in metrics], date_from, date_to, team)
    context = {
        **admin.site.each_context(request),
        "title": "Metric overview",
        "cards": [card(m, results[m.slug]) for m in metrics],
        "teams": known_teams,
        "date_from": date_from,
        "date_to": date_to,
        "team": team,
        "show_extra": show_extra,
        "labels": STATUS_LABELS,
    }
    return TemplateResponse(request, "metrics/overview.html", context)


@permission_required(METRICS_PERMISSION, raise_exception=True)
def definition(request: HttpRequest, key: str) -> HttpResponse:
    try:
        metric = get_metric(key)
    except KeyError as exc:
        raise Http404(str(exc)) from exc
    context = {
        **admin.site.each_context(request),
        "title": f"{metric.id} {metric.title}",
        "metric": metric,
        "rule": metric.threshold_rule(),
    }
    return TemplateResponse(request, "metrics/definition.html", context)
