"""The load pipeline (SPEC §4.2): one path for XLSX, CSV and legacy SQLite.

read -> convert/validate (columns registry + value parsers) -> COPY into a temp staging table
-> one set-based merge per entity -> ImportRun counts and ImportIssue rows, in one transaction.

Memory stays flat: rows are converted and copied in batches; only counters and a short sample
of error reasons are kept in Python.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter

from tickets import values as v
from tickets.columns import ENTITIES, Column, Entity, detect_entity, header_lookup
from tickets.models import ImportIssue, ImportRun
from tickets.readers import RawTable, SourceError, open_tables, sniff_kind
from tickets.readers.base import BadRow

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None], None]
ISSUE_COLUMNS = (
    "run_id",
    "entity",
    "row_number",
    "natural_key",
    "column",
    "raw_value",
    "reason",
    "severity",
)
ERROR, WARNING = ImportIssue.Severity.ERROR.value, ImportIssue.Severity.WARNING.value
PROGRESS_EVERY_S = 1.0


class ImportFailed(Exception):
    """The run failed as a whole; nothing was written (the message says why)."""


class _DryRunRollback(Exception):
    pass


@dataclass
class Counts:
    read: int = 0
    staged: int = 0
    rejected: int = 0
    warned: int = 0
    superseded: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    orphans: int = 0
    reasons: Counter = field(default_factory=Counter)  # rejection reasons for the summary


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def advisory_key(entity: str) -> int:
    """A stable 32-bit lock id per entity: two runs never write the same entity at once."""
    return zlib.crc32(f"servicedesk-import:{entity}".encode())


# --- column mapping ---------------------------------------------------------------------------


@dataclass
class Mapping:
    entity: Entity
    positions: list[tuple[int, Column]]  # source column index -> registry column
    file_issues: list[tuple[str, str]]  # (column, reason) warnings about the header row

    def __post_init__(self) -> None:
        # Precomputed for the per-cell hot loop in convert_row.
        self.plan = [(i, c.parser, c.field, c.required, c.header) for i, c in self.positions]
        mapped = {c.field for _, c in self.positions}
        self.absent = [c.field for c in self.entity.columns if c.field not in mapped]


def map_headers(entity: Entity, headers: list[str], file_name: str) -> Mapping:
    """Match the header row to the registry; a missing required column refuses the file."""
    lookup = header_lookup(entity)
    positions: list[tuple[int, Column]] = []
    seen: set[str] = set()
    issues: list[tuple[str, str]] = []
    for index, header in enumerate(headers):
        if header is None or not str(header).strip():
            continue
        column = lookup.get(str(header).strip().lstrip("\ufeff").strip().casefold())
        if column is None:
            issues.append((str(header), "unknown column ignored"))
        elif column.field in seen:
            issues.append((str(header), f"duplicate column for {column.header}: first one used"))
        else:
            seen.add(column.field)
            positions.append((index, column))
    missing_required = [c.header for c in entity.columns if c.required and c.field not in seen]
    if missing_required:
        raise SourceError(
            file_name,
            f"missing required column(s) for {entity.name}: " + ", ".join(missing_required),
        )
    for c in entity.columns:
        if c.field not in seen:
            issues.append((c.header, "missing optional column: loaded as NULL"))
    return Mapping(entity, positions, issues)


# --- conversion --------------------------------------------------------------------------------


def _raw_text(raw: Any) -> str:
    """The raw value as the user would recognise it in the file (12.0 from Excel is 12)."""
    if raw is None:
        return ""
    if type(raw) is float and raw.is_integer():
        return str(int(raw))
    return str(raw)[:500]


def convert_row(
    mapping: Mapping, values: list[Any]
) -> tuple[dict[str, Any] | None, list[tuple[str, str, str, str]]]:
    """Typed row (or None when rejected) and its issues as (severity, column, raw, reason)."""
    row: dict[str, Any] = dict.fromkeys(mapping.absent)
    errors: list[tuple[str, str, str, str]] = []
    warnings: list[tuple[str, str, str, str]] = []
    width = len(values)
    for index, parser, name, required, header in mapping.plan:
        raw = values[index] if index < width else None
        try:
            value, warning = parser(raw)
        except v.InvalidValue as exc:
            if required:
                errors.append((ERROR, header, _raw_text(raw), exc.reason))
            else:
                warnings.append((WARNING, header, _raw_text(raw), f"invalid: {exc.reason}"))
            row[name] = None
            continue
        if value is None and required:
            errors.append((ERROR, header, _raw_text(raw), warning or "required value is empty"))
        elif warning:
            warnings.append((WARNING, header, _raw_text(raw), warning))
        row[name] = value
    if errors:
        return None, errors
    if mapping.entity.derive:
        mapping.entity.derive(row)
    return row, warnings


# --- the run ----------------------------------------------------------------------------------


class Progress:
    """Committed progress updates from a second connection, so a watcher sees them mid-run."""

    def __init__(self, run: ImportRun, total: int | None, callback: ProgressCallback | None):
        self.run_id, self.total, self.callback = run.pk, total, callback
        self.last = 0.0
        self._conn = None

    def update(self, done: int, force: bool = False) -> None:
        if self.callback:
            self.callback(done, self.total)
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        if self._conn is None:
            self._conn = connections.create_connection("default")
        with self._conn.cursor() as cur:
            cur.execute(
                "UPDATE tickets_importrun SET progress_rows = %s, progress_total = %s, "
                "heartbeat_at = now() WHERE id = %s",
                [done, self.total, self.run_id],
            )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _staging_sql(entity: Entity) -> tuple[str, list[str]]:
    cols = [(c.field, c.pg_type) for c in entity.columns] + list(entity.derived)
    ddl = ", ".join(f'"{name}" {pg_type}' for name, pg_type in cols)
    return f"CREATE TEMP TABLE stg (row_number integer, {ddl}) ON COMMIT DROP", [
        name for name, _ in cols
    ]


def fingerprint_of(entity: Entity, row: dict[str, Any]) -> str:
    """The key of one keyless row, by the same SQL the staging step uses (row-by-row paths)."""
    cols = [(c.field, c.pg_type) for c in entity.columns]
    select = ", ".join(f'%s::{pg_type} AS "{name}"' for name, pg_type in cols)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {entity.fingerprint_sql} FROM (SELECT {select}) s",
            [row.get(name) for name, _ in cols],
        )
        return cursor.fetchone()[0]


def _issue_rows(
    run_id: int, entity: str, number: int | None, key: str, issues: list[tuple[str, str, str, str]]
) -> Iterator[tuple]:
    for severity, column, raw, reason in issues:
        yield (run_id, entity, number, key, column, raw, reason, severity)


def _copy(cursor: Any, table: str, columns: list[str] | tuple[str, ...], rows: list[tuple]) -> None:
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    # A queued writer sends to the server from a thread while Python converts the next rows.
    copy_sql = f"COPY {table} ({names}) FROM STDIN"
    with cursor.cursor.copy(copy_sql, writer=QueuedLibpqWriter(cursor.cursor)) as copy:
        for row in rows:
            copy.write_row(row)


def stage_rows(
    cursor: Any, run: ImportRun, mapping: Mapping, table: RawTable, progress: Progress
) -> Counts:
    """Convert every row and COPY the valid ones into `stg`, issues into ImportIssue."""
    entity = mapping.entity
    _, fields = _staging_sql(entity)
    key_column = next((c for c in entity.columns if c.field == entity.key), entity.columns[0])
    key_index = next((i for i, c in mapping.positions if c is key_column), None)
    counts = Counts()
    batch: list[tuple] = []
    issues: list[tuple] = list(
        _issue_rows(
            run.pk, entity.name, None, "", [(WARNING, c, "", r) for c, r in mapping.file_issues]
        )
    )
    size = settings.IMPORT_BATCH_ROWS
    run_id, entity_name = run.pk, entity.name
    for number, values in table.rows:
        counts.read += 1
        if isinstance(values, BadRow):
            counts.rejected += 1
            counts.reasons[values.reason.split(" (")[0]] += 1
            issues.append((run_id, entity_name, number, "", "", "", values.reason, ERROR))
        else:
            row, row_issues = convert_row(mapping, values)
            if row is None:
                counts.rejected += 1
                for _, column, _, reason in row_issues:
                    counts.reasons[f"{column}: {reason}"] += 1
            else:
                batch.append((number, *[row[f] for f in fields]))
                if row_issues:
                    counts.warned += 1
            if row_issues:
                has_key = key_index is not None and key_index < len(values)
                key = _raw_text(values[key_index]) if has_key else ""
                issues.extend(_issue_rows(run_id, entity_name, number, key, row_issues))
        if len(batch) >= size or len(issues) >= size:
            _copy(cursor, "stg", ["row_number", *fields], batch)
            _copy(cursor, "tickets_importissue", ISSUE_COLUMNS, issues)
            batch.clear()
            issues.clear()
            progress.update(counts.read)
    _copy(cursor, "stg", ["row_number", *fields], batch)
    _copy(cursor, "tickets_importissue", ISSUE_COLUMNS, issues)
    progress.update(counts.read, force=True)
    counts.staged = counts.read - counts.rejected
    return counts


def drop_superseded(cursor: Any, run: ImportRun, entity: Entity, counts: Counts) -> None:
    """Duplicate keys inside one file: the last occurrence wins, earlier ones are warnings."""
    key = entity.key
    cursor.execute(
        f"""
        WITH ranked AS (
            SELECT row_number, "{key}"::text AS k,
                   max(row_number) OVER (PARTITION BY "{key}") AS winner
            FROM stg
        ), gone AS (
            DELETE FROM stg USING ranked
            WHERE stg.row_number = ranked.row_number AND ranked.row_number <> ranked.winner
            RETURNING ranked.row_number, ranked.k, ranked.winner
        ), logged AS (
            INSERT INTO tickets_importissue ({", ".join(f'"{c}"' for c in ISSUE_COLUMNS)})
            SELECT %s, %s, row_number, left(k, 200), %s, k,
                   'duplicate key: superseded by row ' || winner, %s
            FROM gone
            RETURNING row_number
        )
        SELECT count(*) FROM logged
        """,
        [run.pk, entity.name, _key_header(entity), WARNING],
    )
    counts.superseded = cursor.fetchone()[0]
    counts.staged -= counts.superseded


def _key_header(entity: Entity) -> str:
    return next((c.header for c in entity.columns if c.field == entity.key), entity.key)


def merge(cursor: Any, run: ImportRun, entity: Entity, counts: Counts) -> None:
    """Upsert by natural key; a row equal to the stored one is not written (unchanged)."""
    model_table = _table(entity)
    _, fields = _staging_sql(entity)
    cols = ", ".join(f'"{f}"' for f in fields)
    if entity.window_replace:
        _merge_window(cursor, run, entity, counts, model_table, cols)
        return
    updates = ", ".join(f'"{f}" = EXCLUDED."{f}"' for f in fields if f != entity.key)
    stored = ", ".join(f't."{f}"' for f in fields)
    incoming = ", ".join(f'EXCLUDED."{f}"' for f in fields)
    cursor.execute(
        f"""
        WITH up AS (
            INSERT INTO {model_table} AS t ({cols}, inserted_run_id, changed_run_id)
            SELECT {cols}, %s, %s FROM stg
            ON CONFLICT ("{entity.key}") DO UPDATE
               SET {updates}, changed_run_id = EXCLUDED.changed_run_id
               WHERE ({stored}) IS DISTINCT FROM ({incoming})
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
        """,
        [run.pk, run.pk],
    )
    counts.inserted, counts.updated = cursor.fetchone()
    counts.unchanged = counts.staged - counts.inserted - counts.updated


def _merge_window(
    cursor: Any, run: ImportRun, entity: Entity, counts: Counts, model_table: str, cols: str
) -> None:
    """Timesheets: the file is the truth inside its [min, max] work_date window."""
    window = entity.window_field
    if settings.TIMESHEET_WINDOW_REPLACE:
        cursor.execute(
            f"""
            DELETE FROM {model_table} t
            USING (SELECT min("{window}") lo, max("{window}") hi FROM stg) w
            WHERE t."{window}" BETWEEN w.lo AND w.hi
              AND NOT EXISTS (SELECT 1 FROM stg s WHERE s."{entity.key}" = t."{entity.key}")
            """
        )
        counts.deleted = cursor.rowcount
    cursor.execute(
        f"""
        INSERT INTO {model_table} ({cols}, inserted_run_id, changed_run_id)
        SELECT {cols}, %s, %s FROM stg
        ON CONFLICT ("{entity.key}") DO NOTHING
        """,
        [run.pk, run.pk],
    )
    counts.inserted = cursor.rowcount
    counts.unchanged = counts.staged - counts.inserted


def _table(entity: Entity) -> str:
    from django.apps import apps

    return apps.get_model(entity.model_name)._meta.db_table


def count_orphans(cursor: Any, entity: Entity) -> int:
    """Rows whose ticket reference names no loaded ticket (kept; joins are logical)."""
    if entity.name not in {"comments", "timesheets"}:
        return 0
    cursor.execute(
        "SELECT count(*) FROM stg s WHERE s.ticket_id IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM tickets_ticket t WHERE t.ticket_id = s.ticket_id)"
    )
    return cursor.fetchone()[0]


def data_window(cursor: Any, entity: Entity) -> tuple[Any, Any]:
    if not entity.window_field:
        return None, None
    cursor.execute(f'SELECT min("{entity.window_field}"), max("{entity.window_field}") FROM stg')
    lo, hi = cursor.fetchone()
    if hasattr(lo, "date"):
        lo, hi = timezone.localdate(lo), timezone.localdate(hi)
    return lo, hi


def refresh_derived(entity: str | None = None) -> float | None:
    """Refresh the metric facts after a successful load (SPEC §5.3).

    With `entity` (inside a run, `stg` still present) only what the run's rows can change is
    recomputed; without it (migrate_legacy, after all tables) everything is rebuilt.
    """
    try:
        from metrics.facts import refresh_facts
    except ImportError:  # metrics app without facts (early migrations): nothing to refresh
        return None
    return refresh_facts(entity=entity)


def _save_counts(run: ImportRun, counts: Counts, window: tuple[Any, Any]) -> None:
    run.rows_read = counts.read
    run.rows_inserted = counts.inserted
    run.rows_updated = counts.updated
    run.rows_unchanged = counts.unchanged
    run.rows_deleted = counts.deleted
    run.rows_rejected = counts.rejected
    run.rows_warned = counts.warned
    run.rows_superseded = counts.superseded
    run.orphans = counts.orphans
    run.window_start, run.window_end = window
    run.progress_rows = counts.read


def _summary(counts: Counts) -> str:
    top = "; ".join(f"{reason} ({n})" for reason, n in counts.reasons.most_common(5))
    return top


def load_table(
    run: ImportRun,
    table: RawTable,
    entity: Entity,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    refresh: bool = True,
) -> ImportRun:
    """Load one raw table as `run`; returns the run with its final status and counts.

    `refresh=False` leaves the metric facts to the caller (migrate_legacy refreshes once after
    its last table instead of once per table).

    Raises ImportFailed (run marked failed, data untouched) when the file cannot be loaded or
    too many rows are rejected. Per-row problems never raise: they become ImportIssue rows.
    """
    started = time.monotonic()
    run.entity, run.dry_run = entity.name, dry_run
    run.status, run.started_at = ImportRun.Status.RUNNING, timezone.now()
    run.save()
    tracker = Progress(run, table.total, progress)
    try:
        mapping = map_headers(entity, table.headers, table.file_name or run.file_name)
        if not dry_run and entity.window_replace and settings.TIMESHEET_WINDOW_REPLACE:
            backup_before_delete(run)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key(entity.name)])
            ddl, _ = _staging_sql(entity)
            cursor.execute("DROP TABLE IF EXISTS stg")
            cursor.execute(ddl)
            counts = stage_rows(cursor, run, mapping, table, tracker)
            phases = {"stage": time.monotonic() - started}
            if entity.fingerprint_sql:
                cursor.execute(f'UPDATE stg SET "{entity.key}" = {entity.fingerprint_sql}')
            cursor.execute("ANALYZE stg")  # real row counts for the merge's join plans
            drop_superseded(cursor, run, entity, counts)
            window = data_window(cursor, entity)
            rate = counts.rejected / counts.read if counts.read else 0.0
            gate_failed = rate > settings.IMPORT_MAX_REJECT_RATE
            if not gate_failed:
                try:
                    with transaction.atomic():
                        mark = time.monotonic()
                        merge(cursor, run, entity, counts)
                        phases["merge"] = time.monotonic() - mark
                        counts.orphans = count_orphans(cursor, entity)
                        if dry_run:
                            raise _DryRunRollback
                        if refresh:
                            mark = time.monotonic()
                            refresh_derived(entity.name)
                            phases["refresh"] = time.monotonic() - mark
                except _DryRunRollback:
                    pass
            _save_counts(run, counts, window)
            run.duration_s = time.monotonic() - started
            run.finished_at = timezone.now()
            if gate_failed:
                # Keep the report (issues, counts) so the user sees why; store no data.
                run.rows_inserted = run.rows_updated = run.rows_unchanged = run.rows_deleted = 0
                run.status = ImportRun.Status.FAILED
                run.error_summary = (
                    f"{counts.rejected} of {counts.read} rows rejected ({rate:.1%}), over the "
                    f"{settings.IMPORT_MAX_REJECT_RATE:.0%} limit (IMPORT_MAX_REJECT_RATE): "
                    f"nothing was loaded. Most common: {_summary(counts)}"
                )
            elif dry_run:
                run.status = ImportRun.Status.PREVIEWED
            else:
                run.status = ImportRun.Status.SUCCEEDED
            run.save()
            mark = time.monotonic()
        log.info("run %s %s phases %s", run.pk, entity.name, phases)
        log.info("run %s commit %.2fs", run.pk, time.monotonic() - mark)
    except SourceError as exc:
        _fail(run, started, str(exc))
        raise ImportFailed(str(exc)) from exc
    except Exception as exc:
        _fail(run, started, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        tracker.close()
    if run.status == ImportRun.Status.FAILED:
        raise ImportFailed(run.error_summary)
    return run


def backup_before_delete(run: ImportRun) -> None:
    """A verified backup before an import that can delete rows, when the setting asks for one.

    Taken before the run's transaction opens (pg_dump would otherwise wait on its locks); if it
    fails, the import does not start.
    """
    from ops.backups import OpsError, backup_before_destructive_import

    try:
        taken = backup_before_destructive_import()
    except OpsError as exc:
        raise SourceError(run.file_name, f"backup before the import failed: {exc}") from exc
    if taken is not None:
        run.notes = f"backup #{taken.pk} taken before this import ({taken.path})"
        run.save(update_fields=["notes"])


def _fail(run: ImportRun, started: float, message: str) -> None:
    ImportRun.objects.filter(pk=run.pk).update(
        status=ImportRun.Status.FAILED,
        error_summary=message[:4000],
        finished_at=timezone.now(),
        duration_s=time.monotonic() - started,
    )
    run.refresh_from_db()


def previous_same_file(sha256: str, entity: str | None) -> ImportRun | None:
    runs = ImportRun.objects.filter(
        file_sha256=sha256, status=ImportRun.Status.SUCCEEDED, dry_run=False
    )
    if entity:
        runs = runs.filter(entity=entity)
    return runs.order_by("-finished_at").first()


def import_file(
    path: str | Path,
    *,
    entity: str | None = None,
    dry_run: bool = False,
    run: ImportRun | None = None,
    user: Any = None,
    progress: ProgressCallback | None = None,
) -> ImportRun:
    """One export file (XLSX or CSV) through the pipeline: the admin button and import_file."""
    path = Path(path)
    run = run or ImportRun(file_name=path.name, created_by=user)
    try:
        kind = sniff_kind(path)
        if kind == "sqlite":
            raise SourceError(path.name, "a SQLite database: load it with migrate_legacy")
        run.source_kind = kind
        run.file_sha256 = run.file_sha256 or sha256_of(path)
        table = next(open_tables(path, kind))
        chosen = ENTITIES[entity] if entity else detect_entity(table.headers)
        if chosen is None:
            raise SourceError(
                path.name,
                "the header row matches no entity (tickets, comments, timesheets, "
                "comment_quality, comment_sentiment, roster): check the required columns",
            )
    except SourceError as exc:
        run.status = ImportRun.Status.FAILED
        run.error_summary = str(exc)
        run.finished_at = timezone.now()
        run.save()
        raise ImportFailed(str(exc)) from exc
    run.same_file_as = previous_same_file(run.file_sha256, chosen.name)
    return load_table(run, table, chosen, dry_run=dry_run, progress=progress)
