"""manage.py backup: dump the database with pg_dump -Fc, record it, apply retention."""

import json

from django.core.management.base import CommandError

from ops.backups import OpsError, backup
from servicedesk import commands


class Command(commands.Command):
    help = "Back up the database (pg_dump -Fc into BACKUP_DIR), record sha256/size/row counts."

    def add_arguments(self, parser):
        parser.add_argument("--reason", default="manual", help="why (manual, scheduled, ...)")
        parser.add_argument("--json", action="store_true", help="print the record as JSON")

    def handle(self, *args, **options):
        try:
            record = backup(reason=options["reason"])
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": record.pk,
                        "path": record.path,
                        "sha256": record.sha256,
                        "size_bytes": record.size_bytes,
                        "duration_s": record.duration_s,
                        "row_counts": record.row_counts,
                        "metrics": record.metrics,
                        "warning": record.error,
                    },
                    indent=2,
                )
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"backup #{record.pk}: {record.path} ({record.size_bytes} bytes, "
                f"{record.duration_s:.1f} s, sha256 {record.sha256})"
            )
        )
        if record.error:
            self.stdout.write(self.style.WARNING(record.error))
