"""XLSX exports through python-calamine (Rust): fast, and values arrive already typed.

The archive is inspected before parsing so a zip bomb or a truncated file is refused with a
clear message instead of exhausting memory or failing deep inside the parser.
"""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import python_calamine
from django.conf import settings

from tickets.columns import detect_entity, normalise_header
from tickets.readers.base import RawTable, SourceError
from tickets.readers.xlsx_trim import without_trailing_empty_cells

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


_TAG = {name: re.compile(rb"<" + name + rb"\b[^>]*>") for name in (b"sheet", b"Relationship")}
_ATTR = re.compile(rb'([\w:]+)="([^"]*)"')
_CELL_REF = re.compile(rb"([A-Z]+)([0-9]+)")
_VALUE = re.compile(rb"<v>([^<]*)</v>")
CHUNK = 4 << 20


def _column_index(letters: bytes) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + (ch - 64)
    return index - 1


def _tags(xml: bytes, name: bytes) -> list[dict[bytes, bytes]]:
    return [dict(_ATTR.findall(m.group(0))) for m in _TAG[name].finditer(xml)]


def _collect_errors(data: bytes, end: int, first_column: int, found: dict) -> None:
    """Find error cells with C-speed `bytes.find`, then parse only those few cells (their
    attributes in any order)."""
    at = data.find(b't="e"', 0, end)
    while at != -1:
        start = data.rfind(b"<c ", 0, at)
        stop = data.find(b"</c>", at, end)
        if start == -1 or stop == -1:
            break
        tag_end = data.find(b">", start, stop)
        attrs = dict(_ATTR.findall(data[start:tag_end]))
        ref = _CELL_REF.fullmatch(attrs.get(b"r", b""))
        value = _VALUE.search(data, tag_end, stop)
        if attrs.get(b"t") == b"e" and ref and value:
            col, row = ref.groups()
            found.setdefault(int(row), []).append(
                (_column_index(col) - first_column, value.group(1).decode(errors="replace"))
            )
        at = data.find(b't="e"', stop, end)


def error_cells(path: Path, sheet_name: str, first_column: int) -> dict[int, list]:
    """Row -> [(column, error text)] of the sheet's error cells, which calamine reports as empty.

    Rows are the sheet's own numbers; columns count from `first_column` (the used range's
    first), as calamine delivers them.

    A streaming regex scan of the sheet XML: cheap, and only error cells are kept.
    """
    with zipfile.ZipFile(path) as zf:
        sheets = {
            html.unescape(a.get(b"name", b"").decode()): a.get(b"r:id")
            for a in _tags(zf.read("xl/workbook.xml"), b"sheet")
        }
        rels_name = "xl/_rels/workbook.xml.rels"
        rels = (
            {
                a.get(b"Id"): a.get(b"Target", b"")
                for a in _tags(zf.read(rels_name), b"Relationship")
            }
            if rels_name in zf.namelist()
            else {}
        )
        target = rels.get(sheets.get(sheet_name), b"").decode().lstrip("/")
        if not target:
            return {}
        member = target if target.startswith("xl/") else f"xl/{target}"
        if member not in zf.namelist():
            return {}
        found: dict[int, list] = {}
        with zf.open(member) as fh:
            tail = b""
            while chunk := fh.read(CHUNK):
                data = tail + chunk
                cut = data.rfind(b"</c>") + 4 if b"</c>" in data else 0
                _collect_errors(data, cut, first_column, found)
                tail = data[cut:]
        return found


def _first_nonempty(rows: Iterator[list[Any]]) -> tuple[int, list[Any]] | None:
    for number, row in enumerate(rows, start=1):
        if any(cell not in ("", None) for cell in row):
            return number, row
    return None


def read_xlsx(path: Path) -> RawTable:
    """The first sheet whose header row matches an entity (else the first sheet)."""
    check_archive(path)
    try:
        trimmed = without_trailing_empty_cells(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
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
    headers = [normalise_header(h) and str(h).strip() for h in header]
    while headers and not headers[-1]:
        headers.pop()
    total = max(first_row + sheet.height - header_number, 0)
    if total > settings.IMPORT_MAX_ROWS:
        raise SourceError(
            path.name,
            f"sheet {name!r} has {total} rows, over the {settings.IMPORT_MAX_ROWS} row limit "
            "(IMPORT_MAX_ROWS)",
        )
    return RawTable(
        name=name,
        headers=headers,
        rows=_rows(rows, header_number, len(headers), error_cells(path, name, first_column)),
        total=total,
        file_name=path.name,
    )


def _rows(
    rows: Iterator[list[Any]], header_number: int, width: int, errors: dict[int, list]
) -> Iterator[tuple[int, list]]:
    for number, row in enumerate(rows, start=header_number + 1):
        values = row[:width]
        for col, text in errors.get(number, ()):
            if 0 <= col < width:
                values[col] = text
        if values.count("") + values.count(None) < len(values):
            yield number, values
