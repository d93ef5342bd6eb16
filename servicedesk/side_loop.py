"""A daemon thread with its own database connection that acts every few seconds while a
with-block runs: the import heartbeat and the restore's lock watchdog are two of them."""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class SideLoop:
    """Calls `tick(cursor)` every `interval` seconds until the with-block ends.

    The connection is opened in the thread (`connect()`) and never shared. A failure stops the
    loop and is logged: a side loop must never break the work it accompanies.
    """

    def __init__(self, interval: float, name: str):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def connect(self) -> Any:
        raise NotImplementedError

    def tick(self, cursor: Any) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        conn = self.connect()
        try:
            while not self._stop.wait(self.interval):
                with conn.cursor() as cursor:
                    self.tick(cursor)
        except Exception:
            log.exception("%s stopped", self._thread.name)
        finally:
            conn.close()
