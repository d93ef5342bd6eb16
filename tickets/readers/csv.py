"""CSV exports: UTF-8 with or without BOM, or UTF-16 with its BOM (Excel's "Unicode Text");
quoted fields with embedded newlines; a row short of trailing fields (as Excel writes empty
trailing cells) reads them as empty."""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tickets.readers.base import UTF16_BOMS, BadRow, RawTable, SourceError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def read_csv(path: Path) -> RawTable:
    with path.open("rb") as raw:
        utf16 = raw.read(2) in UTF16_BOMS
    fh = path.open("r", encoding="utf-16" if utf16 else "utf-8-sig", newline="")
    try:
        first_line = fh.readline()
        fh.seek(0)
        # Exports are comma-separated; a header without commas may use ; or tab (EU Excel).
        delimiter = ","
        if "," not in first_line:
            delimiter = max(";\t", key=first_line.count) if first_line.strip() else ","
        reader = csv.reader(fh, delimiter=delimiter)
        header_row = 0
        headers: list[str] = []
        for record in reader:
            header_row += 1
            if any(cell.strip() for cell in record):
                headers = record
                break
    except UnicodeDecodeError:
        fh.close()
        raise SourceError(path.name, not_utf8_message(path)) from None
    except csv.Error as exc:
        fh.close()
        raise SourceError(path.name, f"malformed CSV: {exc}") from None
    if not headers:
        fh.close()
        raise SourceError(path.name, "the file has no header row")
    # Trailing empty header cells are export padding, not columns.
    while headers and not headers[-1].strip():
        headers.pop()
    table = RawTable(
        name=path.name,
        headers=headers,
        rows=iter(()),
        file_name=path.name,
        float_columns=frozenset(),  # every cell is text
    )
    table.rows = _rows(
        fh, reader, header_row, len(headers), table, delimiter, _ends_in_newline(path, utf16)
    )
    return table


def _ends_in_newline(path: Path, utf16: bool) -> bool:
    """Whether the file's last line is complete: a file cut off (an interrupted upload or copy)
    ends inside its last row, which then looks like a row short of trailing fields."""
    with path.open("rb") as fh:
        bom = fh.read(2)
        fh.seek(0, 2)
        fh.seek(max(fh.tell() - 2, 0))
        tail = fh.read()
    if utf16:  # one code unit, in the byte order the BOM gives (U+0D00 is not a line end)
        return tail in ((b"\n\x00", b"\r\x00") if bom == b"\xff\xfe" else (b"\x00\n", b"\x00\r"))
    return tail.endswith((b"\n", b"\r"))


def _ends_inside_quotes(fh: Any, first_line: int, delimiter: str) -> bool:
    """Whether the record starting at physical line `first_line` runs into the end of the file
    inside a quoted field: Python's csv closes such a field without a word, so a file cut off
    in the middle of its last text would load the cut text. Read again from that line, strictly.
    """
    with open(fh.name, encoding=fh.encoding, newline="") as again:
        rest = itertools.islice(again, first_line - 1, None)
        try:
            for _ in csv.reader(rest, delimiter=delimiter, strict=True):
                pass
        except csv.Error as exc:
            # Only the end of the file inside a quote: strict mode also refuses a stray quote
            # (`"5" inch`), which the lenient reader loads anywhere else in the file.
            return "unexpected end of data" in str(exc)
    return False


def not_utf8_message(path: Path) -> str:
    """Where the file stops being UTF-8, by line and byte offset in the file.

    The decoding error itself cannot say: the text layer decodes read-ahead blocks, so its
    position is inside a block and the row being parsed is thousands of lines earlier.
    """
    offset = 0
    with path.open("rb") as fh:
        if fh.read(2) in UTF16_BOMS:
            return "not valid UTF-16 text (damaged or truncated): save it as CSV UTF-8"
        fh.seek(0)
        for line_number, line in enumerate(fh, start=1):  # b"\n" never occurs inside UTF-8
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = line[exc.start : exc.start + 1]
                shown = bad.decode("cp1252", errors="replace")
                return (
                    f"not UTF-8 text: line {line_number} (byte {offset + exc.start} of the "
                    f"file) holds byte 0x{bad.hex()} ({shown!r} in Windows-1252); "
                    "save it as CSV UTF-8"
                )
            offset += len(line)
    return "not UTF-8 text: save it as CSV UTF-8"


def _swallowed_rows(record: list[str], width: int, delimiter: str) -> bool:
    """True when a cell holds whole lines that look like rows of their own: what a quote left
    open does (a quoted multi-line text does not put a row's worth of delimiters on a line)."""
    return any(
        line.count(delimiter) >= width - 1
        for cell in record
        if "\n" in cell
        for line in cell.split("\n")[1:]
    )


def _with_line_numbers(reader: Any) -> Iterator[tuple[list[str], int, bool]]:
    """(record, physical lines read through it, whether it is the file's last record)."""
    record = next(reader, None)
    line = reader.line_num
    while record is not None:
        try:
            following = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            yield record, line, False  # the error belongs to the next row: it counts this one
            raise exc
        yield record, line, following is None
        record, line = following, reader.line_num


def _rows(
    fh: Any,
    reader: Any,
    header_row: int,
    width: int,
    table: RawTable,
    delimiter: str = ",",
    complete_last_line: bool = True,
) -> Iterator[tuple[int, list[Any]]]:
    number = header_row
    line = reader.line_num  # physical lines read so far
    try:
        for record, last_line, is_last in _with_line_numbers(reader):
            number += 1
            first_line, line = line + 1, last_line
            if not "".join(record).strip():
                continue
            # A cut-off last row: the file does not end in a line end, or it ends in one that
            # a quoted field left open swallowed (a copy cut at a line end inside the text).
            cut_in_quotes = (
                is_last
                and (not complete_last_line or record[-1].endswith(("\n", "\r")))
                and _ends_inside_quotes(fh, first_line, delimiter)
            )
            cut_off = is_last and (not complete_last_line or cut_in_quotes)
            if len(record) != width:
                extra = record[width:]
                if len(record) > width and not any(cell.strip() for cell in extra):
                    record = record[:width]  # empty padding after the last column
                elif line > first_line and _swallowed_rows(record, width, delimiter):
                    # A quote opened and not closed swallows the lines after it into one
                    # "row": the rows in it would be lost without a trace, and the quoting of
                    # everything after is in doubt. The whole file is refused.
                    raise SourceError(
                        table.file_name,
                        f"row {number} (line {first_line}): a quoted field opened there runs "
                        f"to line {line}, so {line - first_line + 1} lines read as one row "
                        f"with {len(record)} fields instead of {width}; fix the quoting "
                        "(an unclosed or stray double quote). Nothing was loaded.",
                    )
                elif len(record) < width and not cut_off:
                    # Excel's "Save as CSV" leaves out the delimiters of empty cells at the end
                    # of a row (for whole blocks of rows), as other writers do: those fields
                    # are empty. Rejecting the row would drop it, and in a timesheet window
                    # delete the stored entry it repeats.
                    record += [""] * (width - len(record))
                else:
                    yield (
                        number,
                        BadRow(
                            f"expected {width} fields, found {len(record)} "
                            + (
                                "(the file ends inside this row: it was cut off)"
                                if len(record) < width
                                else "(unescaped delimiter or truncated line)"
                            ),
                            tuple(record),
                        ),
                    )
                    continue
            if cut_in_quotes:
                yield (
                    number,
                    BadRow(
                        "the file ends inside a quoted field of this row: it was cut off",
                        tuple(record),
                    ),
                )
                continue
            yield number, record
    except UnicodeDecodeError:
        raise SourceError(table.file_name, not_utf8_message(Path(fh.name))) from None
    except csv.Error as exc:
        raise SourceError(table.file_name, f"malformed CSV at row {number + 1}: {exc}") from None
    finally:
        fh.close()
