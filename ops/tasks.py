"""Celery beat tasks (names used by settings.CELERY_BEAT_SCHEDULE); the work is in ops.*.

The Backup / RestoreDrill / HealthSnapshot rows are the record; a failure still raises so the
task shows as failed in Celery instead of a silent success.
"""

from celery import shared_task
from django.core.management import call_command

from ops.backups import OpsError, backup, restore_drill
from ops.health import take_snapshot
from ops.models import Backup


@shared_task(name="ops.tasks.backup_task")
def backup_task(reason: str = "scheduled") -> int:
    return backup(reason=reason).pk


@shared_task(name="ops.tasks.restore_drill_task")
def restore_drill_task(backup_id: int | None = None) -> int:
    target = Backup.objects.get(pk=backup_id) if backup_id is not None else None
    drill = restore_drill(target)
    if not drill.passed:
        raise OpsError(f"restore drill #{drill.pk} failed: {drill.error}")
    return drill.pk


@shared_task(name="ops.tasks.health_snapshot_task", ignore_result=True)
def health_snapshot_task() -> str:
    return take_snapshot().overall


@shared_task(name="ops.tasks.benchmark_task")
def benchmark_task() -> None:
    # benchmark_metrics stores its BenchmarkRun and exits non-zero (raises) over budget.
    call_command("benchmark_metrics")
