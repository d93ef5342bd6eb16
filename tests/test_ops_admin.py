"""Ops admin pages: latest status at a glance, text status labels, read-only, queued actions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from ops.models import Backup, BenchmarkResult, BenchmarkRun, HealthSnapshot, RestoreDrill
from servicedesk.celery import app as celery_app


@pytest.fixture
def admin_client(client, db):
    user = User.objects.create_superuser("ops-admin", "ops@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.fixture
def eager_celery():
    """Run queued tasks in-process so the test sees their effect (and no worker is needed)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"


def make_records() -> None:
    good = Backup.objects.create(
        path="/nowhere/a.dump", status=Backup.Status.SUCCEEDED, size_bytes=2_500_000
    )
    Backup.objects.create(path="/nowhere/b.dump", status=Backup.Status.FAILED, error="disk full")
    RestoreDrill.objects.create(backup=good, passed=False, error="checksum mismatch")
    HealthSnapshot.objects.create(
        overall="warning",
        checks=[
            {"name": "database", "status": "ok", "message": "SELECT 1 answered"},
            {"name": "backup_freshness", "status": "warning", "message": "last backup 30 h ago"},
        ],
    )
    run = BenchmarkRun.objects.create(runs=5, warmup=1, total_ms=321.0, passed=True)
    BenchmarkResult.objects.create(
        run=run, metric_id="1.1", slug="sla_compliance_rate", median_ms=3, p95_ms=4, max_ms=5
    )


@pytest.mark.parametrize("model", ["backup", "restoredrill", "healthsnapshot", "benchmarkrun"])
def test_changelists_show_latest_status_at_a_glance(admin_client, model):
    make_records()
    response = admin_client.get(reverse(f"admin:ops_{model}_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    # The glance table names each latest status with a word, not colour alone.
    assert "Latest backup" in html and "FAILED" in html  # newest backup failed
    assert "Latest restore drill" in html
    assert "WARNING" in html and "backup_freshness: warning" in html
    assert "Latest benchmark" in html and "PASSED" in html


def test_change_pages_render_details(admin_client):
    make_records()
    drill = RestoreDrill.objects.get()
    html = admin_client.get(reverse("admin:ops_restoredrill_change", args=[drill.pk])).content
    assert b"checksum mismatch" in html
    run = BenchmarkRun.objects.get()
    html = admin_client.get(reverse("admin:ops_benchmarkrun_change", args=[run.pk])).content
    assert b"sla_compliance_rate" in html
    snap = HealthSnapshot.objects.get()
    html = admin_client.get(reverse("admin:ops_healthsnapshot_change", args=[snap.pk])).content
    assert b"last backup 30 h ago" in html


@pytest.mark.parametrize("model", ["backup", "restoredrill", "healthsnapshot", "benchmarkrun"])
def test_ops_records_are_read_only(admin_client, model):
    assert admin_client.get(reverse(f"admin:ops_{model}_add")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_back_up_now_button_queues_a_backup(admin_client, eager_celery):
    response = admin_client.post(reverse("admin:ops_backup_run"))
    assert response.status_code == 302
    backup = Backup.objects.get()
    assert backup.reason == "admin" and backup.status == Backup.Status.SUCCEEDED
    # GET never triggers a backup
    admin_client.get(reverse("admin:ops_backup_run"))
    assert Backup.objects.count() == 1


def test_staff_without_permission_cannot_queue_a_backup(client, db, eager_celery):
    user = User.objects.create_user("viewer", password="pw-for-tests-only", is_staff=True)
    client.force_login(user)
    client.post(reverse("admin:ops_backup_run"))
    assert not Backup.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_restore_drill_action_runs_on_the_selected_backup(admin_client, eager_celery):
    from ops.backups import backup

    record = backup("x")
    response = admin_client.post(
        reverse("admin:ops_backup_changelist"),
        {"action": "queue_restore_drill", "_selected_action": [record.pk]},
    )
    assert response.status_code == 302
    drill = RestoreDrill.objects.get()
    assert drill.backup_id == record.pk and drill.passed is True
    assert drill.finished_at <= timezone.now()


def test_view_only_staff_cannot_queue_a_restore_drill(client, db, eager_celery):
    from django.contrib.auth.models import Permission

    record = Backup.objects.create(status=Backup.Status.SUCCEEDED, path="/nowhere.dump")
    user = User.objects.create_user("opsview", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_backup"]))
    client.force_login(user)
    page = client.get(reverse("admin:ops_backup_changelist"))
    assert page.status_code == 200 and b"queue_restore_drill" not in page.content
    # Nor is a "Back up now" button offered that would only answer with an error.
    assert reverse("admin:ops_backup_run").encode() not in page.content
    client.post(
        reverse("admin:ops_backup_changelist"),
        {"action": "queue_restore_drill", "_selected_action": [record.pk]},
    )
    assert not RestoreDrill.objects.exists()
    user.user_permissions.add(Permission.objects.get(codename="add_restoredrill"))
    client.post(
        reverse("admin:ops_backup_changelist"),
        {"action": "queue_restore_drill", "_selected_action": [record.pk]},
    )
    assert RestoreDrill.objects.get().passed is False  # ran (the file is not there)


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_buttons_say_so_instead_of_an_error_500(admin_client, broker_down):
    from ops.backups import backup

    record = backup("x")
    response = admin_client.post(reverse("admin:ops_backup_run"), follow=True)
    assert response.status_code == 200
    assert "Could not queue the task" in response.content.decode()
    response = admin_client.post(
        reverse("admin:ops_backup_changelist"),
        {"action": "queue_restore_drill", "_selected_action": [record.pk]},
        follow=True,
    )
    assert response.status_code == 200 and "broker (Redis, REDIS_URL)" in response.content.decode()
    assert Backup.objects.count() == 1
