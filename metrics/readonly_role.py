"""The read-only PostgreSQL role Grafana connects as (SPEC §6), and the platform views it reads.

Grafana may only SELECT what the metric SQL reads (`metrics.registry.METRIC_RELATIONS`: the metric
views, facts and the one-row `metric_settings`) and the `platform_*` views defined here over the
operations records (imports, backups, restore drills, health snapshots, benchmarks). A view runs
with its owner's rights, so the role reads those rows without any grant on the base tables.

`ensure_readonly_role` is idempotent; compose runs it (`manage.py create_readonly_role`) after
every `migrate`, because a migration that recreates a view drops the grants on it.
"""

from __future__ import annotations

from django.db import connections, transaction

from metrics.registry import METRIC_RELATIONS

#: Platform views: name -> SELECT. Explicit columns only (no `*`), so adding a model field never
#: breaks them and free-text error columns are shortened for dashboards.
PLATFORM_VIEWS: dict[str, str] = {
    "platform_import_runs": """
SELECT r.id, r.entity, r.source_kind, r.file_name, r.status, r.dry_run,
       r.created_at, r.started_at, r.finished_at,
       coalesce(r.finished_at, r.started_at, r.created_at) AS at,
       r.duration_s, r.rows_read, r.rows_inserted, r.rows_updated, r.rows_unchanged,
       r.rows_deleted, r.rows_rejected, r.rows_warned, r.window_start, r.window_end,
       left(r.error_summary, 300) AS error_summary
FROM tickets_importrun r""",
    "platform_backups": """
SELECT b.id, b.started_at, b.finished_at, b.status, b.reason, b.size_bytes, b.duration_s,
       b.sha256, left(b.error, 300) AS error
FROM ops_backup b""",
    "platform_restore_drills": """
SELECT d.id, d.backup_id, d.started_at, d.finished_at, d.passed, d.recovery_time_s,
       left(d.error, 300) AS error
FROM ops_restoredrill d""",
    "platform_health_snapshots": """
SELECT h.id, h.taken_at, h.overall
FROM ops_healthsnapshot h""",
    "platform_health_checks": """
SELECT h.id AS snapshot_id, h.taken_at, c.value ->> 'name' AS name,
       c.value ->> 'status' AS status, left(c.value ->> 'message', 300) AS message
FROM ops_healthsnapshot h
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(h.checks) = 'array' THEN h.checks ELSE '[]'::jsonb END
) AS c(value)""",
    "platform_benchmark_runs": """
SELECT r.id, r.started_at, r.runs, r.warmup, r.total_ms, r.budget_ms, r.passed
FROM ops_benchmarkrun r""",
    "platform_benchmark_results": """
SELECT x.run_id, r.started_at, r.budget_ms, x.metric_id, x.slug, x.median_ms, x.p95_ms,
       x.max_ms
FROM ops_benchmarkresult x
JOIN ops_benchmarkrun r ON r.id = x.run_id""",
}


def ensure_platform_views(using: str = "default") -> None:
    """(Re)create the platform views in one transaction (drop + create: columns may change)."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for name, select in PLATFORM_VIEWS.items():
            cursor.execute(f"DROP VIEW IF EXISTS {name}")
            cursor.execute(f"CREATE VIEW {name} AS {select.strip()}")


def readable_relations() -> list[str]:
    """Every relation the role may SELECT: what the metric SQL reads (the registry's
    METRIC_RELATIONS) and the platform views. Nothing else, whatever else exists."""
    return sorted({*METRIC_RELATIONS, *PLATFORM_VIEWS})


def ensure_readonly_role(role: str, password: str | None, using: str = "default") -> list[str]:
    """Create or update the login role and grant it SELECT on the views only; returns them.

    The role is NOSUPERUSER/NOCREATEDB/NOCREATEROLE, read-only by default, with a statement
    timeout and JIT off, and every other privilege it may have had in this schema is revoked first.
    """
    if not role or not role.replace("_", "").isalnum():
        raise ValueError(f"invalid role name {role!r}: use letters, digits and underscores")
    connection = connections[using]
    q = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        ensure_platform_views(using)
        relations = readable_relations()
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        verb = "ALTER" if cursor.fetchone() else "CREATE"
        options = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        if password:
            cursor.execute(f"{verb} ROLE {q(role)} {options} PASSWORD %s", [password])
        else:
            cursor.execute(f"{verb} ROLE {q(role)} {options}")
        cursor.execute(f"ALTER ROLE {q(role)} SET default_transaction_read_only = on")
        cursor.execute(f"ALTER ROLE {q(role)} SET statement_timeout = '30s'")
        # Dashboard queries are short; JIT compilation alone can cost ~1 s when the planner
        # overestimates a join (seen on 5.5 at 10x scale), so it is off for this role.
        cursor.execute(f"ALTER ROLE {q(role)} SET jit = off")
        cursor.execute("SELECT current_database(), current_schema()")
        database, schema = cursor.fetchone()
        cursor.execute(f"GRANT CONNECT ON DATABASE {q(database)} TO {q(role)}")
        cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {q(schema)} FROM {q(role)}")
        cursor.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q(schema)} FROM {q(role)}")
        cursor.execute(f"REVOKE CREATE ON SCHEMA {q(schema)} FROM {q(role)}")
        cursor.execute(f"GRANT USAGE ON SCHEMA {q(schema)} TO {q(role)}")
        for relation in relations:
            cursor.execute(f"GRANT SELECT ON {q(relation)} TO {q(role)}")
    return relations
