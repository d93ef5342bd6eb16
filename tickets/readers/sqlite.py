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


def connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise SourceError(path.name, f"not a readable SQLite database ({exc})") from None
    # Legacy text may hold bytes that are not UTF-8: keep going with replacement characters.
    conn.text_factory = lambda b: b.decode("utf-8", errors="replace")
    return conn


def present_tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def read_sqlite(path: Path, tables: list[str] | None = None) -> Iterator[RawTable]:
    """Every known legacy table present (in load order); refuses a file with none of them."""
    conn = connect(path)
    present = present_tables(conn)
    known = [t for t in LEGACY_TABLES if t in present]
    if not known and HISTORY_TABLE not in present:
        conn.close()
        raise SourceError(
            path.name,
            "no legacy tables found (expected some of: "
            + ", ".join([*LEGACY_TABLES, HISTORY_TABLE])
            + ")",
        )
    for table in known:
        if tables and LEGACY_TABLES[table] not in tables and table not in tables:
            continue
        yield table_reader(conn, path, table)


def table_reader(conn: sqlite3.Connection, path: Path, table: str) -> RawTable:
    total = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
    headers = [d[0] for d in cursor.description]
    return RawTable(
        name=table,
        headers=headers,
        rows=_rows(cursor),
        total=total,
        file_name=path.name,
        entity_hint=LEGACY_TABLES.get(table),
    )


def _rows(cursor: sqlite3.Cursor) -> Iterator[tuple[int, list]]:
    number = 0
    while batch := cursor.fetchmany(FETCH):
        for row in batch:
            number += 1
            yield number, list(row)
