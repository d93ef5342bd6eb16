"""Write a realistic synthetic legacy database and a later export set (SPEC §10)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from tqdm import tqdm

from servicedesk import commands
from tickets import demo


class Command(commands.Command):
    interrupted_message = (
        "interrupted (Ctrl-C): no demo data was written (files from an earlier run are as "
        "they were)"
    )
    help = (
        "Generate demo data: DIR/legacy.sqlite3 (legacy database, SPEC §3.2) and DIR/exports/ "
        "(tickets.xlsx, comments.xlsx, comments.csv, timesheets.xlsx) that overlap it. "
        "Scale 1 matches the seed's counts; the same seed always gives the same data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="output directory")
        parser.add_argument("--scale", type=float, default=1.0, help="volume multiplier (1.0)")
        parser.add_argument("--seed", type=int, default=42, help="random seed (42)")
        parser.add_argument(
            "--no-exports", action="store_true", help="write only the legacy database"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        scale: float = options["scale"]
        exports = not options["no_exports"]
        if not scale > 0:
            raise CommandError("--scale must be a positive number")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create output directory {out}: {exc}") from None
        bar = None
        if sys.stderr.isatty():  # the bar is drawn on stderr: a bar only where it is seen
            bar = tqdm(
                total=demo.estimated_rows(scale, exports), unit="rows", leave=False, file=sys.stderr
            )
        started = time.perf_counter()
        try:
            result = demo.generate(
                out, scale, options["seed"], exports, bar.update if bar is not None else None
            )
        except OSError as exc:
            raise CommandError(f"cannot write demo data to {out}: {exc}") from None
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - started
        self.stdout.write(f"legacy database {result.legacy_path}:")
        for table, count in result.legacy_counts.items():
            self.stdout.write(f"  {table:<20} {count:>10,}")
        if result.export_dir is not None:
            self.stdout.write(f"exports {result.export_dir}:")
            for name, count in result.export_counts.items():
                self.stdout.write(f"  {name:<20} {count:>10,} rows")
        self.stdout.write(f"done in {elapsed:.1f} s (scale {scale:g}, seed {options['seed']})")
