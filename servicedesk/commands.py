"""The base of the project's management commands: every failure a one-line message (SPEC §8).

Django prints a CommandError as one line and exits with its return code; anything else ends in
a traceback. Ctrl-C (SIGINT) is turned into such a message here, with exit status 130 as a
shell reports an interrupted command.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


class Command(BaseCommand):
    #: What the user should know after Ctrl-C: what was kept, what to do next.
    interrupted_message = "interrupted (Ctrl-C): nothing was completed"

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except KeyboardInterrupt:
            raise CommandError(self.interrupted_message, returncode=INTERRUPTED) from None
