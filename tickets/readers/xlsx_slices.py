"""A one-sheet export read in slices of rows, parsed on a worker thread while the rows are used.

Why: python-calamine parses a whole sheet before it gives the first row, and holds all of it
(about 100 bytes a cell: 1.4 GB for a 10x timesheet export) while the import's typing and
loading wait for it. Here the sheet's XML is cut at row ends into slices of about
`SLICE_BYTES`. Each slice becomes a small workbook of its own -- the parts its values depend
on (styles, shared strings, workbook) and the slice's rows -- that calamine parses on a worker
thread (it lets go of the GIL while it parses) while the caller takes the rows of the slice
before. The values come from the same parser with the same styles and shared strings, and the
rows keep their `r` numbers, so they are the sheet's own; memory holds three slices at most.

Used only where it is exact (`plan` says when): a workbook with one sheet, its cells in
unprefixed `<row>` elements. Otherwise the sheet is read whole (`xlsx._read_workbook`).
Padded rows (``xlsx_trim``) are trimmed and error cells found slice by slice, on the same
pass.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import python_calamine

from tickets.readers import xlsx_trim
from tickets.readers.base import SourceError
from tickets.readers.xlsx_xml import TEMP_PREFIX, collect_errors, sheet_members, value_parts

#: Sheet XML per slice. Each slice parses the shared strings again, so a slice is also at least
#: SHARED_STRINGS_FACTOR times their size (a sheet whose strings are large is read in few slices).
SLICE_BYTES = 4 << 20
SHARED_STRINGS_FACTOR = 8

_SHEET_DATA = re.compile(rb"<sheetData>")
_DIMENSION = re.compile(rb"<dimension\b[^>]*/>")
_LAST_ROW = re.compile(rb'ref="[A-Z]*[0-9]*:?[A-Z]+([0-9]+)"')
_ROW_TAG = re.compile(rb"<row\b[^>]*>")
_ROW_NUMBER = re.compile(rb'\sr="([0-9]+)"')
_NUMBERED_ROW = re.compile(rb'<row\b[^>]*?\sr="')
ROW_END = b"</row>"


@dataclass(frozen=True)
class Plan:
    """How to slice the one worksheet of a workbook."""

    sheet_name: str
    member: str  # the worksheet's part in the archive
    slice_bytes: int
    trailing_empty: re.Pattern[bytes] | None  # xlsx_trim's runs, when the sheet is padded
    last_row: int | None  # from the sheet's <dimension>, for the progress bar only
    sheet_bytes: int  # the worksheet's XML size, to estimate the row count without it
    # Copied into every slice: what the values depend on (styles, shared strings), not the
    # workbook's other parts (images, calculation chains, macros), which would be written and
    # read again per slice for nothing.
    parts: tuple[str, ...]


def plan(path: Path) -> Plan | None:
    """The slicing of the file's only sheet, or None when it must be read whole."""
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        sheets = sheet_members(zf)
        if len(sheets) != 1 or sheets[0][1] not in names:
            return None
        name, member = sheets[0]
        with zf.open(member) as fh:
            head = fh.read(xlsx_trim.PREFIX_BYTES)
        # Prefixed elements (<x:row>), an empty <sheetData/> or one beyond the first read:
        # read it whole.
        if not _SHEET_DATA.search(head):
            return None
        runs = xlsx_trim._empty_runs(xlsx_trim._empty_cell(xlsx_trim._empty_shared_strings(zf)))
        parts = value_parts(zf)
        strings = sum(zf.getinfo(p).file_size for p in parts if "sharedstrings" in p.lower())
        sheet_bytes = zf.getinfo(member).file_size
    dimension = _DIMENSION.search(head)
    last = _LAST_ROW.search(dimension.group(0)) if dimension else None
    return Plan(
        sheet_name=name,
        member=member,
        slice_bytes=max(SLICE_BYTES, SHARED_STRINGS_FACTOR * strings),
        trailing_empty=runs if xlsx_trim.is_padded(head, runs) else None,
        last_row=int(last.group(1)) if last else None,
        sheet_bytes=sheet_bytes,
        parts=tuple(parts),
    )


@dataclass
class Slice:
    sheet: python_calamine.CalamineSheet  # parsed; its Python rows are made by the reader
    errors: dict[int, list[tuple[int, str]]]  # row -> [(absolute column, error text)]
    xml_bytes: int  # of sheet XML the slice's rows took (to estimate the sheet's row count)

    @property
    def first_row(self) -> int:
        """The sheet's own 1-based number of the slice's first row."""
        return (self.sheet.start or (0, 0))[0] + 1

    @property
    def first_column(self) -> int:
        """0-based column of the slice's first cell."""
        return (self.sheet.start or (0, 0))[1]

    def rows(self) -> list[list[Any]]:
        """Made on the reading thread, while the worker parses the next slice."""
        return self.sheet.to_python(skip_empty_area=True) if self.sheet.start else []


def _numbered(body: bytes, last: int) -> tuple[bytes, int]:
    """The slice with an `r` on every row, and its last row's number.

    A row without `r` follows the row before it. In a slice of its own calamine would put it
    on the slice's first line, so the number is written in (rare: every common writer writes
    `r`, and then the body is returned as it is).
    """
    rows = body.count(b"<row")  # nothing else in sheetData starts so
    if rows == body.count(b'<row r="') or rows == len(_NUMBERED_ROW.findall(body)):
        found = _ROW_NUMBER.search(_ROW_TAG.search(body, body.rfind(b"<row")).group(0))
        return body, int(found.group(1))

    def number(match: re.Match[bytes]) -> bytes:
        nonlocal last
        tag = match.group(0)
        found = _ROW_NUMBER.search(tag)
        last = int(found.group(1)) if found else last + 1
        return tag if found else tag[:4] + b' r="%d"' % last + tag[4:]

    return _ROW_TAG.sub(number, body), last


def _cut(zf: zipfile.ZipFile, plan: Plan) -> Iterator[tuple[bytes, bytes, dict, int]]:
    """(the sheet's XML up to <sheetData>, a slice's rows, their error cells, the bytes of sheet
    XML they took), slice by slice. The bytes taken count trimmed padding: they are the slice's
    share of the sheet's size, which estimates its row count."""
    with zf.open(plan.member) as fh:
        data = b""
        while (at := data.find(b"<sheetData>")) == -1:
            chunk = fh.read(plan.slice_bytes)
            if not chunk:
                return  # <sheetData/>: no rows
            data += chunk
        prefix = _DIMENSION.sub(b"", data[: at + len(b"<sheetData>")])
        data, last, ended = data[at + len(b"<sheetData>") :], 0, False
        while not ended:
            chunk = fh.read(plan.slice_bytes)
            ended = not chunk
            data += chunk
            cut = data.rfind(ROW_END) + len(ROW_END)
            if cut < len(ROW_END) or (not ended and cut < plan.slice_bytes // 2):
                continue  # no whole row yet (or a slice too small to be worth one)
            body, data = data[:cut], data[cut:]
            if plan.trailing_empty is not None:
                body = plan.trailing_empty.sub(xlsx_trim._row_end_or_run, body)
            body, last = _numbered(body, last)
            errors: dict[int, list] = {}
            collect_errors(body, len(body), 0, errors)
            yield prefix, body, errors, cut


def _write(
    prefix: bytes, body: bytes, plan: Plan, others: list[tuple[zipfile.ZipInfo, bytes]]
) -> str:
    """The slice as a workbook file of its own, stored (compressing it would cost more than
    calamine's reading it saves)."""
    fd, name = tempfile.mkstemp(suffix=".xlsx", prefix=f"{TEMP_PREFIX}slice-")
    try:
        with open(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as out:
            for info, content in others:
                out.writestr(info.filename, content)
            out.writestr(plan.member, b"".join((prefix, body, b"</sheetData></worksheet>")))
    except BaseException:
        os.unlink(name)
        raise
    return name


def read_slices(path: Path, plan: Plan) -> Generator[Slice, None, None]:
    """The sheet's slices in order, each parsed on a worker thread while the one before it is
    read. The cutting and writing stay on this thread: the worker only calls calamine, so it
    seldom needs the GIL (a worker that needed it often made reading slower, not faster)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlsx-slices")
    files: list[str] = []  # slices written and not yet removed
    pending: tuple[Future, dict, int] | None = None
    try:
        with zipfile.ZipFile(path) as zf:
            others = [(i, zf.read(i)) for i in zf.infolist() if i.filename in plan.parts]
            for prefix, body, errors, taken in _cut(zf, plan):
                files.append(_write(prefix, body, plan, others))
                parsing = pool.submit(_parse, files[-1])
                if pending is not None:
                    yield _parsed(path, *pending, files)
                pending = (parsing, errors, taken)
        if pending is not None:
            yield _parsed(path, *pending, files)
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise SourceError(path.name, f"cannot read the workbook: {exc}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for name in files:  # stopped early or failed: slices written and never read
            Path(name).unlink(missing_ok=True)


def _parse(name: str) -> python_calamine.CalamineSheet:
    """On the worker thread: calamine lets go of the GIL while it parses."""
    return python_calamine.CalamineWorkbook.from_path(name).get_sheet_by_index(0)


def _parsed(path: Path, parsing: Future, errors: dict, size: int, files: list[str]) -> Slice:
    """The oldest slice written, once parsed; its file is removed (calamine has read it).

    Only what the worker raised is the file's fault: an exception raised in this thread while
    it waits (Celery's soft time limit comes by a signal, most often just then) goes on as it
    is, or a timed-out import would be reported as a corrupt file."""
    try:
        failed = parsing.exception()
    finally:
        Path(files.pop(0)).unlink(missing_ok=True)
    if failed is not None:  # calamine's own error types, for every corruption
        raise SourceError(path.name, f"cannot read the workbook: {failed}")
    return Slice(parsing.result(), errors, size)
