"""Benchmark: migrate_legacy vs pgloader vs a naive row-by-row loader, same file, same run.

Usage: .venv/bin/python bench/load.py [--scales 1 10] [--naive-scales 1]
       [--pgloader-modes default typed text] [--typed-scales 1] [--out var/bench]
Prints JSON. Each loader starts from an empty database; wall time and peak RSS (process tree).

pgloader runs in up to three modes, and every run reports how many rows it really loaded,
because on this data its plain invocation loads almost nothing:

- default: `pgloader sqlite://FILE pgsql://DB`. Its cast rules type the columns, and the first
  value PostgreSQL refuses (an empty string or a day-first date in a TIMESTAMP column) stops
  that table's COPY: the big tables end up empty. Not a comparison, kept to show why.
- typed: the same cast rules with `on error resume next`, so it keeps going past the rows it
  cannot type (they are rejected, not loaded). Typed tables from the same file: the like-for-like
  reference for a typed warehouse. Slow on dirty data (it retries failed batches), so it runs
  only at `--typed-scales`.
- text: every column cast to text. All rows land, nothing is typed or checked: the floor of
  moving the bytes, not the same job.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, database_url, demo_data, manage, measure, recreate_database

WAREHOUSE_DB = "sd_bench_load"
PGLOADER_DB = "sd_bench_pgloader"
NAIVE_DB = "sd_bench_naive"
PGLOADER_MODES = ("default", "typed", "text")
# SQLite declared types in the legacy file -> text: pgloader's "just move the bytes" mode.
TEXT_CASTS = ", ".join(
    f"type {t} to text drop typemod"
    for t in ("datetime", "timestamp", "date", "real", "float", "double", "integer", "numeric")
)


def fresh_warehouse(name: str) -> None:
    recreate_database(name)
    manage(["migrate", "--noinput"], name)


def pgloader_command(mode: str, legacy: Path, workdir: Path) -> list[str]:
    source, target = f"sqlite://{legacy.resolve()}", database_url(PGLOADER_DB)
    if mode == "default":
        return ["pgloader", "--quiet", source, target]
    clauses = {
        "typed": " with include drop, create tables, on error resume next",
        "text": f" with include drop, create tables\n cast {TEXT_CASTS}",
    }[mode]
    script = workdir / f"{mode}.load"
    script.write_text(f"load database\n from {source}\n into {target}\n{clauses};\n")
    return ["pgloader", "--quiet", "--root-dir", str(workdir / mode), str(script)]


def rows_in(db: str, tables: list[str]) -> dict[str, int]:
    """Rows per table as PostgreSQL holds them (0 where pgloader never created the table)."""
    import psycopg

    counts = {}
    with psycopg.connect(database_url(db).replace("postgres://", "postgresql://")) as conn:
        for table in tables:
            found = conn.execute("SELECT to_regclass(%s)", [f'public."{table}"']).fetchone()[0]
            counts[table] = (
                conn.execute(f'SELECT count(*) FROM public."{table}"').fetchone()[0] if found else 0
            )
    return counts


def run_pgloader(mode: str, legacy: Path, source_rows: dict[str, int]) -> dict:
    recreate_database(PGLOADER_DB)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ref = measure(pgloader_command(mode, legacy, Path(tmp)))
        except RuntimeError as exc:  # seen at 10x: SBCL's 1 GB heap exhausted
            return {"failed": str(exc).splitlines()[1][:300]}
    ref.pop("stdout")
    loaded = rows_in(PGLOADER_DB, list(source_rows))
    ref["rows_loaded"] = sum(loaded.values())
    ref["rows_not_loaded"] = {
        t: source_rows[t] - n for t, n in loaded.items() if n != source_rows[t]
    }
    return ref


def run_scale(scale: float, out: Path, naive: bool, modes: list[str], typed_scales) -> dict:
    data = demo_data(scale, out)
    legacy = data / "legacy.sqlite3"
    result: dict = {"scale": scale, "file_mb": round(legacy.stat().st_size / 2**20, 1)}

    fresh_warehouse(WAREHOUSE_DB)
    ours = manage(["migrate_legacy", str(legacy), "--json"], WAREHOUSE_DB)
    report = json.loads(ours.pop("stdout"))
    source_rows = {t["table"]: t["source_rows"] for t in report["tables"]}
    result["rows"] = source_rows
    result["migrate_legacy"] = {
        **ours,
        "reconciled": report["ok"],
        "rows_loaded": sum(t["inserted"] + t["updated"] + t["unchanged"] for t in report["tables"]),
    }

    if not shutil.which("pgloader"):
        result["pgloader"] = "not installed (apt-get install pgloader)"
    else:
        result["pgloader"] = {}
        result["speedup_vs_pgloader"] = {}
        for mode in modes:
            if mode == "typed" and scale not in typed_scales:
                continue
            ref = run_pgloader(mode, legacy, source_rows)
            result["pgloader"][mode] = ref
            if "wall_s" in ref:
                result["speedup_vs_pgloader"][mode] = round(ref["wall_s"] / ours["wall_s"], 2)

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", type=float, default=[1, 10])
    parser.add_argument("--naive-scales", nargs="*", type=float, default=[1])
    parser.add_argument(
        "--pgloader-modes", nargs="*", choices=PGLOADER_MODES, default=list(PGLOADER_MODES)
    )
    parser.add_argument(
        "--typed-scales",
        nargs="*",
        type=float,
        default=[1],
        help="scales at which pgloader runs typed with on error resume next (minutes at 1x)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args()
    results = []
    for scale in args.scales:
        results.append(
            run_scale(
                scale,
                args.out,
                scale in args.naive_scales,
                args.pgloader_modes,
                args.typed_scales,
            )
        )
        print(json.dumps(results[-1]), file=sys.stderr)  # partial results as they come
    print(json.dumps({"benchmark": "load", "load_average": _load(), "results": results}, indent=2))


def _load() -> list[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


if __name__ == "__main__":
    main()
