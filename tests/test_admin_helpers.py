"""Shared helpers for the admin import tests: personas, uploads and a real Celery worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.urls import reverse

from tests import files as f
from tickets.models import ImportRun

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def make_user(username: str, *perms: str, superuser: bool = False) -> User:
    """Named personas: staff with and without import rights (SPEC personas)."""
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", PASSWORD)
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    return user


IMPORTER_PERMS = (
    "tickets.add_importrun",
    "tickets.view_importrun",
    "tickets.view_importissue",
    "tickets.view_ticket",
    "tickets.view_comment",
    "tickets.view_timesheetentry",
)
VIEWER_PERMS = tuple(p for p in IMPORTER_PERMS if p != "tickets.add_importrun")


def tickets_csv(path: Path, ids: range, title: str = "T") -> Path:
    return f.write_csv(path, "tickets", [f.ticket(i, title=f"{title} {i}") for i in ids])


def upload(client: Any, path: Path, entity: str = "") -> Any:
    with path.open("rb") as fh:
        return client.post(
            reverse("admin:tickets_importrun_upload"), {"file": fh, "entity": entity}
        )


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_status(run_id: int, statuses: set[str], timeout: float = 90.0) -> ImportRun:
    def done():
        run = ImportRun.objects.get(pk=run_id)
        return run if run.status in statuses else None

    return wait_for(done, timeout, what=f"run {run_id} to reach {statuses}")


def _database_url(db: dict) -> str:
    """The test database (test_<name>) as a URL for a subprocess."""
    auth = quote(db["USER"] or "postgres") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A real `celery worker` subprocess on the test database and the real Redis broker."""

    def __init__(self, log_path: Path, name: str, concurrency: int = 1, **env: str):
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "servicedesk.settings",
            "DATABASE_URL": _database_url(db),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "IMPORT_ARCHIVE_DIR": str(settings.IMPORT_ARCHIVE_DIR),
            "CELERY_TASK_ALWAYS_EAGER": "false",
            **env,
        }
        self.log_path = log_path
        pool = ["--pool=solo"] if concurrency == 1 else ["--pool=prefork", f"-c{concurrency}"]
        self.cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "servicedesk",
            "worker",
            "-l",
            "info",
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *pool,
        ]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Worker:
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for(
            lambda: "ready." in self.log_path.read_text() or self.proc.poll() is not None,
            timeout=60,
            what="the celery worker to start",
        )
        assert self.proc.poll() is None, self.log_path.read_text()
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no ack, exactly like an OOM kill or a pulled plug."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def purge_queue() -> None:
    """Drop messages left by earlier tests so a new worker only sees this test's runs."""
    from servicedesk.celery import app

    app.control.purge()
