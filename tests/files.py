"""Build small export files and legacy databases in code, from the column registry."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import openpyxl

from tickets.columns import ENTITIES


def headers(entity: str) -> list[str]:
    return [c.header for c in ENTITIES[entity].columns]


def legacy_names(entity: str) -> list[str]:
    """Legacy SQLite column names: snake_case aliases for comments, headers elsewhere."""
    snake = entity == "comments"
    return [
        c.aliases[0] if c.aliases else (c.field if snake else c.header)
        for c in ENTITIES[entity].columns
    ]


def _ordered(entity: str, row: dict[str, Any], names: list[str] | None = None) -> list[Any]:
    """Row given by field name or header -> values in header order."""
    cols = ENTITIES[entity].columns
    return [row.get(c.field, row.get(c.header)) for c in cols]


def write_xlsx(
    path: Path, entity: str, rows: list[dict[str, Any]], extra_headers: list[str] | None = None
) -> Path:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Export")
    ws.append(headers(entity) + (extra_headers or []))
    for row in rows:
        ws.append(_ordered(entity, row))
    wb.save(path)
    return path


def write_csv(
    path: Path,
    entity: str,
    rows: list[dict[str, Any]],
    bom: bool = True,
    encoding: str | None = None,
) -> Path:
    """As the export writes it; `encoding` (e.g. cp1252, Excel's plain CSV) overrides UTF-8."""
    with path.open("w", encoding=encoding or ("utf-8-sig" if bom else "utf-8"), newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers(entity))
        for row in rows:
            writer.writerow(["" if v is None else v for v in _ordered(entity, row)])
    return path


def write_legacy(path: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """tables: entity name -> rows (by field name); stored as TEXT like pandas would."""
    conn = sqlite3.connect(path)
    for entity, rows in tables.items():
        names = legacy_names(entity)
        table = ENTITIES[entity].legacy_table
        conn.execute(f'CREATE TABLE "{table}" (' + ", ".join(f'"{n}" TEXT' for n in names) + ")")
        conn.executemany(
            f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(names))})',
            [_ordered(entity, r) for r in rows],
        )
    conn.commit()
    conn.close()
    return path


def ticket(n: int, **over: Any) -> dict[str, Any]:
    row = {
        "ticket_id": n,
        "created_at": "2025-07-03 11:13:00",
        "status": "Closed",
        "team": "Cloud - Zelda",
        "category": "Support Tickets",
        "sla_met": "yes",
        "title": f"Ticket {n}",
    }
    row.update(over)
    return row


def comment(n: int, ticket_id: int, **over: Any) -> dict[str, Any]:
    row = {
        "comment_id": n,
        "ticket_id": ticket_id,
        "text": f"<p>Comment {n}</p>",
        "user_name": "Ann Agent",
        "created_at": "2025-07-04 09:00:00",
        "comment_type": "comments",
    }
    row.update(over)
    return row


def timesheet(n: int, day: str, crm: int = 0, **over: Any) -> dict[str, Any]:
    row = {
        "user_full_name": "Ann Agent",
        "username": "aagent",
        "description": f"work {n}",
        "work_date": day,
        "hours": "1.5",
        "crm_id": crm,
    }
    row.update(over)
    return row
