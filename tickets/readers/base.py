"""What every reader returns, and how a file's kind is recognised from its first bytes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SQLITE_MAGIC = b"SQLite format 3\x00"
ZIP_MAGIC = b"PK\x03\x04"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class SourceError(Exception):
    """The file as a whole cannot be loaded; nothing was written."""

    def __init__(self, file_name: str, message: str):
        super().__init__(f"{file_name}: {message}")
        self.file_name = file_name
        self.message = message


@dataclass
class RawTable:
    """One sheet, CSV file or legacy table: headers and (source row number, values) pairs."""

    name: str
    headers: list[str]
    rows: Iterator[tuple[int, list[Any]]]
    total: int | None = None  # row count when the reader knows it (progress bars)
    file_name: str = ""
    entity_hint: str | None = None  # legacy table name -> entity, when known
    # Headers of the columns that can deliver Python floats (None: any column can).
    float_columns: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    """Yielded in place of values for a row the reader itself cannot split into fields."""

    reason: str
    fields: tuple[str, ...] = ()  # what the reader did split, for the report


def sniff_kind(path: Path) -> str:
    """xlsx, csv or sqlite from the content; an empty or unreadable file is refused."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise SourceError(path.name, f"cannot open file: {exc.strerror}") from None
    if not head:
        raise SourceError(path.name, "the file is empty")
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(ZIP_MAGIC):
        return "xlsx"
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        raise SourceError(path.name, "not a valid XLSX file (it is not a zip archive)")
    if suffix in {".sqlite", ".sqlite3", ".db"}:
        raise SourceError(path.name, "not a SQLite database")
    if head.startswith(UTF16_BOMS):
        return "csv"  # Excel's "Unicode Text" and "CSV UTF-16": NUL-filled, but text
    if b"\x00" in head:
        raise SourceError(path.name, "binary content: not an XLSX, CSV or SQLite file")
    return "csv"
