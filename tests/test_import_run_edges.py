"""Edge cases of queued admin runs: a broker that is down, legacy table runs, double clicks,
partial legacy failures, heartbeats and progress through long phases, reports with odd bytes."""

from __future__ import annotations

import io
import time
from pathlib import Path

import openpyxl
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.urls import reverse

from tests import files as f
from tests.test_admin import upload_and_run
from tests.test_admin_helpers import IMPORTER_PERMS, make_user, tickets_csv, upload
from tickets import imports, legacy, pipeline
from tickets.models import Comment, ImportRun, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def archive(tmp_path, settings):
    settings.IMPORT_ARCHIVE_DIR = tmp_path / "archive"


@pytest.fixture
def importer(client):
    client.force_login(make_user("imogen", *IMPORTER_PERMS))
    return client


def legacy_db(tmp_path: Path) -> Path:
    return f.write_legacy(
        tmp_path / "legacy.sqlite3",
        {
            "tickets": [f.ticket(i) for i in range(1, 11)],
            "comments": [f.comment(i, 1 + i % 10) for i in range(1, 21)],
            "timesheets": [f.timesheet(i, "2025-07-02") for i in range(1, 6)],
        },
    )


# --- the broker ---------------------------------------------------------------------------------


def test_a_run_the_broker_refused_fails_with_the_reason_and_can_be_retried(
    importer, tmp_path, broker_down, django_capture_on_commit_callbacks
):
    path = tickets_csv(tmp_path / "t.csv", range(1, 4))
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(importer, path)
    assert response.status_code == 302  # the upload itself is not lost behind a 500
    run = ImportRun.objects.get()
    assert run.status == "failed" and "could not be queued" in run.error_summary
    assert "REDIS_URL" in run.error_summary
    page = importer.get(response["Location"]).content.decode()
    assert 'id="retry-button"' in page


# --- legacy table runs ----------------------------------------------------------------------------


def test_a_legacy_table_run_cannot_be_confirmed_or_cancelled_on_its_own(
    importer, tmp_path, django_capture_on_commit_callbacks
):
    parent, _ = upload_and_run(importer, legacy_db(tmp_path), django_capture_on_commit_callbacks)
    child = imports.child_runs(parent)[0]
    page = importer.get(reverse("admin:tickets_importrun_run", args=[child.pk])).content.decode()
    assert 'id="confirm-button"' not in page and 'id="cancel-button"' not in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        importer.post(reverse("admin:tickets_importrun_confirm", args=[child.pk]))
    assert not callbacks
    with pytest.raises(ValueError, match="no uploaded file of its own"):
        imports.confirm_run(child)
    assert not imports.cancel_run(child)
    child.refresh_from_db()
    assert child.status == "previewed" and imports.confirmed_as(child) is None


def _confirm(importer, preview, django_capture_on_commit_callbacks) -> ImportRun:
    with django_capture_on_commit_callbacks(execute=False):
        importer.post(reverse("admin:tickets_importrun_confirm", args=[preview.pk]))
    return ImportRun.objects.get(pk=imports.confirmed_as(ImportRun.objects.get(pk=preview.pk)))


def test_a_partly_loaded_legacy_upload_says_which_tables_were_kept(
    importer, tmp_path, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from ops import backups

    settings.TIMESHEET_WINDOW_REPLACE = True
    parent, _ = upload_and_run(importer, legacy_db(tmp_path), django_capture_on_commit_callbacks)
    real = _confirm(importer, parent, django_capture_on_commit_callbacks)

    def disk_full():
        raise backups.OpsError("pg_dump: disk full")

    monkeypatch.setattr(backups, "backup_before_destructive_import", disk_full)
    assert imports.execute_run(real.pk) == "failed"
    real.refresh_from_db()
    assert Ticket.objects.count() == 10 and Comment.objects.count() == 20
    assert "disk full" in real.error_summary
    assert "kept: tickets (run #" in real.error_summary and "comments (run #" in real.error_summary
    page = importer.get(reverse("admin:tickets_importrun_run", args=[real.pk])).content.decode()
    assert "nothing was loaded" not in page and "loaded and kept" in page


def test_a_time_limit_mid_legacy_load_names_the_tables_already_kept(
    tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    path = legacy_db(tmp_path)
    with django_capture_on_commit_callbacks(execute=False):
        run = imports.create_run(path, pipeline.sha256_of(path), path.name, dry_run=False)
    load = legacy.load_table

    def stop_at_comments(run_, raw, entity, **kwargs):
        if entity.name == "comments":
            raise SoftTimeLimitExceeded()
        return load(run_, raw, entity, **kwargs)

    monkeypatch.setattr(legacy, "load_table", stop_at_comments)
    assert imports.execute_run(run.pk) == "failed"
    run.refresh_from_db()
    assert "CELERY_TASK_SOFT_TIME_LIMIT" in run.error_summary
    assert "kept: tickets (run #" in run.error_summary and "nothing was written" not in (
        run.error_summary.lower()
    )
    assert [c.entity for c in imports.kept_tables(run)] == ["tickets"]
    monkeypatch.setattr(legacy, "load_table", load)
    with django_capture_on_commit_callbacks(execute=False):
        retry = imports.retry_run(run)
    assert imports.execute_run(retry.pk) == "succeeded"
    run.refresh_from_db()  # the retry's table runs are not taken for this run's
    assert [c.entity for c in imports.child_runs(run)] == ["tickets"]


def test_a_legacy_upload_of_only_future_dated_rows_previews(
    importer, tmp_path, django_capture_on_commit_callbacks
):
    path = f.write_legacy(
        tmp_path / "future.sqlite3",
        {"timesheets": [f.timesheet(i, "2099-07-02") for i in range(3)]},
    )
    parent, _ = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    assert parent.status == "previewed", parent.error_summary
    assert parent.window_end is None and parent.rows_warned == 3


# --- double clicks and cancelling ---------------------------------------------------------------------


def test_a_confirmed_preview_can_no_longer_be_cancelled(
    importer, tmp_path, django_capture_on_commit_callbacks
):
    path = tickets_csv(tmp_path / "t.csv", range(1, 4))
    preview, _ = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    real = _confirm(importer, preview, django_capture_on_commit_callbacks)
    response = importer.post(reverse("admin:tickets_importrun_cancel", args=[preview.pk]))
    assert response.status_code == 302
    preview.refresh_from_db()
    assert preview.status == "previewed"
    assert imports.execute_run(real.pk) == "succeeded" and Ticket.objects.count() == 3


def test_retry_twice_queues_one_run(importer, tmp_path, django_capture_on_commit_callbacks):
    path = tickets_csv(tmp_path / "t.csv", range(1, 4))
    preview, _ = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    real = _confirm(importer, preview, django_capture_on_commit_callbacks)
    imports.mark_failed(real.pk, "the worker was killed")
    url = reverse("admin:tickets_importrun_retry", args=[real.pk])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        importer.post(url)
        importer.post(url)
    assert len(callbacks) == 1
    real.refresh_from_db()
    retry = ImportRun.objects.get(pk=imports.retried_as(real))
    assert retry.status == "queued" and not retry.dry_run
    page = importer.get(reverse("admin:tickets_importrun_run", args=[real.pk])).content.decode()
    assert 'id="retried"' in page and 'id="retry-button"' not in page


# --- permissions and the report --------------------------------------------------------------------


def test_an_importer_without_view_permission_still_follows_their_run(
    client, tmp_path, django_capture_on_commit_callbacks
):
    client.force_login(make_user("adder", "tickets.add_importrun", "tickets.view_ticket"))
    run, response = upload_and_run(
        client, tickets_csv(tmp_path / "t.csv", range(1, 4)), django_capture_on_commit_callbacks
    )
    assert client.get(response["Location"]).status_code == 200
    progress = client.get(reverse("admin:tickets_importrun_progress", args=[run.pk]))
    assert progress.status_code == 200 and progress.json()["status"] == "previewed"


def test_the_xlsx_report_shows_control_characters_instead_of_failing(
    importer, tmp_path, django_capture_on_commit_callbacks
):
    rows = [f.ticket(i) for i in range(1, 60)]
    rows[4]["created_at"] = "bad\x0bdate"
    path = f.write_csv(tmp_path / "t.csv", "tickets", rows)
    run, _ = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    response = importer.get(reverse("admin:tickets_importrun_report", args=[run.pk, "xlsx"]))
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    cells = {c for row in sheet.iter_rows(values_only=True) for c in row if isinstance(c, str)}
    assert "bad\\x0bdate" in cells


# --- heartbeats and progress through long phases ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_table_run_keeps_beating_through_a_long_merge(tmp_path, settings, monkeypatch):
    settings.IMPORT_STALE_AFTER_S = 2  # beats every 0.5 s
    merge = pipeline.merge
    marked: list[int] = []

    def slow_merge(cursor, run, entity, counts):
        time.sleep(3)  # longer than the stale limit, with no rows read meanwhile
        marked.append(imports.fail_stale_runs())  # what the beat task would do now
        return merge(cursor, run, entity, counts)

    monkeypatch.setattr(pipeline, "merge", slow_merge)
    report = legacy.migrate_legacy(legacy_db(tmp_path), tables=["tickets"])
    assert marked == [0]
    assert ImportRun.objects.get(pk=report.tables[0].run_id).status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_a_legacy_upload_shows_one_progress_bar_over_all_tables(tmp_path, settings, monkeypatch):
    settings.IMPORT_STALE_AFTER_S = 2  # the parent's heartbeat writes progress every 0.5 s
    path = legacy_db(tmp_path)
    run = ImportRun.objects.create(
        source_kind="sqlite",
        file_name=path.name,
        file_sha256=pipeline.sha256_of(path),
        archived_path=str(path),
        status="queued",
        dry_run=True,
    )
    merge = pipeline.merge
    seen: list[tuple[str, int, int | None]] = []

    def watched_merge(cursor, run_, entity, counts):
        time.sleep(1.2)  # let the parent's heartbeat write
        parent = ImportRun.objects.get(pk=run.pk)
        seen.append((entity.name, parent.progress_rows, parent.progress_total))
        return merge(cursor, run_, entity, counts)

    monkeypatch.setattr(pipeline, "merge", watched_merge)
    assert imports.execute_run(run.pk) == "previewed"
    assert [s[0] for s in seen] == ["tickets", "comments", "timesheets"]
    assert all(total == 35 for _, _, total in seen)
    assert [done for _, done, _ in seen] == [10, 30, 35]
