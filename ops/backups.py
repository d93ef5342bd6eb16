"""Backups, restores and restore drills with the real PostgreSQL client tools (SPEC §7).

Everything works on the database Django is actually connected to (``connection.settings_dict``),
so under pytest the test database is dumped and restored, never the developer's one. Passwords
reach the tools through ``PGPASSWORD`` in the environment, never on the command line.

Retention (``prune``): a succeeded backup's file is deleted only when it is outside BOTH rules,
i.e. it is not among the newest ``BACKUP_KEEP_COUNT`` succeeded backups AND it is older than
``BACKUP_KEEP_DAYS``. The newest succeeded backup is always kept (count is at least 1). Failed
backups leave no file (the partial file is removed at once); pruned rows stay for history. A
recorded file outside BACKUP_DIR (the setting changed) is never deleted. A backup applies it
before its free-space check too, so a disk filled by expired backups frees itself.
A backup whose process died (it holds a session advisory lock while it runs) is marked failed
and its partial file removed by the next backup.

Metrics recorded with a backup are computed on the dump's own snapshot (warehouse tables and
the metric fact tables as dumped), so a drill compares like with like: a difference means the
restored data is not what was dumped.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections, transaction
from django.db.utils import load_backend
from django.utils import timezone

from ops.models import Backup, RestoreDrill
from servicedesk.side_loop import SideLoop

logger = logging.getLogger(__name__)

# The warehouse: every table of the tickets app (Django default table names).
WAREHOUSE_TABLE_PATTERN = r"tickets\_%"
# The critical metrics a restore drill recomputes (SPEC §5.2, 1.1-1.5).
CRITICAL_METRIC_IDS = ("1.1", "1.2", "1.3", "1.4", "1.5")
# A restore waits at most this long for another session's lock, then fails (and rolls back)
# instead of hanging behind a running import -- and, holding the locks of what it already
# dropped, blocking the application meanwhile.
RESTORE_LOCK_WAIT_S = 30
DUMP_LOCK_WAIT_TIMEOUT = "60s"
# A running backup holds a session advisory lock (this class id, its record's id) on the default
# connection. The lock dies with the process, so a "running" record whose lock is free was
# interrupted (worker killed, OOM, hard time limit). The two-int key space is apart from the
# single-bigint keys the import locks use.
BACKUP_LOCK_CLASS = 0x5D_B4


def _lock_args(record: Backup) -> list[int]:
    return [BACKUP_LOCK_CLASS, record.pk % 2**31]


class OpsError(Exception):
    """A failure with a message the operator can act on (commands turn it into CommandError)."""


# --- PostgreSQL tools ------------------------------------------------------------------------


def require_tools(*names: str) -> dict[str, str]:
    """Resolve client tools on PATH; fail clearly before anything is touched."""
    found = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            raise OpsError(
                f"PostgreSQL client tool {name!r} not found on PATH; install the PostgreSQL "
                f"client (version >= the server's, e.g. postgresql-client-15) and retry."
            )
        found[name] = path
    return found


def pg_env(settings_dict: dict[str, Any], **extra: str) -> dict[str, str]:
    """Environment for libpq tools: connection parameters, password never on argv."""
    env = dict(os.environ)
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE"):
        env.pop(key, None)
    if settings_dict.get("HOST"):
        env["PGHOST"] = str(settings_dict["HOST"])
    if settings_dict.get("PORT"):
        env["PGPORT"] = str(settings_dict["PORT"])
    if settings_dict.get("USER"):
        env["PGUSER"] = str(settings_dict["USER"])
    if settings_dict.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings_dict["PASSWORD"])
    sslmode = (settings_dict.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = str(sslmode)
    env.update(extra)
    return env


def _run(cmd: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a client tool; turn a failure into an OpsError naming the cause."""
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, errors="replace", check=False
        )
    except OSError as exc:
        raise OpsError(f"{what}: could not run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        stderr = proc.stderr.strip()
        if "No space left on device" in stderr:
            raise OpsError(f"{what}: disk full ({stderr.splitlines()[-1]})")
        tail = "\n".join(stderr.splitlines()[-5:]) or f"exit code {proc.returncode}"
        raise OpsError(f"{what} failed: {tail}")
    return proc


def _active_settings() -> dict[str, Any]:
    """Connection settings of the database in use (the test database under pytest)."""
    return connections["default"].settings_dict


@contextmanager
def database_alias(name: str, base: dict[str, Any] | None = None) -> Iterator[str]:
    """A temporary Django connection alias to database ``name`` on the same server."""
    base = base if base is not None else _active_settings()
    alias = f"ops_tmp_{secrets.token_hex(4)}"
    # Registered for this thread only, not in settings.DATABASES: a dynamically created
    # connection (Django's own test framework allows these; nothing else can route to it).
    wrapper = load_backend(base["ENGINE"]).DatabaseWrapper(
        {**base, "NAME": name, "CONN_MAX_AGE": 0}, alias
    )
    connections[alias] = wrapper
    try:
        yield alias
    finally:
        wrapper.close()
        del connections[alias]


# --- facts about a database ------------------------------------------------------------------


def warehouse_tables(using: str = "default") -> list[str]:
    """Names of the warehouse tables (tickets_*) in the connection's schema."""
    with connections[using].cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()"
            " AND c.relname LIKE %s ORDER BY c.relname",
            [WAREHOUSE_TABLE_PATTERN],
        )
        return [row[0] for row in cur.fetchall()]


def row_counts(using: str = "default") -> dict[str, int]:
    """Exact row count of every warehouse table."""
    conn = connections[using]
    counts = {}
    with conn.cursor() as cur:
        for table in warehouse_tables(using):
            cur.execute(f"SELECT count(*) FROM {conn.ops.quote_name(table)}")
            counts[table] = cur.fetchone()[0]
    return counts


def _jsonable(value: Any) -> Any:
    """Normalise metric output (Decimals, dates) to what a JSONField stores and returns."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def critical_metrics(using: str = "default") -> dict[str, Any]:
    """Metrics 1.1-1.5 computed on ``using`` by the metrics app (the one definition)."""
    from metrics.compute import compute  # the metrics app owns every metric definition

    return _jsonable(compute(metric_ids=list(CRITICAL_METRIC_IDS), using=using))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup_dir() -> Path:
    return Path(str(settings.BACKUP_DIR)).resolve()


def _estimate_dump_bytes() -> int:
    """Space a new dump needs: 1.5x the last dump, else the database size (an upper bound)."""
    last = (
        Backup.objects.filter(status=Backup.Status.SUCCEEDED, size_bytes__isnull=False)
        .order_by("-started_at")
        .first()
    )
    if last is not None:
        return int(last.size_bytes * 1.5)
    with connections["default"].cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        return int(cur.fetchone()[0])


def check_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OpsError(
            f"not enough disk space in {directory}: about {needed / 1e6:.0f} MB needed, "
            f"{free / 1e6:.0f} MB free; free space or lower BACKUP_KEEP_COUNT/BACKUP_KEEP_DAYS"
        )


# --- backup ----------------------------------------------------------------------------------


def backup(reason: str = "manual", apply_retention: bool = True) -> Backup:
    """Dump the current database (pg_dump -Fc), record it, then apply retention.

    Row counts, metrics and the dump all read one exported snapshot, so the recorded facts match
    the archive exactly even while imports write. Call it outside any open transaction that has
    written to the warehouse (e.g. before an import starts), or pg_dump waits for its locks.
    """
    tools = require_tools("pg_dump")
    sd = _active_settings()
    directory = backup_dir()
    try:
        # A dump holds password hashes and session keys: owner-only, whatever the umask.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise OpsError(f"cannot create BACKUP_DIR {directory}: {exc}") from exc
    fail_interrupted_backups()
    if apply_retention:
        # Retention first: it deletes only files it would delete after this backup too, and on
        # a full disk a refused backup would never reach it (so every later one is refused).
        prune()
    check_free_space(directory, _estimate_dump_bytes())

    started = timezone.now()
    safe_reason = re.sub(r"[^A-Za-z0-9_-]+", "-", reason)[:40] or "backup"
    path = directory / f"{sd['NAME']}-{started:%Y%m%dT%H%M%S%fZ}-{safe_reason}.dump"
    partial = path.with_suffix(".dump.partial")
    with transaction.atomic(), connections["default"].cursor() as cursor:
        record = Backup.objects.create(
            path=str(path), reason=reason[:100], status=Backup.Status.RUNNING
        )
        # Taken before the record is visible, released below or when this process dies.
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", _lock_args(record))
    try:
        return _dump(record, path, partial, tools, sd, apply_retention)
    finally:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", _lock_args(record))
        except DatabaseError:  # the session is gone, and its lock with it
            pass


def _dump(
    record: Backup,
    path: Path,
    partial: Path,
    tools: dict[str, str],
    sd: dict[str, Any],
    apply_retention: bool,
) -> Backup:
    t0 = time.monotonic()
    try:
        # Created owner-only before pg_dump writes into it (it keeps an existing file's mode).
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with database_alias(sd["NAME"], sd) as alias, transaction.atomic(using=alias):
            with connections[alias].cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("SELECT pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
            _run(
                [
                    tools["pg_dump"],
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--lock-wait-timeout={DUMP_LOCK_WAIT_TIMEOUT}",
                    f"--file={partial}",
                    f"--dbname={sd['NAME']}",
                ],
                pg_env(sd),
                "pg_dump",
            )
            counts = row_counts(alias)
            metrics, metrics_error = _metrics_on_snapshot(alias)
            transaction.set_rollback(True, using=alias)  # never commit anything from here
        sha = file_sha256(partial)
        partial.rename(path)
    except BaseException as exc:  # Ctrl-C too: no backup left 'running' beside a partial file
        message = str(exc)
        if isinstance(exc, KeyboardInterrupt):
            message = "interrupted (Ctrl-C) while dumping"
        elif isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            message = f"disk full while writing {partial}: {exc}"
        try:
            partial.unlink(missing_ok=True)
        except OSError as cleanup:  # e.g. a read-only file system: keep the real cause first
            message = f"{message} (could not remove {partial}: {cleanup.strerror or cleanup})"
        record.status = Backup.Status.FAILED
        record.error = message
        record.finished_at = timezone.now()
        record.duration_s = time.monotonic() - t0
        record.save(update_fields=["status", "error", "finished_at", "duration_s"])
        if isinstance(exc, OpsError | OSError):
            raise OpsError(f"backup failed: {message}") from exc
        raise

    record.status = Backup.Status.SUCCEEDED
    record.finished_at = timezone.now()
    record.duration_s = time.monotonic() - t0
    record.sha256 = sha
    record.size_bytes = path.stat().st_size
    record.row_counts = counts
    record.metrics = metrics
    record.error = metrics_error
    record.save()
    if apply_retention:
        prune()
    return record


def _metrics_on_snapshot(alias: str) -> tuple[dict[str, Any], str]:
    """Critical metrics on the dump's snapshot, as a restore of it will report them.

    Runs in a savepoint that is always rolled back: if compute refreshes the metric facts
    (settings changed), that happens identically on the restored copy and never reaches the
    live facts. A failure is recorded with the backup, not fatal: the dump itself is good.
    """
    sid = transaction.savepoint(using=alias)
    try:
        return critical_metrics(alias), ""
    except Exception as exc:  # the drill then reports "no metrics recorded"
        logger.warning("critical metrics not recorded with backup: %s", exc)
        return {}, f"metrics not recorded: {exc}"
    finally:
        transaction.savepoint_rollback(sid, using=alias)


def fail_interrupted_backups() -> list[Backup]:
    """Backups left "running" by a process that died: recorded as failed, partial file removed
    (it would otherwise stay forever: retention only deletes succeeded backups' files)."""
    interrupted = []
    with connections["default"].cursor() as cursor:
        for record in Backup.objects.filter(status=Backup.Status.RUNNING):
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", _lock_args(record))
            if not cursor.fetchone()[0]:
                continue  # a live process is still writing it
            try:
                partial = Path(record.path).with_suffix(".dump.partial")
                note = ""
                try:
                    partial.unlink(missing_ok=True)
                except OSError as exc:
                    note = f"; could not remove {partial}: {exc.strerror or exc}"
                record.status = Backup.Status.FAILED
                record.error = f"interrupted: the process taking this backup stopped{note}"
                record.finished_at = timezone.now()
                record.save(update_fields=["status", "error", "finished_at"])
                interrupted.append(record)
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", _lock_args(record))
    return interrupted


def backup_before_destructive_import() -> Backup | None:
    """The import pipeline's hook: a backup when BACKUP_BEFORE_DESTRUCTIVE_IMPORT is on."""
    if not settings.BACKUP_BEFORE_DESTRUCTIVE_IMPORT:
        return None
    return backup(reason="pre-import")


def prune(now: datetime | None = None) -> list[Backup]:
    """Apply retention (see module docstring); return the backups whose files were deleted."""
    now = now or timezone.now()
    keep_count = max(1, settings.BACKUP_KEEP_COUNT)
    cutoff = now - timedelta(days=settings.BACKUP_KEEP_DAYS)
    directory = backup_dir()
    pruned = []
    succeeded = Backup.objects.filter(status=Backup.Status.SUCCEEDED).order_by("-started_at", "-pk")
    for rank, record in enumerate(succeeded):
        if rank < keep_count or record.started_at >= cutoff:
            continue
        path = Path(record.path)
        if path.resolve().parent != directory:
            continue  # only ever delete our own files; one elsewhere is left alone, still listed
        path.unlink(missing_ok=True)
        record.status = Backup.Status.PRUNED
        record.save(update_fields=["status"])
        pruned.append(record)
    return pruned


# --- restore ---------------------------------------------------------------------------------


@dataclasses.dataclass
class ArchiveCheck:
    path: Path
    sha256: str
    backup: Backup | None  # the Backup row this archive is known as, if any


def verify_archive(path: str | Path) -> ArchiveCheck:
    """Check an archive without touching any database: checksum, TOC, and a full read.

    ``pg_restore --list`` reads only the table of contents, so a truncated or corrupted data
    section would pass it; reading the whole archive to /dev/null catches that too.
    """
    tools = require_tools("pg_restore")
    path = Path(path).resolve()
    if path.is_dir():
        raise OpsError(f"{path} is a directory: give the path of a pg_dump archive in it")
    if not path.is_file():
        raise OpsError(f"archive not found: {path}")
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise OpsError(f"cannot read archive {path}: {exc.strerror or exc}") from None
    known = Backup.objects.filter(path=str(path)).exclude(sha256="").first()
    if known is not None and known.sha256 != sha:
        raise OpsError(
            f"checksum mismatch for {path}: backup #{known.pk} recorded {known.sha256}, file has "
            f"{sha}; the archive is corrupted or was altered - refusing to use it"
        )
    if known is None:
        known = Backup.objects.filter(sha256=sha).first()
    env = pg_env(_active_settings())
    try:
        _run([tools["pg_restore"], "--list", str(path)], env, "pg_restore --list")
        _run([tools["pg_restore"], f"--file={os.devnull}", str(path)], env, "archive read")
    except OpsError as exc:
        raise OpsError(f"{path} is not a complete pg_dump archive: {exc}") from exc
    return ArchiveCheck(path=path, sha256=sha, backup=known)


@dataclasses.dataclass
class RestoreReport:
    path: str
    sha256: str
    backup_id: int | None
    safety_backup_path: str
    before: dict[str, int]
    after: dict[str, int]
    duration_s: float

    def changes(self) -> dict[str, dict[str, int | None]]:
        """Per-table row counts that differ between before and after the restore."""
        tables = sorted(set(self.before) | set(self.after))
        return {
            t: {"before": self.before.get(t), "after": self.after.get(t)}
            for t in tables
            if self.before.get(t) != self.after.get(t)
        }

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "changes": self.changes()}


def restore(path: str | Path, confirm: bool = False) -> RestoreReport:
    """Replace the current database's contents with an archive, in one transaction.

    Order matters: refuse without confirmation, verify the archive, take a safety dump, and only
    then restore. The ops history (backups, drills, benchmarks, health snapshots) is carried
    over, so the safety dump and every newer backup stay known after restoring an older archive
    and the freshness checks do not go back in time.
    """
    if not confirm:
        raise OpsError(
            "restore replaces the current database contents; re-run with --confirm to proceed"
        )
    tools = require_tools("pg_restore", "pg_dump")
    t0 = time.monotonic()
    check = verify_archive(path)
    before = row_counts()
    # No retention here: it could delete the very archive being restored (the next scheduled
    # backup prunes as usual).
    safety = backup(reason="safety", apply_retention=False)
    catalog = _save_catalog()

    sd = _active_settings()
    # Views built from code, not data (the read-only role's): an archive older than them
    # cannot drop the tables they depend on, so they go first and are rebuilt afterwards.
    view_readers = _drop_platform_views()
    connections["default"].close()  # our own session must not hold locks on what we drop
    app_name = f"servicedesk-restore-{secrets.token_hex(4)}"
    env = pg_env(sd, PGAPPNAME=app_name)
    try:
        with LockWatchdog(sd, app_name, RESTORE_LOCK_WAIT_S) as watchdog:
            _run(
                [
                    tools["pg_restore"],
                    "--single-transaction",
                    "--clean",
                    "--if-exists",
                    "--exit-on-error",
                    f"--dbname={sd['NAME']}",
                    str(check.path),
                ],
                env,
                "pg_restore (nothing was changed; the transaction rolled back)",
            )
    except OpsError as exc:
        if watchdog.cancelled:
            raise OpsError(
                f"restore gave up after waiting {RESTORE_LOCK_WAIT_S} s for locks held by "
                "other sessions (a running import or a long query?); nothing was changed. "
                "Retry when they are done."
            ) from exc
        raise
    finally:
        if view_readers is not None:
            _rebuild_platform_views(view_readers)
    _restore_catalog(catalog)
    return RestoreReport(
        path=str(check.path),
        sha256=check.sha256,
        backup_id=check.backup.pk if check.backup else None,
        safety_backup_path=safety.path,
        before=before,
        after=row_counts(),
        duration_s=time.monotonic() - t0,
    )


class LockWatchdog(SideLoop):
    """Cancels a client tool's session once it has waited `limit_s` for another session's lock.

    pg_restore starts with `SET lock_timeout = 0`, which overrides PGOPTIONS, so the limit is
    kept from outside: a side connection watches pg_locks for the tool's application_name and
    cancels the waiting statement; with --single-transaction everything then rolls back.
    """

    def __init__(self, settings_dict: dict[str, Any], app_name: str, limit_s: float):
        super().__init__(0.5, name="lock-watchdog")
        self.settings_dict, self.app_name, self.limit_s = settings_dict, app_name, limit_s
        self.cancelled = False

    def connect(self) -> Any:
        return load_backend(self.settings_dict["ENGINE"]).DatabaseWrapper(
            {**self.settings_dict, "CONN_MAX_AGE": 0}, "lock_watchdog"
        )

    def tick(self, cursor: Any) -> None:
        cursor.execute(
            "SELECT pg_cancel_backend(a.pid) FROM pg_stat_activity a "
            "JOIN pg_locks l ON l.pid = a.pid "
            "WHERE a.application_name = %s AND NOT l.granted "
            "AND l.waitstart < now() - make_interval(secs => %s)",
            [self.app_name, self.limit_s],
        )
        if cursor.fetchall():
            self.cancelled = True


def _drop_platform_views() -> dict[str, list[str]] | None:
    """Drop the read-only role's platform views; returns who could read each (None when there
    were none). Waits at most RESTORE_LOCK_WAIT_S for a session using them."""
    from metrics.readonly_role import PLATFORM_VIEWS

    with transaction.atomic(), connections["default"].cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{RESTORE_LOCK_WAIT_S}s'")
        cursor.execute(
            "SELECT viewname FROM pg_views WHERE schemaname = current_schema() "
            "AND viewname = ANY(%s)",
            [list(PLATFORM_VIEWS)],
        )
        present = [row[0] for row in cursor.fetchall()]
        if not present:
            return None
        cursor.execute(
            "SELECT table_name, grantee FROM information_schema.role_table_grants "
            "WHERE table_schema = current_schema() AND table_name = ANY(%s) "
            "AND privilege_type = 'SELECT' AND grantee <> current_user",
            [present],
        )
        readers: dict[str, list[str]] = {}
        for view, grantee in cursor.fetchall():
            readers.setdefault(view, []).append(grantee)
        for name in present:
            cursor.execute(f"DROP VIEW IF EXISTS {name}")
    return readers


def _rebuild_platform_views(readers: dict[str, list[str]]) -> None:
    """The platform views again, with exactly the SELECT grants they had (nothing else about
    those roles changes)."""
    from metrics.readonly_role import ensure_platform_views

    ensure_platform_views()
    conn = connections["default"]
    with transaction.atomic(), conn.cursor() as cursor:
        for view, roles in readers.items():
            for role in roles:
                cursor.execute(f"GRANT SELECT ON {view} TO {conn.ops.quote_name(role)}")


def _catalog_models() -> list[tuple[type, str | None]]:
    """The ops history a restore must not rewind (model, its auto_now_add field), parents first:
    backups describe files on disk; drills, benchmarks and health snapshots are what the
    freshness checks read."""
    from ops.models import BenchmarkResult, BenchmarkRun, HealthSnapshot

    return [
        (Backup, "started_at"),
        (RestoreDrill, "started_at"),
        (BenchmarkRun, "started_at"),
        (BenchmarkResult, None),
        (HealthSnapshot, "taken_at"),
    ]


def _save_catalog() -> dict[type, list[dict[str, Any]]]:
    return {model: list(model.objects.values()) for model, _ in _catalog_models()}


def _restore_catalog(catalog: dict[type, list[dict[str, Any]]]) -> None:
    """Put back the ops history as it was before the restore."""
    models = _catalog_models()
    with transaction.atomic():
        for model, _ in reversed(models):
            model.objects.all().delete()
        for model, stamped in models:
            rows = catalog[model]
            model.objects.bulk_create(model(**row) for row in rows)
            if stamped:  # bulk_create stamps auto_now_add fields with "now": put them back
                model.objects.bulk_update(
                    [model(id=row["id"], **{stamped: row[stamped]}) for row in rows],
                    [stamped],
                    batch_size=1000,
                )
        conn = connections["default"]
        with conn.cursor() as cur:
            for sql in conn.ops.sequence_reset_sql(no_style(), [m for m, _ in models]):
                cur.execute(sql)


# --- restore drill ---------------------------------------------------------------------------


def latest_backup() -> Backup | None:
    """The newest succeeded backup whose file is still on disk."""
    for record in Backup.objects.filter(status=Backup.Status.SUCCEEDED).order_by("-started_at"):
        if Path(record.path).is_file():
            return record
    return None


def restore_drill(target: Backup | None = None) -> RestoreDrill:
    """Restore a backup into a scratch database and prove it gives the recorded answers.

    Passes when the archive verifies, every warehouse table has the row count recorded at backup
    time, and metrics 1.1-1.5 recomputed on the scratch database equal the values recorded on the
    dump's snapshot. recovery_time_s = verify + restore + verification (not the scratch cleanup).
    """
    target = target or latest_backup()
    drill = RestoreDrill.objects.create(backup=target)
    details: dict[str, Any] = {}
    t0 = time.monotonic()
    scratch = f"sd_drill_{secrets.token_hex(4)}"
    sd = _active_settings()
    created = False
    try:
        if target is None:
            raise OpsError("no succeeded backup with its file on disk to drill")
        tools = require_tools("pg_restore", "createdb", "dropdb")
        details["backup_path"] = target.path
        verify_archive(target.path)
        env = pg_env(sd)
        _run([tools["createdb"], "--template=template0", scratch], env, "createdb")
        created = True
        details["scratch_database"] = scratch
        _run(
            [tools["pg_restore"], "--exit-on-error", f"--dbname={scratch}", target.path],
            env,
            "pg_restore into scratch database",
        )
        details["restore_s"] = round(time.monotonic() - t0, 3)
        with database_alias(scratch, sd) as alias:
            details["tables"] = _compare_counts(target.row_counts, row_counts(alias))
            details["metrics"] = _compare_metrics(target.metrics, alias)
        passed = all(t["ok"] for t in details["tables"].values()) and details["metrics"]["ok"]
        drill.passed = passed
        if not passed:
            drill.error = "restored data differs from what the backup recorded"
    except OpsError as exc:
        drill.passed = False
        drill.error = str(exc)
    except Exception as exc:  # recorded as failed with the reason, never left "running"
        logger.exception("restore drill %s crashed", drill.pk)
        drill.passed = False
        drill.error = f"the drill stopped unexpectedly: {type(exc).__name__}: {exc}"
    finally:
        drill.recovery_time_s = time.monotonic() - t0
        if created:
            try:
                _run(
                    [shutil.which("dropdb") or "dropdb", "--if-exists", "--force", scratch],
                    pg_env(sd),
                    "dropdb",
                )
            except OpsError as exc:  # the verdict stands; the leftover is reported
                details["cleanup_error"] = str(exc)
            # DROP DATABASE forces a checkpoint: not recovery time, but worth knowing.
            details["cleanup_s"] = round(time.monotonic() - t0 - drill.recovery_time_s, 3)
        drill.finished_at = timezone.now()
        drill.details = details
        drill.save()
    return drill


def _compare_counts(expected: dict[str, int], actual: dict[str, int]) -> dict[str, Any]:
    tables = sorted(set(expected) | set(actual))
    return {
        t: {
            "expected": expected.get(t),
            "actual": actual.get(t),
            "ok": expected.get(t) == actual.get(t),
        }
        for t in tables
    }


def _compare_metrics(expected: dict[str, Any], alias: str) -> dict[str, Any]:
    """Recompute 1.1-1.5 on the scratch database and compare with the backup's values."""
    if not expected:
        # Backups taken before the metrics app existed carry no values; counts still decide.
        return {"ok": True, "compared": False, "note": "no metrics recorded with this backup"}
    try:
        actual = critical_metrics(alias)
    except Exception as exc:  # any failure to recompute is a failed drill, with the reason
        return {"ok": False, "compared": False, "error": f"recompute failed: {exc}"}
    per_metric = {
        slug: {"expected": expected.get(slug), "actual": actual.get(slug)}
        for slug in sorted(set(expected) | set(actual))
    }
    for entry in per_metric.values():
        entry["ok"] = entry["expected"] == entry["actual"]
    return {
        "ok": all(e["ok"] for e in per_metric.values()),
        "compared": True,
        "values": per_metric,
    }
