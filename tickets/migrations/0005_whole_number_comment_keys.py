"""Quality and sentiment keys written '7001.0' (a float id in a pandas TEXT column) become
'7001', as the loader now reads them. Where several spellings of one id were stored, the row
loaded last is kept."""

from django.db import migrations

WHOLE = r"comment_key ~ '^-?[0-9]+\.0+$'"
NORMAL = f"CASE WHEN {WHOLE} THEN split_part(comment_key, '.', 1) ELSE comment_key END"


def normalise(table: str) -> list[str]:
    return [
        f"""
        DELETE FROM {table} WHERE id IN (
            SELECT id FROM (
                SELECT id, row_number() OVER (
                    PARTITION BY {NORMAL} ORDER BY coalesce(changed_run_id, 0) DESC, id DESC
                ) AS rank
                FROM {table}
                WHERE {NORMAL} IN (SELECT split_part(comment_key, '.', 1) FROM {table} WHERE {WHOLE})
            ) ranked
            WHERE rank > 1
        )
        """,
        f"UPDATE {table} SET comment_key = split_part(comment_key, '.', 1) WHERE {WHOLE}",
    ]


#: The metric facts were built from the old keys: mark them stale (the beat rebuilds them).
MARK_FACTS_STALE = """
DO $$ BEGIN
    IF to_regclass('metric_settings') IS NOT NULL THEN
        UPDATE metric_settings SET facts_built_at = NULL;
    END IF;
END $$
"""


class Migration(migrations.Migration):
    dependencies = [("tickets", "0004_timesheet_fingerprint_unique_constraint")]

    operations = [
        migrations.RunSQL(statement, migrations.RunSQL.noop)
        for table in ("tickets_commentquality", "tickets_commentsentiment")
        for statement in normalise(table)
    ] + [migrations.RunSQL(MARK_FACTS_STALE, migrations.RunSQL.noop)]
