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
from tickets.pipeline import _staging_sql, convert_row, map_headers  # noqa: E402
from tickets.readers.sqlite import read_sqlite  # noqa: E402


def _typed_columns(entity):
    return [(c.field, c.pg_type) for c in entity.columns] + list(entity.derived)


def main(path: str) -> None:
    for table in read_sqlite(Path(path)):
        entity = ENTITIES[table.entity_hint]
        mapping = map_headers(entity, table.headers, table.name)
        _, fields = _staging_sql(entity)
        db_table = apps.get_model(entity.model_name)._meta.db_table
        updates = ", ".join(f'"{f}" = EXCLUDED."{f}"' for f in fields if f != entity.key)
        action = "NOTHING" if entity.window_replace else f"UPDATE SET {updates}"
        if entity.fingerprint_sql:
            # The key is computed by PostgreSQL from the typed values, as in the pipeline.
            source = [f for f in fields if f != entity.key]
            typed = dict(_typed_columns(entity))
            select = ", ".join(f'%s::{typed[f]} AS "{f}"' for f in source)
            cols = ", ".join(f'"{f}"' for f in source)
            sql = (
                f'INSERT INTO {db_table} ({cols}, "{entity.key}") '
                f"SELECT s.*, {entity.fingerprint_sql} FROM (SELECT {select}) s "
                f'ON CONFLICT ("{entity.key}") DO {action}'
            )
            fields = source
        else:
            cols = ", ".join(f'"{f}"' for f in fields)
            marks = ", ".join(["%s"] * len(fields))
            sql = (
                f"INSERT INTO {db_table} ({cols}) VALUES ({marks}) "
                f'ON CONFLICT ("{entity.key}") DO {action}'
            )
        with transaction.atomic(), connection.cursor() as cursor:
            for _number, values in table.rows:
                row, _issues = convert_row(mapping, values)
                if row is not None:
                    cursor.execute(sql, [row[f] for f in fields])


if __name__ == "__main__":
    main(sys.argv[1])
