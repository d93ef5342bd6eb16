"""Legacy SQLite -> warehouse: every legacy table through the load pipeline, one run each.

The legacy `import_metadata` table becomes historical ImportRun rows (idempotent by its id).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from tickets import legacy_worker
from tickets import values as v
from tickets.columns import ENTITIES, LEGACY_ORDER
from tickets.models import ImportRun
from tickets.pipeline import (
    ImportFailed,
    ProgressCallback,
    load_table,
    refresh_derived,
    sha256_of,
)
from tickets.readers.base import SourceError, sniff_kind
from tickets.readers.sqlite import (
    HISTORY_TABLE,
    LEGACY_TABLES,
    connect,
    legacy_tables,
    table_reader,
)


@dataclass
class TableResult:
    table: str
    entity: str
    run_id: int | None = None
    status: str = ""
    source_rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    superseded: int = 0
    deleted: int = 0
    warned: int = 0
    error: str = ""

    @property
    def reconciled(self) -> bool:
        """Source rows = inserted + updated + unchanged + rejected (+ superseded duplicates)."""
        accounted = self.inserted + self.updated + self.unchanged + self.rejected + self.superseded
        return self.status != "failed" and self.source_rows == accounted

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "reconciled": self.reconciled}


@dataclass
class LegacyReport:
    file: str
    sha256: str
    dry_run: bool
    tables: list[TableResult] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    history_runs: int = 0
    facts_refresh_s: float | None = None

    @property
    def ok(self) -> bool:
        return all(t.reconciled for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "tables": [t.as_dict() for t in self.tables],
            "missing_tables": self.missing_tables,
            "history_runs": self.history_runs,
            "facts_refresh_s": self.facts_refresh_s,
        }


def migrate_legacy(
    path: str | Path,
    *,
    tables: list[str] | None = None,
    dry_run: bool = False,
    user: Any = None,
    progress_for: Callable[[str, int | None], ProgressCallback | None] | None = None,
    workers: int | None = None,
) -> LegacyReport:
    """Load every (selected) legacy table; one failing table does not stop the others.

    With more than one worker, tickets load first (so orphan counts are right), then the other
    tables load concurrently in spawned processes, each its own run and transaction.
    """
    path = Path(path)
    if sniff_kind(path) != "sqlite":
        raise SourceError(path.name, "not a SQLite database")
    conn = connect(path)
    try:
        _, present = legacy_tables(conn, path)
        wanted = set(tables or [])
        unknown = wanted - set(LEGACY_TABLES) - set(LEGACY_ORDER) - {HISTORY_TABLE}
        if unknown:
            raise SourceError(
                path.name, f"unknown table(s) requested: {', '.join(sorted(unknown))}"
            )
        report = LegacyReport(path.name, sha256_of(path), dry_run)
        jobs = []
        for entity_name in LEGACY_ORDER:
            table_name = ENTITIES[entity_name].legacy_table
            if wanted and entity_name not in wanted and table_name not in wanted:
                continue
            if table_name not in present:
                report.missing_tables.append(table_name)
                continue
            jobs.append((table_name, entity_name))
        _CHILD_CONTEXT.update(
            path=path, sha256=report.sha256, dry_run=dry_run, user_id=getattr(user, "pk", None)
        )
        _CHILD_CONTEXT["progress_for"] = progress_for
        report.tables = _run_jobs(conn, jobs, _worker_count(workers))
        if not dry_run and any(t.status == ImportRun.Status.SUCCEEDED for t in report.tables):
            report.facts_refresh_s = refresh_derived()
        if HISTORY_TABLE in present and (not wanted or HISTORY_TABLE in wanted) and not dry_run:
            report.history_runs = import_history(conn)
        elif HISTORY_TABLE not in present:
            report.missing_tables.append(HISTORY_TABLE)
        return report
    finally:
        conn.close()


# What every table load needs besides its name; sent to each worker process at start.
_CHILD_CONTEXT: dict[str, Any] = {}


def _worker_count(requested: int | None) -> int:
    workers = requested or settings.LEGACY_LOAD_WORKERS
    # Inside a transaction (a caller's atomic block) other processes could not see its rows;
    # a daemonic process (Celery prefork worker) may not start children.
    if connection.in_atomic_block or multiprocessing.current_process().daemon:
        return 1
    return max(1, workers)


def _run_jobs(conn, jobs: list[tuple[str, str]], workers: int) -> list[TableResult]:
    if workers == 1 or len(jobs) < 3:
        return [_load_one(conn, table, entity) for table, entity in jobs]
    results: dict[str, TableResult] = {}
    head = [j for j in jobs if j[1] == "tickets"]
    for table, entity in head:
        results[table] = _load_one(conn, table, entity)
    rest = [j for j in jobs if j not in head]
    sizes = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t, _ in rest}
    rest.sort(key=lambda j: -sizes[j[0]])  # biggest first balances the workers
    # Spawned, not forked: a forked child would inherit live PostgreSQL/Redis sockets.
    context = {k: v for k, v in _CHILD_CONTEXT.items() if k != "progress_for"}
    context["progress"] = _CHILD_CONTEXT.get("progress_for") is not None
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=legacy_worker.init,
        initargs=(dict(connection.settings_dict), context),
    ) as pool:
        futures = {table: pool.submit(legacy_worker.load, table, entity) for table, entity in rest}
        for table, future in futures.items():
            results[table] = future.result()
    return [results[table] for table, _ in jobs]


def load_in_child(table_name: str, entity_name: str) -> TableResult:
    """Run in a worker process set up by `tickets.legacy_worker.init`."""
    conn = connect(_CHILD_CONTEXT["path"])
    try:
        return _load_one(conn, table_name, entity_name)
    finally:
        conn.close()


def _load_one(conn, table_name: str, entity_name: str) -> TableResult:
    ctx = _CHILD_CONTEXT
    path, progress_for = ctx["path"], ctx.get("progress_for")
    try:
        raw = table_reader(conn, path, table_name)
    except SourceError as exc:  # this table cannot even be opened: the others still load
        return TableResult(table_name, entity_name, status=ImportRun.Status.FAILED, error=str(exc))
    run = ImportRun(
        source_kind=ImportRun.SourceKind.SQLITE,
        file_name=f"{path.name}:{table_name}",
        file_sha256=ctx["sha256"],
        created_by_id=ctx["user_id"],
    )
    dry_run = ctx["dry_run"]
    result = TableResult(table=table_name, entity=entity_name, source_rows=raw.total or 0)
    callback = progress_for(table_name, raw.total) if progress_for else None
    try:
        load_table(
            run, raw, ENTITIES[entity_name], dry_run=dry_run, progress=callback, refresh=False
        )
    except ImportFailed as exc:
        result.error = str(exc)
    run.refresh_from_db()
    result.run_id, result.status = run.pk, run.status
    for name in ImportRun.COUNT_FIELDS:
        if name != "rows_read":  # source_rows: the reader's total, unless the run failed
            setattr(result, name.removeprefix("rows_"), getattr(run, name))
    if run.status != ImportRun.Status.FAILED:
        result.source_rows = run.rows_read
    return result


def import_history(conn) -> int:
    """Legacy import records become historical runs; re-running updates, never duplicates."""
    cursor = conn.execute(f'SELECT * FROM "{HISTORY_TABLE}"')
    names = [d[0] for d in cursor.description]
    count = 0
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        legacy_id = v.parse_text(row.get("import_id")).value
        if legacy_id is None:
            continue
        when = _safe(v.parse_datetime, row.get("import_timestamp"))
        run, _ = ImportRun.objects.update_or_create(
            legacy_import_id=str(legacy_id),
            defaults={
                "source_kind": ImportRun.SourceKind.LEGACY_HISTORY,
                "entity": (v.parse_text(row.get("source_type")).value or "")[:40],
                "file_name": (v.parse_text(row.get("file_name")).value or "")[:500],
                "status": ImportRun.Status.SUCCEEDED,
                "started_at": when,
                "finished_at": when,
                "rows_read": _safe(v.parse_int, row.get("records_imported")) or 0,
                "rows_inserted": _safe(v.parse_int, row.get("records_imported")) or 0,
                "window_start": _date(row.get("date_range_start")),
                "window_end": _date(row.get("date_range_end")),
                "notes": " | ".join(
                    filter(
                        None,
                        [
                            v.parse_text(row.get("filter_applied")).value,
                            v.parse_text(row.get("notes")).value,
                        ],
                    )
                ),
            },
        )
        if when is not None:
            # The admin lists, orders and drills down runs by created_at (auto_now_add): a
            # record of an August import must not read as imported on the day of the migration.
            ImportRun.objects.filter(pk=run.pk).update(created_at=when)
        count += 1
    return count


def _safe(parser, raw):
    try:
        return parser(raw).value
    except v.InvalidValue:
        return None


def _date(raw):
    return _safe(v.parse_date, raw)
