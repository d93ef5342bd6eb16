"""manage.py import_file PATH: one export file through the same pipeline as the admin button."""

import json
from pathlib import Path

from django.core.management.base import CommandError

from servicedesk import commands
from tickets.columns import ENTITIES
from tickets.models import ImportRun
from tickets.pipeline import ImportFailed, import_file, where_to_look
from tickets.progress import Bars


class Command(commands.Command):
    help = "Import one XLSX or CSV export (tickets, comments, timesheets, quality, roster)."
    interrupted_message = (
        "interrupted (Ctrl-C): nothing was stored (a started import was rolled back and its "
        "run marked failed). Run the command again to load the file."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--entity", choices=sorted(ENTITIES), help="Default: from the headers.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Run everything, then roll back."
        )
        parser.add_argument("--json", action="store_true", help="Machine-readable report.")

    def handle(self, *args, **options):
        bars = Bars()
        run = ImportRun(file_name=Path(options["path"]).name)
        try:
            run = import_file(
                options["path"],
                entity=options["entity"],
                dry_run=options["dry_run"],
                run=run,
                progress=None if options["json"] else bars.callback("import", None),
            )
        except ImportFailed as exc:
            message = str(exc)
            if not message.startswith(f"{run.file_name}: "):  # the reject-rate gate's, say
                message = f"{run.file_name}: {message}"
            raise CommandError(message + where_to_look(run.pk)) from exc
        except FileNotFoundError as exc:
            raise CommandError(f"{options['path']}: file not found") from exc
        finally:
            bars.close()
        data = run_summary(run)
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
            return
        self.stdout.write(
            f"{run.file_name} -> {run.entity}: read {run.rows_read}, inserted {run.rows_inserted}, "
            f"updated {run.rows_updated}, unchanged {run.rows_unchanged}, deleted {run.rows_deleted}, "
            f"rejected {run.rows_rejected}, duplicates {run.rows_superseded}, warned {run.rows_warned}, "
            f"orphans {run.orphans} [{run.status}{', dry run' if run.dry_run else ''}]"
        )
        if run.same_file_as_id:
            self.stdout.write(
                f"note: the same file was already imported as run #{run.same_file_as_id}"
            )


def run_summary(run) -> dict:
    fields = [
        "id",
        "status",
        "entity",
        "file_name",
        "file_sha256",
        "dry_run",
        *ImportRun.COUNT_FIELDS,
        "orphans",
        "window_start",
        "window_end",
        "duration_s",
        "same_file_as_id",
        "error_summary",
    ]
    return {f: getattr(run, f) for f in fields}
