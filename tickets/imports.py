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
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from tickets.columns import ENTITIES
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
    from tickets.tasks import run_import_task

    run_id, task_id = run.pk, run.task_id
    transaction.on_commit(lambda: run_import_task.apply_async((run_id,), task_id=task_id))


def claim(run_id: int) -> bool:
    """Compare-and-swap queued -> running; False when another worker (or a cancel) got there."""
    now = timezone.now()
    changed = ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED).update(
        status=ImportRun.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    return changed == 1


class Heartbeat:
    """Writes heartbeat_at (and, for SQLite parents, progress) every few seconds.

    Runs in its own thread and connection, independent of the pipeline's phases, so a long
    merge is not mistaken for a dead worker; it dies with the worker process.
    """

    def __init__(self, run_id: int, interval: float | None = None):
        self.run_id = run_id
        self.interval = interval or heartbeat_interval()
        self.progress: tuple[int, int | None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"hb-{run_id}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        conn = connections.create_connection("default")
        try:
            while not self._stop.wait(self.interval):
                with conn.cursor() as cur:
                    if self.progress is None:
                        cur.execute(
                            "UPDATE tickets_importrun SET heartbeat_at = now() "
                            "WHERE id = %s AND status = 'running'",
                            [self.run_id],
                        )
                    else:
                        cur.execute(
                            "UPDATE tickets_importrun SET heartbeat_at = now(), "
                            "progress_rows = %s, progress_total = %s "
                            "WHERE id = %s AND status = 'running'",
                            [*self.progress, self.run_id],
                        )
        except Exception:  # a heartbeat problem must never break the import itself
            log.exception("heartbeat for run %s stopped", self.run_id)
        finally:
            conn.close()


def heartbeat_interval() -> float:
    return max(0.5, min(10.0, settings.IMPORT_STALE_AFTER_S / 4))


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
                "(CELERY_TASK_SOFT_TIME_LIMIT) and was stopped; nothing was written.",
            )
        except Exception as exc:  # never leave a run looking alive or successful
            log.exception("import run %s crashed", run_id)
            mark_failed(run_id, f"{type(exc).__name__}: {exc}")
    return ImportRun.objects.values_list("status", flat=True).get(pk=run_id)


def _execute_legacy(run: ImportRun, beat: Heartbeat) -> None:
    """A SQLite upload: every legacy table as its own child run; this run sums them up."""
    from tickets.legacy import migrate_legacy

    def progress_for(table: str, total: int | None):
        def update(done: int, _total: int | None) -> None:
            beat.progress = (done, total)

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
    for name in (
        "rows_read",
        "rows_inserted",
        "rows_updated",
        "rows_unchanged",
        "rows_deleted",
        "rows_rejected",
        "rows_warned",
        "rows_superseded",
        "orphans",
    ):
        setattr(run, name, sum(getattr(c, name) for c in children))
    starts = [c.window_start for c in children if c.window_start]
    ends = [c.window_end for c in children if c.window_end]
    run.window_start, run.window_end = (min(starts), max(ends)) if starts else (None, None)
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
    else:
        run.status = ImportRun.Status.PREVIEWED if run.dry_run else ImportRun.Status.SUCCEEDED
    run.save()


def child_runs(run: ImportRun) -> list[ImportRun]:
    """The per-table runs of an uploaded SQLite database (empty for a file upload)."""
    for line in run.notes.splitlines():
        if line.startswith(CHILDREN_PREFIX):
            ids = [int(x) for x in line[len(CHILDREN_PREFIX) :].split(",") if x.strip()]
            return list(ImportRun.objects.filter(pk__in=ids).order_by("pk"))
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
            "IMPORT_STALE_AFTER_S): it probably died. Nothing was written; use Retry."
        ),
    )


def _same_file_run(
    run: ImportRun, *, user: Any, dry_run: bool, entity: str, notes: str
) -> ImportRun:
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
    for line in run.notes.splitlines():
        if line.startswith(CONFIRMED_PREFIX):
            return int(line[len(CONFIRMED_PREFIX) :])
    return None


def cancel_run(run: ImportRun) -> bool:
    """Discard a preview or a queued run; a running run cannot be cancelled."""
    changed = ImportRun.objects.filter(
        pk=run.pk, status__in=[ImportRun.Status.QUEUED, ImportRun.Status.PREVIEWED]
    ).update(status=ImportRun.Status.CANCELLED, finished_at=timezone.now())
    return changed == 1


def retry_run(run: ImportRun, user: Any = None) -> ImportRun:
    """A new queued run for the same archived file and mode as a failed run."""
    if run.status != ImportRun.Status.FAILED:
        raise ValueError("only a failed run can be retried")
    entity = "" if run.entity == "legacy" else run.entity
    return _same_file_run(
        run, user=user, dry_run=run.dry_run, entity=entity, notes=f"retries run #{run.pk}"
    )


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
        "percent": round(100 * done / total, 1) if total else None,
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
