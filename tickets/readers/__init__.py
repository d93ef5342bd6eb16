"""Readers stream raw rows with their source row numbers; they never type values.

`open_tables(path)` picks the reader from the file's content (not its name) and yields
`RawTable`s: one for an export file, one per legacy table for a SQLite database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tickets.readers.base import RawTable, SourceError, sniff_kind

__all__ = ["RawTable", "SourceError", "open_tables", "sniff_kind"]


def open_tables(path: str | Path, kind: str | None = None) -> Iterator[RawTable]:
    """The tables in a source file; raises SourceError for a file that cannot be read."""
    path = Path(path)
    kind = kind or sniff_kind(path)
    if kind == "xlsx":
        from tickets.readers.xlsx import read_xlsx

        yield read_xlsx(path)
    elif kind == "csv":
        from tickets.readers.csv import read_csv

        yield read_csv(path)
    elif kind == "sqlite":
        from tickets.readers.sqlite import read_sqlite

        yield from read_sqlite(path)
    else:  # pragma: no cover - sniff_kind raises first
        raise SourceError(path.name, f"unsupported file kind {kind!r}")
