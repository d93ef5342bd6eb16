"""Helpers shared by the benchmarks: run a command, measure wall time and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def measure(cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> dict:
    """Wall seconds and peak resident memory (MB) of a command and all its children.

    Output goes to temporary files, not pipes: a command that logs more than a pipe holds
    (pgloader's rejected rows) would otherwise block on write while this loop polls it.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=err, text=True
        )
        peak = 0
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss = ps.memory_info().rss + sum(
                    c.memory_info().rss for c in ps.children(recursive=True)
                )
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "peak_mb": round(peak / 2**20, 1), "stdout": stdout}


def postgres_cpu_s() -> float:
    """CPU seconds used so far by the local PostgreSQL server: every live process, plus the
    backends that have exited (the postmaster's reaped children), which a per-process sum
    taken after a run would miss (the import's helper connections close before it ends)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if proc.info["name"] == "postgres" and times is not None:
            total += times.user + times.system + times.children_user + times.children_system
    return total


def cpu_used(started: tuple[float, float]) -> dict[str, float]:
    """CPU seconds of this process (all its threads) and of PostgreSQL since `cpu_mark()`."""
    python, postgres = cpu_mark()
    return {
        "python": round(python - started[0], 2),
        "postgres": round(postgres - started[1], 2),
    }


def cpu_mark() -> tuple[float, float]:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, postgres_cpu_s()


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')


def manage(args: list[str], db: str, **kw) -> dict:
    return measure([PYTHON, "manage.py", *args], env={"DATABASE_URL": database_url(db), **kw})


def demo_data(scale: float, out: Path, exports: bool = False) -> Path:
    """Generate (once, cached by scale) the demo data set."""
    target = out / f"scale{scale:g}"
    if not (target / "legacy.sqlite3").exists() or (exports and not (target / "exports").exists()):
        args = ["generate_demo_data", "--out", str(target), "--scale", f"{scale:g}", "--seed", "42"]
        if not exports:
            args.append("--no-exports")
        subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
        )
    return target
