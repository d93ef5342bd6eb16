"""End to end with a real `celery worker` subprocess, the real Redis broker and PostgreSQL.

The worker gets DATABASE_URL pointing at pytest-django's test database, so these tests use
transaction=True (the worker must see committed rows).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from tests.test_admin_helpers import Worker, purge_queue, tickets_csv, wait_for, wait_status
from tickets import imports
from tickets.models import ImportIssue, ImportRun, Ticket
from tickets.pipeline import import_file, sha256_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def archive(tmp_path, settings):
    settings.IMPORT_ARCHIVE_DIR = tmp_path / "archive"
    purge_queue()
    yield
    purge_queue()


def queue(path, dry_run=False) -> ImportRun:
    with transaction.atomic():  # enqueued on commit, as in the admin
        return imports.create_run(path, sha256_of(path), path.name, dry_run=dry_run)


def test_worker_previews_then_imports_after_confirm(tmp_path):
    path = tickets_csv(tmp_path / "t.csv", range(1, 101))
    with Worker(tmp_path / "worker.log", "e2e"):
        preview = queue(path, dry_run=True)
        preview = wait_status(preview.pk, {"previewed", "failed"})
        assert preview.status == "previewed", preview.error_summary
        assert preview.rows_inserted == 100 and Ticket.objects.count() == 0
        with transaction.atomic():
            real = imports.confirm_run(preview)
        real = wait_status(real.pk, {"succeeded", "failed"})
    assert real.status == "succeeded", real.error_summary
    assert Ticket.objects.count() == 100 and real.progress_rows == 100


def test_killed_worker_leaves_nothing_half_written_and_retry_succeeds(tmp_path, settings):
    settings.IMPORT_STALE_AFTER_S = 3
    import_file(tickets_csv(tmp_path / "seed.csv", range(1, 11), title="Seed"))
    before = list(Ticket.objects.order_by("pk").values_list("pk", "title"))
    big = tickets_csv(tmp_path / "big.csv", range(1, 60001), title="Big")
    env = {"IMPORT_BATCH_ROWS": "500", "IMPORT_STALE_AFTER_S": "3"}

    with Worker(tmp_path / "worker1.log", "doomed", **env) as worker:
        run = queue(big)
        wait_for(
            lambda: ImportRun.objects.filter(pk=run.pk, progress_rows__gt=1000).exists(),
            timeout=60,
            what="the import to be well under way",
        )
        worker.kill()
    run.refresh_from_db()
    assert run.status == "running"  # killed before its commit (reading, typing or merging)
    # The dead worker's transaction is rolled back by PostgreSQL: no row and no issue stayed.
    assert list(Ticket.objects.order_by("pk").values_list("pk", "title")) == before
    assert not ImportIssue.objects.filter(run=run).exists()

    wait_for(lambda: imports.fail_stale_runs(run.pk), timeout=30, what="stale detection")
    run.refresh_from_db()
    assert run.status == "failed" and "no heartbeat" in run.error_summary

    with transaction.atomic():
        retry = imports.retry_run(run)
    with Worker(tmp_path / "worker2.log", "retry", **env):
        retry = wait_status(retry.pk, {"succeeded", "failed"}, timeout=180)
    assert retry.status == "succeeded", retry.error_summary
    assert Ticket.objects.count() == 60000 and retry.rows_updated == 10
    assert ImportRun.objects.get(pk=run.pk).status == "failed"


def test_two_concurrent_runs_for_one_entity_serialise_and_both_end_correct(tmp_path):
    a = tickets_csv(tmp_path / "a.csv", range(1, 3001), title="A")
    b = tickets_csv(tmp_path / "b.csv", range(1, 3001), title="B")
    with Worker(tmp_path / "w1.log", "one"), Worker(tmp_path / "w2.log", "two"):
        with transaction.atomic():
            run_a = imports.create_run(a, sha256_of(a), a.name, dry_run=False)
            run_b = imports.create_run(b, sha256_of(b), b.name, dry_run=False)
        wait_for(
            lambda: (
                ImportRun.objects.filter(pk__in=[run_a.pk, run_b.pk], status="running").count() == 2
            ),
            timeout=60,
            what="both runs to be claimed at once",
        )
        run_a = wait_status(run_a.pk, {"succeeded", "failed"}, timeout=180)
        run_b = wait_status(run_b.pk, {"succeeded", "failed"}, timeout=180)
    assert (run_a.status, run_b.status) == ("succeeded", "succeeded")
    first, second = sorted([run_a, run_b], key=lambda r: r.finished_at)
    # Serialised: the first inserted everything, the second saw the first's rows committed.
    assert (first.rows_inserted, first.rows_updated) == (3000, 0)
    assert (second.rows_inserted, second.rows_updated) == (0, 3000)
    winner = "A" if second.pk == run_a.pk else "B"
    assert set(Ticket.objects.values_list("title", flat=True)) == {
        f"{winner} {i}" for i in range(1, 3001)
    }
    assert Ticket.objects.filter(changed_run=second).count() == 3000


def test_a_queued_run_whose_message_redis_lost_is_published_again_and_runs(tmp_path, settings):
    """Redis restarted without its data: the run row says queued, no message exists any more."""
    settings.IMPORT_REQUEUE_AFTER_S = 60
    path = tickets_csv(tmp_path / "t.csv", range(1, 51))
    with transaction.atomic():
        run = imports.create_run(path, sha256_of(path), path.name, dry_run=False)
    assert run.task_id in imports.broker_task_ids()  # published on commit
    young = ImportRun.objects.create(
        source_kind="csv", file_name="young.csv", archived_path=str(path), task_id="young-1"
    )
    purge_queue()  # the message is gone, as after a Redis restart without persistence
    assert run.task_id not in imports.broker_task_ids()

    assert imports.requeue_lost_runs() == []  # queued a moment ago: not yet suspect
    ImportRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    assert imports.requeue_lost_runs() == [run.pk]  # the young run stays untouched
    assert run.task_id in imports.broker_task_ids() and "young-1" not in imports.broker_task_ids()
    assert imports.requeue_lost_runs() == []  # its message is held again: no second copy

    with Worker(tmp_path / "worker.log", "requeue"):
        run = wait_status(run.pk, {"succeeded", "failed"})
    assert run.status == "succeeded", run.error_summary
    assert Ticket.objects.count() == 50
    assert ImportRun.objects.get(pk=young.pk).status == "queued"


def test_requeue_does_nothing_when_the_broker_cannot_be_read(tmp_path, settings, broker_down):
    settings.IMPORT_REQUEUE_AFTER_S = 0
    run = ImportRun.objects.create(
        source_kind="csv", file_name="t.csv", archived_path=str(tmp_path), task_id="lost-1"
    )
    assert imports.broker_task_ids() is None
    assert imports.requeue_lost_runs() == []
    assert ImportRun.objects.get(pk=run.pk).status == "queued"
