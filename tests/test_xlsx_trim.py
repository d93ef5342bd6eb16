"""Trailing empty cells (real comment exports carry thousands) are taken out before calamine
sizes the sheet: it allocates every row as wide as the widest, 5 GB for a 1.4 MB export."""

from __future__ import annotations

import errno
import io
import re
import zipfile
from pathlib import Path

import pytest
import python_calamine

from tests import files as f
from tickets.readers import xlsx_slices, xlsx_trim
from tickets.readers.base import SourceError
from tickets.readers.xlsx import read_xlsx

EMPTY_INLINE = b'<c t="inlineStr"><is><t></t></is></c>'


def _pad_first_row(path: Path, out: Path, cells: bytes) -> Path:
    """A copy of an openpyxl workbook whose first row ends in `cells` (no r attributes)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if re.fullmatch(r"xl/worksheets/[^/]+\.xml", info.filename):
                data = data.replace(b"</row>", cells + b"</row>", 1)
            dst.writestr(info.filename, data)
    return out


def _width(path: Path) -> int:
    workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    return workbook.get_sheet_by_index(0).width


def test_a_header_padded_with_thousands_of_empty_strings_reads_at_its_real_width(
    tmp_path, monkeypatch
):
    rows = [f.ticket(i) for i in range(1, 4)]
    plain = f.write_xlsx(tmp_path / "plain.xlsx", "tickets", rows)
    padded = _pad_first_row(plain, tmp_path / "padded.xlsx", EMPTY_INLINE * 3000)
    width = len(f.headers("tickets"))
    assert _width(padded) == width + 3000  # what calamine would allocate for every row

    copy = xlsx_trim.without_trailing_empty_cells(padded)
    try:
        assert copy is not None and _width(copy) == width
    finally:
        copy.unlink()
    assert xlsx_trim.without_trailing_empty_cells(plain) is None  # a normal file is read as is

    opened = []  # a spy: calamine opens the narrow copy (real calls, nothing replaced)
    real_open = python_calamine.CalamineWorkbook.from_path
    monkeypatch.setattr(
        python_calamine.CalamineWorkbook,
        "from_path",
        lambda name: (
            opened.append((name, real_open(name).get_sheet_by_index(0).width)),
            real_open(name),
        )[1],
    )
    table, expected = read_xlsx(padded), read_xlsx(plain)
    assert [w for _, w in opened] == [width, width]
    assert table.headers == expected.headers == f.headers("tickets")
    assert list(table.rows) == list(expected.rows)
    assert table.file_name == "padded.xlsx"
    assert not Path(opened[0][0]).exists()  # the copy is gone once read


def test_only_trailing_cells_go_so_cells_placed_by_order_keep_their_column():
    cell = lambda text: b'<c t="inlineStr"><is><t>' + text + b"</t></is></c>"  # noqa: E731
    row = b"<row>" + cell(b"a") + EMPTY_INLINE + b'<c s="3"/>' + cell(b"b")
    xml = row + EMPTY_INLINE * 100 + b'<c s="4"/><c><v></v></c></row>' + row + b"</row>"
    trailing = xlsx_trim._empty_runs(xlsx_trim._empty_cell([]))
    out = io.BytesIO()
    xlsx_trim._copy_trimmed(io.BytesIO(xml * 3), out, trailing)
    assert out.getvalue() == (row + b"</row>") * 6


def test_empty_shared_strings_count_as_empty_cells(tmp_path):
    path = tmp_path / "shared.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            "xl/sharedStrings.xml",
            b'<sst count="4"><si><t>Title</t></si><si><t/></si><si><t xml:space="preserve">'
            b"</t></si><si><r><t>rich</t></r></si></sst>",
        )
    with zipfile.ZipFile(path) as zf:
        assert xlsx_trim._empty_shared_strings(zf) == [1, 2]
    trailing = re.compile(rb"(?:" + xlsx_trim._empty_cell([1, 2]) + rb")+(?=</row>)")
    kept = (
        b'<row><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>3</v></c>'
    )
    padded = kept + b'<c r="D1" t="s"><v>2</v></c><c r="E1" t="s"><v>1</v></c></row>'
    assert trailing.sub(b"", padded) == kept + b"</row>"


def test_a_copy_that_fails_half_way_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A full disk (or Ctrl-C) while the trimmed copy is written: the import is refused and the
    half-written copy (as big as the upload) is removed, not left in the temp directory.

    A workbook of two sheets: one of a single sheet is trimmed slice by slice instead
    (tests/test_xlsx_slices.py), without a copy."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(f.headers("tickets"))
    workbook.active.append(f._ordered("tickets", f.ticket(1)))
    workbook.create_sheet("Notes").append(["a note"])
    workbook.save(tmp_path / "plain.xlsx")
    padded = _pad_first_row(tmp_path / "plain.xlsx", tmp_path / "padded.xlsx", EMPTY_INLINE * 100)
    assert xlsx_slices.plan(padded) is None
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(xlsx_trim.tempfile, "tempdir", str(scratch))

    def disk_full(src, dst, trailing):
        dst.write(b"<row>" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xlsx_trim, "_copy_trimmed", disk_full)
    with pytest.raises(SourceError, match="No space left on device"):
        read_xlsx(padded)
    assert list(scratch.iterdir()) == []


def test_long_runs_of_empty_cells_inside_rows_are_scanned_in_linear_time(tmp_path):
    """A run of empty cells that ends in a value (a sparse row, a note in a far column) is
    neither trimmed nor searched again from each of its cells: the check and the copy were
    quadratic in the run's length, 17 s for a few rows of 4,000 cells (minutes for more)."""
    import time

    rows = [f.ticket(i) for i in range(1, 4)]
    plain = f.write_xlsx(tmp_path / "plain.xlsx", "tickets", rows)
    note = b'<c t="inlineStr"><is><t>note</t></is></c>'
    sparse = _pad_first_row(plain, tmp_path / "sparse.xlsx", EMPTY_INLINE * 20_000 + note)
    started = time.monotonic()
    assert xlsx_trim.without_trailing_empty_cells(sparse) is None  # nothing trails: read as is
    assert time.monotonic() - started < 5

    both = _pad_first_row(
        sparse, tmp_path / "both.xlsx", EMPTY_INLINE * 20_000 + note + EMPTY_INLINE * 100
    )
    started = time.monotonic()
    copy = xlsx_trim.without_trailing_empty_cells(both)
    try:
        assert time.monotonic() - started < 5
        assert copy is not None
        sheet = python_calamine.CalamineWorkbook.from_path(str(copy)).get_sheet_by_index(0)
        header = sheet.to_python()[0]
        assert header[-1] == "note"  # the runs inside the row kept: the notes keep their column
        assert len(header) == len(f.headers("tickets")) + 40_002
    finally:
        if copy:
            copy.unlink()
