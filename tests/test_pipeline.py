"""The load pipeline end to end on generated files (SPEC §4.2)."""

import csv
import datetime as dt
import re
import threading
import time as clock
import zipfile
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from metrics import facts
from tests import files as f
from tickets.models import Comment, ImportIssue, ImportRun, Ticket, TimesheetEntry
from tickets.pipeline import ImportFailed, import_file

pytestmark = pytest.mark.django_db


@contextmanager
def facts_locked_while_importing(path):
    """A fact refresh mid-way (the facts' lock held on a second connection) while
    `import_file(path)` runs in a thread. Yields that connection, still in its transaction, once
    the import is waiting, and the import's outcome ({"run"} or {"error"}), complete after the
    block: leaving it releases the lock and waits for the import."""
    holder = connections.create_connection("default")
    holder.connect()
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        facts.lock(cursor)
    outcome: dict[str, object] = {}

    def load():
        try:
            outcome["run"] = import_file(path)
        except Exception as exc:  # noqa: BLE001 -- reported by the caller's assertions
            outcome["error"] = exc
        finally:
            connections.close_all()

    worker = threading.Thread(target=load)
    worker.start()
    try:
        clock.sleep(2)
        assert worker.is_alive()  # the import is waiting for the facts' lock
        yield holder, outcome
    finally:
        holder.rollback()
        holder.close()
        worker.join(timeout=60)


def snapshot():
    return (
        list(Ticket.objects.order_by("pk").values_list("pk", "status", "title")),
        Comment.objects.count(),
        TimesheetEntry.objects.count(),
    )


def test_xlsx_tickets_typed_and_reimport_is_unchanged(tmp_path):
    rows = [f.ticket(i) for i in range(1, 11)]
    rows[0].update(created_at=45841.4673611111, sla_met="no", assigned_to_user="PendingAssignment")
    rows[1].update(created_at=dt.datetime(2025, 7, 3, 11, 12, 59, 999999), ticket_id="3652948.0")
    rows[2].update(created_at="20/05/2025 8:42", root_cause_category="--None--", parent_id="#N/A")
    path = f.write_xlsx(tmp_path / "tickets.xlsx", "tickets", rows)

    run = import_file(path)
    assert (run.status, run.entity, run.rows_read, run.rows_inserted) == (
        "succeeded",
        "tickets",
        10,
        10,
    )
    t1 = Ticket.objects.get(pk=1)
    assert t1.created_at == dt.datetime(2025, 7, 3, 11, 13, tzinfo=dt.UTC)
    assert t1.sla_met is False and t1.assigned_to_user is None
    assert Ticket.objects.get(pk=3652948).created_at == dt.datetime(
        2025, 7, 3, 11, 13, tzinfo=dt.UTC
    )
    t3 = Ticket.objects.get(pk=3)
    assert t3.created_at == dt.datetime(2025, 5, 20, 8, 42, tzinfo=dt.UTC)
    assert t3.root_cause_category is None and t3.parent_id is None
    assert t1.inserted_run_id == run.pk == t1.changed_run_id
    # The error cell is a warning on its row, with the raw value.
    issue = ImportIssue.objects.get(run=run, row_number=4)
    assert (issue.column, issue.raw_value, issue.severity) == ("TKT-Parent ID", "#N/A", "warning")
    assert run.rows_warned == 1

    again = import_file(path)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 10)
    assert again.same_file_as_id == run.pk
    assert Ticket.objects.get(pk=1).changed_run_id == run.pk


@pytest.mark.parametrize("blank_rows, first_column", [(0, 1), (2, 1), (2, 3), (0, 3)])
def test_xlsx_table_away_from_a1_keeps_row_numbers_and_error_cells(
    tmp_path, blank_rows, first_column
):
    """The header is the first non-empty row wherever it sits; issues carry the sheet's own
    row numbers and error cells are still found."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    rows = [f.ticket(1), f.ticket(2, title="#N/A"), f.ticket(3, created_at="garbage")]
    rows += [f.ticket(n) for n in range(4, 40)]  # under the reject-rate limit
    header_row = blank_rows + 1
    for r, values in enumerate([f.headers("tickets"), *(f._ordered("tickets", x) for x in rows)]):
        for c, value in enumerate(values):
            sheet.cell(header_row + r, first_column + c, value)
    assert (
        sheet.cell(header_row + 2, first_column + f.headers("tickets").index("TKT-Title")).data_type
        == "e"
    )
    path = tmp_path / "offset.xlsx"
    workbook.save(path)

    run = import_file(path)
    assert (run.rows_read, run.rows_inserted, run.rows_rejected, run.rows_warned) == (39, 38, 1, 1)
    issues = {i.row_number: (i.column, i.raw_value) for i in ImportIssue.objects.filter(run=run)}
    assert issues == {
        header_row + 2: ("TKT-Title", "#N/A"),
        header_row + 3: ("TKT-Created Time", "garbage"),
    }
    assert Ticket.objects.get(pk=2).title is None


def test_overlapping_export_updates_inserts_and_keeps_absent_rows(tmp_path):
    import_file(
        f.write_xlsx(
            tmp_path / "a.xlsx", "tickets", [f.ticket(i, status="Open") for i in range(1, 6)]
        )
    )
    later = [f.ticket(i, status="Open") for i in (4, 5)] + [f.ticket(6), f.ticket(7)]
    later[0]["status"] = "Closed"
    run = import_file(f.write_xlsx(tmp_path / "b.xlsx", "tickets", later))
    assert (run.rows_inserted, run.rows_updated, run.rows_unchanged) == (2, 1, 1)
    assert Ticket.objects.count() == 7
    t4 = Ticket.objects.get(pk=4)
    assert t4.status == "Closed" and t4.changed_run_id == run.pk and t4.inserted_run_id != run.pk


def test_duplicate_keys_last_wins_and_rejections_are_reported(tmp_path):
    rows = [f.ticket(1, title="first"), f.ticket(2), f.ticket(1, title="second")]
    rows += [f.ticket(i) for i in range(3, 40)]
    rows.append(f.ticket("abc"))  # invalid required id -> rejected
    path = f.write_xlsx(tmp_path / "t.xlsx", "tickets", rows)
    run = import_file(path)
    assert Ticket.objects.get(pk=1).title == "second"
    assert run.rows_superseded == 1 and run.rows_rejected == 1
    assert (
        run.rows_read
        == run.rows_inserted
        + run.rows_updated
        + run.rows_unchanged
        + run.rows_rejected
        + run.rows_superseded
    )
    rejected = ImportIssue.objects.get(run=run, severity="error")
    assert (rejected.row_number, rejected.column, rejected.raw_value) == (
        42,
        "TKT-Ticket ID",
        "abc",
    )
    assert rejected.reason == "not an integer"
    dup = ImportIssue.objects.get(run=run, reason__startswith="duplicate key")
    assert dup.row_number == 2 and dup.reason.endswith("row 4")


def test_reject_rate_gate_leaves_data_unchanged(tmp_path):
    import_file(f.write_xlsx(tmp_path / "a.xlsx", "tickets", [f.ticket(1)]))
    before = snapshot()
    rows = [f.ticket(i, status="Open") for i in range(1, 10)] + [
        f.ticket(i, created_at="never") for i in range(10, 12)
    ]
    with pytest.raises(ImportFailed, match="over the 5% limit"):
        import_file(f.write_xlsx(tmp_path / "b.xlsx", "tickets", rows))
    assert snapshot() == before
    run = ImportRun.objects.order_by("-pk").first()
    assert run.status == "failed" and run.rows_rejected == 2
    assert ImportIssue.objects.filter(run=run, severity="error").count() == 2


def test_a_reject_rate_exactly_at_the_limit_still_loads(tmp_path):
    """The gate fails a run whose rejections *exceed* IMPORT_MAX_REJECT_RATE (SPEC 4.2): 1 of 20
    rows is exactly 5 % and loads."""
    rows = [f.ticket(i) for i in range(1, 20)] + [f.ticket(20, created_at="never")]
    run = import_file(f.write_xlsx(tmp_path / "t.xlsx", "tickets", rows))
    assert (run.status, run.rows_rejected, run.rows_inserted) == ("succeeded", 1, 19)
    assert Ticket.objects.count() == 19


def test_dry_run_counts_without_writing(tmp_path):
    path = f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(i) for i in range(1, 4)])
    run = import_file(path, dry_run=True)
    assert (run.status, run.dry_run, run.rows_inserted) == ("previewed", True, 3)
    assert Ticket.objects.count() == 0


def test_timesheet_window_replace(tmp_path):
    import_file(f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(100)]))
    first = [f.timesheet(i, f"0{i}/07/2025", crm=100 if i == 1 else 0) for i in range(1, 8)]
    first.append(f.timesheet(99, "20/06/2025", crm=555))  # outside later window, orphan ticket
    run1 = import_file(f.write_xlsx(tmp_path / "ts1.xlsx", "timesheets", first))
    assert run1.rows_inserted == 8 and run1.orphans == 1
    assert TimesheetEntry.objects.get(description="work 1").ticket_id == 100
    assert TimesheetEntry.objects.get(description="work 2").ticket_id is None  # crm 0 = admin time

    # Later export covers 02/07-06/07: row 3 missing (deleted), row 4 changed (insert+delete),
    # one new row; rows 1 and 7 are outside the window and stay.
    later = [f.timesheet(i, f"0{i}/07/2025") for i in (2, 5, 6)]
    later.append(f.timesheet(4, "04/07/2025", hours="2.0"))
    later.append(f.timesheet(8, "03/07/2025"))
    run2 = import_file(f.write_xlsx(tmp_path / "ts2.xlsx", "timesheets", later))
    assert (run2.rows_inserted, run2.rows_unchanged, run2.rows_deleted) == (2, 3, 2)
    assert (run2.window_start, run2.window_end) == (dt.date(2025, 7, 2), dt.date(2025, 7, 6))
    descriptions = set(TimesheetEntry.objects.values_list("description", flat=True))
    assert descriptions == {
        "work 1",
        "work 2",
        "work 4",
        "work 5",
        "work 6",
        "work 7",
        "work 8",
        "work 99",
    }
    again = import_file(tmp_path / "ts2.xlsx")
    assert (again.rows_inserted, again.rows_deleted, again.rows_unchanged) == (0, 0, 5)


def test_a_future_typo_does_not_stretch_the_timesheet_window(tmp_path):
    """A later export holds July-August; an older file with one row mistyped a year ahead
    must not become the truth up to that date (it would delete all of August)."""
    newer = [f.timesheet(i, f"2025-08-{i:02d}") for i in range(1, 21)]
    import_file(f.write_csv(tmp_path / "newer.csv", "timesheets", newer))
    typo = dt.date.today().replace(year=dt.date.today().year + 1).isoformat()
    older = [f.timesheet(100 + i, f"2025-07-{i:02d}") for i in range(1, 21)]
    older.append(f.timesheet(200, typo))
    run = import_file(f.write_csv(tmp_path / "older.csv", "timesheets", older))
    assert (run.rows_inserted, run.rows_deleted, run.rows_warned) == (21, 0, 1)
    assert (run.window_start, run.window_end) == (dt.date(2025, 7, 1), dt.date(2025, 7, 20))
    assert TimesheetEntry.objects.count() == 41  # every August entry is still there
    issue = ImportIssue.objects.get(run=run)
    assert "future" in issue.reason and issue.raw_value == typo


def test_a_past_typo_that_would_delete_most_of_the_window_is_refused(tmp_path, settings):
    """A weekly export with one row mistyped a year back would be the truth for that whole
    year: the file is refused, naming the date, and nothing stored changes."""
    stored = [f.timesheet(i, f"2025-{7 + i % 3:02d}-{1 + i % 28:02d}") for i in range(1, 301)]
    import_file(f.write_csv(tmp_path / "history.csv", "timesheets", stored))
    week = [f.timesheet(i, f"2025-09-{1 + i % 28:02d}") for i in range(2, 301, 3)]  # September
    week.append(f.timesheet(999, "2024-09-02"))  # the typo: 2024 for 2025
    path = f.write_csv(tmp_path / "week.csv", "timesheets", week)
    before = sorted(TimesheetEntry.objects.values_list("fingerprint", flat=True))

    with pytest.raises(ImportFailed) as failed:
        import_file(path, dry_run=True)  # the preview says so before anyone confirms
    assert "TIMESHEET_MAX_DELETE_RATE" in str(failed.value)
    with pytest.raises(ImportFailed):
        import_file(path)
    run = ImportRun.objects.latest("pk")
    assert run.status == "failed" and run.rows_inserted == run.rows_deleted == 0
    assert "200 of the 300 stored entries" in run.error_summary
    assert "2024-09-02 (1 rows)" in run.error_summary
    assert sorted(TimesheetEntry.objects.values_list("fingerprint", flat=True)) == before

    # The same week without the typo replaces its own window only; the limit can be lifted.
    week.pop()
    ok = import_file(f.write_csv(tmp_path / "week_ok.csv", "timesheets", week))
    assert ok.status == "succeeded" and ok.rows_deleted == 0
    settings.TIMESHEET_MAX_DELETE_RATE = 1
    lifted = import_file(path)
    assert lifted.status == "succeeded" and lifted.rows_deleted == 200


def test_timesheet_merge_only_setting(tmp_path, settings):
    settings.TIMESHEET_WINDOW_REPLACE = False
    import_file(
        f.write_xlsx(
            tmp_path / "a.xlsx", "timesheets", [f.timesheet(i, "02/07/2025") for i in (1, 2)]
        )
    )
    run = import_file(
        f.write_xlsx(tmp_path / "b.xlsx", "timesheets", [f.timesheet(3, "02/07/2025")])
    )
    assert run.rows_deleted == 0 and TimesheetEntry.objects.count() == 3


def test_csv_with_bom_embedded_newlines_and_bad_field_count(tmp_path):
    rows = [f.comment(i, 1) for i in range(1, 30)]
    rows[0]["text"] = 'line one, with "quotes"\nline two'
    path = f.write_csv(tmp_path / "c.csv", "comments", rows)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("31,1,a,b,c,d,e,f,g,h,i,j,k\n")  # 13 fields for 10 columns
    run = import_file(path)
    assert run.rows_read == 30 and run.rows_rejected == 1 and run.rows_inserted == 29
    assert Comment.objects.get(pk=1).text == 'line one, with "quotes"\nline two'
    issue = ImportIssue.objects.get(run=run, severity="error")
    assert issue.row_number == 31 and "expected 10 fields, found 13" in issue.reason
    assert (issue.natural_key, issue.raw_value) == ("31", "31,1,a,b,c,d,e,f,g,h,i,j,k")
    assert run.orphans == 29  # ticket 1 not loaded


def test_csv_rows_missing_empty_trailing_fields_read_as_empty(tmp_path):
    """Excel's "Save as CSV" leaves out the delimiters of empty cells at the end of a row:
    those rows are the same entries, not rejections (a rejected timesheet row would also
    delete the stored entry it repeats inside the file's window)."""
    rows = [f.timesheet(i, "02/07/2025", ticket_department="Cloud") for i in range(1, 41)]
    for row in rows[::4]:
        row["ticket_department"] = None  # the last column, empty
    first = import_file(f.write_xlsx(tmp_path / "week.xlsx", "timesheets", rows))
    assert (first.rows_inserted, first.rows_rejected) == (40, 0)
    path = tmp_path / "week.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(f.headers("timesheets"))
        for row in rows:
            values = ["" if v is None else v for v in f._ordered("timesheets", row)]
            while values and values[-1] == "":
                values.pop()  # as Excel writes them
            writer.writerow(values)
    again = import_file(path)
    assert (again.rows_read, again.rows_unchanged) == (40, 40)
    assert (again.rows_rejected, again.rows_inserted, again.rows_deleted) == (0, 0, 0)
    assert TimesheetEntry.objects.count() == 40


def test_an_extra_column_named_like_a_field_does_not_take_the_real_columns_place(tmp_path):
    """An unknown "Status" column before "TKT-Status" matches the status field by its name;
    the real header must win, wherever the extra column stands."""
    import openpyxl

    path = tmp_path / "tickets.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Status", "Team", *f.headers("tickets")])
    for n in (1, 2):
        ws.append(["Within SLA", "Desk", *f._ordered("tickets", f.ticket(n))])
    wb.save(path)
    run = import_file(path)
    assert run.rows_inserted == 2
    assert set(Ticket.objects.values_list("status", "team")) == {("Closed", "Cloud - Zelda")}
    reasons = dict(
        ImportIssue.objects.filter(run=run, row_number=None).values_list("column", "reason")
    )
    assert reasons["Status"] == "column ignored: the file has TKT-Status"
    assert reasons["Team"] == "column ignored: the file has TKT-Team"


def test_customer_facing_derivation(tmp_path, settings):
    rows = [
        f.comment(1, 5, comment_type="comments"),
        f.comment(2, 5, comment_type="worknotes"),
        f.comment(3, 5, comment_type="worknotes", visible_to_customer="yes"),
        f.comment(4, 5, comment_type="comments", user_name=" Brian "),
        f.comment(5, 5, comment_type="comments", visible_to_customer="Arial"),
    ]
    import_file(f.write_xlsx(tmp_path / "c.xlsx", "comments", rows))
    facing = dict(Comment.objects.values_list("pk", "is_customer_facing"))
    assert facing == {1: True, 2: False, 3: True, 4: False, 5: True}


def test_unknown_and_missing_optional_columns_are_warnings(tmp_path):
    path = tmp_path / "c.xlsx"
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["CT-COMMENT-ID", "CT-TKT-ID", "CT-DATEAMDTIME", "Surprise", None, None])
    ws.append([1, 2, "2025-07-01 10:00", "x", None, None])
    wb.save(path)
    run = import_file(path)
    reasons = set(
        ImportIssue.objects.filter(run=run, row_number=None).values_list("column", "reason")
    )
    assert ("Surprise", "unknown column ignored") in reasons
    assert ("CT-TYPE", "missing optional column: loaded as NULL") in reasons
    assert run.rows_inserted == 1


def _bad_files(tmp_path):
    good = f.write_xlsx(tmp_path / "good.xlsx", "tickets", [f.ticket(i) for i in range(1, 50)])
    data = good.read_bytes()
    (tmp_path / "truncated.xlsx").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.xlsx").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "empty.csv").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "bomb.xlsx", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"\x00" * (300 * 2**20))
    f.write_csv(tmp_path / "missing.csv", "comments", [f.comment(1, 1)])
    text = (
        (tmp_path / "missing.csv").read_text(encoding="utf-8-sig").replace("CT-TKT-ID", "CT-OTHER")
    )
    (tmp_path / "missing.csv").write_text(text)
    (tmp_path / "notes.txt").write_text("just some words\nnothing tabular here\n")
    return {
        "truncated.xlsx": "corrupt or truncated",
        "random.xlsx": "not a valid XLSX",
        "empty.csv": "the file is empty",
        "bomb.xlsx": "zip bomb",
        "missing.csv": "missing required column(s) for comments: CT-TKT-ID",
        "notes.txt": "matches no entity",
    }


def test_bad_files_get_specific_errors_and_change_nothing(tmp_path, settings):
    settings.IMPORT_MAX_UNCOMPRESSED_MB = 100
    import_file(f.write_xlsx(tmp_path / "seed.xlsx", "tickets", [f.ticket(1)]))
    before = snapshot()
    for name, message in _bad_files(tmp_path).items():
        with pytest.raises(CommandError) as exc:
            call_command("import_file", str(tmp_path / name))
        assert name in str(exc.value) and message in str(exc.value), (name, str(exc.value))
        assert snapshot() == before
        run = ImportRun.objects.order_by("-pk").first()
        assert run.status == "failed" and message in run.error_summary


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot open file"):
        call_command("import_file", str(tmp_path / "nope.xlsx"))


@pytest.mark.django_db(transaction=True)  # pg_dump must see committed runs, not a test transaction
def test_backup_before_an_import_that_can_delete(tmp_path, settings):
    from ops.models import Backup

    settings.BACKUP_BEFORE_DESTRUCTIVE_IMPORT = True
    settings.BACKUP_DIR = tmp_path / "backups"
    import_file(f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(1)]))
    assert not Backup.objects.exists()  # tickets never delete: no backup
    run = import_file(
        f.write_xlsx(tmp_path / "ts.xlsx", "timesheets", [f.timesheet(1, "02/07/2025")])
    )
    backup = Backup.objects.get(reason="pre-import")
    assert backup.status == "succeeded" and f"backup #{backup.pk}" in run.notes


def test_a_file_that_breaks_after_many_batches_changes_nothing(tmp_path, settings):
    """Batches already typed in PostgreSQL by the sender thread are rolled back with the rest."""
    settings.IMPORT_BATCH_ROWS = 20
    import_file(f.write_xlsx(tmp_path / "seed.xlsx", "tickets", [f.ticket(1)]))
    before = snapshot()
    path = f.write_csv(tmp_path / "tickets.csv", "tickets", [f.ticket(i) for i in range(2, 200)])
    path.write_bytes(path.read_bytes() + b"9999,2025-07-03 11:13:00,Closed,\xff\xfe bad\n")
    with pytest.raises(ImportFailed, match="not UTF-8 text: line 200 "):
        import_file(path)
    assert snapshot() == before
    run = ImportRun.objects.order_by("-pk").first()
    assert run.status == "failed" and not ImportIssue.objects.filter(run=run).exists()


def test_a_windows_1252_csv_is_refused_naming_the_line_that_is_not_utf8(tmp_path):
    """Excel's plain "CSV" is Windows-1252: the message must point at the real line, not at a
    row thousands of lines earlier (the text layer decodes ahead of the parser)."""
    rows = [f.ticket(i) for i in range(1, 3001)]
    rows[2499]["title"] = "Café – migration"
    path = f.write_csv(tmp_path / "tickets.csv", "tickets", rows, encoding="cp1252")
    before = snapshot()
    with pytest.raises(ImportFailed) as failure:
        import_file(path)
    assert "line 2501 " in str(failure.value) and "0xe9 ('é' in Windows-1252)" in str(failure.value)
    assert snapshot() == before


@pytest.mark.parametrize("delimiter", ["\t", ","])
def test_a_utf16_csv_loads_like_its_utf8_twin(tmp_path, delimiter):
    """Excel's "Unicode Text" (tab-separated) and "CSV UTF-16" are text with a UTF-16 BOM,
    not binary files: the same rows as the UTF-8 export come out unchanged."""
    rows = [f.ticket(i, title=f"Café {i}") for i in range(1, 6)]
    import_file(f.write_csv(tmp_path / "tickets.csv", "tickets", rows))
    path = tmp_path / "tickets.txt"
    with path.open("w", encoding="utf-16", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(f.headers("tickets"))
        for row in rows:
            writer.writerow(["" if v is None else v for v in f._ordered("tickets", row)])
    run = import_file(path)
    assert (run.source_kind, run.rows_read, run.rows_unchanged) == ("csv", 5, 5)
    assert Ticket.objects.get(pk=3).title == "Café 3"


def test_rows_the_fast_path_declines_are_typed_by_the_parsers(tmp_path):
    """Odd shapes (AM/PM with seconds and no space, a '+' sign, an error cell) go to Python."""
    rows = [f.ticket(i) for i in range(1, 6)]
    rows[0].update(created_at="3/7/2025 1:05PM")
    rows[1].update(ticket_id="+2")
    rows[2].update(sla_met="#N/A")
    run = import_file(f.write_csv(tmp_path / "tickets.csv", "tickets", rows))
    assert (run.rows_inserted, run.rows_warned, run.rows_rejected) == (5, 1, 0)
    assert Ticket.objects.get(pk=1).created_at == dt.datetime(2025, 7, 3, 13, 5, tzinfo=dt.UTC)
    assert Ticket.objects.filter(pk=2).exists()
    assert Ticket.objects.get(pk=3).sla_met is None
    issue = ImportIssue.objects.get(run=run)
    assert (issue.row_number, issue.column, issue.raw_value) == (4, "TKT-SLA Met", "#N/A")


def _indexes_and_constraints(table):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY 1", [table]
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass ORDER BY 1",
            [table],
        )
        return indexes, cursor.fetchall()


def test_first_load_into_an_empty_table_builds_indexes_after(tmp_path, monkeypatch):
    """The bulk path drops and rebuilds secondary indexes and unique constraints as they were;
    the next, overlapping import upserts against them as usual."""
    from tickets import pipeline

    monkeypatch.setattr(pipeline, "BULK_LOAD_MIN_ROWS", 2)
    table = TimesheetEntry._meta.db_table
    before = _indexes_and_constraints(table)
    rows = [f.timesheet(i, f"0{1 + i % 5}/07/2025", crm=i % 3) for i in range(1, 11)]
    first = import_file(f.write_xlsx(tmp_path / "ts1.xlsx", "timesheets", rows))
    assert (first.rows_inserted, TimesheetEntry.objects.count()) == (10, 10)
    assert _indexes_and_constraints(table) == before
    assert TimesheetEntry.objects.filter(ticket_id__isnull=False).count() == 7  # crm 0 = admin

    again = import_file(
        f.write_xlsx(tmp_path / "ts2.xlsx", "timesheets", [*rows, f.timesheet(11, "03/07/2025")])
    )
    assert (again.rows_inserted, again.rows_unchanged, again.rows_deleted) == (1, 10, 0)
    assert TimesheetEntry.objects.count() == 11


def test_spreadsheet_numbers_and_booleans_in_text_columns_read_as_shown(tmp_path):
    """A number cell in a text column is the text Excel shows (12, not 12.0); TRUE is 'true'."""
    rows = [f.ticket(i) for i in range(1, 4)]
    rows[0].update(job_ref=12.0, title=True, sla_met=1.0)
    rows[1].update(job_ref=12.5, title=False, sla_met=0.0)
    run = import_file(f.write_xlsx(tmp_path / "tickets.xlsx", "tickets", rows))
    assert (run.rows_inserted, run.rows_warned) == (3, 0)
    first, second = Ticket.objects.get(pk=1), Ticket.objects.get(pk=2)
    assert (first.job_ref, first.title, first.sla_met) == ("12", "true", True)
    assert (second.job_ref, second.title, second.sla_met) == ("12.5", "false", False)


def test_csv_nul_bytes_are_dropped(tmp_path):
    """Past the first 4 KB (where a NUL means a binary file), a NUL byte is dropped."""
    rows = [f.ticket(i) for i in range(1, 100)] + [f.ticket(100, title="bad\x00title")]
    run = import_file(f.write_csv(tmp_path / "tickets.csv", "tickets", rows))
    assert run.rows_inserted == 100
    assert Ticket.objects.get(pk=100).title == "badtitle"


@pytest.mark.parametrize("connections", [1, 2, 3])
def test_typing_connections_give_the_same_result(tmp_path, settings, connections):
    """Batches dealt to several typing connections: same rows, values, flags and issues."""
    settings.IMPORT_BATCH_ROWS = 3
    settings.IMPORT_TYPING_CONNECTIONS = connections
    rows = [f.ticket(i) for i in range(1, 21)]
    rows[6].update(created_at="3/7/2025 1:05PM")  # file row 8: Python reads it
    rows[9].update(sla_met="#N/A")  # file row 11: a warning
    rows[13].update(created_at="")  # file row 15: rejected, required
    rows[17].update(ticket_id="5", title="later")  # file row 19 supersedes row 6
    run = import_file(f.write_csv(tmp_path / "tickets.csv", "tickets", rows))
    assert (run.rows_read, run.rows_inserted, run.rows_rejected) == (20, 18, 1)
    assert (run.rows_warned, run.rows_superseded) == (1, 1)
    assert Ticket.objects.get(pk=7).created_at == dt.datetime(2025, 7, 3, 13, 5, tzinfo=dt.UTC)
    assert Ticket.objects.get(pk=5).title == "later"
    issues = ImportIssue.objects.filter(run=run).order_by("row_number")
    assert [(i.row_number, i.severity) for i in issues] == [
        (6, "warning"),
        (11, "warning"),
        (15, "error"),
    ]


def test_a_large_import_into_a_loaded_table_does_not_lock_readers_out(tmp_path, monkeypatch):
    """The empty-table bulk path must not take its exclusive lock on a table that has rows."""
    from django.db import connection

    from tickets import pipeline

    monkeypatch.setattr(pipeline, "BULK_LOAD_MIN_ROWS", 2)
    import_file(f.write_xlsx(tmp_path / "seed.xlsx", "tickets", [f.ticket(1)]))
    run = import_file(
        f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(i) for i in (1, 2, 3)])
    )
    assert (run.rows_inserted, run.rows_unchanged) == (2, 1)
    with connection.cursor() as cursor:  # the test's transaction still holds the run's locks
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'tickets_ticket'::regclass "
            "AND mode = 'AccessExclusiveLock' AND pid = pg_backend_pid()"
        )
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_a_first_bulk_load_waits_for_a_fact_refresh_before_locking_its_table(tmp_path, monkeypatch):
    """A refresh holds the facts' lock while it reads the warehouse tables; the bulk path locks
    its table exclusively. Taking the facts' lock first is what keeps the two from deadlocking:
    while a refresh runs, the load waits *without* locking readers (or the refresh) out."""
    from tickets import pipeline

    monkeypatch.setattr(pipeline, "BULK_LOAD_MIN_ROWS", 2)
    path = f.write_csv(tmp_path / "c.csv", "comments", [f.comment(i, 1) for i in range(1, 30)])
    with facts_locked_while_importing(path) as (refresh, outcome):
        with refresh.cursor() as cursor:  # what the refresh does next: read the table
            cursor.execute("SET LOCAL lock_timeout = '2s'")
            cursor.execute("SELECT count(*) FROM tickets_comment")
            assert cursor.fetchone() == (0,)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["run"].rows_inserted == 29


def test_the_same_file_twice_at_once_is_recognised_under_the_lock(tmp_path):
    """Two uploads of one file: the second looked before the first committed, and looks again
    once it holds the entity's lock."""
    from tickets.columns import ENTITIES
    from tickets.pipeline import load_table, sha256_of
    from tickets.readers import open_tables

    path = f.write_csv(tmp_path / "t.csv", "tickets", [f.ticket(i) for i in range(1, 5)])
    second = ImportRun(file_name=path.name, file_sha256=sha256_of(path), source_kind="csv")
    first = import_file(path)  # commits while the second waits for the lock
    run = load_table(second, next(open_tables(path)), ENTITIES["tickets"])
    assert run.same_file_as_id == first.pk and run.rows_unchanged == 4


def test_an_unclosed_quote_refuses_the_file_instead_of_losing_the_rows_after_it(tmp_path):
    rows = [f.comment(i, 1) for i in range(1, 60)]
    path = f.write_csv(tmp_path / "c.csv", "comments", rows)
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    lines[40] = lines[40].replace("<p>Comment", '"<p>Comment', 1)  # opened, never closed
    path.write_text("".join(lines), encoding="utf-8")
    before = snapshot()
    with pytest.raises(
        ImportFailed, match=r"row 41 \(line 41\): a quoted field opened there runs to line 60"
    ):
        import_file(path)
    assert snapshot() == before
    assert ImportRun.objects.get().status == "failed"


def test_error_cells_are_found_in_any_attribute_order_and_sheet_name(tmp_path):
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Tickets & more"
    rows = [f.ticket(i) for i in range(1, 30)]
    rows[3]["title"] = "#N/A"
    sheet.append(f.headers("tickets"))
    for row in rows:
        sheet.append(f._ordered("tickets", row))
    plain = tmp_path / "plain.xlsx"
    workbook.save(plain)
    reordered = tmp_path / "reordered.xlsx"  # <c t="e" r="..">, as some writers emit
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(reordered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                data = re.sub(rb'<c r="([A-Z]+[0-9]+)" t="e"', rb'<c t="e" r="\1"', data)
                assert b'<c t="e" r=' in data
            target.writestr(item, data)
    run = import_file(reordered)
    issue = ImportIssue.objects.get(run=run)
    assert (issue.row_number, issue.column, issue.raw_value) == (5, "TKT-Title", "#N/A")


def test_a_quoted_multi_line_cell_in_a_row_with_an_extra_field_rejects_only_that_row(tmp_path):
    rows = [f.ticket(i) for i in range(1, 40)]
    rows[5]["title"] = "first line\nsecond line"
    path = f.write_csv(tmp_path / "t.csv", "tickets", rows)
    text = path.read_text(encoding="utf-8-sig").replace('second line"', 'second line",stray', 1)
    path.write_text(text, encoding="utf-8")
    run = import_file(path)
    assert (run.rows_inserted, run.rows_rejected) == (38, 1)
    assert ImportIssue.objects.get(run=run, severity="error").row_number == 7  # that row only


@pytest.mark.django_db(transaction=True)
def test_an_import_takes_the_facts_lock_before_reading_the_tickets(tmp_path):
    """The orphan count reads tickets_ticket; a first bulk load of tickets holds the facts'
    lock while it locks that table. Reading it before asking for the facts' lock deadlocked."""
    import_file(f.write_csv(tmp_path / "t.csv", "tickets", [f.ticket(1)]))
    path = f.write_csv(tmp_path / "c.csv", "comments", [f.comment(i, 1) for i in range(1, 5)])
    with facts_locked_while_importing(path) as (holder, outcome):
        with holder.cursor() as cursor:  # waiting without holding any lock on the tickets
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'tickets_ticket'::regclass "
                "AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone() == (0,)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["run"].rows_inserted == 4


def test_count_fields_are_exactly_the_runs_row_counters():
    """ImportRun.COUNT_FIELDS drives what is saved, summed and reported: a counter field missing
    from it would silently stay 0 in every report."""
    counters = {f.name for f in ImportRun._meta.get_fields() if f.name.startswith("rows_")}
    assert set(ImportRun.COUNT_FIELDS) == counters
    assert len(ImportRun.COUNT_FIELDS) == len(counters)


def test_a_cut_off_csv_does_not_pad_its_last_row_with_empty_fields(tmp_path):
    """Short rows read as empty trailing fields (Excel leaves out their delimiters), but not
    the last row of a file that ends inside it: an interrupted upload of a ticket export
    silently emptied the team, category, closure date and SLA of its last stored ticket."""
    rows = [f.ticket(i, closed_at="2025-07-05 10:00:00") for i in range(1, 31)]
    full = f.write_csv(tmp_path / "tickets.csv", "tickets", rows, bom=False)
    assert import_file(full).rows_inserted == 30
    data = full.read_bytes()
    cut = tmp_path / "tickets-cut.csv"
    cut.write_bytes(data[: data.rfind(b"Closed") + len(b"Closed")])  # ends in the last status

    run = import_file(cut)
    assert (run.rows_read, run.rows_rejected) == (30, 1)
    issue = ImportIssue.objects.get(run=run)
    assert issue.row_number == 31 and "the file ends inside this row" in issue.reason
    last = Ticket.objects.get(ticket_id=30)
    assert (last.team, last.category, last.sla_met) == ("Cloud - Zelda", "Support Tickets", True)
    assert last.closed_at is not None

    whole = tmp_path / "tickets-whole.csv"  # the same short row, but a complete line: padded
    whole.write_bytes(cut.read_bytes() + b"\r\n")
    assert import_file(whole).rows_rejected == 0


def test_a_csv_cut_off_inside_a_quoted_last_field_is_not_loaded_as_cut(tmp_path):
    """Python's csv closes a quote left open at the end of the file: a full-width last row cut
    in the middle of its text would load the cut text over the stored one."""
    rows = [f.ticket(i, title=f"Full title of ticket {i}") for i in range(1, 41)]
    rows[-1]["title"] = "Disk full, again"  # quoted by the writer (it holds the delimiter)
    headers = f.headers("tickets")
    title_last = tmp_path / "ordered.csv"
    with title_last.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        order = [h for h in headers if h != "TKT-Title"] + ["TKT-Title"]
        writer.writerow(order)
        for row in rows:
            values = dict(zip(headers, f._ordered("tickets", row), strict=True))
            writer.writerow(["" if values[h] is None else values[h] for h in order])
    assert import_file(title_last).rows_inserted == 40
    data = title_last.read_bytes()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(data[: data.rfind(b"Disk full") + len(b"Disk fu")])

    run = import_file(cut)
    assert (run.rows_read, run.rows_rejected, run.rows_unchanged) == (40, 1, 39)
    assert "ends inside a quoted field" in ImportIssue.objects.get(run=run).reason
    assert Ticket.objects.get(ticket_id=40).title == "Disk full, again"
    closed = tmp_path / "closed.csv"  # a complete last field without a final newline loads
    closed.write_bytes(data.rstrip(b"\r\n"))
    assert import_file(closed).rows_rejected == 0


def test_a_utf16_file_cut_after_a_character_ending_in_a_newline_byte_is_still_cut(tmp_path):
    """U+0D00 is 00 0D in UTF-16-LE: its last byte pair is not a line end in that byte order,
    so the short last row is a cut-off one, not padded."""
    from tickets.readers.base import BadRow
    from tickets.readers.csv import read_csv

    path = tmp_path / "t.csv"
    text = "\ufeff" + ",".join(f.headers("tickets")[:3]) + "\r\n1,2,3\r\n4,Ti\u0d00"
    path.write_bytes(text.encode("utf-16-le"))
    last = list(read_csv(path).rows)[-1][1]
    assert isinstance(last, BadRow) and "cut off" in last.reason
    path.write_bytes((text + "\r\n").encode("utf-16-le"))  # complete: padded as Excel's rows
    assert list(read_csv(path).rows)[-1][1] == ["4", "Ti\u0d00", ""]


@pytest.mark.parametrize("line_end", [b"\n", b"\r", b"\r\n"])
def test_a_csv_cut_at_a_line_end_inside_a_quoted_last_field_is_still_cut(tmp_path, line_end):
    """A copy cut right after a line break of a multi-line text ends in a line end, yet inside
    the quote: Python's csv closed it and the cut text (short rows padded) loaded."""
    from tickets.readers.base import BadRow
    from tickets.readers.csv import read_csv

    path = tmp_path / "t.csv"
    for last in (b'2,b,"first line', b'2,"first line'):
        path.write_bytes(b"id,title,team\r\n1,a,T\r\n" + last + line_end)
        rows = list(read_csv(path).rows)
        assert rows[0] == (2, ["1", "a", "T"])
        assert isinstance(rows[-1][1], BadRow) and "cut off" in rows[-1][1].reason
    path.write_bytes(b'id,title,team\r\n1,a,T\r\n2,b,"first line' + line_end + b'"\r\n')
    assert list(read_csv(path).rows)[-1] == (3, ["2", "b", "first line" + line_end.decode()])


def test_a_stray_quote_in_the_last_row_is_not_taken_for_a_cut_off_file(tmp_path):
    """The strict re-read of the last row also refuses a stray quote, which the lenient reader
    loads on any other row: only the end of the file inside a quote means it was cut."""
    from tickets.readers.csv import read_csv

    path = tmp_path / "t.csv"
    path.write_bytes(b'id,title\r\n1,"5" screen\r\n2,"5" screen')
    assert [r for _, r in read_csv(path).rows] == [["1", "5 screen"], ["2", "5 screen"]]


def test_rows_typed_in_python_get_the_same_derived_columns_as_rows_typed_in_sql(tmp_path, settings):
    """The lanes compute a timesheet's fingerprint and ticket id while typing; a row the fast
    path leaves to Python ('+7') gets them afterwards. The same entry must come out the same
    either way, in any lane: re-importing it written plainly changes nothing."""
    settings.IMPORT_BATCH_ROWS = 7  # many batches, dealt to both lanes
    rows = [f.timesheet(n, "2024-05-02", crm=n) for n in range(1, 40)]
    odd = [dict(r, crm_id=f"+{r['crm_id']}") if n % 5 == 0 else r for n, r in enumerate(rows)]
    first = import_file(f.write_csv(tmp_path / "odd.csv", "timesheets", odd))
    assert first.rows_inserted == 39
    stored = dict(TimesheetEntry.objects.values_list("description", "ticket_id"))
    assert stored == {f"work {n}": n for n in range(1, 40)}  # '+5' is ticket 5 too
    again = import_file(f.write_csv(tmp_path / "plain.csv", "timesheets", rows))
    assert (again.rows_inserted, again.rows_unchanged, again.rows_deleted) == (0, 39, 0)
