"""Health and freshness checks, /health/, check_health exit codes and snapshots.

Real PostgreSQL, Redis and (for the ok path of the Celery check) a real Celery worker process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from ops import health
from ops.health import CRITICAL, OK, WARNING
from ops.models import Backup, BenchmarkRun, HealthSnapshot, RestoreDrill
from tickets.models import ImportRun

pytestmark = pytest.mark.django_db

WARN_H, CRIT_H = 10, 20


@pytest.fixture(autouse=True)
def thresholds(settings, tmp_path):
    for kind in ("IMPORT", "BACKUP", "DRILL", "BENCHMARK"):
        setattr(settings, f"HEALTH_{kind}_WARN_HOURS", WARN_H)
        setattr(settings, f"HEALTH_{kind}_CRIT_HOURS", CRIT_H)
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.HEALTH_DISK_WARN_FREE_PERCENT = 0
    settings.HEALTH_DISK_CRIT_FREE_PERCENT = 0


def ago(hours: float):
    return timezone.now() - timedelta(hours=hours)


def make_import(hours: float, status=ImportRun.Status.SUCCEEDED, dry_run=False) -> None:
    ImportRun.objects.create(
        source_kind="xlsx", status=status, finished_at=ago(hours), dry_run=dry_run
    )


def make_backup(hours: float, status=Backup.Status.SUCCEEDED) -> None:
    record = Backup.objects.create(path="/x", status=status, finished_at=ago(hours))
    Backup.objects.filter(pk=record.pk).update(started_at=ago(hours))


def make_drill(hours: float, passed=True) -> None:
    record = RestoreDrill.objects.create(passed=passed, finished_at=ago(hours))
    RestoreDrill.objects.filter(pk=record.pk).update(started_at=ago(hours))


def make_benchmark(hours: float, passed=True) -> None:
    record = BenchmarkRun.objects.create(runs=5, warmup=1, passed=passed)
    BenchmarkRun.objects.filter(pk=record.pk).update(started_at=ago(hours))


FRESHNESS = {
    "import_freshness": make_import,
    "backup_freshness": make_backup,
    "drill_freshness": make_drill,
    "benchmark_freshness": make_benchmark,
}


@pytest.mark.parametrize("name", FRESHNESS)
@pytest.mark.parametrize(
    ("age_hours", "expected"),
    [(None, CRITICAL), (1, OK), (WARN_H + 0.5, WARNING), (CRIT_H + 0.5, CRITICAL)],
)
def test_freshness_checks_follow_age_thresholds(name, age_hours, expected):
    if age_hours is not None:
        FRESHNESS[name](age_hours)
    result = health.run_check(name)
    assert result.status == expected, result.message
    assert result.name == name


@pytest.mark.parametrize("name", FRESHNESS)
def test_freshness_uses_the_newest_success(name):
    FRESHNESS[name](CRIT_H + 5)
    FRESHNESS[name](2)
    assert health.run_check(name).status == OK


def test_import_freshness_ignores_failed_and_dry_runs():
    make_import(1, status=ImportRun.Status.FAILED)
    make_import(1, dry_run=True)
    make_import(1, status=ImportRun.Status.PREVIEWED)
    assert health.check_import_freshness().status == CRITICAL
    make_import(WARN_H + 1)
    assert health.check_import_freshness().status == WARNING


def test_a_failed_latest_backup_or_drill_or_benchmark_is_a_warning():
    make_backup(3)
    make_backup(1, status=Backup.Status.FAILED)
    result = health.check_backup_freshness()
    assert result.status == WARNING and "latest backup failed" in result.message
    make_drill(3)
    make_drill(1, passed=False)
    assert health.check_drill_freshness().status == WARNING
    make_benchmark(1, passed=False)
    assert health.check_benchmark_freshness().status == WARNING
    # ...and it never hides a critical age
    Backup.objects.filter(status=Backup.Status.SUCCEEDED).update(finished_at=ago(CRIT_H + 1))
    assert health.check_backup_freshness().status == CRITICAL


def free_percent() -> float:
    usage = shutil.disk_usage(Path(django_settings.BACKUP_DIR).parent)
    return 100 * usage.free / usage.total


def test_disk_check_goes_warning_and_critical(settings):
    assert health.check_disk().status == OK
    free = free_percent()
    settings.HEALTH_DISK_WARN_FREE_PERCENT = free + 1
    assert health.check_disk().status == WARNING
    settings.HEALTH_DISK_CRIT_FREE_PERCENT = free + 1
    assert health.check_disk().status == CRITICAL


def test_migration_check_reports_unapplied_migrations():
    assert health.check_migrations().status == OK
    with connection.cursor() as cur:  # rolled back with the test's transaction
        cur.execute(
            "DELETE FROM django_migrations WHERE app = 'ops' AND name = '0002_backup_metrics'"
        )
    result = health.check_migrations()
    assert result.status == CRITICAL and "ops.0002_backup_metrics" in result.message


def test_database_check():
    assert health.check_database().status == OK
    from health_check.checks import Database

    bad = health._library_check(Database(alias="no-such-alias"), "")
    assert bad.status == CRITICAL


def test_redis_check(settings):
    assert health.check_redis().status == OK
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    result = health.check_redis()
    assert result.status == CRITICAL and "unreachable" in result.message


def test_an_exception_in_a_check_is_critical_not_a_crash(monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    result = health.run_check("database")
    assert result.status == CRITICAL and "boom" in result.message


# --- with a real Celery worker ---------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_worker():
    """A real worker on the test broker (REDIS_URL); the Celery check pings it."""
    from servicedesk.celery import app

    name = f"healthtest-{uuid.uuid4().hex[:8]}@%h"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "servicedesk",
            "worker",
            "--pool=solo",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
            "-n",
            name,
        ],
        cwd=django_settings.BASE_DIR,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not app.control.ping(timeout=0.5):
        if proc.poll() is not None:
            pytest.fail("celery worker exited at start")
    yield proc
    proc.terminate()
    proc.wait(timeout=20)


def test_celery_check_without_worker_is_critical(settings):
    settings.HEALTH_CELERY_TIMEOUT_S = 0.3
    # No worker listens on this broker db; not the current app, or shared tasks would bind to it.
    lonely = Celery("lonely", broker="redis://127.0.0.1:6379/15", set_as_current=False)
    result = health.check_celery(lonely)
    assert result.status == CRITICAL and "unavailable" in result.message


def test_with_the_broker_down_only_redis_and_celery_fail_and_fast(settings, client):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    down = Celery("down", broker="redis://127.0.0.1:1/0", set_as_current=False)
    started = time.monotonic()
    result = health.check_celery(down)
    assert result.status == CRITICAL and "broker is unreachable" in result.message
    assert time.monotonic() - started < 3

    make_all_fresh()
    from servicedesk.celery import app

    saved = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # read by the check only, no connection made
    try:
        response = client.get("/health/", HTTP_ACCEPT="application/json")
    finally:
        app.conf.broker_url = saved
    states = response.json()
    assert response.status_code == 500
    assert {name for name, state in states.items() if state != "OK"} == {"redis", "celery"}


def test_details_are_for_staff_anonymous_callers_see_statuses(client, settings, django_user_model):
    settings.BACKUP_DIR = "/srv/somewhere/private"
    anonymous = client.get("/health/?format=json").json()
    assert anonymous["disk"] == "OK" and "critical" not in anonymous  # statuses are shown
    page = client.get("/health/", HTTP_ACCEPT="text/html").content.decode()
    assert "/srv" not in page and "free" not in page and "details for signed-in staff" in page
    text = client.get("/health/?format=text").content.decode()
    assert "/srv" not in text and "no backup" not in text.lower()
    staff = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)
    page = client.get("/health/", HTTP_ACCEPT="text/html").content.decode()
    assert "free" in page and "/srv" in page


def test_a_signed_in_caller_gets_the_status_page_when_sessions_cannot_be_read(
    client, django_user_model, monkeypatch
):
    """Sessions live in the database: in a database outage a browser holding a session cookie
    (the staff member looking at /health/) got Django's bare 500 page instead of the checks."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError

    staff = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)

    def outage(self):
        raise OperationalError("connection failed: Connection refused")

    async def aoutage(self):
        outage(self)

    monkeypatch.setattr(SessionStore, "_get_session_from_db", outage)
    monkeypatch.setattr(SessionStore, "_aget_session_from_db", aoutage)
    states = client.get("/health/?format=json").json()
    assert set(states) == set(health.CHECKS)  # the checks, not an error page
    page = client.get("/health/", HTTP_ACCEPT="text/html").content.decode()
    assert "servicedesk status" in page and "details for signed-in staff" in page


def make_all_fresh() -> None:
    make_import(1)
    make_backup(1)
    make_drill(1)
    make_benchmark(1)


def test_celery_check_ok_with_worker(celery_worker):
    assert health.check_celery().status == OK


def test_check_health_exit_codes(celery_worker, capsys):
    make_all_fresh()
    call_command("check_health")  # returns normally: exit 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == len(health.CHECKS)
    assert all(line.startswith("OK") for line in out.strip().splitlines())

    Backup.objects.update(finished_at=ago(WARN_H + 1))
    with pytest.raises(SystemExit) as exc:
        call_command("check_health")
    assert exc.value.code == 1
    assert "WARNING  backup_freshness" in capsys.readouterr().out

    ImportRun.objects.update(finished_at=ago(CRIT_H + 1))
    with pytest.raises(SystemExit) as exc:
        call_command("check_health", "--json")
    assert exc.value.code == 2
    assert '"overall": "critical"' in capsys.readouterr().out


def test_health_page_status_codes(celery_worker, client):
    make_all_fresh()
    response = client.get("/health/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json() == {name: "OK" for name in health.CHECKS}

    make_drill(0.5, passed=False)  # newest drill failed: warning, still HTTP 200
    response = client.get("/health/?format=json")
    assert response.status_code == 200
    assert response.json()["drill_freshness"].startswith("Warning")

    Backup.objects.update(finished_at=ago(CRIT_H + 1))
    response = client.get("/health/?format=json")
    assert response.status_code == 500
    assert response.json()["backup_freshness"].startswith("Unavailable")

    html = client.get("/health/", HTTP_ACCEPT="text/html").content.decode()
    assert "backup_freshness" in html and ">critical<" in html and ">warning<" in html


def test_snapshot_stores_every_check_and_prunes_old(settings):
    old = HealthSnapshot.objects.create(overall=OK, checks=[])
    HealthSnapshot.objects.filter(pk=old.pk).update(taken_at=ago(24 * 100))
    settings.HEALTH_SNAPSHOT_KEEP_DAYS = 90
    settings.HEALTH_CELERY_TIMEOUT_S = 0.2
    from ops.tasks import health_snapshot_task

    overall = health_snapshot_task()
    snapshot = HealthSnapshot.objects.get()
    assert snapshot.overall == overall == CRITICAL  # nothing was ever imported
    assert [c["name"] for c in snapshot.checks] == list(health.CHECKS)
    assert {c["status"] for c in snapshot.checks} <= {OK, WARNING, CRITICAL}


def test_health_is_reachable_over_plain_http_when_ssl_redirect_is_on(settings, client):
    settings.SECURE_SSL_REDIRECT = True
    settings.HEALTH_CELERY_TIMEOUT_S = 0.2
    assert client.get("/admin/login/").status_code == 301
    assert client.get("/health/?format=json").status_code in (200, 500)  # answered, not redirected
