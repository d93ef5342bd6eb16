"""Generate the Grafana dashboards from the metric registry (SPEC §6); output is committed."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from metrics.grafana import build_dashboards, write_dashboards

DEFAULT_OUT = Path(settings.BASE_DIR) / "grafana" / "dashboards"


class Command(BaseCommand):
    help = (
        "Write grafana/dashboards/*.json from the metric registry (deterministic). "
        "--check compares instead of writing and fails when the committed files drifted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
        parser.add_argument(
            "--check", action="store_true", help="exit non-zero when files differ from a build"
        )

    def handle(self, *args, **options) -> None:
        out: Path = options["out"]
        if options["check"]:
            built = build_dashboards(settings.TIME_ZONE)
            stale = sorted(
                name
                for name, text in built.items()
                if not (out / name).exists() or (out / name).read_text(encoding="utf-8") != text
            )
            extra = sorted(p.name for p in out.glob("*.json") if p.name not in built)
            if stale or extra:
                raise CommandError(
                    f"dashboards drifted from the registry: {', '.join(stale + extra)}; "
                    "run `manage.py build_dashboards` and commit the result"
                )
            self.stdout.write(f"{len(built)} dashboards up to date in {out}")
            return
        try:
            changed = write_dashboards(out, settings.TIME_ZONE)
        except OSError as exc:
            raise CommandError(f"cannot write dashboards to {out}: {exc}") from exc
        for name, was_changed in sorted(changed.items()):
            self.stdout.write(f"{'wrote' if was_changed else 'unchanged'} {out / name}")
