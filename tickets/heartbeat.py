"""A running run's pulse: `heartbeat_at` written every few seconds from a side thread.

The beat task marks a run failed when its heartbeat stops (the worker died). The pipeline's
progress updates only beat while rows are read, so every run also gets this thread for its
whole duration: a long merge or index build must not look like a dead worker.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections

from servicedesk.side_loop import SideLoop


def heartbeat_interval() -> float:
    return max(0.5, min(10.0, settings.IMPORT_STALE_AFTER_S / 4))


class Heartbeat(SideLoop):
    """Writes heartbeat_at (and, when `progress` is set, the progress columns) every few seconds,
    from its own connection, outside the run's transaction; it dies with the worker process."""

    #: Runs beating in this process: a nested Heartbeat for the same run (load_table inside the
    #: worker's execute_run) adds no second thread.
    _beating: set[int] = set()

    def __init__(self, run_id: int, interval: float | None = None):
        super().__init__(interval or heartbeat_interval(), name=f"hb-{run_id}")
        self.run_id = run_id
        self.progress: tuple[int, int | None] | None = None
        self._nested = False

    def __enter__(self) -> Heartbeat:
        self._nested = self.run_id in Heartbeat._beating
        if not self._nested:
            Heartbeat._beating.add(self.run_id)
            super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._nested:
            super().__exit__(*exc)
            Heartbeat._beating.discard(self.run_id)

    def connect(self) -> Any:
        return connections.create_connection("default")

    def tick(self, cursor: Any) -> None:
        if self.progress is None:
            cursor.execute(
                "UPDATE tickets_importrun SET heartbeat_at = now() "
                "WHERE id = %s AND status = 'running'",
                [self.run_id],
            )
        else:
            cursor.execute(
                "UPDATE tickets_importrun SET heartbeat_at = now(), "
                "progress_rows = %s, progress_total = %s "
                "WHERE id = %s AND status = 'running'",
                [*self.progress, self.run_id],
            )
