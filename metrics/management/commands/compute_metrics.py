"""Print the metrics (SPEC §8): a readable table with status, or the exact JSON shape."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from metrics.compute import compute, period_bound, resolve, row_status, status
from metrics.registry import STATUS_LABELS, MetricDef
from servicedesk import commands


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def render_text(metrics: list[MetricDef], results: dict[str, dict]) -> str:
    """Human output: one line per scalar, an indented table per table metric."""
    lines = []
    for m in metrics:
        result = results[m.slug]
        state = status(m, result)
        label = f"[{STATUS_LABELS[state]}]" if m.thresholds else ""
        head = f"{m.id:>4}  {m.title}"
        if m.is_scalar:
            extra = "  ".join(f"{c}={_fmt(result[c])}" for c in m.columns[1:])
            lines.append(f"{head:<48} {_fmt(result['value']):>10} {m.unit:<5} {label} {extra}")
            continue
        lines.append(f"{head:<48} {len(result['rows'])} rows {label}".rstrip())
        rows = [[_fmt(r[c]) for c in m.columns] for r in result["rows"]]
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(m.columns)]
        lines.append(
            "        " + "  ".join(c.ljust(w) for c, w in zip(m.columns, widths, strict=True))
        )
        for raw, row in zip(result["rows"], rows, strict=True):
            rs = row_status(m, raw)
            tail = f"  [{STATUS_LABELS[rs]}]" if rs else ""
            lines.append(
                "        " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + tail
            )
    return "\n".join(lines)


PERIOD_FLAGS = (("--from", "date_from"), ("--to", "date_to"))


def _bound(flag: str, value: str | None) -> Any:
    """A period bound, or a message naming the option and the value (Python's own, such as
    "month must be in 1..12", said neither)."""
    try:
        return period_bound(value)
    except ValueError as exc:
        raise CommandError(
            f"{flag} {value!r} is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM) ({exc})"
        ) from exc


class Command(commands.Command):
    help = (
        "Compute the service-desk metrics (default: all 23) for an optional period [from, to) "
        'on ticket creation and an optional team. --json prints {"metrics": {slug: ...}}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--metric",
            action="append",
            dest="metrics",
            metavar="ID",
            help="metric id (1.1) or slug; repeatable (default: all 23)",
        )
        parser.add_argument("--from", dest="date_from", help="period start date, inclusive")
        parser.add_argument("--to", dest="date_to", help="period end date, exclusive")
        parser.add_argument("--team", help="only tickets of this (current) team")
        parser.add_argument("--json", action="store_true", help="print JSON (SPEC §8)")
        parser.add_argument("--database", default="default", help="database alias")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            metrics = resolve(opts["metrics"])
        except KeyError as exc:
            raise CommandError(str(exc).strip('"')) from exc
        start, end = (_bound(flag, opts[key]) for flag, key in PERIOD_FLAGS)
        if start and end and start >= end:
            raise CommandError(
                f"--from {opts['date_from']} is not before --to {opts['date_to']}: the period "
                "[from, to) would be empty"
            )
        results = compute(
            [m.id for m in metrics],
            opts["date_from"],
            opts["date_to"],
            opts["team"],
            using=opts["database"],
        )
        if opts["json"]:
            self.stdout.write(json.dumps({"metrics": results}, indent=2))
        else:
            self.stdout.write(render_text(metrics, results))
