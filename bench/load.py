"""Benchmark: migrate_legacy vs pgloader vs a naive row-by-row loader, same file, same run.

Usage: .venv/bin/python bench/load.py [--scales 1 10] [--naive-scales 1] [--out var/bench]
Prints JSON. Each loader starts from an empty database; wall time and peak RSS (process tree).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, database_url, demo_data, manage, measure, recreate_database

WAREHOUSE_DB = "sd_bench_load"
PGLOADER_DB = "sd_bench_pgloader"
NAIVE_DB = "sd_bench_naive"


def fresh_warehouse(name: str) -> None:
    recreate_database(name)
    manage(["migrate", "--noinput"], name)


def run_scale(scale: float, out: Path, naive: bool) -> dict:
    data = demo_data(scale, out)
    legacy = data / "legacy.sqlite3"
    result: dict = {"scale": scale, "file_mb": round(legacy.stat().st_size / 2**20, 1)}

    fresh_warehouse(WAREHOUSE_DB)
    ours = manage(["migrate_legacy", str(legacy), "--json"], WAREHOUSE_DB)
    report = json.loads(ours.pop("stdout"))
    result["rows"] = {t["table"]: t["source_rows"] for t in report["tables"]}
    result["migrate_legacy"] = {**ours, "reconciled": report["ok"]}

    if shutil.which("pgloader"):
        recreate_database(PGLOADER_DB)
        try:
            ref = measure(["pgloader", "--quiet", f"sqlite://{legacy}", database_url(PGLOADER_DB)])
        except RuntimeError as exc:  # seen at 10x: SBCL's 1 GB heap exhausted
            result["pgloader"] = {"failed": str(exc).splitlines()[1][:300]}
        else:
            ref.pop("stdout")
            result["pgloader"] = ref
            result["speedup_vs_pgloader"] = round(ref["wall_s"] / ours["wall_s"], 2)
    else:
        result["pgloader"] = "not installed (apt-get install pgloader)"

    if naive:
        fresh_warehouse(NAIVE_DB)
        ref = measure(
            [PYTHON, str(ROOT / "bench" / "naive_loader.py"), str(legacy)],
            env={"DATABASE_URL": database_url(NAIVE_DB)},
        )
        ref.pop("stdout")
        result["naive_row_by_row"] = ref
        result["speedup_vs_naive"] = round(ref["wall_s"] / ours["wall_s"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", nargs="+", type=float, default=[1, 10])
    parser.add_argument("--naive-scales", nargs="*", type=float, default=[1])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args()
    results = []
    for scale in args.scales:
        results.append(run_scale(scale, args.out, scale in args.naive_scales))
        print(json.dumps(results[-1]), file=sys.stderr)  # partial results as they come
    print(json.dumps({"benchmark": "load", "load_average": _load(), "results": results}, indent=2))


def _load() -> list[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


if __name__ == "__main__":
    main()
