"""Backups, restore and restore drills against the real PostgreSQL (pytest's test database).

pg_dump runs in its own session, so data must be committed: these tests use transaction=True.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from ops import backups
from ops.backups import OpsError
from ops.models import Backup, BenchmarkRun, HealthSnapshot, RestoreDrill
from tickets.models import Comment, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_KEEP_COUNT = 50
    settings.BACKUP_KEEP_DAYS = 30
    return Path(settings.BACKUP_DIR)


def table_fingerprints() -> dict[str, tuple[int, str | None]]:
    """Row count and md5 of all rows (as text, in a fixed order) of every warehouse table."""
    result = {}
    with connection.cursor() as cur:
        for table in backups.warehouse_tables():
            cur.execute(
                f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
            )
            result[table] = tuple(cur.fetchone())
    return result


def make_data(tickets: int = 5, comments_per_ticket: int = 3) -> None:
    """Tickets and comments written by the ORM: the live metric facts are left stale on purpose
    (backups record metrics from facts rebuilt on the dump's snapshot, as a restore does)."""
    now = timezone.now()
    Ticket.objects.bulk_create(
        Ticket(
            ticket_id=1000 + i,
            created_at=now - timedelta(days=i),
            resolved_at=now - timedelta(days=i) + timedelta(hours=5 + i),
            status="Closed" if i % 2 else "Open",
            team=f"Team {i % 2}",
            title=f"Printer {i} jammed; ünïcode ✓",
            sla_met=bool(i % 3),
        )
        for i in range(tickets)
    )
    Comment.objects.bulk_create(
        Comment(
            comment_id=5000 + i * 1000 + j,
            ticket_id=1000 + i,
            created_at=now - timedelta(days=i) + timedelta(minutes=j),
            text=f"comment {j} on {i}",
            user_name="agent",
            visible_to_customer=bool(j % 2),
        )
        for i in range(tickets)
        for j in range(comments_per_ticket)
    )


def corrupt(path: Path, offset_from_end: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_backup_records_file_checksum_size_and_counts(backup_dir):
    make_data(tickets=4, comments_per_ticket=2)
    record = backups.backup("test")
    path = Path(record.path)
    assert record.status == Backup.Status.SUCCEEDED
    assert path.parent == backup_dir.resolve() and path.is_file()
    assert record.sha256 == backups.file_sha256(path)
    assert record.size_bytes == path.stat().st_size > 0
    assert record.duration_s > 0
    assert record.row_counts["tickets_ticket"] == 4
    assert record.row_counts["tickets_comment"] == 8
    assert set(record.row_counts) == set(backups.warehouse_tables())
    assert not list(backup_dir.glob("*.partial"))


def test_backup_files_are_readable_by_their_owner_only(backup_dir):
    """A dump holds every password hash and session key: not for other local users, even
    with the usual umask 022."""
    old = os.umask(0o022)
    try:
        record = backups.backup("test")
    finally:
        os.umask(old)
    assert stat.S_IMODE(Path(record.path).stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_dir.stat().st_mode) & 0o077 == 0  # created by the backup


def test_backup_command_prints_json(capsys, backup_dir):
    make_data(tickets=2)
    call_command("backup", "--json", "--reason", "cmd ../../x")
    out = capsys.readouterr().out
    assert '"tickets_ticket": 2' in out
    record = Backup.objects.get()
    assert record.reason == "cmd ../../x"
    assert Path(record.path).parent == backup_dir.resolve()  # the reason cannot escape the dir


def test_restore_brings_back_exact_data():
    make_data()
    expected = table_fingerprints()
    record = backups.backup("before-change")
    drill = backups.restore_drill()
    run = BenchmarkRun.objects.create(runs=5, warmup=1, total_ms=12.0, passed=True)
    run.results.create(metric_id="1.1", slug="x", median_ms=1, p95_ms=2, max_ms=3)
    snapshot = HealthSnapshot.objects.create(overall="ok")

    Ticket.objects.filter(ticket_id=1001).delete()
    Comment.objects.filter(ticket_id=1001).delete()
    Comment.objects.filter(comment_id=5000).update(text="edited")
    Ticket.objects.create(ticket_id=9999, created_at=timezone.now(), status="New")
    assert table_fingerprints() != expected

    report = backups.restore(record.path, confirm=True)

    assert table_fingerprints() == expected
    assert report.backup_id == record.pk
    assert report.after == {table: count for table, (count, _) in expected.items()}
    assert report.changes()["tickets_comment"] == {"before": 12, "after": 15}
    # The catalog survives the restore: the safety dump taken just before is still known.
    safety = Backup.objects.get(reason="safety")
    assert safety.path == report.safety_backup_path and Path(safety.path).is_file()
    assert safety.row_counts["tickets_ticket"] == 5  # 5 - 1 deleted + 1 added
    # ...with its recorded times, and so are older backups and drills
    kept = Backup.objects.get(pk=record.pk)
    assert (kept.started_at, kept.sha256) == (record.started_at, record.sha256)
    assert RestoreDrill.objects.get(pk=drill.pk).started_at == drill.started_at
    assert safety.started_at < safety.finished_at
    # ...and so is the rest of the ops history written after the backup
    assert BenchmarkRun.objects.get().results.get().metric_id == "1.1"
    assert HealthSnapshot.objects.get().taken_at == snapshot.taken_at


def test_restore_reports_row_count_changes():
    make_data(tickets=3)
    record = backups.backup("small")
    Ticket.objects.bulk_create(
        Ticket(ticket_id=8000 + i, created_at=timezone.now(), status="New") for i in range(4)
    )
    report = backups.restore(record.path, confirm=True)
    assert report.changes()["tickets_ticket"] == {"before": 7, "after": 3}
    assert Ticket.objects.count() == 3


def test_restore_never_prunes_the_archive_it_restores(settings):
    settings.BACKUP_KEEP_COUNT = 1
    settings.BACKUP_KEEP_DAYS = 0
    make_data(tickets=3)
    record = backups.backup("old")
    Ticket.objects.all().delete()
    backups.restore(record.path, confirm=True)
    assert Ticket.objects.count() == 3
    assert Path(record.path).is_file()
    assert Backup.objects.get(pk=record.pk).status == Backup.Status.SUCCEEDED


def test_restore_refuses_without_confirm():
    make_data()
    record = backups.backup("x")
    Ticket.objects.filter(ticket_id=1000).delete()
    state = table_fingerprints()
    with pytest.raises(OpsError, match="--confirm"):
        backups.restore(record.path)
    with pytest.raises(CommandError, match="--confirm"):
        call_command("restore", record.path)
    assert table_fingerprints() == state
    assert not Backup.objects.filter(reason="safety").exists()


def test_restore_refuses_corrupted_known_archive_before_touching_anything():
    make_data()
    record = backups.backup("x")
    corrupt(Path(record.path))
    Ticket.objects.filter(ticket_id=1000).delete()
    state = table_fingerprints()
    with pytest.raises(OpsError, match="checksum mismatch"):
        backups.restore(record.path, confirm=True)
    assert table_fingerprints() == state
    assert not Backup.objects.filter(reason="safety").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_restore_refuses_damaged_unknown_archive(tmp_path, damage):
    make_data(tickets=30, comments_per_ticket=20)
    record = backups.backup("x")
    unknown = tmp_path / "copy.dump"  # not in the catalog: only pg_restore can judge it
    data = Path(record.path).read_bytes()
    if damage == "truncate":
        unknown.write_bytes(data[: len(data) * 2 // 3])
    else:
        unknown.write_bytes(b"PGDMP this is not an archive\n" * 100)
    Ticket.objects.filter(ticket_id=1000).delete()
    state = table_fingerprints()
    with pytest.raises(OpsError, match="not a complete pg_dump archive"):
        backups.restore(unknown, confirm=True)
    assert table_fingerprints() == state
    assert not Backup.objects.filter(reason="safety").exists()


def test_restore_failing_midway_rolls_back_everything(tmp_path):
    """An unknown archive whose DDL text is damaged passes the checks (pg_dump's TOC carries no
    checksum) and fails during the restore: the single transaction leaves the data unchanged."""
    make_data()
    record = backups.backup("x")
    data = Path(record.path).read_bytes()
    assert b"CREATE INDEX" in data
    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(data.replace(b"CREATE INDEX", b"CREATE INDEZ", 1))
    backups.verify_archive(damaged)  # passes: only the restore can find this one
    Ticket.objects.filter(ticket_id=1000).delete()
    state = table_fingerprints()
    with pytest.raises(OpsError, match="rolled back"):
        backups.restore(damaged, confirm=True)
    assert table_fingerprints() == state


def test_restore_command_missing_file():
    with pytest.raises(CommandError, match="archive not found"):
        call_command("restore", "/nonexistent/x.dump", "--confirm")


def test_restore_command_given_a_directory_says_so(backup_dir):
    backup_dir.mkdir()
    with pytest.raises(CommandError, match="is a directory: give the path of a pg_dump archive"):
        call_command("restore", str(backup_dir), "--confirm")


def scratch_databases() -> set[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'sd\\_drill\\_%'")
        return {row[0] for row in cur.fetchall()}


def test_drill_passes_on_good_backup():
    make_data()
    before = scratch_databases()
    record = backups.backup("x")
    drill = backups.restore_drill()
    assert drill.passed, (drill.error, drill.details["metrics"])
    assert drill.backup_id == record.pk
    assert drill.recovery_time_s > 0
    assert drill.details["tables"]["tickets_ticket"] == {"expected": 5, "actual": 5, "ok": True}
    assert drill.details["metrics"]["compared"] is True
    assert len(drill.details["metrics"]["values"]) == len(backups.CRITICAL_METRIC_IDS)
    assert record.metrics["sla_compliance_rate"]["value"] is not None
    assert drill.details["scratch_database"] not in scratch_databases()
    assert scratch_databases() == before
    call_command("restore_drill")  # exits 0
    assert RestoreDrill.objects.filter(passed=True).count() == 2


def test_drill_fails_on_corrupted_backup():
    make_data()
    record = backups.backup("x")
    corrupt(Path(record.path))
    drill = backups.restore_drill()
    assert drill.passed is False
    assert "checksum mismatch" in drill.error
    with pytest.raises(CommandError, match="FAILED"):
        call_command("restore_drill")


def test_drill_fails_when_restored_counts_differ_from_record():
    make_data()
    record = backups.backup("x")
    Backup.objects.filter(pk=record.pk).update(
        row_counts={**record.row_counts, "tickets_ticket": 6}
    )
    drill = backups.restore_drill()
    assert drill.passed is False
    assert drill.details["tables"]["tickets_ticket"] == {"expected": 6, "actual": 5, "ok": False}
    assert drill.details["tables"]["tickets_comment"]["ok"] is True


def test_drill_fails_when_recomputed_metric_differs_from_record():
    make_data()
    record = backups.backup("x")
    recorded = record.metrics["sla_compliance_rate"]["value"]
    tampered = {**record.metrics, "sla_compliance_rate": {"value": recorded + 1}}
    Backup.objects.filter(pk=record.pk).update(metrics=tampered)
    drill = backups.restore_drill()
    assert drill.passed is False
    sla = drill.details["metrics"]["values"]["sla_compliance_rate"]
    assert sla == {"expected": {"value": recorded + 1}, "actual": {"value": recorded}, "ok": False}
    assert drill.details["metrics"]["values"]["fcr_rate"]["ok"] is True


def test_drill_without_backup_is_recorded_as_failed():
    drill = backups.restore_drill()
    assert drill.passed is False and "no succeeded backup" in drill.error


def test_missing_tool_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CommandError, match="'pg_dump' not found"):
        call_command("backup")
    assert not Backup.objects.exists()


def test_not_enough_space_is_refused_before_dumping(backup_dir, monkeypatch):
    monkeypatch.setattr(backups, "_estimate_dump_bytes", lambda: shutil.disk_usage("/").total * 2)
    with pytest.raises(OpsError, match="not enough disk space"):
        backups.backup("x")
    assert not Backup.objects.exists()


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 64 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mountpoint
    subprocess.run(["umount", str(mountpoint)], check=False)


def test_disk_full_during_dump_is_a_clear_error(settings, tiny_filesystem, monkeypatch):
    settings.BACKUP_DIR = tiny_filesystem
    make_data(tickets=50, comments_per_ticket=20)
    monkeypatch.setattr(backups, "_estimate_dump_bytes", lambda: 1)  # get past the pre-check
    with pytest.raises(OpsError, match="disk full"):
        backups.backup("x")
    record = Backup.objects.get()
    assert record.status == Backup.Status.FAILED and "disk full" in record.error
    assert list(tiny_filesystem.iterdir()) == []  # the partial file is gone


def test_read_only_backup_dir_fails_the_backup_with_its_cause(
    settings, tiny_filesystem, monkeypatch
):
    """On a read-only file system even removing the (never created) partial file fails: that
    must not replace pg_dump's error with a traceback and leave the record "running"."""
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_filesystem)], check=True)
    settings.BACKUP_DIR = tiny_filesystem
    monkeypatch.setattr(backups, "_estimate_dump_bytes", lambda: 1)
    with pytest.raises(OpsError, match="Read-only file system"):
        backups.backup("x")
    record = Backup.objects.get()
    assert record.status == Backup.Status.FAILED and "Read-only file system" in record.error
    assert record.finished_at is not None


def test_a_backup_whose_process_died_is_failed_and_its_partial_file_removed(backup_dir):
    """A killed worker (OOM, restart, hard time limit) left the record "running" for ever and
    a full-size .partial file that retention never removes (it deletes succeeded backups)."""
    backup_dir.mkdir(parents=True)
    dead = Backup.objects.create(path=str(backup_dir / "dead.dump"), status="running")
    (backup_dir / "dead.dump.partial").write_bytes(b"x" * 1000)
    record = backups.backup("x")
    dead.refresh_from_db()
    assert record.status == Backup.Status.SUCCEEDED
    assert dead.status == Backup.Status.FAILED and "interrupted" in dead.error
    assert not (backup_dir / "dead.dump.partial").exists()


def test_a_backup_running_in_another_process_is_left_alone(backup_dir):
    backup_dir.mkdir(parents=True)
    live = Backup.objects.create(path=str(backup_dir / "live.dump"), status="running")
    (backup_dir / "live.dump.partial").write_bytes(b"x")
    dsn = connection.settings_dict
    holder = psycopg.connect(
        host=dsn["HOST"] or "127.0.0.1",
        port=dsn["PORT"] or 5432,
        user=dsn["USER"],
        password=dsn["PASSWORD"] or None,
        dbname=dsn["NAME"],
        autocommit=True,
    )
    try:  # what backup() holds while it runs
        holder.execute("SELECT pg_advisory_lock(%s, %s)", backups._lock_args(live))
        assert backups.backup("x").status == Backup.Status.SUCCEEDED
        live.refresh_from_db()
        assert live.status == Backup.Status.RUNNING
        assert (backup_dir / "live.dump.partial").exists()
    finally:
        holder.close()
    assert [r.pk for r in backups.fail_interrupted_backups()] == [live.pk]  # once it is gone


# --- retention -------------------------------------------------------------------------------


def make_backup_file(directory: Path, age_days: float, status=Backup.Status.SUCCEEDED) -> Backup:
    directory.mkdir(parents=True, exist_ok=True)
    started = timezone.now() - timedelta(days=age_days)
    path = directory / f"b-{age_days}-{status}.dump"
    if status == Backup.Status.SUCCEEDED:
        path.write_bytes(b"x")
    record = Backup.objects.create(path=str(path.resolve()), status=status)
    Backup.objects.filter(pk=record.pk).update(started_at=started)
    record.refresh_from_db()
    return record


@pytest.mark.parametrize(
    ("keep_count", "keep_days", "kept_ages"),
    [
        (2, 7, {0, 1}),  # beyond the 2 newest and older than 7 days: pruned
        (2, 15, {0, 1, 10}),  # 10 days old is within the age rule
        (4, 7, {0, 1, 10, 20}),  # within the count rule
        (0, 0, {0}),  # the newest succeeded backup is always kept
    ],
)
def test_retention_deletes_only_backups_outside_both_rules(
    settings, backup_dir, tmp_path, keep_count, keep_days, kept_ages
):
    settings.BACKUP_KEEP_COUNT = keep_count
    settings.BACKUP_KEEP_DAYS = keep_days
    ages = [0, 1, 10, 20, 30]
    records = {age: make_backup_file(backup_dir, age) for age in ages}
    failed = make_backup_file(backup_dir, 40, status=Backup.Status.FAILED)
    elsewhere = make_backup_file(tmp_path / "elsewhere", 50)

    pruned = backups.prune()

    assert {r.pk for r in pruned} == {records[a].pk for a in ages if a not in kept_ages}
    for age, record in records.items():
        record.refresh_from_db()
        kept = age in kept_ages
        assert Path(record.path).exists() == kept
        assert record.status == (Backup.Status.SUCCEEDED if kept else Backup.Status.PRUNED)
    failed.refresh_from_db()
    assert failed.status == Backup.Status.FAILED
    assert Path(elsewhere.path).exists()
    assert Backup.objects.get(pk=elsewhere.pk).status == Backup.Status.SUCCEEDED


def test_retention_frees_a_full_disk_before_the_space_check(settings, backup_dir, monkeypatch):
    """Old backups outside both rules are what fills the disk: a backup refused for space before
    retention ran would be refused forever, and lowering the rules (as the message says) would
    not help either."""
    settings.BACKUP_KEEP_COUNT = 1
    settings.BACKUP_KEEP_DAYS = 7
    newest = make_backup_file(backup_dir, 1)
    stale = [make_backup_file(backup_dir, age) for age in (10, 20)]
    real_check = backups.check_free_space

    def full_while_stale_files_exist(directory: Path, needed: int) -> None:
        if any(Path(r.path).exists() for r in stale):
            raise OpsError(f"not enough disk space in {directory}")
        real_check(directory, needed)

    monkeypatch.setattr(backups, "check_free_space", full_while_stale_files_exist)
    record = backups.backup("scheduled")

    assert record.status == Backup.Status.SUCCEEDED and Path(record.path).is_file()
    for old in stale:
        old.refresh_from_db()
        assert old.status == Backup.Status.PRUNED and not Path(old.path).exists()
    assert Path(newest.path).exists()  # within the age rule: kept


def test_backup_applies_retention(settings):
    settings.BACKUP_KEEP_COUNT = 1
    settings.BACKUP_KEEP_DAYS = 0
    first = backups.backup("one")
    second = backups.backup("two")
    first.refresh_from_db()
    assert first.status == Backup.Status.PRUNED and not Path(first.path).exists()
    assert Path(second.path).is_file()


def test_restore_gives_up_on_a_lock_held_too_long_and_changes_nothing(monkeypatch):
    """pg_restore's own `SET lock_timeout = 0` cannot keep it waiting behind a long
    transaction (holding the locks of what it already dropped, so the app would block too)."""
    monkeypatch.setattr(backups, "RESTORE_LOCK_WAIT_S", 2)
    make_data()
    record = backups.backup("x")
    Ticket.objects.filter(ticket_id=1000).delete()
    state = table_fingerprints()
    holder = connection.copy()  # another session, mid-transaction on a warehouse table
    holder.connect()
    holder.set_autocommit(False)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT count(*) FROM tickets_comment")
        started = timezone.now()
        with pytest.raises(OpsError, match="gave up after waiting 2 s for locks"):
            backups.restore(record.path, confirm=True)
        assert timezone.now() - started < timedelta(seconds=60)
    finally:
        holder.rollback()
        holder.close()
    assert table_fingerprints() == state


def test_restore_of_an_archive_older_than_the_read_only_views(settings):
    """create_readonly_role after the backup: its views depend on tables the restore drops."""
    from metrics.readonly_role import PLATFORM_VIEWS, ensure_readonly_role

    make_data()
    expected = table_fingerprints()
    record = backups.backup("before the role")
    role, app = "sd_test_reader", "sd-test-app"  # a name that needs quoting, too
    ensure_readonly_role(role, password=None)
    with connection.cursor() as cur:  # another role that reads one view and writes tickets
        cur.execute(f'CREATE ROLE "{app}" NOLOGIN')
        cur.execute(f'GRANT SELECT ON platform_import_runs TO "{app}"')
        cur.execute(f'GRANT INSERT ON tickets_ticket TO "{app}"')
    try:
        Ticket.objects.filter(ticket_id=1001).delete()
        backups.restore(record.path, confirm=True)
        assert table_fingerprints() == expected
        with connection.cursor() as cur:  # the views and exactly their grants are back
            for view in PLATFORM_VIEWS:
                cur.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", [role, view])
                assert cur.fetchone() == (True,), view
            cur.execute("SELECT has_table_privilege(%s, 'platform_import_runs', 'SELECT')", [app])
            assert cur.fetchone() == (True,)
            cur.execute("SELECT has_table_privilege(%s, 'platform_backups', 'SELECT')", [app])
            assert cur.fetchone() == (False,)
            cur.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [app])
            assert cur.fetchone() == (False,)  # nothing else about the role changed
    finally:
        with connection.cursor() as cur:
            for name in (role, app):
                cur.execute(f'DROP OWNED BY "{name}"')
                cur.execute(f'DROP ROLE "{name}"')


def test_an_unreadable_archive_fails_the_drill_with_a_reason(monkeypatch, tmp_path):
    make_data()
    record = backups.backup("x")

    def unreadable(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(backups, "file_sha256", unreadable)
    drill = backups.restore_drill(record)
    assert drill.passed is False and "cannot read archive" in drill.error
    with pytest.raises(CommandError, match="cannot read archive"):
        call_command("restore", record.path, "--confirm")


def test_a_drill_that_crashes_is_recorded_as_failed(monkeypatch):
    make_data()
    record = backups.backup("x")

    def crash(*args, **kwargs):
        raise RuntimeError("scratch database vanished")

    monkeypatch.setattr(backups, "_compare_counts", crash)
    drill = backups.restore_drill(record)
    drill.refresh_from_db()
    assert drill.passed is False and "RuntimeError: scratch database vanished" in drill.error
    assert drill.finished_at is not None


def test_ctrl_c_during_a_backup_fails_it_and_removes_the_partial_file(backup_dir, monkeypatch):
    """The record stayed 'running' beside its .partial file until the next backup noticed."""
    real_run = backups._run

    def interrupted(cmd, env, what):
        real_run(cmd, env, what)  # the dump is written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(backups, "_run", interrupted)
    with pytest.raises(CommandError, match="interrupted") as failure:
        call_command("backup")
    assert failure.value.returncode == 130
    record = Backup.objects.get()
    assert (record.status, record.error) == ("failed", "interrupted (Ctrl-C) while dumping")
    assert list(backup_dir.iterdir()) == []
