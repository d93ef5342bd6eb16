"""Benchmark: backup, restore and restore-drill times on demo data at scale 1 and 10.

Usage: .venv/bin/python bench/backup.py [--scales 1 10] [--out var/bench]
Prints JSON. Each scale: a fresh database loaded by migrate_legacy from generate_demo_data's
legacy file, then `backup`, `restore_drill` and `restore --confirm` run as commands (wall time
and peak RSS of the process tree, plus the durations the commands record themselves).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, demo_data, manage, recreate_database

DB = "sd_bench_backup"


def run_scale(scale: float, out: Path) -> dict:
    legacy = demo_data(scale, out) / "legacy.sqlite3"
    backup_dir = out / f"backups-scale{scale:g}"
    shutil.rmtree(backup_dir, ignore_errors=True)
    env = {"BACKUP_DIR": str(backup_dir), "BACKUP_KEEP_COUNT": "5"}

    recreate_database(DB)
    manage(["migrate", "--noinput"], DB)
    load = manage(["migrate_legacy", str(legacy), "--json"], DB)
    report = json.loads(load.pop("stdout"))
    result: dict = {
        "scale": scale,
        "rows": {t["table"]: t["source_rows"] for t in report["tables"]},
    }

    run = manage(["backup", "--json", "--reason", "bench"], DB, **env)
    backup = json.loads(run.pop("stdout"))
    result["backup"] = {
        **run,
        "dump_s": round(backup["duration_s"], 2),
        "size_mb": round(backup["size_bytes"] / 2**20, 1),
        "metrics_recorded": sorted(backup["metrics"]),
        "warning": backup["warning"],
    }
    result["database_mb"] = _database_mb(DB)

    run = manage(["restore_drill", "--json"], DB, **env)
    drill = json.loads(run.pop("stdout"))
    result["restore_drill"] = {
        **run,
        "passed": drill["passed"],
        "recovery_time_s": round(drill["recovery_time_s"], 2),
        "restore_s": drill["details"].get("restore_s"),
        "scratch_cleanup_s": drill["details"].get("cleanup_s"),
        "metrics_compared": drill["details"].get("metrics", {}).get("compared"),
    }

    run = manage(["restore", backup["path"], "--confirm", "--json"], DB, **env)
    restored = json.loads(run.pop("stdout"))
    result["restore"] = {
        **run,
        "restore_s": round(restored["duration_s"], 2),
        "includes": "archive verification + safety dump + single-transaction pg_restore",
        "row_count_changes": restored["changes"],
    }
    return result


def _database_mb(name: str) -> float:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}") as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return round(size / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", nargs="+", type=float, default=[1, 10])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args()
    results = [run_scale(s, args.out) for s in args.scales]
    print(json.dumps({"benchmark": "backup", "results": results}, indent=2))


if __name__ == "__main__":
    main()
