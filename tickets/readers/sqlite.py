"""Legacy SQLite databases built by pandas: one RawTable per known legacy table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from tickets.columns import ENTITIES, LEGACY_ORDER
from tickets.readers.base import RawTable, SourceError

LEGACY_TABLES = {ENTITIES[name].legacy_table: name for name in LEGACY_ORDER}
HISTORY_TABLE = "import_metadata"
FETCH = 5000
_TABLE_OF: dict[int, str] = {}  # cursor -> table, to re-read leniently after a decode error


def connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise SourceError(path.name, f"not a readable SQLite database ({exc})") from None
    return conn


def present_tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def legacy_tables(conn: sqlite3.Connection, path: Path) -> tuple[list[str], set[str]]:
    """(the known legacy tables present, in load order; every table present).

    The one test of "is this a legacy database" (the reader, migrate_legacy and an upload's
    progress sizes all use it): a file with neither a known table nor the import history is
    refused with a SourceError that names what was expected.
    """
    present = present_tables(conn)
    known = [t for t in LEGACY_TABLES if t in present]
    if not known and HISTORY_TABLE not in present:
        raise SourceError(
            path.name,
            "no legacy tables found (expected some of: "
            + ", ".join([*LEGACY_TABLES, HISTORY_TABLE])
            + ")",
        )
    return known, present


def read_sqlite(path: Path, tables: list[str] | None = None) -> Iterator[RawTable]:
    """Every known legacy table present (in load order); refuses a file with none of them."""
    conn = connect(path)
    try:
        known, _ = legacy_tables(conn, path)
    except SourceError:
        conn.close()
        raise
    for table in known:
        if tables and LEGACY_TABLES[table] not in tables and table not in tables:
            continue
        yield table_reader(conn, path, table)


def table_reader(conn: sqlite3.Connection, path: Path, table: str) -> RawTable:
    try:
        total = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        cursor = conn.execute(f'SELECT * FROM "{table}"{_order(conn, table)}')
    except sqlite3.DatabaseError as exc:
        raise SourceError(path.name, f"table {table}: cannot be read ({exc})") from None
    _TABLE_OF[id(cursor)] = table
    headers = [d[0] for d in cursor.description]
    return RawTable(
        name=table,
        headers=headers,
        rows=_rows(cursor),
        total=total,
        file_name=path.name,
        entity_hint=LEGACY_TABLES.get(table),
        float_columns=float_columns(conn, table),
    )


def _order(conn: sqlite3.Connection, table: str) -> str:
    """Rows in insertion order (rowid); a WITHOUT ROWID table has only its key order."""
    try:
        conn.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
    except sqlite3.OperationalError:
        return ""
    return " ORDER BY rowid"


def float_columns(conn: sqlite3.Connection, table: str) -> frozenset[str]:
    """Columns that can hold a whole-number REAL (12.0): those with REAL or no type affinity.

    SQLite converts numbers to text in TEXT columns and whole REALs to integers in INTEGER and
    NUMERIC ones, so only these can hand Python a float like 12.0.
    """
    found = set()
    for _cid, name, declared, *_ in conn.execute(f'PRAGMA table_info("{table}")'):
        kind = (declared or "").upper()
        if "INT" in kind or any(t in kind for t in ("CHAR", "CLOB", "TEXT")):
            continue
        if not kind or "BLOB" in kind or any(t in kind for t in ("REAL", "FLOA", "DOUB")):
            found.add(name)
    return frozenset(found)


def _rows(cursor: sqlite3.Cursor) -> Iterator[tuple[int, list]]:
    number = 0
    while True:
        try:
            batch = cursor.fetchmany(FETCH)
        except sqlite3.DatabaseError as exc:
            if "decode" not in str(exc):
                raise _damaged(cursor, number, exc) from None
            # Legacy text that is not UTF-8: re-read this table with replacement characters.
            yield from _rows_lenient(cursor, number)
            return
        if not batch:
            return
        for row in batch:
            number += 1
            yield number, list(row)


def _damaged(cursor: sqlite3.Cursor, done: int, exc: Exception) -> SourceError:
    table = _TABLE_OF.get(id(cursor), "?")
    return SourceError(
        f"table {table}", f"cannot be read after row {done} ({exc}): the database file is damaged"
    )


def _rows_lenient(cursor: sqlite3.Cursor, done: int) -> Iterator[tuple[int, list]]:
    conn = cursor.connection
    conn.text_factory = lambda b: b.decode("utf-8", errors="replace")
    table = _TABLE_OF[id(cursor)]
    rest = conn.execute(f'SELECT * FROM "{table}"{_order(conn, table)} LIMIT -1 OFFSET {done}')
    number = done
    while batch := rest.fetchmany(FETCH):
        for row in batch:
            number += 1
            yield number, list(row)
