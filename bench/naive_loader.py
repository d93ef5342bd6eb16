"""Reference for bench/load.py: the same conversion, then one INSERT per row (the naive way)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings")
django.setup()

from django.apps import apps  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from tickets.columns import ENTITIES  # noqa: E402
from tickets.readers.sqlite import read_sqlite  # noqa: E402
from tickets.staging import convert_row, map_headers  # noqa: E402


def main(path: str) -> None:
    for table in read_sqlite(Path(path)):
        entity = ENTITIES[table.entity_hint]
        mapping = map_headers(entity, table.headers, table.name)
        db_table = apps.get_model(entity.model_name)._meta.db_table
        source = [c.field for c in entity.columns]
        derived = [d.name for d in entity.derived]
        every = source + derived
        updates = ", ".join(f'"{f}" = EXCLUDED."{f}"' for f in every if f != entity.key)
        action = "NOTHING" if entity.window_replace else f"UPDATE SET {updates}"
        # One INSERT per row; derived columns by the registry's SQL, as in the pipeline.
        select = ", ".join(f'%s::{c.pg_type} AS "{c.field}"' for c in entity.columns)
        exprs = "".join(f", {d.sql()}" for d in entity.derived)
        cols = ", ".join(f'"{f}"' for f in every)
        sql = (
            f"INSERT INTO {db_table} ({cols}) SELECT s.*{exprs} FROM (SELECT {select}) s "
            f'ON CONFLICT ("{entity.key}") DO {action}'
        )
        with transaction.atomic(), connection.cursor() as cursor:
            for _number, values in table.rows:
                row, _issues = convert_row(mapping, values)
                if row is not None:
                    cursor.execute(sql, [row[f] for f in source])


if __name__ == "__main__":
    main(sys.argv[1])
