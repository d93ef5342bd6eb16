"""Admin imports as queued runs: archive, queue, claim, execute, detect dead workers, retry.

Plain functions shared by the admin views and the thin Celery tasks in `tickets.tasks`.
ImportRun is the system of record: a run is queued in the database first and the task only
carries its id, so a redelivered or duplicated message is harmless (compare-and-swap claim).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tickets.columns import ENTITIES
from tickets.heartbeat import Heartbeat, heartbeat_interval  # noqa: F401 (re-exported)
from tickets.models import ImportRun
from tickets.pipeline import ImportFailed, import_file
from tickets.readers.base import SQLITE_MAGIC, SourceError

log = logging.getLogger(__name__)

ACTIVE = (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING)
# Children of an uploaded SQLite run are listed in its notes on this line (no model change).
CHILDREN_PREFIX = "legacy runs: "


class UploadTooLarge(Exception):
    """The upload exceeds IMPORT_MAX_UPLOAD_MB."""


def max_upload_bytes() -> int:
    return settings.IMPORT_MAX_UPLOAD_MB * 1024 * 1024


def archive_upload(uploaded: Any) -> tuple[Path, str]:
    """Stream an upload into IMPORT_ARCHIVE_DIR named by its sha256; returns (path, sha256).

    The same file uploaded twice is stored once. Raises UploadTooLarge past the size limit.
    """
    limit = max_upload_bytes()
    if uploaded.size is not None and uploaded.size > limit:
        raise UploadTooLarge(_too_large_message(uploaded.size))
    archive = Path(settings.IMPORT_ARCHIVE_DIR)
    archive.mkdir(parents=True, exist_ok=True)
    suffix = Path(uploaded.name or "").suffix.lower()[:10]
    digest = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(dir=archive, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in uploaded.chunks():
                written += len(chunk)
                if written > limit:
                    raise UploadTooLarge(_too_large_message(written))
                digest.update(chunk)
                out.write(chunk)
        sha = digest.hexdigest()
        target = archive / f"{sha}{suffix}"
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target, sha


def _too_large_message(size: int) -> str:
    return (
        f"The file is {size / 2**20:.1f} MB, over the {settings.IMPORT_MAX_UPLOAD_MB} MB "
        "upload limit (IMPORT_MAX_UPLOAD_MB)."
    )


def _guess_kind(path: Path) -> str:
    """Source kind for the queued row; the pipeline refines it from the content."""
    try:
        with path.open("rb") as fh:
            if fh.read(16) == SQLITE_MAGIC:
                return ImportRun.SourceKind.SQLITE
    except OSError:
        pass
    if path.suffix.lower() in {".sqlite", ".sqlite3", ".db"}:
        return ImportRun.SourceKind.SQLITE
    if path.suffix.lower() == ".csv":
        return ImportRun.SourceKind.CSV
    return ImportRun.SourceKind.XLSX


def create_run(
    path: Path,
    sha256: str,
    file_name: str,
    *,
    user: Any = None,
    entity: str = "",
    dry_run: bool = True,
    notes: str = "",
) -> ImportRun:
    """A queued run for an archived file, enqueued once the surrounding transaction commits."""
    if entity and entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}")
    run = ImportRun.objects.create(
        source_kind=_guess_kind(path),
        entity=entity,
        file_name=file_name[:500],
        file_sha256=sha256,
        archived_path=str(path),
        created_by=user if getattr(user, "pk", None) else None,
        status=ImportRun.Status.QUEUED,
        dry_run=dry_run,
        task_id=str(uuid4()),
        notes=notes,
    )
    enqueue(run)
    return run


def enqueue(run: ImportRun) -> None:
    """Send the run id to the worker after commit, so the worker always finds the row."""
    run_id, task_id = run.pk, run.task_id
    transaction.on_commit(lambda: publish(run_id, task_id))


def publish(run_id: int, task_id: str) -> None:
    """Hand the run to the broker; if the broker cannot take it, the run fails (retryable)
    instead of waiting as 'queued' for a message that was never sent."""
    from tickets.tasks import run_import_task

    try:
        run_import_task.apply_async((run_id,), task_id=task_id)
    except Exception as exc:
        log.exception("could not queue import run %s", run_id)
        ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED).update(
            status=ImportRun.Status.FAILED,
            finished_at=timezone.now(),
            error_summary=(
                f"The run could not be queued: the task broker (Redis, REDIS_URL) did not "
                f"accept it ({type(exc).__name__}: {exc}). Nothing was loaded; use Retry once "
                "Redis is reachable."
            )[:4000],
        )


def claim(run_id: int) -> bool:
    """Compare-and-swap queued -> running; False when another worker (or a cancel) got there."""
    now = timezone.now()
    changed = ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED).update(
        status=ImportRun.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    return changed == 1


def execute_run(run_id: int) -> str:
    """The worker's whole job for one run id; returns the final status (or 'skipped')."""
    if not claim(run_id):
        log.info("run %s not claimed (already taken, cancelled or gone)", run_id)
        return "skipped"
    run = ImportRun.objects.get(pk=run_id)
    with Heartbeat(run_id) as beat:
        try:
            if run.source_kind == ImportRun.SourceKind.SQLITE:
                _execute_legacy(run, beat)
            else:
                import_file(
                    run.archived_path,
                    entity=run.entity or None,
                    dry_run=run.dry_run,
                    run=run,
                    user=run.created_by,
                )
        except ImportFailed:
            pass  # the pipeline already recorded the failure and its reason
        except SoftTimeLimitExceeded:
            mark_failed(
                run_id,
                f"The import took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s "
                "(CELERY_TASK_SOFT_TIME_LIMIT) and was stopped; "
                + _what_was_kept(run, "its unfinished work was rolled back"),
            )
        except Exception as exc:  # never leave a run looking alive or successful
            log.exception("import run %s crashed", run_id)
            mark_failed(
                run_id,
                f"{type(exc).__name__}: {str(exc).rstrip('. ')}. "
                + _what_was_kept(run, "Nothing was written"),
            )
    return ImportRun.objects.values_list("status", flat=True).get(pk=run_id)


def _execute_legacy(run: ImportRun, beat: Heartbeat) -> None:
    """A SQLite upload: every legacy table as its own child run; this run sums them up."""
    from tickets.legacy import migrate_legacy

    # One bar for the whole database: rows done over all tables, not per table.
    sizes = legacy_table_sizes(Path(run.archived_path))
    grand_total = sum(sizes.values()) or None
    done_by_table: dict[str, int] = {}

    def progress_for(table: str, total: int | None):
        def update(done: int, _total: int | None) -> None:
            done_by_table[table] = done
            beat.progress = (sum(done_by_table.values()), grand_total)

        return update

    started = time.monotonic()
    try:
        report = migrate_legacy(
            run.archived_path, dry_run=run.dry_run, user=run.created_by, progress_for=progress_for
        )
    except SourceError as exc:
        mark_failed(run.pk, str(exc))
        return
    children = list(ImportRun.objects.filter(pk__in=[t.run_id for t in report.tables if t.run_id]))
    for name in (*ImportRun.COUNT_FIELDS, "orphans"):
        setattr(run, name, sum(getattr(c, name) for c in children))
    starts = [c.window_start for c in children if c.window_start]
    ends = [c.window_end for c in children if c.window_end]
    run.window_start = min(starts) if starts else None
    run.window_end = max(ends) if ends else None
    run.entity = "legacy"
    run.same_file_as = (
        ImportRun.objects.filter(
            file_sha256=run.file_sha256,
            entity="legacy",
            status=ImportRun.Status.SUCCEEDED,
            dry_run=False,
        )
        .exclude(pk=run.pk)
        .order_by("-finished_at")
        .first()
    )
    run.progress_rows = run.progress_total = run.rows_read
    run.duration_s = time.monotonic() - started
    run.finished_at = timezone.now()
    lines = [CHILDREN_PREFIX + ",".join(str(c.pk) for c in children)]
    if report.missing_tables:
        lines.append("missing tables: " + ", ".join(report.missing_tables))
    run.notes = "\n".join(filter(None, [run.notes, *lines]))
    failed = [t for t in report.tables if t.status == ImportRun.Status.FAILED]
    if failed or not children:
        run.status = ImportRun.Status.FAILED
        run.error_summary = "; ".join(f"{t.table}: {t.error}" for t in failed) or (
            "no legacy table could be loaded"
        )
        run.error_summary = (
            run.error_summary.rstrip(". ") + ". " + _what_was_kept(run, "Nothing was written")
        )
    else:
        run.status = ImportRun.Status.PREVIEWED if run.dry_run else ImportRun.Status.SUCCEEDED
    run.save()


def legacy_table_sizes(path: Path) -> dict[str, int]:
    """Rows per known legacy table ({} when the file is not a readable legacy SQLite database:
    the load itself then says why)."""
    from tickets.readers.sqlite import connect, legacy_tables

    try:
        conn = connect(path)
    except SourceError:
        return {}
    try:
        known, _ = legacy_tables(conn, path)
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in known}
    except Exception:  # noqa: BLE001 -- a size is only for the progress bar
        return {}
    finally:
        conn.close()


def kept_tables(run: ImportRun) -> list[ImportRun]:
    """The table runs of a legacy upload that committed (each table commits on its own)."""
    if run.source_kind != ImportRun.SourceKind.SQLITE or run.dry_run:
        return []
    children = child_runs(run)
    return [c for c in children if c.status == ImportRun.Status.SUCCEEDED and not c.dry_run]


def _table_runs_since(run: ImportRun) -> list[ImportRun]:
    """Table runs a legacy upload started, found by file and time when it stopped before
    listing them (a crash or a time limit mid-way)."""
    if not run.started_at:
        return []
    runs = ImportRun.objects.filter(
        source_kind=ImportRun.SourceKind.SQLITE,
        file_sha256=run.file_sha256,
        archived_path="",
        dry_run=run.dry_run,
        created_by_id=run.created_by_id,
        created_at__gte=run.started_at,
    )
    if run.finished_at:  # a retry's table runs come later
        runs = runs.filter(created_at__lte=run.finished_at)
    return list(runs.exclude(pk=run.pk).order_by("pk"))


def _what_was_kept(run: ImportRun, otherwise: str) -> str:
    """The end of a failure message: a legacy upload may have committed some tables."""
    kept = kept_tables(run)
    if not kept:
        return otherwise + "."
    listed = ", ".join(f"{c.entity} (run #{c.pk}, {c.rows_read} rows)" for c in kept)
    return (
        f"Tables loaded before the failure were kept: {listed}; the others were not loaded. "
        "Retry loads the whole database again (kept tables come out unchanged)."
    )


def child_runs(run: ImportRun) -> list[ImportRun]:
    """The per-table runs of an uploaded SQLite database (empty for a file upload)."""
    for line in run.notes.splitlines():
        if line.startswith(CHILDREN_PREFIX):
            ids = [int(x) for x in line[len(CHILDREN_PREFIX) :].split(",") if x.strip()]
            return list(ImportRun.objects.filter(pk__in=ids).order_by("pk"))
    if run.source_kind == ImportRun.SourceKind.SQLITE and run.archived_path:
        return _table_runs_since(run)  # still running, or stopped before listing them
    return []


def report_run_ids(run: ImportRun) -> list[int]:
    """Runs whose issues make up this run's report (itself plus any legacy children)."""
    return [run.pk, *[c.pk for c in child_runs(run)]]


def mark_failed(run_id: int, message: str) -> None:
    ImportRun.objects.filter(pk=run_id).exclude(status=ImportRun.Status.SUCCEEDED).update(
        status=ImportRun.Status.FAILED,
        error_summary=message[:4000],
        finished_at=timezone.now(),
    )


def stale_cutoff() -> Any:
    return timezone.now() - timedelta(seconds=settings.IMPORT_STALE_AFTER_S)


def fail_stale_runs(run_id: int | None = None) -> int:
    """Runs 'running' without a heartbeat for IMPORT_STALE_AFTER_S: their worker died.

    PostgreSQL rolled back the dead worker's transaction, so nothing was written; mark the
    run failed so it can be retried. Returns how many runs were marked.
    """
    runs = ImportRun.objects.filter(
        status=ImportRun.Status.RUNNING, heartbeat_at__lt=stale_cutoff()
    )
    if run_id is not None:
        runs = runs.filter(pk=run_id)
    return runs.update(
        status=ImportRun.Status.FAILED,
        finished_at=timezone.now(),
        error_summary=(
            f"The worker stopped responding (no heartbeat for {settings.IMPORT_STALE_AFTER_S} s, "
            "IMPORT_STALE_AFTER_S): it probably died. Its unfinished work was rolled back; "
            "use Retry."
        ),
    )


def broker_task_ids() -> set[str] | None:
    """Task ids the Redis broker still holds: waiting in the import queue or delivered to a
    worker and not yet acknowledged. None when the broker cannot be read (down, or not Redis):
    the caller must then assume every message is still there.

    Reads kombu's Redis layout (one list per priority step, the `unacked` hash), because Celery
    has no API for "is this message still queued" and `inspect()` only sees what workers took.
    """
    import json

    from servicedesk.celery import app

    queue = app.conf.task_default_queue
    try:
        with app.connection_for_read() as conn:
            channel = conn.default_channel
            if not hasattr(channel, "unacked_key"):
                return None
            client = channel.client
            keys = {channel._q_for_pri(queue, pri) for pri in channel.priority_steps}
            payloads = [m for key in sorted(keys) for m in client.lrange(key, 0, -1)]
            unacked = [json.loads(v)[0] for v in client.hvals(channel.unacked_key)]
    except Exception:
        log.warning("cannot read the task broker's queue", exc_info=True)
        return None
    messages = [json.loads(p) for p in payloads] + unacked
    return {str(m.get("headers", {}).get("id")) for m in messages if isinstance(m, dict)}


def requeue_lost_runs() -> list[int]:
    """Queued runs whose message the broker no longer holds (Redis restarted without its data,
    or flushed) are published again, so an upload never waits forever for a message that is
    gone. Harmless if the message was only in flight: the claim is a compare-and-swap, so a
    second message for a run is skipped. Returns the run ids published again.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.IMPORT_REQUEUE_AFTER_S)
    waiting = list(
        ImportRun.objects.filter(status=ImportRun.Status.QUEUED, created_at__lt=cutoff)
        .exclude(task_id="")
        .values_list("pk", "task_id")
    )
    if not waiting:
        return []
    held = broker_task_ids()
    if held is None:
        return []
    lost = [(pk, task_id) for pk, task_id in waiting if task_id not in held]
    for pk, task_id in lost:
        log.warning("import run %s was queued but its message is gone: publishing it again", pk)
        publish(pk, task_id)
    return [pk for pk, _ in lost]


def _same_file_run(
    run: ImportRun, *, user: Any, dry_run: bool, entity: str, notes: str
) -> ImportRun:
    if not run.archived_path:
        raise ValueError(
            f"run #{run.pk} has no uploaded file of its own (one table of a legacy database "
            "upload, or a command-line load): confirm or retry the upload's run instead"
        )
    path = Path(run.archived_path)
    if not path.exists():
        raise FileNotFoundError(f"the archived file {path.name} is no longer there")
    return create_run(
        path, run.file_sha256, run.file_name, user=user, entity=entity, dry_run=dry_run, notes=notes
    )


CONFIRMED_PREFIX = "confirmed as run #"


def confirm_run(preview: ImportRun, user: Any = None) -> ImportRun:
    """Queue the real run for a previewed dry run's archived file (once, even on double click)."""
    with transaction.atomic():
        locked = ImportRun.objects.select_for_update().get(pk=preview.pk)
        if locked.status != ImportRun.Status.PREVIEWED or not locked.dry_run:
            raise ValueError("only a previewed dry run can be confirmed")
        if confirmed_as(locked) is not None:
            raise ValueError("this preview was already confirmed")
        entity = "" if locked.entity == "legacy" else locked.entity
        real = _same_file_run(
            locked, user=user, dry_run=False, entity=entity, notes=f"confirms preview #{locked.pk}"
        )
        locked.notes = "\n".join(filter(None, [locked.notes, f"{CONFIRMED_PREFIX}{real.pk}"]))
        locked.save(update_fields=["notes"])
    return real


def confirmed_as(run: ImportRun) -> int | None:
    """The real run queued from this preview, if it was confirmed."""
    return _note_value(run, CONFIRMED_PREFIX)


def cancel_run(run: ImportRun) -> bool:
    """Discard a preview or a queued run of an upload; a running run cannot be cancelled, and
    a confirmed preview is past cancelling (its real run is what would have to be cancelled)."""
    with transaction.atomic():
        locked = ImportRun.objects.select_for_update().filter(pk=run.pk).first()
        if (
            locked is None
            or not locked.archived_path
            or locked.status not in (ImportRun.Status.QUEUED, ImportRun.Status.PREVIEWED)
            or confirmed_as(locked) is not None
        ):
            return False
        locked.status, locked.finished_at = ImportRun.Status.CANCELLED, timezone.now()
        locked.save(update_fields=["status", "finished_at"])
    return True


RETRIED_PREFIX = "retried as run #"


def retry_run(run: ImportRun, user: Any = None) -> ImportRun:
    """A new queued run for the same archived file and mode as a failed run (once, even on a
    double click)."""
    with transaction.atomic():
        locked = ImportRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != ImportRun.Status.FAILED:
            raise ValueError("only a failed run can be retried")
        retried = _note_value(locked, RETRIED_PREFIX)
        if retried is not None:
            raise ValueError(f"this run was already retried as run #{retried}")
        entity = "" if locked.entity == "legacy" else locked.entity
        new = _same_file_run(
            locked,
            user=user,
            dry_run=locked.dry_run,
            entity=entity,
            notes=f"retries run #{locked.pk}",
        )
        locked.notes = "\n".join(filter(None, [locked.notes, f"{RETRIED_PREFIX}{new.pk}"]))
        locked.save(update_fields=["notes"])
    return new


def retried_as(run: ImportRun) -> int | None:
    return _note_value(run, RETRIED_PREFIX)


def _note_value(run: ImportRun, prefix: str) -> int | None:
    for line in run.notes.splitlines():
        if line.startswith(prefix):
            return int(line[len(prefix) :])
    return None


def progress_snapshot(run: ImportRun) -> dict[str, Any]:
    """What the run page polls: rows done, total, ETA, status and the outcome."""
    done, total = run.progress_rows, run.progress_total
    eta = None
    if run.status == ImportRun.Status.RUNNING and run.started_at and total and done:
        elapsed = (timezone.now() - run.started_at).total_seconds()
        if elapsed > 0 and done < total:
            eta = round((total - done) * elapsed / done, 1)
    return {
        "id": run.pk,
        "status": run.status,
        "dry_run": run.dry_run,
        "done": done,
        "total": total,
        # The total of an XLSX without <dimension> is an estimate: never past 100 %.
        "percent": min(round(100 * done / total, 1), 100.0) if total else None,
        "eta_s": eta,
        "finished": run.status not in ACTIVE,
        "error_summary": run.error_summary,
        "counts": {
            "read": run.rows_read,
            "inserted": run.rows_inserted,
            "updated": run.rows_updated,
            "unchanged": run.rows_unchanged,
            "deleted": run.rows_deleted,
            "rejected": run.rows_rejected,
        },
    }
