"""Thin Celery tasks: ids in, the work lives in `tickets.imports`."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from tickets import imports


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
    ignore_result=True,
)
def run_import_task(run_id: int) -> str:
    """Claim the queued run by compare-and-swap and execute it; a redelivery is a no-op."""
    return imports.execute_run(run_id)


@shared_task(ignore_result=True)
def fail_stale_runs_task() -> int:
    """Periodic (beat): mark runs whose worker died as failed so they can be retried."""
    return imports.fail_stale_runs()


@shared_task(ignore_result=True)
def requeue_lost_runs_task() -> list[int]:
    """Periodic (beat): publish again the queued runs whose broker message was lost."""
    return imports.requeue_lost_runs()
