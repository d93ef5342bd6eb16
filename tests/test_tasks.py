"""Task functions called directly: claim, dead-run detection, retry, serialisation per entity."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from tests.test_admin_helpers import tickets_csv, wait_for
from tickets import imports
from tickets.models import ImportRun, Ticket
from tickets.pipeline import advisory_key, sha256_of
from tickets.tasks import fail_stale_runs_task, run_import_task


@pytest.fixture(autouse=True)
def archive(tmp_path, settings):
    settings.IMPORT_ARCHIVE_DIR = tmp_path / "archive"


def queued_run(path, dry_run=False, entity="") -> ImportRun:
    return imports.create_run(path, sha256_of(path), path.name, dry_run=dry_run, entity=entity)


@pytest.mark.django_db
def test_claim_is_a_compare_and_swap(tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = queued_run(tickets_csv(tmp_path / "t.csv", range(1, 4)))
    assert len(callbacks) == 1 and run.task_id
    assert imports.claim(run.pk) is True
    assert imports.claim(run.pk) is False  # a redelivered message finds it taken
    assert run_import_task.run(run.pk) == "skipped"
    assert Ticket.objects.count() == 0


@pytest.mark.django_db
def test_task_runs_the_pipeline_and_a_redelivery_is_harmless(tmp_path):
    run = queued_run(tickets_csv(tmp_path / "t.csv", range(1, 6)))
    assert run_import_task.run(run.pk) == "succeeded"
    assert run_import_task.run(run.pk) == "skipped"
    run.refresh_from_db()
    assert (run.rows_inserted, run.progress_rows, run.heartbeat_at is not None) == (5, 5, True)
    assert Ticket.objects.count() == 5


@pytest.mark.django_db
def test_a_crash_outside_the_pipeline_marks_the_run_failed(tmp_path):
    path = tickets_csv(tmp_path / "t.csv", range(1, 3))
    run = queued_run(path)
    path.unlink()  # the archive vanished under the worker
    assert run_import_task.run(run.pk) == "failed"
    run.refresh_from_db()
    assert "cannot open file" in run.error_summary


@pytest.mark.django_db
def test_dead_worker_is_detected_by_stale_heartbeat_and_can_be_retried(tmp_path, settings):
    settings.IMPORT_STALE_AFTER_S = 30
    path = tickets_csv(tmp_path / "t.csv", range(1, 4))
    dead, alive = queued_run(path), queued_run(path)
    assert imports.claim(dead.pk) and imports.claim(alive.pk)
    ImportRun.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=31))
    assert fail_stale_runs_task.run() == 1
    dead.refresh_from_db()
    assert dead.status == "failed" and "no heartbeat for 30 s" in dead.error_summary
    assert ImportRun.objects.get(pk=alive.pk).status == "running"

    retry = imports.retry_run(dead)
    assert (retry.status, retry.archived_path, retry.dry_run) == (
        "queued",
        dead.archived_path,
        False,
    )
    assert run_import_task.run(retry.pk) == "succeeded" and Ticket.objects.count() == 3
    with pytest.raises(ValueError):
        imports.retry_run(retry)  # only failed runs are retried


@pytest.mark.django_db
def test_viewing_a_dead_run_marks_it_failed(admin_client, tmp_path, settings):
    settings.IMPORT_STALE_AFTER_S = 5
    run = queued_run(tickets_csv(tmp_path / "t.csv", range(1, 3)))
    imports.claim(run.pk)
    ImportRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=1))
    data = admin_client.get(f"/admin/tickets/importrun/{run.pk}/progress/").json()
    assert data["status"] == "failed" and data["finished"] and "heartbeat" in data["error_summary"]


@pytest.mark.django_db(transaction=True)
def test_heartbeat_thread_keeps_a_long_run_alive(settings):
    settings.IMPORT_STALE_AFTER_S = 2  # beats every 0.5 s
    run = ImportRun.objects.create(source_kind="csv", status="running")
    old = timezone.now() - timedelta(hours=1)
    ImportRun.objects.filter(pk=run.pk).update(heartbeat_at=old)
    with imports.Heartbeat(run.pk):
        time.sleep(1.5)
    assert ImportRun.objects.get(pk=run.pk).heartbeat_at > old + timedelta(minutes=59)
    assert imports.fail_stale_runs() == 0


@pytest.mark.django_db(transaction=True)
def test_two_runs_for_one_entity_never_write_at_once(tmp_path):
    """The pipeline's advisory lock: a run waits while another holds the entity."""
    run = queued_run(tickets_csv(tmp_path / "t.csv", range(1, 51)))
    holder = connections.create_connection("default")
    holder.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", [advisory_key("tickets")])
    result: dict[str, str] = {}

    def work():
        try:
            result["status"] = imports.execute_run(run.pk)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        wait_for(lambda: ImportRun.objects.get(pk=run.pk).status == "running", what="claim")
        time.sleep(1.5)
        assert ImportRun.objects.get(pk=run.pk).status == "running"
        assert Ticket.objects.count() == 0  # blocked on the lock, nothing written
    finally:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [advisory_key("tickets")])
        holder.close()
    thread.join(timeout=60)
    assert result["status"] == "succeeded" and Ticket.objects.count() == 50


@pytest.mark.django_db
def test_progress_snapshot_reports_rows_and_eta():
    started = timezone.now() - timedelta(seconds=10)
    run = ImportRun.objects.create(
        source_kind="xlsx",
        status="running",
        started_at=started,
        progress_rows=100,
        progress_total=300,
    )
    snap = imports.progress_snapshot(run)
    assert (snap["done"], snap["total"], snap["percent"], snap["finished"]) == (
        100,
        300,
        33.3,
        False,
    )
    assert 19 <= snap["eta_s"] <= 22  # 200 rows left at 10 rows/s
    run.progress_rows = 330  # past an estimated total (an XLSX without <dimension>)
    snap = imports.progress_snapshot(run)
    assert (snap["percent"], snap["eta_s"]) == (100.0, None)
    run.status, run.error_summary = "failed", "boom"
    snap = imports.progress_snapshot(run)
    assert snap["finished"] and snap["eta_s"] is None and snap["error_summary"] == "boom"


@pytest.mark.django_db
def test_time_limit_marks_the_run_failed_with_the_reason(tmp_path, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    def too_slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(imports, "import_file", too_slow)
    run = queued_run(tickets_csv(tmp_path / "t.csv", range(1, 3)))
    assert run_import_task.run(run.pk) == "failed"
    run.refresh_from_db()
    assert "CELERY_TASK_SOFT_TIME_LIMIT" in run.error_summary and Ticket.objects.count() == 0


def test_stale_run_check_is_scheduled_and_tasks_are_registered(settings):
    from servicedesk.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["fail-stale-import-runs"]
    requeue = settings.CELERY_BEAT_SCHEDULE["requeue-lost-import-runs"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks and "tickets.tasks.run_import_task" in app.tasks
    assert requeue["task"] in app.tasks
    assert run_import_task.acks_late and settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility > settings.CELERY_TASK_TIME_LIMIT


def test_a_nested_heartbeat_for_the_same_run_adds_no_second_thread():
    """The worker beats for its run and load_table beats for the same run inside it."""
    with imports.Heartbeat(424242), imports.Heartbeat(424242):
        assert [t.name for t in threading.enumerate()].count("hb-424242") == 1
    assert "hb-424242" not in [t.name for t in threading.enumerate()]
