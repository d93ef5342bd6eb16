"""The base of the project's management commands: every failure a one-line message (SPEC §8).

Django prints a CommandError as one line and exits with its return code; anything else ends in
a traceback. Ctrl-C (SIGINT) and a database that cannot be reached or that drops the
connection are turned into such a message here (`--traceback` still shows where).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


#: Words of psycopg's messages when the server cannot be reached or the connection is lost.
_CONNECTION_WORDS = ("connect", "connection", "terminat", "server closed", "does not exist")


def database_error(exc: Exception) -> str:
    """One line: psycopg's own first line (refused, unknown database, terminated ...), with
    the connection hint only when the connection is what failed (not for a deadlock, a
    statement timeout or a full disk)."""
    detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    hint = (
        " Check DATABASE_URL and that PostgreSQL is running and reachable."
        if isinstance(exc, InterfaceError) or any(w in detail.lower() for w in _CONNECTION_WORDS)
        else ""
    )
    return (
        f"database error: {detail or type(exc).__name__}.{hint} (--traceback shows where it failed)"
    )


class Command(BaseCommand):
    #: What the user should know after Ctrl-C: what was kept, what to do next.
    interrupted_message = "interrupted (Ctrl-C) before the command finished"

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except KeyboardInterrupt:
            raise CommandError(self.interrupted_message, returncode=INTERRUPTED) from None
        except (OperationalError, InterfaceError) as exc:
            raise CommandError(database_error(exc)) from exc
