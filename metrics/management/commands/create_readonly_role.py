"""Create/refresh Grafana's read-only PostgreSQL role and its grants on the views (SPEC §6)."""

from __future__ import annotations

import environ
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from metrics.readonly_role import ensure_readonly_role


class Command(BaseCommand):
    help = (
        "Create or update the read-only role Grafana uses (name GRAFANA_DB_USER, password "
        "GRAFANA_DB_PASSWORD or GRAFANA_DB_PASSWORD_FILE) and grant it SELECT on the metric "
        "and platform views only. Idempotent: run it after every migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", help="role name (default: $GRAFANA_DB_USER)")
        parser.add_argument(
            "--no-password",
            action="store_true",
            help="leave the password unchanged/unset (trust or peer authentication)",
        )
        parser.add_argument("--database", default="default", help="Django database alias")

    def handle(self, *args, **options) -> None:
        env = environ.FileAwareEnv()
        role = options["role"] or env("GRAFANA_DB_USER", default="")
        if not role:
            raise CommandError("no role name: set GRAFANA_DB_USER or pass --role")
        password = None
        if not options["no_password"]:
            password = env("GRAFANA_DB_PASSWORD", default="")
            if not password:
                raise CommandError(
                    "no password: set GRAFANA_DB_PASSWORD (or GRAFANA_DB_PASSWORD_FILE), "
                    "or pass --no-password"
                )
        try:
            relations = ensure_readonly_role(role, password, using=options["database"])
        except (ValueError, DatabaseError) as exc:
            raise CommandError(f"could not set up role {role!r}: {exc}") from exc
        self.stdout.write(f"role {role}: SELECT on {len(relations)} views: {', '.join(relations)}")
