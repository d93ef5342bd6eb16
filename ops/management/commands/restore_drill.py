"""manage.py restore_drill: restore the latest backup into a scratch database and verify it."""

import json

from django.core.management.base import CommandError

from ops.backups import restore_drill
from ops.models import Backup
from servicedesk import commands


class Command(commands.Command):
    help = (
        "Restore the latest succeeded backup (or --backup ID) into a scratch database, compare "
        "row counts and metrics 1.1-1.5 with the recorded values; exit non-zero on failure."
    )

    def add_arguments(self, parser):
        parser.add_argument("--backup", type=int, help="Backup id (default: latest succeeded)")
        parser.add_argument("--json", action="store_true", help="print the drill as JSON")

    def handle(self, *args, **options):
        target = None
        if options["backup"] is not None:
            target = Backup.objects.filter(pk=options["backup"]).first()
            if target is None:
                raise CommandError(f"no backup with id {options['backup']}")
        drill = restore_drill(target)
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": drill.pk,
                        "backup_id": drill.backup_id,
                        "passed": drill.passed,
                        "recovery_time_s": drill.recovery_time_s,
                        "error": drill.error,
                        "details": drill.details,
                    },
                    indent=2,
                )
            )
        if not drill.passed:
            raise CommandError(f"restore drill #{drill.pk} FAILED: {drill.error}")
        if not options["json"]:
            self.stdout.write(
                self.style.SUCCESS(
                    f"restore drill #{drill.pk} PASSED (backup #{drill.backup_id}, recovery "
                    f"{drill.recovery_time_s:.1f} s)"
                )
            )
