"""manage.py migrate_legacy PATH: the legacy SQLite database into the warehouse."""

import json

from django.core.management.base import CommandError

from servicedesk import commands
from tickets.columns import LEGACY_ORDER
from tickets.legacy import migrate_legacy
from tickets.pipeline import where_to_look
from tickets.progress import Bars
from tickets.readers.base import SourceError


class Command(commands.Command):
    interrupted_message = (
        "interrupted (Ctrl-C): the table being loaded was rolled back and its run marked "
        "failed; the tables loaded before it are kept. Run the command again to finish "
        "(reloading a table changes nothing that is already stored)."
    )
    help = (
        "Load a legacy SQLite database through the import pipeline and print a per-table "
        "reconciliation (source rows = inserted + updated + unchanged + rejected + superseded)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--dry-run", action="store_true", help="Run everything, then roll back."
        )
        parser.add_argument(
            "--tables", nargs="+", metavar="TABLE", help=f"Only these: {', '.join(LEGACY_ORDER)}"
        )
        parser.add_argument("--json", action="store_true", help="Machine-readable report.")
        parser.add_argument(
            "--workers",
            type=int,
            help="Processes for the tables after tickets (LEGACY_LOAD_WORKERS).",
        )

    def handle(self, *args, **options):
        if options["workers"] is not None and options["workers"] < 1:
            raise CommandError(f"--workers {options['workers']}: must be 1 or more")
        bars = Bars()
        try:
            report = migrate_legacy(
                options["path"],
                tables=options["tables"],
                dry_run=options["dry_run"],
                progress_for=None if options["json"] else bars.callback,
                workers=options["workers"],
            )
        except (SourceError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bars.close()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            self.stdout.write(format_report(report))
        failed = [t for t in report.tables if not t.reconciled]
        if failed:
            raise CommandError(
                "; ".join(
                    f"{t.table}: {t.error or 'counts do not reconcile'}{where_to_look(t.run_id)}"
                    for t in failed
                )
            )


def format_report(report) -> str:
    head = (
        f"{'table':<20}{'source':>10}{'inserted':>10}{'updated':>10}{'unchanged':>11}"
        f"{'rejected':>10}{'dup':>6}{'warned':>8}{'deleted':>9}  status"
    )
    lines = [
        f"{report.file} (sha256 {report.sha256[:12]}){' DRY RUN' if report.dry_run else ''}",
        head,
    ]
    for t in report.tables:
        check = "ok" if t.reconciled else f"FAILED {t.error}"
        lines.append(
            f"{t.table:<20}{t.source_rows:>10}{t.inserted:>10}{t.updated:>10}{t.unchanged:>11}"
            f"{t.rejected:>10}{t.superseded:>6}{t.warned:>8}{t.deleted:>9}  {check}"
        )
    if any(t.deleted for t in report.tables):
        lines.append(
            "deleted: stored timesheet entries inside the file's date window that the file no "
            "longer has" + (" (would be deleted)" if report.dry_run else "")
        )
    if report.missing_tables:
        lines.append("missing tables (skipped): " + ", ".join(report.missing_tables))
    if report.history_runs:
        lines.append(f"import history: {report.history_runs} legacy import records")
    return "\n".join(lines)
