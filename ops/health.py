"""Health and freshness checks (SPEC §7): plain functions returning CheckResult.

The same functions serve `/health/` (through django-health-check's view, see ``HealthView``),
``manage.py check_health`` and the snapshot task, so the three never disagree.

Statuses: ``ok``, ``warning`` (degraded, still working), ``critical`` (broken, or a safety net
that has not run for too long). A freshness check with no success at all is critical: a system
that has never been backed up is not healthy. Exit codes of check_health: 0 ok, 1 warning,
2 critical (the worst check decides).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import redis
from asgiref.sync import sync_to_async
from celery import Celery
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Max
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.contrib.celery import Ping
from health_check.exceptions import HealthCheckException, ServiceUnavailable, ServiceWarning
from health_check.views import HealthCheckView

from ops.models import Backup, BenchmarkRun, HealthSnapshot, RestoreDrill
from tickets.models import ImportRun

OK, WARNING, CRITICAL = "ok", "warning", "critical"
SEVERITY = {OK: 0, WARNING: 1, CRITICAL: 2}  # also check_health's exit code


@dataclasses.dataclass(frozen=True)
class CheckResult:
    status: str
    message: str
    name: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "message": self.message}


# --- infrastructure --------------------------------------------------------------------------


def _library_check(check: HealthCheck, ok_message: str) -> CheckResult:
    """Run a synchronous django-health-check probe and translate its verdict."""
    try:
        check.run()
    except ServiceWarning as exc:
        return CheckResult(WARNING, exc.message)
    except HealthCheckException as exc:
        return CheckResult(CRITICAL, exc.message)
    return CheckResult(OK, ok_message)


def check_database() -> CheckResult:
    return _library_check(Database(alias=DEFAULT_DB_ALIAS), "SELECT 1 answered")


def _redis_error(url: str, timeout_s: float) -> str | None:
    """None when Redis at `url` answers PING within the timeout, else the error's name."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        return exc.__class__.__name__
    finally:
        client.close()
    return None


def check_redis() -> CheckResult:
    # django-health-check's Redis probe is async-only; this is the same PING, synchronously.
    error = _redis_error(settings.REDIS_URL, 2)
    if error:
        return CheckResult(CRITICAL, f"Redis unreachable: {error}")
    return CheckResult(OK, "PING answered")


def check_celery(app: Celery | None = None) -> CheckResult:
    if app is None:
        from servicedesk.celery import app

    # A broker that is down would keep the ping retrying its connection for seconds, and the
    # page's other checks queue behind it: look at the broker first.
    broker = str(app.conf.broker_url or "")
    if broker.startswith(("redis://", "rediss://")):
        error = _redis_error(broker, 1)
        if error:
            return CheckResult(CRITICAL, f"the broker is unreachable ({error}): no worker can run")
    timeout = timedelta(seconds=settings.HEALTH_CELERY_TIMEOUT_S)
    return _library_check(
        Ping(app=app, timeout=timeout), "a worker answered ping and serves every queue"
    )


def check_migrations() -> CheckResult:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:3])
        more = f" and {len(plan) - 3} more" if len(plan) > 3 else ""
        return CheckResult(CRITICAL, f"{len(plan)} unapplied migration(s): {names}{more}")
    return CheckResult(OK, "all migrations applied")


def check_disk() -> CheckResult:
    """Free space where backups are written (the volume that fills up first)."""
    path = Path(str(settings.BACKUP_DIR))
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    free_pct = 100 * usage.free / usage.total
    message = f"{free_pct:.1f}% free ({usage.free / 1e9:.1f} GB) on {path}"
    if free_pct < settings.HEALTH_DISK_CRIT_FREE_PERCENT:
        return CheckResult(CRITICAL, message)
    if free_pct < settings.HEALTH_DISK_WARN_FREE_PERCENT:
        return CheckResult(WARNING, message)
    return CheckResult(OK, message)


# --- freshness -------------------------------------------------------------------------------


def freshness(
    what: str, last: datetime | None, warn_hours: float, crit_hours: float, now: datetime
) -> CheckResult:
    """Status from the age of the last success against warning / critical thresholds."""
    if last is None:
        return CheckResult(CRITICAL, f"no {what} recorded")
    age_h = (now - last).total_seconds() / 3600
    message = f"last {what} {age_h:.1f} h ago ({last:%Y-%m-%d %H:%M %Z})"
    if age_h >= crit_hours:
        return CheckResult(CRITICAL, f"{message}; critical after {crit_hours:g} h")
    if age_h >= warn_hours:
        return CheckResult(WARNING, f"{message}; warning after {warn_hours:g} h")
    return CheckResult(OK, message)


def _at_least_warning(result: CheckResult, note: str) -> CheckResult:
    status = result.status if result.status != OK else WARNING
    return CheckResult(status, f"{result.message}; {note}")


def check_import_freshness(now: datetime | None = None) -> CheckResult:
    last = ImportRun.objects.filter(
        status=ImportRun.Status.SUCCEEDED, dry_run=False, finished_at__isnull=False
    ).aggregate(last=Max("finished_at"))["last"]
    return freshness(
        "successful import",
        last,
        settings.HEALTH_IMPORT_WARN_HOURS,
        settings.HEALTH_IMPORT_CRIT_HOURS,
        now or timezone.now(),
    )


def check_backup_freshness(now: datetime | None = None) -> CheckResult:
    last = Backup.objects.filter(status=Backup.Status.SUCCEEDED).aggregate(last=Max("finished_at"))[
        "last"
    ]
    result = freshness(
        "successful backup",
        last,
        settings.HEALTH_BACKUP_WARN_HOURS,
        settings.HEALTH_BACKUP_CRIT_HOURS,
        now or timezone.now(),
    )
    latest = Backup.objects.exclude(status=Backup.Status.RUNNING).order_by("-started_at").first()
    if latest is not None and latest.status == Backup.Status.FAILED:
        return _at_least_warning(result, f"the latest backup failed: {latest.error[:200]}")
    return result


def check_drill_freshness(now: datetime | None = None) -> CheckResult:
    last = RestoreDrill.objects.filter(passed=True).aggregate(last=Max("finished_at"))["last"]
    result = freshness(
        "passing restore drill",
        last,
        settings.HEALTH_DRILL_WARN_HOURS,
        settings.HEALTH_DRILL_CRIT_HOURS,
        now or timezone.now(),
    )
    latest = RestoreDrill.objects.filter(passed__isnull=False).order_by("-started_at").first()
    if latest is not None and latest.passed is False:
        return _at_least_warning(result, f"the latest drill failed: {latest.error[:200]}")
    return result


def check_benchmark_freshness(now: datetime | None = None) -> CheckResult:
    last = BenchmarkRun.objects.aggregate(last=Max("started_at"))["last"]
    result = freshness(
        "metric benchmark",
        last,
        settings.HEALTH_BENCHMARK_WARN_HOURS,
        settings.HEALTH_BENCHMARK_CRIT_HOURS,
        now or timezone.now(),
    )
    latest = BenchmarkRun.objects.order_by("-started_at").first()
    if latest is not None and latest.passed is False:
        return _at_least_warning(result, "the latest benchmark exceeded its budget")
    return result


#: Every check, by name, in display order (the one registry of checks).
CHECKS: dict[str, Callable[[], CheckResult]] = {
    "database": check_database,
    "redis": check_redis,
    "celery": check_celery,
    "migrations": check_migrations,
    "disk": check_disk,
    "import_freshness": check_import_freshness,
    "backup_freshness": check_backup_freshness,
    "drill_freshness": check_drill_freshness,
    "benchmark_freshness": check_benchmark_freshness,
}


def run_check(name: str) -> CheckResult:
    """One check by name; an unexpected exception is a critical result, never a crash."""
    try:
        result = CHECKS[name]()
    except Exception as exc:
        result = CheckResult(CRITICAL, f"check raised {exc.__class__.__name__}: {exc}")
    return dataclasses.replace(result, name=name)


def run_checks() -> list[CheckResult]:
    return [run_check(name) for name in CHECKS]


def overall(results: list[CheckResult]) -> str:
    return max((r.status for r in results), key=SEVERITY.__getitem__, default=OK)


def take_snapshot() -> HealthSnapshot:
    """Store the current checks for the Platform dashboard; drop snapshots past retention."""
    results = run_checks()
    snapshot = HealthSnapshot.objects.create(
        overall=overall(results), checks=[r.as_dict() for r in results]
    )
    cutoff = timezone.now() - timedelta(days=settings.HEALTH_SNAPSHOT_KEEP_DAYS)
    HealthSnapshot.objects.filter(taken_at__lt=cutoff).delete()
    return snapshot


# --- /health/ on django-health-check ---------------------------------------------------------


@dataclasses.dataclass
class OpsCheck(HealthCheck):
    """django-health-check adapter for one of our checks (warning -> ServiceWarning)."""

    check: str
    result: CheckResult | None = dataclasses.field(default=None, repr=False)
    redact: bool = dataclasses.field(default=False, repr=False)

    def __repr__(self) -> str:  # the library labels results (HTML, JSON keys) with repr
        return self.check

    async def run(self) -> None:
        # thread_sensitive: the ORM runs in the request's thread (and its transaction in tests).
        result = await sync_to_async(run_check, thread_sensitive=True)(self.check)
        if self.redact:  # paths, free space, stored errors and exception texts are for staff
            result = CheckResult(result.status, REDACTED)
        self.result = result  # the page shows the message of ok checks too (ages, free space)
        if result.status == WARNING:
            raise ServiceWarning(result.message)
        if result.status == CRITICAL:
            raise ServiceUnavailable(result.message)


REDACTED = "details for signed-in staff (or manage.py check_health)"


class HealthView(HealthCheckView):
    """/health/: every check; HTTP 200 when all are ok or warning, 500 when one is critical.

    Anyone may see the status of each check (load balancers, uptime monitors); the details
    name paths, free space and stored error texts, so only staff see them.
    """

    redact = True

    def get_checks(self):
        for check in super().get_checks():
            check.redact = self.redact
            yield check

    checks = [(OpsCheck, {"check": name}) for name in CHECKS]
    template_name = "ops/health.html"

    async def get(self, request, *args, **kwargs):
        try:
            user = await request.auser()
        except DatabaseError:  # sessions live in the database: in its outage, show statuses
            user = AnonymousUser()
        self.redact = not (user.is_active and user.is_staff)
        response = await super().get(request, *args, **kwargs)
        critical = any(
            r.error is not None and not isinstance(r.error, ServiceWarning) for r in self.results
        )
        if response.status_code == 500 and not critical:
            response.status_code = 200  # warnings are reported, not an outage
        return response
