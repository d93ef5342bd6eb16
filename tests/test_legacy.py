"""migrate_legacy: every legacy table through the pipeline, reconciled, idempotent."""

import json
import sqlite3
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from metrics import facts
from tests import files as f
from tickets.models import Comment, CommentQuality, ImportRun, TeamMember, Ticket, TimesheetEntry

pytestmark = pytest.mark.django_db


def legacy_db(path):
    f.write_legacy(
        path,
        {
            "tickets": [f.ticket(i, ticket_id=f"{i}.0") for i in range(1, 21)]
            + [f.ticket(21, created_at="20/05/2025 8:42"), f.ticket(22, created_at="")],
            "comments": [f.comment(i, 1 + i % 25) for i in range(1, 31)],
            "timesheets": [
                f.timesheet(i, f"2025-07-0{1 + i % 9}", crm=i % 3) for i in range(1, 16)
            ],
            "comment_quality": [
                {
                    "comment_key": "1_2025-07-04 09:00:00",
                    "ticket_id": "1.0",
                    "quality_score": "3.5",
                    "professionalism_score": "4",
                    "quality_tier": "good",
                },
                {"comment_key": "2", "ticket_id": "2", "quality_score": "9"},  # out of range
            ],
            "roster": [{"name": "Ann Agent", "email": "ann@example.com", "username": "aagent"}],
        },
    )
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE import_metadata (import_id, source_type, import_timestamp, file_name, "
        "records_imported, date_range_start, date_range_end, filter_applied, notes)"
    )
    conn.execute(
        "INSERT INTO import_metadata VALUES (1, 'tickets', '2025-08-01 10:00:00', 'x.xlsx', "
        "'120.0', '2025-07-01', '2025-07-31', 'team=Cloud', '')"
    )
    conn.commit()
    conn.close()
    return path


def test_migrate_legacy_reconciles_and_is_idempotent(tmp_path, capsys):
    path = legacy_db(tmp_path / "legacy.sqlite3")
    call_command("migrate_legacy", str(path), "--json")
    report = json.loads(capsys.readouterr().out)
    by_table = {t["table"]: t for t in report["tables"]}
    assert report["ok"] is True
    assert by_table["tickets"]["source_rows"] == 22
    assert (by_table["tickets"]["inserted"], by_table["tickets"]["rejected"]) == (21, 1)
    assert by_table["comments"]["inserted"] == 30
    assert by_table["timesheets"]["inserted"] == 15
    assert (
        by_table["comment_quality"]["inserted"] == 2 and by_table["comment_quality"]["warned"] == 1
    )
    assert report["missing_tables"] == ["comment_sentiment"]
    assert report["history_runs"] == 1
    for t in report["tables"]:
        assert (
            t["source_rows"]
            == t["inserted"] + t["updated"] + t["unchanged"] + t["rejected"] + t["superseded"]
        )
    assert Ticket.objects.count() == 21 and Comment.objects.count() == 30
    assert TimesheetEntry.objects.filter(ticket_id__isnull=False).count() == 10
    assert CommentQuality.objects.get(comment_key="2").quality_score is None
    assert TeamMember.objects.get().email == "ann@example.com"
    history = ImportRun.objects.get(source_kind="legacy-history")
    assert (history.rows_read, str(history.window_start)) == (120, "2025-07-01")
    # Listed (admin change list, date drill-down) when it was imported, not when migrated.
    assert history.created_at == history.finished_at
    assert history.created_at.isoformat() == "2025-08-01T10:00:00+00:00"
    # The tables commit without their facts; the one refresh at the end builds them.
    assert report["facts_refresh_s"] is not None and not facts.settings_stale()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metric_ticket_facts")
        assert cursor.fetchone() == (21,)

    call_command("migrate_legacy", str(path), "--json")
    again = json.loads(capsys.readouterr().out)
    for t in again["tables"]:
        assert t["inserted"] == t["updated"] == t["deleted"] == 0
        assert t["unchanged"] == t["source_rows"] - t["rejected"] - t["superseded"]
    assert ImportRun.objects.filter(source_kind="legacy-history").count() == 1


def test_migrate_legacy_dry_run_and_table_selection(tmp_path, capsys):
    path = legacy_db(tmp_path / "legacy.sqlite3")
    call_command("migrate_legacy", str(path), "--dry-run", "--tables", "tickets")
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "tickets" in out and "comments " not in out
    assert Ticket.objects.count() == 0


def test_the_text_report_shows_timesheet_deletions_also_in_a_dry_run(tmp_path, capsys):
    from tickets.pipeline import import_file

    days = ["2025-07-01", "2025-07-02"]
    import_file(
        f.write_csv(
            tmp_path / "t.csv", "timesheets", [f.timesheet(i, days[i % 2]) for i in range(4)]
        )
    )
    path = f.write_legacy(
        tmp_path / "legacy.sqlite3",
        {"timesheets": [f.timesheet(10 + i, days[i % 2]) for i in range(3)]},
    )
    for flags, stored in ((["--dry-run"], 4), ([], 3)):
        call_command("migrate_legacy", str(path), *flags)
        out = capsys.readouterr().out
        header, row = out.splitlines()[1:3]
        assert header.split()[-2:] == ["deleted", "status"]
        assert row.split()[0] == "timesheets" and row.split()[-2:] == ["4", "ok"]
        assert "would be deleted" in out if flags else "would be deleted" not in out
        assert TimesheetEntry.objects.count() == stored


def test_a_quality_id_stored_as_float_text_is_the_same_key_as_the_exports_id(tmp_path):
    from tickets.pipeline import import_file

    path = f.write_legacy(
        tmp_path / "legacy.sqlite3",
        {"comment_quality": [{"comment_key": "7001.0", "ticket_id": "1.0", "quality_score": "4"}]},
    )
    call_command("migrate_legacy", str(path))
    export = f.write_csv(
        tmp_path / "quality.csv",
        "comment_quality",
        [{"comment_key": "7001", "ticket_id": "1", "quality_score": "4.5"}],
    )
    run = import_file(export)
    assert (run.rows_inserted, run.rows_updated) == (0, 1)
    assert list(CommentQuality.objects.values_list("comment_key", "quality_score")) == [
        ("7001", Decimal("4.5"))
    ]


@pytest.mark.parametrize(
    "content,message",
    [(b"", "the file is empty"), (b"hello world, not sqlite" * 10, "not a SQLite database")],
)
def test_non_sqlite_is_refused(tmp_path, content, message):
    path = tmp_path / "legacy.sqlite3"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        call_command("migrate_legacy", str(path))


def test_sqlite_without_legacy_tables_is_refused(tmp_path):
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE unrelated (x)")
    conn.commit()
    conn.close()
    with pytest.raises(CommandError, match="no legacy tables found"):
        call_command("migrate_legacy", str(path))
    assert ImportRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_parallel_load_matches_sequential(tmp_path, capsys, monkeypatch):
    """Spawned workers load comments/timesheets after tickets; orphans and counts still exact."""
    from tickets import legacy

    pools = []
    real_pool = legacy.ProcessPoolExecutor

    def counted_pool(*args, **kwargs):  # the real pool: only records that one was used
        pools.append(kwargs["max_workers"])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(legacy, "ProcessPoolExecutor", counted_pool)
    path = legacy_db(tmp_path / "legacy.sqlite3")
    call_command("migrate_legacy", str(path), "--json", "--workers", "2")
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert pools == [2]  # the tables after tickets really went to two worker processes
    runs = {r.entity: r for r in ImportRun.objects.exclude(source_kind="legacy-history")}
    assert runs["comments"].orphans == 30 - Comment.objects.filter(ticket_id__lte=21).count()
    assert runs["timesheets"].rows_inserted == 15
    assert Comment.objects.count() == 30 and TimesheetEntry.objects.count() == 15


def test_text_that_is_not_utf8_is_loaded_with_replacement(tmp_path):
    path = legacy_db(tmp_path / "legacy.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE comments SET comment_text = CAST(X'6361666580' AS TEXT) WHERE comment_id = '7'"
    )
    conn.commit()
    conn.close()
    call_command("migrate_legacy", str(path), "--tables", "comments")
    assert Comment.objects.count() == 30
    assert Comment.objects.get(pk=7).text == "cafe\ufffd"


def test_nul_bytes_are_dropped_and_real_numbers_in_text_columns_read_as_written(tmp_path):
    """PostgreSQL text cannot hold NUL; a REAL 12.0 in a text column is the text 12."""
    path = tmp_path / "legacy.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(
        'CREATE TABLE tickets ("TKT-Ticket ID" INTEGER, "TKT-Created Time" TIMESTAMP, '
        '"TKT-Status" TEXT, "TKT-Title" TEXT, "TKT-Job#/Ref#" REAL, "TKT-SLA Met" REAL)'
    )
    conn.executemany(
        "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?)",
        [
            (1, "2025-07-03 11:13:00", "Closed", "bad\x00title", 12.0, 1.0),
            (2, "2025-07-03 11:14:00", "Open", "fine", 12.5, 0.0),
        ],
    )
    conn.commit()
    conn.close()
    call_command("migrate_legacy", str(path))
    first, second = Ticket.objects.order_by("ticket_id")
    assert (first.title, first.job_ref, first.sla_met) == ("badtitle", "12", True)
    assert (second.title, second.job_ref, second.sla_met) == ("fine", "12.5", False)


def test_without_rowid_tables_blobs_and_a_damaged_table(tmp_path):
    """A WITHOUT ROWID table loads; a BLOB cell is text; a table whose pages are damaged fails
    on its own with a clear reason while the others load and the report is printed."""
    path = tmp_path / "legacy.sqlite3"
    f.write_legacy(path, {"tickets": [f.ticket(i) for i in range(1, 6)]})
    conn = sqlite3.connect(path)
    names = f.legacy_names("comments")
    conn.execute(
        "CREATE TABLE comments ("
        + ", ".join(f'"{n}" TEXT' for n in names)
        + ', PRIMARY KEY ("comment_id")) WITHOUT ROWID'
    )
    for i in range(1, 4):
        row = f._ordered("comments", f.comment(i, 1))
        conn.execute(f"INSERT INTO comments VALUES ({', '.join('?' * len(names))})", row)
    conn.execute("UPDATE comments SET user_name = CAST('Ann' AS BLOB)")
    roster = [("Ann Agent", "ann@example.com", f"user{i}" + "x" * 3000) for i in range(300)]
    conn.execute("CREATE TABLE cloud_team_roster (name TEXT, email TEXT, username TEXT)")
    conn.executemany("INSERT INTO cloud_team_roster VALUES (?, ?, ?)", roster)
    conn.commit()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'cloud_team_roster'"
    ).fetchone()[0]
    conn.close()
    with path.open("r+b") as fh:  # scribble over the roster's root page
        fh.seek((root - 1) * page_size)
        fh.write(b"\x5a" * page_size)

    with pytest.raises(CommandError):  # a table failed: non-zero exit, after the report
        call_command("migrate_legacy", str(path))
    assert Ticket.objects.count() == 5
    assert sorted(Comment.objects.values_list("user_name", flat=True)) == ["Ann"] * 3
    assert not TeamMember.objects.exists()
