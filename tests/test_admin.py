"""The admin import flow through the Django test client; the task function runs in-process.

Queueing is checked by capturing the on_commit callback (the real broker path is covered with a
real worker in test_tasks_worker.py).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from django.urls import reverse

from tests import files as f
from tests.test_admin_helpers import (
    IMPORTER_PERMS,
    VIEWER_PERMS,
    make_user,
    tickets_csv,
    upload,
)
from tickets import imports
from tickets.models import Comment, ImportIssue, ImportRun, TeamMember, Ticket, TimesheetEntry

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def archive(tmp_path, settings):
    settings.IMPORT_ARCHIVE_DIR = tmp_path / "archive"
    return settings.IMPORT_ARCHIVE_DIR


@pytest.fixture
def importer(client):
    user = make_user("imogen", *IMPORTER_PERMS)
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client):
    client.force_login(make_user("victor", *VIEWER_PERMS))
    return client


def snapshot():
    return (
        list(Ticket.objects.order_by("pk").values_list("pk", "status", "title")),
        Comment.objects.count(),
        TimesheetEntry.objects.count(),
    )


def upload_and_run(client, path, django_capture_on_commit_callbacks, entity=""):
    """Upload through the admin, check exactly one enqueue on commit, run the task's function."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(client, path, entity)
    assert response.status_code == 302, response.content[:2000]
    assert len(callbacks) == 1
    run = ImportRun.objects.latest("pk")
    assert run.status == "queued" and run.dry_run and Path(run.archived_path).exists()
    imports.execute_run(run.pk)
    run.refresh_from_db()
    return run, response


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["ticket", "comment", "timesheetentry"])
def test_import_button_only_for_staff_with_import_permission(client, model):
    url = reverse(f"admin:tickets_{model}_changelist")
    client.force_login(make_user("imogen", *IMPORTER_PERMS))
    page = client.get(url)
    assert page.status_code == 200 and b'id="import-button"' in page.content
    client.force_login(make_user("victor", *VIEWER_PERMS))
    page = client.get(url)
    assert page.status_code == 200 and b'id="import-button"' not in page.content


def test_staff_without_import_permission_gets_403(viewer, tmp_path):
    path = tickets_csv(tmp_path / "t.csv", range(1, 3))
    assert viewer.get(reverse("admin:tickets_importrun_upload")).status_code == 403
    assert upload(viewer, path).status_code == 403
    assert ImportRun.objects.count() == 0
    page = viewer.get(reverse("admin:tickets_importrun_changelist"))
    assert page.status_code == 200 and b"upload-button" not in page.content
    run = ImportRun.objects.create(source_kind="csv", status="previewed", dry_run=True)
    for name in ("confirm", "cancel", "retry"):
        url = reverse(f"admin:tickets_importrun_{name}", args=[run.pk])
        assert viewer.post(url).status_code == 403
    assert ImportRun.objects.get(pk=run.pk).status == "previewed"


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("admin:tickets_importrun_upload"))
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- the happy path ----------------------------------------------------------------------------


def test_upload_preview_confirm_and_same_file(
    importer, tmp_path, django_capture_on_commit_callbacks
):
    tickets_csv(tmp_path / "seed.csv", range(1, 6), title="Old")
    from tickets.pipeline import import_file

    import_file(tmp_path / "seed.csv")
    path = tickets_csv(tmp_path / "week.csv", range(3, 11), title="New")
    before = snapshot()

    preview, response = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    assert preview.status == "previewed" and snapshot() == before  # a dry run writes nothing
    assert (preview.rows_inserted, preview.rows_updated, preview.rows_unchanged) == (5, 3, 0)
    assert preview.archived_path.endswith(f"{preview.file_sha256}.csv")
    page = importer.get(response["Location"])
    html = page.content.decode()
    assert 'id="confirm-button"' in html and 'id="cancel-button"' in html
    assert 'id="count-inserted">5<' in html and 'id="count-updated">3<' in html
    assert "2025-07-03" in html  # data window
    progress = importer.get(reverse("admin:tickets_importrun_progress", args=[preview.pk])).json()
    assert progress["finished"] and progress["status"] == "previewed" and progress["done"] == 8

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = importer.post(reverse("admin:tickets_importrun_confirm", args=[preview.pk]))
    assert len(callbacks) == 1
    real = ImportRun.objects.latest("pk")
    assert response["Location"] == reverse("admin:tickets_importrun_run", args=[real.pk])
    assert (real.status, real.dry_run, real.archived_path) == (
        "queued",
        False,
        preview.archived_path,
    )
    assert imports.execute_run(real.pk) == "succeeded"
    assert Ticket.objects.count() == 10 and Ticket.objects.get(pk=4).title == "New 4"
    html = importer.get(response["Location"]).content.decode()
    assert "Import succeeded" in html and 'id="confirm-button"' not in html

    # A second confirm of the same preview queues nothing.
    importer.post(reverse("admin:tickets_importrun_confirm", args=[preview.pk]))
    assert ImportRun.objects.latest("pk").pk == real.pk

    # The same file again: recognised by sha256, every row unchanged.
    again, response = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    assert again.same_file_as_id == real.pk and again.rows_unchanged == 8
    assert 'id="same-file"' in importer.get(response["Location"]).content.decode()


def test_cancel_discards_the_preview(importer, tmp_path, django_capture_on_commit_callbacks):
    path = tickets_csv(tmp_path / "t.csv", range(1, 4))
    preview, _ = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    importer.post(reverse("admin:tickets_importrun_cancel", args=[preview.pk]))
    preview.refresh_from_db()
    assert preview.status == "cancelled"
    importer.post(reverse("admin:tickets_importrun_confirm", args=[preview.pk]))
    assert ImportRun.objects.count() == 1 and Ticket.objects.count() == 0


def test_legacy_sqlite_upload_previews_every_table(
    importer, tmp_path, django_capture_on_commit_callbacks
):
    path = f.write_legacy(
        tmp_path / "legacy.sqlite3",
        {
            "tickets": [f.ticket(i) for i in range(1, 11)],
            "comments": [f.comment(i, 1 + i % 10) for i in range(1, 21)],
        },
    )
    parent, response = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    assert parent.status == "previewed" and parent.source_kind == "sqlite"
    assert parent.rows_inserted == 30 and Ticket.objects.count() == 0
    children = imports.child_runs(parent)
    assert [c.entity for c in children] == ["tickets", "comments"]
    assert all(c.status == "previewed" for c in children)
    assert "Legacy tables" in importer.get(response["Location"]).content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        importer.post(reverse("admin:tickets_importrun_confirm", args=[parent.pk]))
    real = ImportRun.objects.filter(source_kind="sqlite", entity="").latest("pk")
    assert imports.execute_run(real.pk) == "succeeded"
    assert Ticket.objects.count() == 10 and Comment.objects.count() == 20


# --- size limit and bad files ------------------------------------------------------------------


def test_oversized_upload_is_refused_with_a_clear_message(importer, tmp_path, settings, archive):
    settings.IMPORT_MAX_UPLOAD_MB = 1
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * (1024 * 1024 + 10))
    response = upload(importer, path)
    assert response.status_code == 413
    assert "over the 1 MB upload limit (IMPORT_MAX_UPLOAD_MB)" in response.content.decode()
    assert ImportRun.objects.count() == 0
    assert not any(Path(archive).glob("*")) if Path(archive).exists() else True


def _bad_uploads(tmp_path: Path) -> dict[str, str]:
    good = f.write_xlsx(tmp_path / "good.xlsx", "tickets", [f.ticket(i) for i in range(1, 50)])
    data = good.read_bytes()
    (tmp_path / "truncated.xlsx").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.xlsx").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "empty.csv").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "bomb.xlsx", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"\x00" * (300 * 2**20))
    missing = f.write_csv(tmp_path / "missing.csv", "comments", [f.comment(1, 1)])
    missing.write_text(missing.read_text(encoding="utf-8-sig").replace("CT-TKT-ID", "CT-OTHER"))
    fields = f.write_csv(tmp_path / "fields.csv", "comments", [f.comment(1, 1)])
    with fields.open("a", encoding="utf-8") as fh:
        for n in range(2, 12):
            fh.write(f"{n},1,too,few\n")
    (tmp_path / "fake.sqlite").write_text("SQLite? no, just text pretending to be a database\n")
    return {
        "truncated.xlsx": "corrupt or truncated",
        "random.xlsx": "not a valid XLSX",
        "empty.csv": "the file is empty",
        "bomb.xlsx": "zip bomb",
        "missing.csv": "missing required column(s) for comments: CT-TKT-ID",
        "fields.csv": "10 of 11 rows rejected",
        "fake.sqlite": "not a SQLite database",
    }


def test_bad_files_through_the_admin_fail_with_a_specific_message(
    importer, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_MAX_UNCOMPRESSED_MB = 100
    from tickets.pipeline import import_file

    import_file(tickets_csv(tmp_path / "seed.csv", range(1, 4)))
    before = snapshot()
    for name, message in _bad_uploads(tmp_path).items():
        run, response = upload_and_run(
            importer, tmp_path / name, django_capture_on_commit_callbacks
        )
        assert run.status == "failed", (name, run.status)
        assert message in run.error_summary, (name, run.error_summary)
        assert snapshot() == before, name
        html = importer.get(response["Location"]).content.decode()
        assert 'id="error-summary"' in html and "Import failed" in html, name
        assert "succeeded" not in html.split('id="error-summary"')[1][:300], name
        assert 'id="retry-button"' in html


# --- report ------------------------------------------------------------------------------------


def test_report_downloads_every_issue_as_csv_and_xlsx(
    importer, tmp_path, django_capture_on_commit_callbacks
):
    rows = [f.ticket(i) for i in range(1, 60)]
    rows[3]["sla_met"] = "=HYPERLINK(1)"  # warning, with a formula-looking raw value
    rows[4]["created_at"] = "not a date"  # rejected
    rows.append(f.ticket(1))  # duplicate key -> superseded warning
    path = f.write_csv(tmp_path / "t.csv", "tickets", rows)
    run, _ = upload_and_run(importer, path, django_capture_on_commit_callbacks)
    expected = ImportIssue.objects.filter(run=run).count()
    assert expected >= 3

    response = importer.get(reverse("admin:tickets_importrun_report", args=[run.pk, "csv"]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:3] == ["run_id", "entity", "row_number"] and len(table) == expected + 1
    assert any(cell == "'=HYPERLINK(1)" for line in table for cell in line)
    assert not any(cell.startswith("=") for line in table for cell in line)

    response = importer.get(reverse("admin:tickets_importrun_report", args=[run.pk, "xlsx"]))
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    assert sheet.max_row == expected + 1

    page = importer.get(
        reverse("admin:tickets_importissue_changelist") + f"?run__id__exact={run.pk}&severity=error"
    )
    assert page.status_code == 200 and "not a date" in page.content.decode()


# --- warehouse admin and import-export ---------------------------------------------------------


@pytest.mark.parametrize(
    "model,query", [("ticket", "q=5"), ("ticket", "q=abc"), ("comment", ""), ("timesheetentry", "")]
)
def test_warehouse_changelists_use_a_fixed_number_of_queries(
    client, tmp_path, model, query, django_assert_max_num_queries
):
    from tickets.pipeline import import_file

    import_file(f.write_csv(tmp_path / "t.csv", "tickets", [f.ticket(i) for i in range(1, 40)]))
    import_file(
        f.write_csv(tmp_path / "c.csv", "comments", [f.comment(i, i) for i in range(1, 40)])
    )
    days = [f"2025-07-{1 + i % 20:02d}" for i in range(40)]
    import_file(
        f.write_csv(
            tmp_path / "s.csv", "timesheets", [f.timesheet(i, d) for i, d in enumerate(days)]
        )
    )
    client.force_login(make_user("boss", superuser=True))
    url = reverse(f"admin:tickets_{model}_changelist") + f"?{query}"
    with django_assert_max_num_queries(14):
        page = client.get(url)
    assert page.status_code == 200


FORMULA_TITLES = ["=cmd|' /C calc'!A0", "+1+2", "@SUM(1)", "-2+3"]


def export_table(response, fmt: str) -> list[list]:
    """The rows of an export download (streamed: never built whole in the web process)."""
    assert response.status_code == 200, response.content[:500]
    assert response.streaming, "exports must stream, not build the file in memory"
    body = b"".join(response.streaming_content)
    if fmt == "csv":
        return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    return [[c if c is not None else "" for c in r] for r in sheet.iter_rows(values_only=True)]


def export_form_data(client, url: str, fmt: str) -> dict:
    form = client.get(url).context["form"]
    choice = next(v for v, label in form.fields["format"].choices if label.lower() == fmt)
    data = {"format": choice, "resource": "0"}
    data.update({name: "on" for name in form.fields if name.startswith("ticketsexportresource_")})
    return data


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_action_neutralises_every_formula_start(client, tmp_path, fmt):
    from tickets.pipeline import import_file

    rows = [f.ticket(i + 1, title=t) for i, t in enumerate(FORMULA_TITLES)]
    import_file(f.write_csv(tmp_path / "t.csv", "tickets", [*rows, f.ticket(99, title="-")]))
    client.force_login(make_user("boss", superuser=True))
    url = reverse("admin:tickets_ticket_export")
    data = export_form_data(client, url, fmt)
    table = export_table(client.post(url, data), fmt)
    column = table[0].index("TKT-Title")
    titles = {row[column] for row in table[1:]}
    # Each kept whole behind the text prefix; nothing a spreadsheet would evaluate.
    assert titles == {"'" + t for t in FORMULA_TITLES} | {"'-"}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_of_a_filtered_changelist_streams_its_rows(client, tmp_path, fmt):
    """The Export button exports what the change list shows, row by row (109k tickets took
    60 s and 580 MB as CSV, 150 s and 2.7 GB as XLSX when built whole in memory); a control
    character an XLSX cannot hold is shown as \\xNN rather than failing the export."""
    from tickets.pipeline import import_file

    rows = [f.ticket(i, team="Cloud - Zelda" if i % 2 else "Cloud - Mario") for i in range(1, 31)]
    import_file(f.write_csv(tmp_path / "t.csv", "tickets", rows))
    Ticket.objects.filter(pk=1).update(title="bell\x07here")
    client.force_login(make_user("boss", superuser=True))
    url = reverse("admin:tickets_ticket_export") + "?team__exact=Cloud+-+Zelda"
    table = export_table(client.post(url, export_form_data(client, url, fmt)), fmt)
    ids = table[0].index("TKT-Ticket ID")
    assert sorted(int(r[ids]) for r in table[1:]) == list(range(1, 31, 2))
    title = table[0].index("TKT-Title")
    expected = "bell\x07here" if fmt == "csv" else "bell\\x07here"
    assert next(r[title] for r in table[1:] if int(r[ids]) == 1) == expected


def test_an_xlsx_export_past_the_sheet_size_is_refused_naming_csv(client, tmp_path, monkeypatch):
    """1.08M comments or 1.5M timesheet rows do not fit in one worksheet (Excel opens the file
    truncated)."""
    from tickets.admin import TicketAdmin
    from tickets.pipeline import import_file

    import_file(f.write_csv(tmp_path / "t.csv", "tickets", [f.ticket(i) for i in range(1, 7)]))
    monkeypatch.setattr(TicketAdmin, "XLSX_MAX_ROWS", 5)
    client.force_login(make_user("boss", superuser=True))
    url = reverse("admin:tickets_ticket_export")
    page = client.post(url, export_form_data(client, url, "xlsx"))
    assert page.status_code == 200 and not page.streaming
    assert b"6 rows do not fit in one Excel sheet (5 at most): choose CSV" in page.content
    monkeypatch.setattr(TicketAdmin, "XLSX_MAX_ROWS", 6)
    assert len(export_table(client.post(url, export_form_data(client, url, "xlsx")), "xlsx")) == 7


def test_export_all_selected_goes_to_the_export_page_of_the_filtered_list(client, tmp_path):
    """ "Select all N" + Export listed every id as a hidden field (109k tickets: a 9 MB page
    after 23 s that Django refused on submit, over DATA_UPLOAD_MAX_NUMBER_FIELDS)."""
    from tickets.pipeline import import_file

    rows = [f.ticket(i, team="Cloud - Zelda" if i % 2 else "Cloud - Mario") for i in range(1, 31)]
    import_file(f.write_csv(tmp_path / "t.csv", "tickets", rows))
    client.force_login(make_user("boss", superuser=True))
    changelist = reverse("admin:tickets_ticket_changelist") + "?team__exact=Cloud+-+Zelda"
    response = client.post(
        changelist,
        {
            "action": "export_admin_action",
            "select_across": "1",
            "index": "0",
            "_selected_action": ["1"],
        },
    )
    assert response.status_code == 302
    export_url = response["Location"]
    assert export_url == reverse("admin:tickets_ticket_export") + "?team__exact=Cloud+-+Zelda"
    table = export_table(
        client.post(export_url, export_form_data(client, export_url, "csv")), "csv"
    )
    assert sorted(int(r[0]) for r in table[1:]) == list(range(1, 31, 2))


def test_export_of_selected_rows_does_not_load_every_id_of_the_table(client, tmp_path):
    """import-export validated a selection against every id of the table (50 timesheet rows of
    1.5M: 12 s and 360 MB)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tickets.pipeline import import_file

    import_file(f.write_csv(tmp_path / "t.csv", "tickets", [f.ticket(i) for i in range(1, 31)]))
    client.force_login(make_user("boss", superuser=True))
    url = reverse("admin:tickets_ticket_export")
    data = {**export_form_data(client, url, "csv"), "export_items": ["3", "7"]}
    with CaptureQueriesContext(connection) as queries:
        table = export_table(client.post(url, data), "csv")
    assert sorted(int(r[0]) for r in table[1:]) == [3, 7]
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "tickets_ticket"' in q["sql"]]
    assert reads and all("WHERE" in sql for sql in reads), reads


def test_roster_import_via_import_export_requires_permission(client, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("Name,Email,username,Team\nAnn Agent,ann@example.com,aagent,Cloud\n")
    url = reverse("admin:tickets_teammember_import")
    client.force_login(make_user("victor", "tickets.view_teammember"))
    assert client.get(url).status_code == 403
    client.force_login(make_user("boss", superuser=True))
    with roster.open("rb") as fh:
        response = client.post(
            url, {"import_file": fh, "format": "0", "resource": "0", "encoding": "utf-8"}
        )
    assert response.status_code == 200, response.content[:500]
    confirm = response.context["confirm_form"]
    response = client.post(
        reverse("admin:tickets_teammember_process_import"), {**confirm.initial, "resource": "0"}
    )
    assert response.status_code == 302
    assert TeamMember.objects.get(username="aagent").email == "ann@example.com"


# --- searching the big tables ----------------------------------------------------------------


@pytest.fixture
def searchable(client, tmp_path):
    from tickets.pipeline import import_file

    import_file(f.write_csv(tmp_path / "t.csv", "tickets", [f.ticket(i) for i in range(1, 8)]))
    comments = [f.comment(100 + i, 1 + i % 7) for i in range(70)]
    import_file(f.write_csv(tmp_path / "c.csv", "comments", comments))
    rows = [
        f.timesheet(i, f"2025-07-{1 + i % 20:02d}", crm=1 + i % 7, username=f"agent{i % 3}")
        for i in range(42)
    ]
    import_file(f.write_csv(tmp_path / "s.csv", "timesheets", rows))
    client.force_login(make_user("boss", superuser=True))
    return client


def search(client, model: str, term: str) -> tuple[Any, list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse(f"admin:tickets_{model}_changelist")
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url, {"q": term})
    assert page.status_code == 200
    return page, [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("term", ["3", "3.0", " 3 "])
def test_searching_a_ticket_id_compares_the_integer_columns(searchable, term):
    """An "=" search on an integer column was UPPER(col::text) = UPPER('3'): no index applies,
    so a ticket's comments took a scan of every comment (3.5 s over 1.08M)."""
    page, sql = search(searchable, "comment", term)
    assert {c.ticket_id for c in page.context["cl"].result_list} == {3}
    assert len(page.context["cl"].result_list) == 10
    searched = [s for s in sql if 'FROM "tickets_comment" WHERE' in s]
    assert searched and not any("::text" in s for s in searched), searched
    assert any('"tickets_comment"."ticket_id" = 3' in s for s in searched)

    page, sql = search(searchable, "timesheetentry", term)
    assert {t.ticket_id for t in page.context["cl"].result_list} == {3}
    searched = [s for s in sql if 'FROM "tickets_timesheetentry" WHERE' in s]
    assert searched and not any("::text" in s or "LIKE" in s for s in searched), searched


@pytest.mark.parametrize("term", ["abc", "99999999999999999999999", "'3 4'"])
def test_searches_that_name_no_id_find_nothing_without_an_error(searchable, term):
    page, _ = search(searchable, "comment", term)
    assert list(page.context["cl"].result_list) == []


def test_text_searches_still_match_text_columns(searchable):
    page, _ = search(searchable, "timesheetentry", "AGENT1")
    assert {t.username for t in page.context["cl"].result_list} == {"agent1"}
    page, _ = search(searchable, "ticket", "3")
    assert [t.ticket_id for t in page.context["cl"].result_list] == [3]


def test_a_one_page_search_result_has_no_date_drilldown(searchable):
    """Its MIN/MAX walked the whole date index backwards (1.4 s for a ticket's 14 comments)."""
    page, sql = search(searchable, "comment", "3")
    assert page.context["cl"].date_hierarchy is None
    assert not any('MIN("tickets_comment"."created_at")' in s for s in sql)
    page = searchable.get(reverse("admin:tickets_comment_changelist"))
    assert page.context["cl"].date_hierarchy == "created_at"


# --- import runs are records -------------------------------------------------------------------


def test_a_run_that_loaded_rows_cannot_be_deleted_a_preview_can(client, tmp_path):
    """Deleting a succeeded run left its rows' lineage (inserted_run, changed_run: no database
    constraint) pointing at nothing, and took its issue report with it."""
    from tickets.pipeline import import_file

    rows = [f.ticket(i) for i in range(1, 6)] + [f.ticket(6, sla_met="maybe")]
    path = f.write_csv(tmp_path / "t.csv", "tickets", rows)
    preview = import_file(path, dry_run=True)
    real = import_file(path)
    assert Ticket.objects.filter(inserted_run_id=real.pk).count() == 6
    issue = ImportIssue.objects.filter(run=real).first()
    assert issue is not None and ImportIssue.objects.filter(run=preview).exists()
    client.force_login(make_user("boss", superuser=True))

    assert client.get(reverse("admin:tickets_importrun_delete", args=[real.pk])).status_code == 403
    assert (
        client.post(
            reverse("admin:tickets_importrun_delete", args=[real.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    bulk = client.post(
        reverse("admin:tickets_importrun_changelist"),
        {"action": "delete_selected", "index": "0", "_selected_action": [real.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 403)
    assert ImportRun.objects.filter(pk=real.pk).exists()
    issue_delete = reverse("admin:tickets_importissue_delete", args=[issue.pk])
    assert client.get(issue_delete).status_code == 403

    page = client.get(reverse("admin:tickets_importrun_delete", args=[preview.pk]))
    assert page.status_code == 200 and b"import issues of these runs" in page.content
    client.post(reverse("admin:tickets_importrun_delete", args=[preview.pk]), {"post": "yes"})
    assert not ImportRun.objects.filter(pk=preview.pk).exists()
    assert not ImportIssue.objects.filter(run_id=preview.pk).exists()


def _filter_choices(response, title: str) -> list[str]:
    spec = next(s for s in response.context["cl"].filter_specs if s.title == title)
    return [c["display"] for c in spec.choices(response.context["cl"])][1:]  # after "All"


@pytest.fixture
def own_cache(settings):
    """A cache namespace of this test's own: no entry of an earlier run (a fresh test database
    reuses run ids) and no cache.clear(), which is FLUSHDB on REDIS_URL's database -- the
    developer's Celery broker queue too."""
    import uuid

    import redis

    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
    }
    server = redis.Redis.from_url(settings.REDIS_URL)
    canary = f"test-canary-{uuid.uuid4().hex}"
    server.set(canary, "1", ex=600)
    yield
    try:
        assert server.exists(canary), "the test emptied REDIS_URL's database"
    finally:
        server.delete(canary)


def test_filter_choices_of_a_big_table_are_read_once_per_load(
    client, tmp_path, own_cache, django_capture_on_commit_callbacks
):
    """The team filter read the whole column on every page view (0.2-0.7 s at 10x scale): its
    values are cached until the next load, which may bring new ones."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tickets.pipeline import import_file

    import_file(f.write_csv(tmp_path / "a.csv", "tickets", [f.ticket(1), f.ticket(2)]))
    client.force_login(make_user("boss", superuser=True))
    url = reverse("admin:tickets_ticket_changelist")

    def distinct_queries() -> tuple[Any, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        filters = ('"team"', '"status"', '"category"')
        return response, sum(
            q["sql"].startswith("SELECT DISTINCT") and q["sql"].split(" FROM")[0].endswith(filters)
            for q in queries.captured_queries
        )

    first, read = distinct_queries()
    assert read == 3 and _filter_choices(first, "team") == ["Cloud - Zelda"]
    again, read = distinct_queries()
    assert read == 0 and _filter_choices(again, "team") == ["Cloud - Zelda"]

    import_file(f.write_csv(tmp_path / "b.csv", "tickets", [f.ticket(3, team="Cloud - Mario")]))
    after, read = distinct_queries()
    assert read == 3 and _filter_choices(after, "team") == ["Cloud - Mario", "Cloud - Zelda"]

    # An admin delete takes the team out of the filter at once, not after the cache expires.
    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.post(reverse("admin:tickets_ticket_delete", args=[3]), {"post": "yes"})
    assert deleted.status_code == 302 and not Ticket.objects.filter(pk=3).exists()
    gone, read = distinct_queries()
    assert read == 3 and _filter_choices(gone, "team") == ["Cloud - Zelda"]


def test_staff_who_may_not_open_import_runs_see_no_run_links_on_tickets(client, tmp_path):
    from tickets.pipeline import import_file

    import_file(f.write_csv(tmp_path / "t.csv", "tickets", [f.ticket(1)]))
    run = ImportRun.objects.latest("pk")
    run_url = reverse("admin:tickets_importrun_change", args=[run.pk])
    changelist = reverse("admin:tickets_ticket_changelist")
    change = reverse("admin:tickets_ticket_change", args=[1])
    client.force_login(make_user("tina", "tickets.view_ticket"))
    listed, shown = (client.get(url) for url in (changelist, change))
    assert listed.status_code == shown.status_code == 200
    assert str(run) not in listed.content.decode() and run_url not in shown.content.decode()
    client.force_login(make_user("ivan", *VIEWER_PERMS))  # may view import runs
    assert str(run) in client.get(changelist).content.decode()
    assert run_url in client.get(change).content.decode()


def test_staff_who_may_not_open_import_runs_see_no_run_on_roster_rows(client, tmp_path):
    """Roster rows (and comment quality and sentiment) carry the same lineage as tickets."""
    from tickets.pipeline import import_file

    import_file(f.write_csv(tmp_path / "t.csv", "tickets", [f.ticket(1)]))
    run = ImportRun.objects.latest("pk")
    member = TeamMember.objects.create(
        username="u1", name="U", email="u@example.com", team="T", inserted_run=run, changed_run=run
    )
    change = reverse("admin:tickets_teammember_change", args=[member.pk])
    run_url = reverse("admin:tickets_importrun_change", args=[run.pk])
    client.force_login(make_user("tina", "tickets.view_teammember"))
    shown = client.get(change)
    assert shown.status_code == 200
    assert str(run) not in shown.content.decode() and run_url not in shown.content.decode()
    client.force_login(make_user("ivan", "tickets.view_teammember", "tickets.view_importrun"))
    assert run_url in client.get(change).content.decode()
