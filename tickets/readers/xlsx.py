"""XLSX exports through python-calamine (Rust): fast, and values arrive already typed.

The archive is inspected before parsing so a zip bomb or a truncated file is refused with a
clear message instead of exhausting memory or failing deep inside the parser.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Generator, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import python_calamine
from django.conf import settings

from tickets.columns import detect_entity, normalise_header
from tickets.readers import xlsx_slices
from tickets.readers.base import RawTable, SourceError
from tickets.readers.xlsx_trim import without_trailing_empty_cells
from tickets.readers.xlsx_xml import CHUNK, collect_errors, sheet_members, sweep_orphans

# A real sheet compresses 5-20x; far beyond this ratio the archive is crafted.
MAX_COMPRESSION_RATIO = 200


def check_archive(path: Path) -> None:
    """Refuse corrupt archives and zip bombs before any XML is parsed."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(
            path.name, f"not a valid XLSX file (corrupt or truncated: {exc})"
        ) from None
    names = {i.filename for i in infos}
    if "xl/workbook.xml" not in names:
        raise SourceError(path.name, "not an XLSX workbook (no xl/workbook.xml in the archive)")
    limit = settings.IMPORT_MAX_UNCOMPRESSED_MB * 1024 * 1024
    total = sum(i.file_size for i in infos)
    if total > limit:
        raise SourceError(
            path.name,
            f"the archive expands to {total // 2**20} MB, over the "
            f"{settings.IMPORT_MAX_UNCOMPRESSED_MB} MB limit (IMPORT_MAX_UNCOMPRESSED_MB): "
            "refused as a possible zip bomb",
        )
    for info in infos:
        if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
            if info.file_size > 50 * 2**20:
                raise SourceError(
                    path.name,
                    f"member {info.filename} has a compression ratio of "
                    f"{info.file_size // info.compress_size}:1: refused as a zip bomb",
                )


def error_cells(path: Path, sheet_name: str, first_column: int) -> dict[int, list]:
    """Row -> [(column, error text)] of the sheet's error cells, which calamine reports as empty.

    Rows are the sheet's own numbers; columns count from `first_column` (the used range's
    first), as calamine delivers them.

    A streaming regex scan of the sheet XML: cheap, and only error cells are kept.
    """
    with zipfile.ZipFile(path) as zf:
        member = dict(sheet_members(zf)).get(sheet_name, "")
        if member not in zf.namelist():
            return {}
        found: dict[int, list] = {}
        with zf.open(member) as fh:
            tail = b""
            while chunk := fh.read(CHUNK):
                data = tail + chunk
                cut = data.rfind(b"</c>") + 4 if b"</c>" in data else 0
                collect_errors(data, cut, first_column, found)
                tail = data[cut:]
        return found


def _first_nonempty(rows: Iterator[list[Any]]) -> tuple[int, list[Any]] | None:
    for number, row in enumerate(rows, start=1):
        if any(cell not in ("", None) for cell in row):
            return number, row
    return None


def read_xlsx(path: Path) -> RawTable:
    """The first sheet whose header row matches an entity (else the first sheet).

    A one-sheet workbook (every export) is read in slices parsed on a worker thread, so the
    caller types and loads rows while the rest of the sheet is parsed; others are read whole.
    """
    check_archive(path)
    sweep_orphans()
    try:
        sliced = xlsx_slices.plan(path)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, zlib.error) as exc:
        raise SourceError(path.name, f"cannot read the workbook: {exc}") from None
    if sliced is not None:
        return _read_sliced(path, sliced)
    try:
        trimmed = without_trailing_empty_cells(path)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise SourceError(path.name, f"cannot read the workbook: {exc}") from None
    try:
        return _read_workbook(path, trimmed or path)
    finally:
        if trimmed:
            trimmed.unlink(missing_ok=True)


def _read_workbook(path: Path, parsed: Path) -> RawTable:
    """`path` names the file in messages and is scanned for error cells; `parsed` is what
    calamine opens (the same file, or its copy without trailing empty cells)."""
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(parsed))
    except Exception as exc:  # calamine raises its own error types for every corruption
        raise SourceError(path.name, f"cannot read the workbook: {exc}") from None
    chosen = None
    for name in workbook.sheet_names:
        try:
            sheet = workbook.get_sheet_by_name(name)
        except Exception as exc:
            raise SourceError(path.name, f"cannot read sheet {name!r}: {exc}") from None
        rows = iter(sheet.iter_rows())
        found = _first_nonempty(rows)
        if found is None:
            continue
        header_number, header = found
        candidate = (name, sheet, rows, header_number, header)
        if chosen is None:
            chosen = candidate
        if detect_entity(header) is not None:
            chosen = candidate
            break
    if chosen is None:
        raise SourceError(path.name, "the workbook has no data (every sheet is empty)")
    name, sheet, rows, header_number, header = chosen
    # calamine yields rows from the sheet's first row (empty ones above the used range
    # included), so row numbers are the sheet's own; columns start at the used range.
    first_row, first_column = sheet.start or (0, 0)
    headers = _headers(header)
    total = max(first_row + sheet.height - header_number, 0)
    if total > settings.IMPORT_MAX_ROWS:
        raise SourceError(path.name, _too_many_rows(name, total))
    return RawTable(
        name=name,
        headers=headers,
        rows=_rows(rows, header_number, len(headers), error_cells(path, name, first_column)),
        total=total,
        file_name=path.name,
    )


def _headers(header: list[Any]) -> list[str]:
    headers = [normalise_header(h) and str(h).strip() for h in header]
    while headers and not headers[-1]:
        headers.pop()
    return headers


def _too_many_rows(sheet: str, total: int, more: bool = False) -> str:
    """`more`: read in slices, the sheet is refused at the first row past the limit, before
    its real count is known."""
    return (
        f"sheet {sheet!r} has {'more than ' if more else ''}{total} rows, over the "
        f"{settings.IMPORT_MAX_ROWS} row limit (IMPORT_MAX_ROWS)"
    )


def _read_sliced(path: Path, plan: xlsx_slices.Plan) -> RawTable:
    """The one sheet, slice by slice: the header is the first row with a value in it."""
    slices = xlsx_slices.read_slices(path, plan)
    try:
        for first in slices:
            rows = first.rows()
            if found := _first_nonempty(iter(rows)):
                header_number = first.first_row + found[0] - 1
                header = [""] * first.first_column + found[1]
                break
        else:
            raise SourceError(path.name, "the workbook has no data (every sheet is empty)")
    except BaseException:
        slices.close()
        raise
    # A <dimension> that ends before rows already read is stale (streaming writers write "A1").
    if plan.last_row is not None and plan.last_row >= first.first_row + len(rows) - 1:
        total = max(plan.last_row - header_number, 0)
    else:  # no <dimension>, or a stale one: estimated from the first slice's rows per byte
        rows_in_sheet = len(rows) * plan.sheet_bytes / max(first.xml_bytes, 1)
        total = max(round(rows_in_sheet) - (header_number - first.first_row + 1), 0)
    headers = _headers(header)
    return RawTable(
        name=plan.sheet_name,
        headers=headers,
        rows=_sliced_rows(
            path.name, plan.sheet_name, (first, rows), slices, header_number, len(headers)
        ),
        total=total,
        file_name=path.name,
    )


def _sliced_rows(
    file_name: str,
    sheet: str,
    first: tuple[xlsx_slices.Slice, list[list[Any]]],
    rest: Generator[xlsx_slices.Slice, None, None],
    header_number: int,
    width: int,
) -> Iterator[tuple[int, list]]:
    """The rows after the header, from column A and as wide as the header, as `_rows` gives.

    Stopping early (or failing) stops the slices' worker at once, rather than whenever this
    generator is collected (an exception's traceback can keep it for a long time)."""
    limit = settings.IMPORT_MAX_ROWS
    part, rows = first
    try:
        while part is not None:
            if part.first_column:  # cells from column A, as the header
                pad = [""] * part.first_column
                rows = [pad + row for row in rows]
            skip = max(header_number + 1 - part.first_row, 0)  # the header and rows above it
            after = part.first_row + skip - 1
            for number, values in _rows(islice(rows, skip, None), after, width, part.errors):
                if number - header_number > limit:  # refused as soon as it is known
                    raise SourceError(file_name, _too_many_rows(sheet, limit, more=True))
                yield number, values
            part = next(rest, None)
            rows = part.rows() if part is not None else []
    finally:
        rest.close()


def _rows(
    rows: Iterator[list[Any]], header_number: int, width: int, errors: dict[int, list]
) -> Iterator[tuple[int, list]]:
    """(number, cells as wide as the header) of the non-empty rows after `header_number`, error
    cells put back. A slice can be narrower than the header: its rows are padded."""
    for number, row in enumerate(rows, start=header_number + 1):
        values = row[:width]
        if len(values) < width:
            values += [""] * (width - len(values))
        for col, text in errors.get(number, ()):
            if 0 <= col < width:
                values[col] = text
        if values.count("") + values.count(None) < len(values):
            yield number, values
