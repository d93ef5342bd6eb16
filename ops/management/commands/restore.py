"""manage.py restore PATH --confirm: verified, single-transaction restore with a safety dump."""

import json

from django.core.management.base import CommandError

from ops.backups import OpsError, restore
from servicedesk import commands


class Command(commands.Command):
    help = (
        "Restore the current database from a pg_dump archive. Checks the archive (sha256, "
        "pg_restore --list, full read) first, takes a safety dump, restores in one transaction. "
        "Stop Celery workers first: the restore waits at most 30 s for other sessions' locks."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="pg_dump custom-format archive")
        parser.add_argument("--confirm", action="store_true", help="really replace the data")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        try:
            report = restore(options["path"], confirm=options["confirm"])
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        self.stdout.write(f"safety dump: {report.safety_backup_path}")
        changes = report.changes()
        for table, change in changes.items():
            self.stdout.write(f"  {table}: {change['before']} -> {change['after']} rows")
        if not changes:
            self.stdout.write("  row counts unchanged")
        self.stdout.write(
            self.style.SUCCESS(f"restored {report.path} in {report.duration_s:.1f} s")
        )
