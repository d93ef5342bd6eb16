"""Dashboard benchmark at 10x seed scale (issue 5): each dashboard's full set of panels < 1 s.

Usage: .venv/bin/python bench/dashboards.py [--scale 10] [--runs 5] [--database sd_bench_dashboards]
                                           [--reuse] [--out var/bench-dashboards]

Builds a dedicated database (never the one in DATABASE_URL) from the demo data:
`generate_demo_data --scale S --no-exports` then `migrate_legacy legacy.sqlite3`, refreshes the
facts, creates the read-only role, and runs every panel query of every committed dashboard as
that role, exactly as Grafana would send it (macros expanded over the whole data range, team and
category = All; then once more with the largest team selected). Prints JSON; exits 1 when a
dashboard's total exceeds the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import database_url, demo_data, manage, recreate_database  # noqa: E402

ROLE, PASSWORD = "grafana_bench_reader", "bench-only-reader"


def has_data(name: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}") as conn:
            return bool(conn.execute("SELECT count(*) FROM tickets_ticket").fetchone()[0])
    except psycopg.Error:
        return False


def load(name: str, scale: float, out: Path) -> dict:
    data = demo_data(scale, out)
    recreate_database(name)
    manage(["migrate", "--noinput", "-v0"], name)
    timing = manage(["migrate_legacy", str(data / "legacy.sqlite3")], name)
    return {"migrate_legacy_s": timing["wall_s"], "demo_data": str(data)}


def time_dashboard(conn, queries: list[tuple[str, str]], runs: int, warmup: int) -> dict:
    per_panel: dict[str, list[float]] = {title: [] for title, _ in queries}
    totals = []
    for run in range(warmup + runs):
        total = 0.0
        for title, sql in queries:
            started = time.perf_counter()
            conn.execute(sql).fetchall()
            took = (time.perf_counter() - started) * 1000
            total += took
            if run >= warmup:
                per_panel[title].append(took)
        if run >= warmup:
            totals.append(total)
    slowest = sorted(((statistics.median(v), t) for t, v in per_panel.items()), reverse=True)[:3]
    return {
        "panels": len(queries),
        "total_ms_median": round(statistics.median(totals), 1),
        "total_ms_max": round(max(totals), 1),
        "slowest_panels_ms": {t: round(ms, 1) for ms, t in slowest},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--budget-ms", type=float, default=1000)
    parser.add_argument("--database", default="sd_bench_dashboards")
    parser.add_argument("--reuse", action="store_true", help="keep a loaded bench database")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-dashboards")
    args = parser.parse_args()

    setup = {"reused": True}
    if args.reuse and has_data(args.database):
        manage(["migrate", "--noinput", "-v0"], args.database)  # schema of this checkout
    else:
        setup = load(args.database, args.scale, args.out)
    os.environ["DATABASE_URL"] = database_url(args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings")
    import django

    django.setup()
    import psycopg
    from django.db import connection

    from metrics import grafana
    from metrics.facts import refresh_facts
    from metrics.readonly_role import ensure_readonly_role

    setup["refresh_facts_s"] = round(refresh_facts(), 2)
    ensure_readonly_role(ROLE, PASSWORD)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), min(created_at), max(created_at) FROM tickets_ticket")
        tickets, first, last = cursor.fetchone()
        cursor.execute(
            "SELECT team FROM metric_ticket_facts WHERE team IS NOT NULL "
            "GROUP BY team ORDER BY count(*) DESC, team LIMIT 1"
        )
        team = (cursor.fetchone() or [None])[0]
        cursor.execute("SELECT count(*) FROM tickets_comment")
        comments = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM tickets_timesheetentry")
        timesheets = cursor.fetchone()[0]
    import datetime as dt

    window = (
        dt.datetime(1990, 1, 1, tzinfo=dt.UTC) if first is None else first,
        dt.datetime(2100, 1, 1, tzinfo=dt.UTC) if last is None else last + dt.timedelta(days=1),
    )
    conn = psycopg.connect(
        host="127.0.0.1", dbname=args.database, user=ROLE, password=PASSWORD, autocommit=True
    )
    boards = {}
    for _name, text in sorted(grafana.build_dashboards().items()):
        board = json.loads(text)
        raw = grafana.panel_queries(board)
        result = {}
        for label, variables in (("all", {}), ("team", {"team": team})):
            queries = [
                (title, grafana.expand_macros(sql, *window, variables)) for title, sql in raw
            ]
            result[label] = time_dashboard(conn, queries, args.runs, args.warmup)
        result["passed"] = result["all"]["total_ms_median"] <= args.budget_ms
        boards[board["title"].removeprefix("Service desk - ")] = result
    conn.close()
    out = {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "scale": args.scale,
        "database": args.database,
        "rows": {"tickets": tickets, "comments": comments, "timesheets": timesheets},
        "window": [window[0].isoformat(), window[1].isoformat()],
        "team_variant": team,
        "setup": setup,
        "runs": args.runs,
        "warmup": args.warmup,
        "budget_ms": args.budget_ms,
        "dashboards": boards,
        "passed": all(b["passed"] for b in boards.values()),
    }
    print(json.dumps(out, indent=2, default=str))
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
