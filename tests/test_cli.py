"""The command line (SPEC §8): every failure a one-line message, a non-zero exit, nothing half
stored and no run left 'running'."""

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from tests import files as f
from tickets import pipeline
from tickets.models import ImportRun, Ticket

pytestmark = pytest.mark.django_db


def _interrupt_after(monkeypatch, calls: int) -> None:
    """Ctrl-C inside a run's transaction, after its rows were staged, on the `calls`-th run."""
    real = pipeline.drop_superseded
    seen = []

    def drop_superseded(*args, **kwargs):
        seen.append(1)
        if len(seen) == calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "drop_superseded", drop_superseded)


def test_ctrl_c_in_import_file_fails_its_run_and_stores_nothing(tmp_path, monkeypatch):
    pipeline.import_file(f.write_xlsx(tmp_path / "seed.xlsx", "tickets", [f.ticket(1)]))
    before = list(Ticket.objects.values_list("ticket_id", "title"))
    _interrupt_after(monkeypatch, 1)
    rows = [f.ticket(i, title="changed") for i in range(1, 5)]
    with pytest.raises(CommandError, match=r"^interrupted \(Ctrl-C\)") as failure:
        call_command("import_file", str(f.write_xlsx(tmp_path / "t.xlsx", "tickets", rows)))
    assert failure.value.returncode == 130
    assert list(Ticket.objects.values_list("ticket_id", "title")) == before
    run = ImportRun.objects.order_by("-pk").first()
    assert run.status == "failed" and run.error_summary.startswith("interrupted")
    assert not ImportRun.objects.filter(status="running").exists()


def test_ctrl_c_in_migrate_legacy_fails_the_table_in_progress_only(tmp_path, monkeypatch):
    path = f.write_legacy(
        tmp_path / "legacy.sqlite3",
        {
            "tickets": [f.ticket(i) for i in range(1, 4)],
            "comments": [f.comment(i, 1) for i in range(1, 4)],
        },
    )
    _interrupt_after(monkeypatch, 2)  # tickets load, then Ctrl-C in comments
    with pytest.raises(CommandError, match="tables loaded before it are kept") as failure:
        call_command("migrate_legacy", str(path))
    assert failure.value.returncode == 130
    runs = dict(ImportRun.objects.values_list("entity", "status"))
    assert runs == {"tickets": "succeeded", "comments": "failed"}
    assert Ticket.objects.count() == 3


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [
        ["import_file", "{tickets}"],
        ["migrate_legacy", "{legacy}"],
        ["compute_metrics", "--json"],
        ["benchmark_metrics", "--runs", "1"],
        ["backup"],
        ["restore_drill"],
    ],
)
def test_a_database_that_cannot_be_reached_is_one_line_and_exit_1(tmp_path, args):
    files = {
        "tickets": f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(1)]),
        "legacy": f.write_legacy(tmp_path / "l.sqlite3", {"tickets": [f.ticket(1)]}),
    }
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{_closed_port()}/x"}
    done = subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        + [a.format(**files) for a in args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("CommandError: database error: connection failed"), done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert "Check DATABASE_URL" in done.stderr


def test_a_database_error_that_is_not_the_connection_gives_no_connection_hint():
    """A deadlock or a statement timeout is not a wrong DATABASE_URL."""
    from django.db import OperationalError

    from servicedesk.commands import database_error

    timeout = database_error(OperationalError("canceling statement due to statement timeout"))
    assert timeout.startswith("database error: canceling statement due to statement timeout.")
    assert "DATABASE_URL" not in timeout
    refused = database_error(OperationalError('connection failed: connection to server at "x"'))
    assert "Check DATABASE_URL" in refused


def test_a_failed_import_names_the_file_its_run_and_the_rejected_rows(tmp_path):
    """The reject-rate gate's message said neither which file nor which rows: the user had to
    find the run in the admin. It now names the file, the run and the first rejections."""
    rows = [f.ticket(1), f.ticket(2, created_at="31/02/2025"), f.ticket("abc")]
    path = f.write_csv(tmp_path / "weekly.csv", "tickets", rows)
    with pytest.raises(CommandError) as failure:
        call_command("import_file", str(path))
    message = str(failure.value)
    run = ImportRun.objects.get()
    assert message.startswith("weekly.csv: 2 of 3 rows rejected"), message
    assert f"(import run #{run.pk}; first rejected: " in message
    assert "row 3 TKT-Created Time '31/02/2025': not a valid date" in message
    assert "row 4 TKT-Ticket ID 'abc': not an integer" in message
    assert "\n" not in message and Ticket.objects.count() == 0


def test_a_failed_legacy_table_names_its_run_and_rejected_rows(tmp_path):
    path = f.write_legacy(
        tmp_path / "legacy.sqlite3",
        {"tickets": [f.ticket(1), f.ticket(2, created_at="never"), f.ticket(3, created_at="")]},
    )
    with pytest.raises(CommandError) as failure:
        call_command("migrate_legacy", str(path))
    run = ImportRun.objects.get(entity="tickets")
    assert f"(import run #{run.pk}; first rejected: row 2 TKT-Created Time 'never'" in str(
        failure.value
    )


def test_ctrl_c_in_generate_demo_data_leaves_no_partial_database(tmp_path, monkeypatch):
    """A stopped run left a truncated legacy.sqlite3 that migrate_legacy loaded without a word
    (tables missing, others cut short); the previous complete files are now kept instead."""
    from tickets import demo

    call_command("generate_demo_data", "--out", str(tmp_path), "--scale", "0.005", "--seed", "1")
    before = (tmp_path / "legacy.sqlite3").read_bytes()

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "write_exports", stop)
    with pytest.raises(CommandError, match="no demo data was written") as failure:
        call_command("generate_demo_data", "--out", str(tmp_path), "--scale", "0.005")
    assert failure.value.returncode == 130
    assert (tmp_path / "legacy.sqlite3").read_bytes() == before  # not seed 42's, half written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "legacy.sqlite3"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_generate_demo_data_draws_no_bar_into_redirected_stderr(tmp_path, monkeypatch):
    """`generate_demo_data ... 2>log` on a terminal: the bar went into the log (it looked at
    stdout, not at stderr where tqdm draws); piped, the bar must stay out."""
    monkeypatch.setattr(sys, "stdout", _Terminal())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    args = ["--out", str(tmp_path), "--scale", "0.005", "--no-exports"]
    call_command("generate_demo_data", *args, stdout=io.StringIO())
    assert sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    call_command("generate_demo_data", *args, stdout=io.StringIO())
    assert "rows" in sys.stderr.getvalue()  # a terminal still gets its progress bar


def test_migrate_legacy_refuses_fewer_than_one_worker(tmp_path):
    """--workers 0 was silently replaced by LEGACY_LOAD_WORKERS."""
    path = f.write_legacy(tmp_path / "l.sqlite3", {"tickets": [f.ticket(1)]})
    with pytest.raises(CommandError, match="--workers 0: must be 1 or more"):
        call_command("migrate_legacy", str(path), "--workers", "0")
