"""The load pipeline (SPEC §4.2): one path for XLSX, CSV and legacy SQLite.

read -> stage (tickets.staging: raw text COPY, typed by the SQL fast path, odd rows by the value
parsers) -> duplicate keys -> reject-rate gate -> one set-based merge per entity -> ImportRun
counts and ImportIssue rows -> metric facts refreshed, all in one transaction.

Memory stays flat: rows move in batches; only counters and a short sample of error reasons are
kept in Python.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from tickets import values as v
from tickets.columns import ENTITIES, TIMESTAMP, Entity, detect_entity
from tickets.heartbeat import Heartbeat
from tickets.models import ImportRun
from tickets.readers import RawTable, SourceError, open_tables, sniff_kind
from tickets.staging import (
    ISSUE_COLUMNS,
    WARNING,
    Counts,
    map_headers,
    q,
    stage_rows,
    staging_ddl,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None], None]
PROGRESS_EVERY_S = 1.0


class ImportFailed(Exception):
    """The run failed as a whole; nothing was written (the message says why)."""


class _DryRunRollback(Exception):
    pass


class _DeleteGate(Exception):
    """The window replace would delete more than TIMESHEET_MAX_DELETE_RATE of the stored
    entries in the window: the merge is rolled back and the run fails with this message."""


# Below this many deletions the share is not checked: a small window legitimately loses most of
# a handful of entries when they are re-logged.
DELETE_GATE_MIN_ROWS = 100


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def advisory_key(entity: str) -> int:
    """A stable 32-bit lock id per entity: two runs never write the same entity at once."""
    return zlib.crc32(f"servicedesk-import:{entity}".encode())


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


def drop_superseded(cursor: Any, run: ImportRun, entity: Entity, counts: Counts) -> None:
    """Duplicate keys inside one file: the last occurrence wins, earlier ones are warnings."""
    key = entity.key
    cursor.execute(
        f"""
        WITH duplicated AS (  -- a hash aggregate: no sort of the whole file
            SELECT "{key}" AS k, max(row_number) AS winner FROM stg
            GROUP BY "{key}" HAVING count(*) > 1
        ), gone AS (
            DELETE FROM stg USING duplicated d
            WHERE stg."{key}" = d.k AND stg.row_number <> d.winner
            RETURNING stg.row_number, d.k::text AS k, d.winner
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


#: From this many rows on, a load into an empty table builds its indexes after the rows.
BULK_LOAD_MIN_ROWS = 10_000


def merge(cursor: Any, run: ImportRun, entity: Entity, counts: Counts) -> None:
    """Upsert by natural key; a row equal to the stored one is not written (unchanged)."""
    model_table = _table(entity)
    _, fields = staging_ddl(entity)
    cols = ", ".join(f'"{f}"' for f in fields)
    if counts.staged >= BULK_LOAD_MIN_ROWS and _load_into_empty(
        cursor, run, counts, model_table, cols
    ):
        return
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
            USING ({_window_sql(entity)}) w
            WHERE t."{window}" BETWEEN w.lo AND w.hi
              AND NOT EXISTS (SELECT 1 FROM stg s WHERE s."{entity.key}" = t."{entity.key}")
            """,
            [_future_limit(entity)],
        )
        counts.deleted = cursor.rowcount
        check_delete_gate(cursor, entity, counts, model_table)
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


def check_delete_gate(cursor: Any, entity: Entity, counts: Counts, model_table: str) -> None:
    """Refuse a window replace that would delete most of what is stored in the window.

    One mistyped year (2024 for 2025) in a weekly timesheet export stretches its window back a
    year, and the file, being the truth for its window, would delete every entry of that year it
    does not hold. The message names the file's earliest dates, where such a typo shows.
    """
    limit = settings.TIMESHEET_MAX_DELETE_RATE
    deleted = counts.deleted
    if limit >= 1 or deleted < DELETE_GATE_MIN_ROWS:
        return
    # What the window held before: what is left in it, plus what was just deleted (counted only
    # here, so a weekly import that deletes a few entries never pays for it).
    field = entity.window_field
    cursor.execute(
        f"""
        SELECT count(*) FROM {model_table} t, ({_window_sql(entity)}) w
        WHERE t."{field}" BETWEEN w.lo AND w.hi
        """,
        [_future_limit(entity)],
    )
    stored = cursor.fetchone()[0] + deleted
    if deleted <= limit * stored:
        return
    cursor.execute(
        f'SELECT "{field}", count(*) FROM stg WHERE "{field}" IS NOT NULL '
        "GROUP BY 1 ORDER BY 1 LIMIT 3"
    )
    earliest = ", ".join(f"{day:%Y-%m-%d} ({n} rows)" for day, n in cursor.fetchall())
    raise _DeleteGate(
        f"Replacing the file's window would delete {deleted} of the {stored} stored entries "
        f"in it ({deleted / stored:.0%}), over the {limit:.0%} limit (TIMESHEET_MAX_DELETE_RATE):"
        f" nothing was loaded. The file's earliest work dates are {earliest}; a mistyped date "
        "stretches the window back to it. Fix the date, or raise TIMESHEET_MAX_DELETE_RATE "
        "(1 turns the check off) if the export really replaces that much."
    )


def _load_into_empty(
    cursor: Any, run: ImportRun, counts: Counts, model_table: str, cols: str
) -> bool:
    """First load into an empty table: plain INSERT, indexes built afterwards, as pgloader
    does -- maintaining five indexes row by row took three times as long as building them.

    `stg` holds no duplicate keys (drop_superseded) and the table is empty, so nothing can
    conflict and the result equals the upsert's. The table stays locked until commit; it was
    empty, so no reader loses rows it could see. Returns False (nothing done) if not empty.
    """
    # Look before locking: a weekly import into a loaded table must not block readers.
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {model_table})")
    if cursor.fetchone()[0]:
        return False
    _derived("lock", cursor)  # the facts' lock first, as every refresh takes them
    cursor.execute(f"LOCK TABLE {model_table} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {model_table})")  # filled meanwhile?
    if cursor.fetchone()[0]:
        return False
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'u'",
        [model_table],
    )
    uniques = cursor.fetchall()
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = %s::regclass AND NOT indisprimary AND indexrelid NOT IN "
        "(SELECT conindid FROM pg_constraint WHERE conrelid = %s::regclass)",
        [model_table, model_table],
    )
    indexes = cursor.fetchall()
    for name, _ in uniques:
        cursor.execute(f'ALTER TABLE {model_table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    cursor.execute(
        f"INSERT INTO {model_table} ({cols}, inserted_run_id, changed_run_id) "
        f"SELECT {cols}, %s, %s FROM stg",
        [run.pk, run.pk],
    )
    counts.inserted = cursor.rowcount
    counts.unchanged = counts.staged - counts.inserted
    cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for name, definition in uniques:
        cursor.execute(f'ALTER TABLE {model_table} ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition)
    return True


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


def _window_sql(entity: Entity) -> str:
    """The file's data window (lo, hi). A date more than a day in the future (a typo, kept with
    a warning) does not stretch it: one such row would otherwise make a timesheet file the
    truth up to that date and delete every newer entry it does not hold."""
    field = entity.window_field
    return (
        f'SELECT min("{field}") AS lo, max("{field}") FILTER (WHERE "{field}" <= %s) AS hi FROM stg'
    )


def _future_limit(entity: Entity) -> dt.datetime | dt.date:
    kind = next(c.kind for c in entity.columns if c.field == entity.window_field)
    return v.future_limit(dt.datetime if kind == TIMESTAMP else dt.date)


def data_window(cursor: Any, entity: Entity) -> tuple[Any, Any]:
    if not entity.window_field:
        return None, None
    cursor.execute(_window_sql(entity), [_future_limit(entity)])
    lo, hi = cursor.fetchone()
    if hasattr(lo, "date"):
        lo, hi = timezone.localdate(lo), hi and timezone.localdate(hi)
    return lo, hi


def refresh_derived(entity: str | None = None) -> float | None:
    """Refresh the metric facts after a successful load (SPEC §5.3).

    With `entity` (inside a run, `stg` still present) only what the run's rows can change is
    recomputed; without it (migrate_legacy, after all tables) everything is rebuilt.
    """
    return _derived("refresh_facts", entity=entity)


def mark_derived_stale() -> None:
    """Rows changed outside a load (an admin edit or delete) bypass the facts' refresh: mark
    them stale in the caller's transaction, so compute() and the beat rebuild them."""
    with connection.cursor() as cursor:
        _derived("mark_stale", cursor)


def _derived(action: str, *args: Any, **kwargs: Any) -> Any:
    """metrics.facts.<action> (refresh_facts, lock, mark_stale), in the caller's transaction;
    nothing when the metrics app has no facts (early migrations)."""
    try:
        from metrics import facts
    except ImportError:
        return None
    return getattr(facts, action)(*args, **kwargs)


def _save_counts(run: ImportRun, counts: Counts, window: tuple[Any, Any]) -> None:
    for name in ImportRun.COUNT_FIELDS:  # rows_read <- counts.read ...
        setattr(run, name, getattr(counts, name.removeprefix("rows_")))
    run.orphans = counts.orphans
    run.window_start, run.window_end = window
    # The run row is saved whole at the end: the total must be the real count too, not the
    # value this object was loaded with (None), which overwrote what Progress had written.
    run.progress_rows = run.progress_total = counts.read


def where_to_look(run_id: int | None, limit: int = 3) -> str:
    """The failed run's id and its first rejected rows (row, column, raw value, reason), as
    text to append to a one-line failure message: where to look in the file and in the admin."""
    if run_id is None:
        return ""
    from tickets.models import ImportIssue

    rejected = ImportIssue.objects.filter(
        run_id=run_id, severity=ImportIssue.Severity.ERROR
    ).order_by("row_number", "pk")[:limit]
    rows = "; ".join(
        f"row {i.row_number} {i.column} {_shown(i.raw_value)}: {i.reason}" for i in rejected
    )
    return f" (import run #{run_id}{'; first rejected: ' + rows if rows else ''})"


def _shown(raw: str, width: int = 40) -> str:
    return repr(raw if len(raw) <= width else raw[: width - 1] + "…")


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
    # A side thread beats through the merge and index builds too, not only while reading.
    with Heartbeat(run.pk):
        try:
            mapping = map_headers(entity, table.headers, table.file_name or run.file_name)
            if not dry_run and entity.window_replace and settings.TIMESHEET_WINDOW_REPLACE:
                backup_before_delete(run)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key(entity.name)])
                if (
                    run.same_file_as_id is None
                    and run.file_sha256
                    and run.source_kind != ImportRun.SourceKind.SQLITE
                ):
                    # Again under the entity's lock: the same file imported at the same moment
                    # has committed by now.
                    run.same_file_as = previous_same_file(run.file_sha256, entity.name)
                counts = stage_rows(cursor, run, mapping, table, tracker)
                phases = {"stage": time.monotonic() - started}
                mark = time.monotonic()
                # Row counts and key statistics for the merge's join plans (the key is enough).
                analysed = [entity.key, *(["ticket_id"] if "ticket_id" in entity.fields else [])]
                cursor.execute(f"ANALYZE stg ({', '.join(map(q, dict.fromkeys(analysed)))})")
                drop_superseded(cursor, run, entity, counts)
                window = data_window(cursor, entity)
                phases["prepare"] = time.monotonic() - mark
                rate = counts.rejected / counts.read if counts.read else 0.0
                gate_failed = rate > settings.IMPORT_MAX_REJECT_RATE
                delete_refused = ""
                if not gate_failed:
                    try:
                        with transaction.atomic():
                            mark = time.monotonic()
                            merge(cursor, run, entity, counts)
                            phases["merge"] = time.monotonic() - mark
                            mark = time.monotonic()
                            if not dry_run:
                                # The facts' lock before reading another entity's table (the
                                # orphan count reads the tickets): a first bulk load of those
                                # holds it while it locks them, so this order cannot deadlock.
                                _derived("lock", cursor)
                            counts.orphans = count_orphans(cursor, entity)
                            phases["orphans"] = time.monotonic() - mark
                            if dry_run:
                                raise _DryRunRollback
                            if not refresh:
                                _derived("mark_stale", cursor)
                            if refresh:
                                mark = time.monotonic()
                                refresh_derived(entity.name)
                                phases["refresh"] = time.monotonic() - mark
                    except _DryRunRollback:
                        pass
                    except _DeleteGate as exc:
                        delete_refused = str(exc)
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
                elif delete_refused:
                    # The counts say what the file would have done; nothing of it was stored.
                    run.rows_inserted = run.rows_updated = run.rows_unchanged = run.rows_deleted = 0
                    run.status = ImportRun.Status.FAILED
                    run.error_summary = delete_refused
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
        except KeyboardInterrupt:
            # Ctrl-C: the transaction was rolled back; a run left 'running' would look alive
            # until the beat's stale-run check (and forever where no beat runs).
            _fail(run, started, INTERRUPTED, only_running=True)
            raise
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


INTERRUPTED = (
    "interrupted (Ctrl-C or SIGINT): the run was rolled back, nothing of it was stored; "
    "run it again"
)


def _fail(run: ImportRun, started: float, message: str, only_running: bool = False) -> None:
    runs = ImportRun.objects.filter(pk=run.pk)
    if only_running:  # interrupted after the commit: the run's outcome stands
        runs = runs.filter(status=ImportRun.Status.RUNNING)
    runs.update(
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
