"""A one-sheet export is read in slices parsed on a worker thread (flat memory, parsing beside
the load). Every slice must read exactly as the whole sheet does: same values, row numbers,
columns and error cells, whatever the writer (shared or inline strings, rows with or without
`r`, a table away from A1, padded rows)."""

from __future__ import annotations

import datetime as dt
import errno
import re
import tempfile
import threading
import zipfile
from pathlib import Path

import openpyxl
import pytest

from tests import files as f
from tickets.models import ImportRun, Ticket
from tickets.pipeline import ImportFailed, import_file
from tickets.readers import xlsx, xlsx_slices
from tickets.readers.base import SourceError

TINY = 2048  # bytes of sheet XML per slice: every test file is cut into many slices


@pytest.fixture
def tiny_slices(monkeypatch):
    monkeypatch.setattr(xlsx_slices, "SLICE_BYTES", TINY)
    monkeypatch.setattr(xlsx_slices, "SHARED_STRINGS_FACTOR", 0)


def _rewrite_sheet(path: Path, out: Path, change) -> Path:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if re.fullmatch(r"xl/worksheets/[^/]+\.xml", info.filename):
                data = change(data)
            dst.writestr(info.filename, data)
    return out


_INLINE = re.compile(rb'<c([^>]*?) t="inlineStr"([^>]*)><is><t(?: [^>]*)?>([^<]*)</t></is></c>')


def _with_shared_strings(path: Path, out: Path, member: str = "xl/sharedStrings.xml") -> Path:
    """The workbook with its text in a shared string table, as Excel writes it (openpyxl
    writes inline strings), kept at `member`."""
    strings: dict[bytes, int] = {}

    def shared(match: re.Match[bytes]) -> bytes:
        index = strings.setdefault(match.group(3), len(strings))
        return b'<c%s t="s"%s><v>%d</v></c>' % (match.group(1), match.group(2), index)

    target = member.removeprefix("xl/").encode()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if re.fullmatch(r"xl/worksheets/[^/]+\.xml", info.filename):
                data = _INLINE.sub(shared, data)
            elif info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdStrings" Target="%s" Type="http://schemas.openxml'
                    b'formats.org/officeDocument/2006/relationships/sharedStrings"/>'
                    b"</Relationships>" % target,
                )
            elif info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"</Types>",
                    b'<Override PartName="/%s" ContentType="application/vnd.openxmlformats-'
                    b'officedocument.spreadsheetml.sharedStrings+xml"/></Types>' % member.encode(),
                )
            dst.writestr(info.filename, data)
        table = b"".join(b'<si><t xml:space="preserve">%s</t></si>' % t for t in strings)
        dst.writestr(
            member,
            b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            b'count="%d" uniqueCount="%d">%s</sst>' % (len(strings), len(strings), table),
        )
    return out


def _varied_workbook(path: Path, first_row: int = 1, first_column: int = 1) -> Path:
    """Dates, times, floats, booleans, an error cell, gaps and a blank row (inline strings:
    `_with_shared_strings` makes the shared-string version)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Export"
    rows = [f.headers("tickets")]
    for n in range(1, 120):
        row = f._ordered("tickets", f.ticket(n, title=f"Title {n % 7}"))
        if n == 5:
            row[f.headers("tickets").index("TKT-Title")] = "#N/A"  # an error cell
        if n == 9:
            row = [None] * len(row)  # a blank row in the middle
        if n % 11 == 0:
            row[3] = dt.datetime(2024, 3, n % 28 + 1, 8, 30)
            row[4] = dt.time(9, 15)
            row[5] = True
            row[6] = 12.5
        rows.append(row)
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if value is not None:
                sheet.cell(first_row + r, first_column + c, value)
    workbook.save(path)
    return path


def _whole(path: Path) -> tuple[list[str], list]:
    table = xlsx._read_workbook(path, path)  # the whole-sheet reader, for comparison
    return table.headers, list(table.rows)


def _sliced(path: Path) -> tuple[list[str], list, int | None]:
    plan = xlsx_slices.plan(path)
    assert plan is not None, "a one-sheet workbook is read in slices"
    table = xlsx.read_xlsx(path)
    return table.headers, list(table.rows), table.total


@pytest.mark.parametrize("shared", [False, True], ids=["inline strings", "shared strings"])
@pytest.mark.parametrize("first_row, first_column", [(1, 1), (4, 3)])
def test_slices_read_exactly_as_the_whole_sheet(
    tmp_path, tiny_slices, first_row, first_column, shared
):
    path = _varied_workbook(tmp_path / "varied.xlsx", first_row, first_column)
    if shared:
        path = _with_shared_strings(path, tmp_path / "shared.xlsx")
        assert b't="s"' in zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")
    assert len(list(xlsx_slices.read_slices(path, xlsx_slices.plan(path)))) > 10
    headers, rows, total = _sliced(path)
    whole_headers, whole_rows = _whole(path)
    # The whole-sheet reader counts columns from the used range, slices from column A.
    assert headers == [""] * (first_column - 1) + whole_headers
    pad = [""] * (first_column - 1)
    assert rows == [(n, pad + values) for n, values in whole_rows]
    assert rows[0][0] == first_row + 1  # the sheet's own row numbers
    assert len(rows) == 118  # the blank row is skipped
    assert dict(rows)[first_row + 5][first_column - 1 + 11] == "#N/A"  # the error cell is back
    assert total == 119  # from the sheet's <dimension>


def test_a_slice_is_at_least_eight_times_the_shared_strings(tmp_path):
    """Each slice parses the whole shared string table again: a sheet whose strings are large
    is cut into fewer, larger slices."""
    path = _with_shared_strings(_varied_workbook(tmp_path / "v.xlsx"), tmp_path / "s.xlsx")
    strings = zipfile.ZipFile(path).getinfo("xl/sharedStrings.xml").file_size
    plan = xlsx_slices.plan(path)
    assert plan.slice_bytes == max(xlsx_slices.SLICE_BYTES, 8 * strings)


def test_rows_without_row_numbers_keep_their_place(tmp_path, tiny_slices):
    """A writer may leave out `r`: each row then follows the one before, also across slices."""
    plain = _varied_workbook(tmp_path / "plain.xlsx")
    undimensioned = re.compile(rb"<dimension[^>]*/>")
    rows_bare = _rewrite_sheet(
        plain,
        tmp_path / "rows.xlsx",
        lambda xml: re.sub(rb'(<row\b[^>]*?) r="[0-9]+"', rb"\1", undimensioned.sub(b"", xml)),
    )
    assert b'<row r="' not in zipfile.ZipFile(rows_bare).read("xl/worksheets/sheet1.xml")
    headers, rows, _ = _sliced(rows_bare)
    assert (headers, rows) == _whole(plain)

    # Cells without `r` too (placed by their order within the row): as the whole sheet reads.
    all_bare = _rewrite_sheet(
        rows_bare, tmp_path / "cells.xlsx", lambda xml: re.sub(rb' r="[A-Z]+[0-9]+"', b"", xml)
    )
    assert _sliced(all_bare)[:2] == _whole(all_bare)


def test_without_a_dimension_the_row_count_is_estimated_for_the_progress_bar(tmp_path):
    """openpyxl's write-only mode writes no <dimension> (test 1 has one: the count is exact)."""
    rows = [f.timesheet(n, "2024-05-01") for n in range(1, 3000)]
    path = f.write_xlsx(tmp_path / "plain.xlsx", "timesheets", rows)
    assert b"<dimension" not in zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")
    assert abs(xlsx.read_xlsx(path).total - 2999) < 2999 * 0.1  # from the first slice


def test_padded_rows_are_trimmed_slice_by_slice(tmp_path, tiny_slices):
    plain = f.write_xlsx(tmp_path / "plain.xlsx", "comments", [f.comment(n, 1) for n in range(60)])
    empty = b'<c t="inlineStr"><is><t></t></is></c>' * 100
    padded = _rewrite_sheet(
        plain, tmp_path / "padded.xlsx", lambda x: x.replace(b"</row>", empty + b"</row>")
    )
    plan = xlsx_slices.plan(padded)
    assert plan.trailing_empty is not None
    widths = {s.sheet.width for s in xlsx_slices.read_slices(padded, plan)}
    assert max(widths) == len(f.headers("comments"))  # calamine never saw the padding
    assert _sliced(padded)[:2] == _whole(plain)


def test_a_workbook_of_several_sheets_is_read_whole(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.append(["notes"])
    data = workbook.create_sheet("Data")
    data.append(f.headers("tickets"))
    data.append(f._ordered("tickets", f.ticket(1)))
    path = tmp_path / "two.xlsx"
    workbook.save(path)
    assert xlsx_slices.plan(path) is None
    table = xlsx.read_xlsx(path)
    assert table.name == "Data" and [n for n, _ in table.rows] == [2]


@pytest.mark.django_db
def test_a_corrupt_slice_fails_the_import_and_stores_nothing(tmp_path, tiny_slices):
    good = f.write_xlsx(tmp_path / "good.xlsx", "tickets", [f.ticket(n) for n in range(1, 80)])
    import_file(good)
    before = list(Ticket.objects.order_by("pk").values_list("pk", "title"))
    rows = [f.ticket(n, title="changed") for n in range(1, 80)]
    bad = _rewrite_sheet(
        f.write_xlsx(tmp_path / "src.xlsx", "tickets", rows),
        tmp_path / "bad.xlsx",
        lambda xml: xml.replace(
            b'<row r="70"', b'<row r="70"><c r="A70"><v>1</c></row><row r="71"'
        ),
    )
    with pytest.raises(ImportFailed, match="bad.xlsx: cannot read the workbook"):
        import_file(bad)
    assert list(Ticket.objects.order_by("pk").values_list("pk", "title")) == before
    assert ImportRun.objects.filter(file_name="bad.xlsx", status="failed").count() == 1


def test_too_many_rows_are_refused_while_reading(tmp_path, tiny_slices, settings):
    settings.IMPORT_MAX_ROWS = 50
    path = f.write_xlsx(tmp_path / "many.xlsx", "tickets", [f.ticket(n) for n in range(1, 80)])
    table = xlsx.read_xlsx(path)
    with pytest.raises(SourceError, match="has more than 50 rows, over the 50 row limit"):
        list(table.rows)


def _slice_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("xlsx-slices")]


def test_stopping_early_leaves_no_thread_or_temporary_file(tmp_path, tiny_slices, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(n) for n in range(1, 80)])
    rows = xlsx.read_xlsx(path).rows
    assert next(rows)[0] == 2
    rows.close()  # the pipeline gave up (a missing column, a failed COPY, Ctrl-C)
    assert _slice_threads() == []
    assert list(scratch.iterdir()) == []


def test_a_full_disk_while_writing_a_slice_is_a_clear_refusal(tmp_path, tiny_slices, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(n) for n in range(1, 80)])
    real_writestr = zipfile.ZipFile.writestr
    written = []

    def writestr(self, name, data, *args, **kwargs):
        written.append(name)
        if len(written) > 20:  # a few slices in
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
    with pytest.raises(SourceError, match="t.xlsx: cannot read the workbook: .*No space left"):
        list(xlsx.read_xlsx(path).rows)
    assert list(scratch.iterdir()) == []
    assert _slice_threads() == []


def test_a_time_limit_while_a_slice_is_parsed_is_not_a_corrupt_file(
    tmp_path, tiny_slices, monkeypatch
):
    """Celery's soft time limit is raised by a signal in the reading thread, most often while
    it waits for the worker's slice: the import must stop as timed out (the task reports the
    limit), not fail as "cannot read the workbook" (the file is fine)."""
    import signal
    import time

    from celery.exceptions import SoftTimeLimitExceeded

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(n) for n in range(1, 80)])
    parse = xlsx_slices._parse

    def slow_parse(name):
        time.sleep(1)  # a big slice
        return parse(name)

    def time_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(xlsx_slices, "_parse", slow_parse)
    previous = signal.signal(signal.SIGALRM, time_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.3)  # while the first slice is parsed
    try:
        with pytest.raises(SoftTimeLimitExceeded):
            list(xlsx.read_xlsx(path).rows)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _slice_threads() == []
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("sheets", [1, 2])
def test_a_corrupt_compressed_sheet_is_a_clear_refusal(tmp_path, sheets):
    """Damaged bytes in a sheet's compressed data (a bad disk, a mangled transfer): the zip's
    directory is intact, so only reading the sheet finds it; that must be a SourceError naming
    the file, not zlib's bare error (a traceback from the command, "error: Error -3 ..." in
    the admin)."""
    workbook = openpyxl.Workbook()
    workbook.active.append(f.headers("tickets"))
    for n in range(1, 2000):
        workbook.active.append(f._ordered("tickets", f.ticket(n)))
    if sheets == 2:
        workbook.create_sheet("Notes").append(["a note"])
    path = tmp_path / "damaged.xlsx"
    workbook.save(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    data[start : start + 50] = bytes(b ^ 0x5A for b in data[start : start + 50])
    path.write_bytes(data)
    with pytest.raises(SourceError, match="damaged.xlsx: cannot read the workbook"):
        list(xlsx.read_xlsx(path).rows)


def test_the_row_count_of_a_padded_sheet_without_a_dimension_is_estimated_from_its_own_bytes(
    tmp_path, monkeypatch
):
    """The estimate scales the first slice's rows by the sheet's size: the slice's share is the
    XML it took from the sheet, padding included, not what is left once the padding is cut
    (that made the total many times too large: the progress bar stood near 0 % to the end)."""
    monkeypatch.setattr(xlsx_slices, "SLICE_BYTES", 256 << 10)
    plain = f.write_xlsx(
        tmp_path / "plain.xlsx", "comments", [f.comment(n, 1) for n in range(1, 2001)]
    )
    empty = b'<c t="inlineStr"><is><t></t></is></c>' * 100
    padded = _rewrite_sheet(
        plain, tmp_path / "padded.xlsx", lambda x: x.replace(b"</row>", empty + b"</row>")
    )
    assert xlsx_slices.plan(padded).trailing_empty is not None
    assert b"<dimension" not in zipfile.ZipFile(padded).read("xl/worksheets/sheet1.xml")
    assert abs(xlsx.read_xlsx(padded).total - 2000) < 2000 * 0.1


def test_a_dimension_short_of_the_rows_read_is_not_the_row_count(tmp_path):
    """Streaming writers (fastexcel, OpenXLSX, ...) write <dimension ref="A1"/> whatever the
    sheet holds: taken as it is, the total was 0 and the import showed no progress at all. A
    dimension that ends before rows already read is stale: the count is estimated instead."""
    workbook = openpyxl.Workbook()
    workbook.active.append(f.headers("timesheets"))
    for n in range(1, 3000):
        workbook.active.append(f._ordered("timesheets", f.timesheet(n, "2024-05-01")))
    workbook.save(tmp_path / "plain.xlsx")
    stale = _rewrite_sheet(
        tmp_path / "plain.xlsx",
        tmp_path / "stale.xlsx",
        lambda xml: re.sub(rb"<dimension [^>]*>", b'<dimension ref="A1"/>', xml),
    )
    assert xlsx_slices.plan(stale).last_row == 1
    assert abs(xlsx.read_xlsx(stale).total - 2999) < 2999 * 0.1
    assert xlsx.read_xlsx(tmp_path / "plain.xlsx").total == 2999  # a true one is used as it is


def test_slices_carry_only_the_parts_values_depend_on(tmp_path, tiny_slices):
    """Images, a calculation chain or macros are not copied into every slice (written and read
    again per slice for nothing); styles and shared strings are."""
    plain = _with_shared_strings(_varied_workbook(tmp_path / "v.xlsx"), tmp_path / "plain.xlsx")
    heavy = tmp_path / "heavy.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(heavy, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        dst.writestr("xl/media/image1.png", b"\x89PNG" + bytes(2 << 20))
        dst.writestr("xl/calcChain.xml", b'<calcChain><c r="A1" i="1"/></calcChain>')
    plan = xlsx_slices.plan(heavy)
    assert {"xl/sharedStrings.xml", "xl/styles.xml"} <= set(plan.parts)
    assert not {"xl/media/image1.png", "xl/calcChain.xml", "xl/theme/theme1.xml"} & set(plan.parts)
    headers, rows, _ = _sliced(heavy)
    assert (headers, rows) == _whole(heavy) == _whole(plain)
    assert dict(rows)[3][headers.index("TKT-Title")] == "Title 2"  # the strings were found


def test_value_parts_named_with_backslashes_are_carried_too(tmp_path, tiny_slices):
    """Some Windows tools name members `xl\\styles.xml` (against the zip format); calamine reads
    that as xl/styles.xml. Left out of the slices, the styles' dates came back as numbers and
    the shared strings' indices failed the file, while the whole sheet read fine."""
    plain = _with_shared_strings(_varied_workbook(tmp_path / "v.xlsx"), tmp_path / "plain.xlsx")
    windows = tmp_path / "windows.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(windows, "w") as dst:
        for info in src.infolist():
            name = info.filename
            if name in ("xl/styles.xml", "xl/sharedStrings.xml"):
                name = name.replace("/", "\\")
            dst.writestr(name, src.read(info.filename))
    assert "xl\\styles.xml" in zipfile.ZipFile(windows).namelist()
    headers, rows, _ = _sliced(windows)
    assert (headers, rows) == _whole(windows) == _whole(plain)
    assert isinstance(dict(rows)[12][3], dt.datetime)  # the date style was found


def test_temporary_workbooks_left_by_a_killed_reader_are_swept(tmp_path, monkeypatch):
    """A worker killed mid-read (hard time limit, OOM) leaves its slice behind; the next read
    removes such files once they are older than any read could be, and nothing else."""
    import os
    import time

    from tickets.readers import xlsx_xml

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    old = scratch / f"{xlsx_xml.TEMP_PREFIX}slice-abc.xlsx"
    fresh = scratch / f"{xlsx_xml.TEMP_PREFIX}slice-def.xlsx"  # another import, reading now
    theirs = scratch / "slice-ghi.xlsx"  # not ours
    for path in (old, fresh, theirs):
        path.write_bytes(b"PK")
    two_hours_ago = time.time() - 2 * xlsx_xml.ORPHAN_AFTER_S
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(theirs, (two_hours_ago, two_hours_ago))
    path = f.write_xlsx(tmp_path / "t.xlsx", "tickets", [f.ticket(1)])
    assert [n for n, _ in xlsx.read_xlsx(path).rows] == [2]
    assert sorted(p.name for p in scratch.iterdir()) == sorted([fresh.name, theirs.name])


@pytest.mark.django_db(transaction=True)  # progress is written from a second connection
def test_once_read_an_import_shows_the_real_row_count_not_the_estimate(tmp_path, monkeypatch):
    """The progress total of an XLSX without <dimension> is estimated while reading. Once every
    row is read the real count replaces it: during the merge (seconds at scale) the page shows
    all rows done, and the finished run keeps its count (the final save wrote None over it)."""
    from tickets import imports, pipeline

    rows = [f.timesheet(n, "2024-05-01") for n in range(1, 3000)]
    path = f.write_xlsx(tmp_path / "t.xlsx", "timesheets", rows)
    assert xlsx.read_xlsx(path).total != 2999  # an estimate (write-only openpyxl: no dimension)
    merge, during_merge = pipeline.merge, []

    def watched_merge(cursor, run, entity, counts):  # the real merge, watched from outside
        during_merge.append(
            ImportRun.objects.values_list("progress_rows", "progress_total").get(pk=run.pk)
        )
        return merge(cursor, run, entity, counts)

    monkeypatch.setattr(pipeline, "merge", watched_merge)
    run = import_file(path)
    assert during_merge == [(2999, 2999)]
    run.refresh_from_db()
    assert (run.rows_read, run.progress_rows, run.progress_total) == (2999, 2999, 2999)
    assert imports.progress_snapshot(run)["percent"] == 100.0
