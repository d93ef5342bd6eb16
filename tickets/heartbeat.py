"""A running run's pulse: `heartbeat_at` written every few seconds from a side thread.

The beat task marks a run failed when its heartbeat stops (the worker died). The pipeline's
progress updates only beat while rows are read, so every run also gets this thread for its
whole duration: a long merge or index build must not look like a dead worker.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)


def heartbeat_interval() -> float:
    return max(0.5, min(10.0, settings.IMPORT_STALE_AFTER_S / 4))


class Heartbeat:
    """Writes heartbeat_at (and, when `progress` is set, the progress columns) every few seconds.

    Runs in its own thread and connection, independent of the run's transaction; it dies with
    the worker process.
    """

    def __init__(self, run_id: int, interval: float | None = None):
        self.run_id = run_id
        self.interval = interval or heartbeat_interval()
        self.progress: tuple[int, int | None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"hb-{run_id}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        conn = connections.create_connection("default")
        try:
            while not self._stop.wait(self.interval):
                with conn.cursor() as cur:
                    if self.progress is None:
                        cur.execute(
                            "UPDATE tickets_importrun SET heartbeat_at = now() "
                            "WHERE id = %s AND status = 'running'",
                            [self.run_id],
                        )
                    else:
                        cur.execute(
                            "UPDATE tickets_importrun SET heartbeat_at = now(), "
                            "progress_rows = %s, progress_total = %s "
                            "WHERE id = %s AND status = 'running'",
                            [*self.progress, self.run_id],
                        )
        except Exception:  # a heartbeat problem must never break the import itself
            log.exception("heartbeat for run %s stopped", self.run_id)
        finally:
            conn.close()
