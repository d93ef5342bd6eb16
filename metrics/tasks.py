"""Celery beat task of the metrics app (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from metrics import facts


@shared_task(name="metrics.tasks.refresh_stale_facts_task", ignore_result=True)
def refresh_stale_facts_task() -> bool:
    return facts.refresh_if_stale()
