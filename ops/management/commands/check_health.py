"""manage.py check_health: one line per check; exit 0 ok, 1 warning, 2 critical (for cron)."""

import json
import sys

from django.core.management.base import BaseCommand

from ops.health import CRITICAL, SEVERITY, WARNING, overall, run_checks


class Command(BaseCommand):
    help = (
        "Run the health and freshness checks of /health/ and print one line per check. "
        "Exit status: 0 all ok, 1 at least one warning, 2 at least one critical."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the results as JSON")

    def handle(self, *args, **options):
        results = run_checks()
        worst = overall(results)
        if options["json"]:
            self.stdout.write(
                json.dumps({"overall": worst, "checks": [r.as_dict() for r in results]}, indent=2)
            )
        else:
            style = {WARNING: self.style.WARNING, CRITICAL: self.style.ERROR}
            for r in results:
                line = f"{r.status.upper():8} {r.name:20} {r.message}"
                self.stdout.write(style.get(r.status, self.style.SUCCESS)(line))
        if SEVERITY[worst]:
            sys.exit(SEVERITY[worst])
