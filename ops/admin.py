"""Ops pages: backups, restore drills, health history and metric benchmarks (read-only).

Each change list opens with the latest status of all four at a glance; statuses are shown as a
word with a symbol (colour only reinforces it). Rows are written by the ops functions and tasks,
never edited by hand; the only actions queue a backup or a restore drill on the Celery worker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from ops.models import Backup, BenchmarkResult, BenchmarkRun, HealthSnapshot, RestoreDrill

# Colour-blind-safe (Okabe-Ito) colours; the word and symbol carry the meaning on their own.
_LABELS = {
    "ok": ("✓", "OK", "#0072B2"),
    "succeeded": ("✓", "SUCCEEDED", "#0072B2"),
    "passed": ("✓", "PASSED", "#0072B2"),
    "warning": ("!", "WARNING", "#E69F00"),
    "running": ("…", "RUNNING", "#555555"),
    "pruned": ("–", "PRUNED", "#555555"),
    "critical": ("✗", "CRITICAL", "#D55E00"),
    "failed": ("✗", "FAILED", "#D55E00"),
}


def status_label(status: str | None) -> str:
    symbol, word, colour = _LABELS.get(status or "", ("?", (status or "unknown").upper(), "#555"))
    return format_html(
        '<strong style="color:{}"><span aria-hidden="true">{}</span> {}</strong>',
        colour,
        symbol,
        word,
    )


def _drill_status(drill: RestoreDrill) -> str:
    if drill.passed is None:
        return "running"
    return "passed" if drill.passed else "failed"


def _ago(when) -> str:
    return f"{timesince(when, timezone.now())} ago" if when else "never"


def at_a_glance() -> list[dict[str, Any]]:
    """The latest backup, drill, health snapshot and benchmark, for the change list header."""
    rows = []
    backup = Backup.objects.order_by("-started_at").first()
    rows.append(
        {
            "what": "Latest backup",
            "label": status_label(backup.status if backup else None),
            "detail": f"{_ago(backup.started_at)}, {backup.reason}" if backup else "none yet",
        }
    )
    drill = RestoreDrill.objects.order_by("-started_at").first()
    rows.append(
        {
            "what": "Latest restore drill",
            "label": status_label(_drill_status(drill) if drill else None),
            "detail": (
                f"{_ago(drill.started_at)}, recovery {drill.recovery_time_s or 0:.1f} s"
                if drill
                else "none yet"
            ),
        }
    )
    snapshot = HealthSnapshot.objects.order_by("-taken_at").first()
    rows.append(
        {
            "what": "Health",
            "label": status_label(snapshot.overall if snapshot else None),
            "detail": (
                f"{_ago(snapshot.taken_at)}: {_problems(snapshot) or 'all checks ok'}"
                if snapshot
                else "no snapshot yet"
            ),
        }
    )
    run = BenchmarkRun.objects.order_by("-started_at").first()
    bench_status = None if run is None else ("passed" if run.passed else "failed")
    rows.append(
        {
            "what": "Latest benchmark",
            "label": status_label(bench_status if run and run.passed is not None else None),
            "detail": f"{_ago(run.started_at)}, total {run.total_ms or 0:.0f} ms"
            if run
            else "none",
        }
    )
    return rows


def _problems(snapshot: HealthSnapshot) -> str:
    return "; ".join(
        f"{c.get('name')}: {c.get('status')}" for c in snapshot.checks if c.get("status") != "ok"
    )


class ReadOnlyOpsAdmin(admin.ModelAdmin):
    """Records written by the system: viewable, not editable."""

    change_list_template = "ops/change_list.html"
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {**(extra_context or {}), "ops_glance": at_a_glance()}
        return super().changelist_view(request, extra_context=extra_context)


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(Backup)
class BackupAdmin(ReadOnlyOpsAdmin):
    list_display = (
        "started_at",
        "status_display",
        "reason",
        "size_display",
        "duration_display",
        "file_present",
        "sha256_short",
    )
    list_filter = ("status", "reason")
    date_hierarchy = "started_at"
    readonly_fields = (
        "path",
        "status",
        "reason",
        "started_at",
        "finished_at",
        "duration_s",
        "size_bytes",
        "sha256",
        "error",
        "row_counts_display",
        "metrics_display",
    )
    exclude = ("row_counts", "metrics")
    actions = ("queue_restore_drill",)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Backup) -> str:
        return status_label(obj.status)

    @admin.display(description="size", ordering="size_bytes")
    def size_display(self, obj: Backup) -> str:
        return f"{obj.size_bytes / 1e6:.1f} MB" if obj.size_bytes is not None else "–"

    @admin.display(description="duration", ordering="duration_s")
    def duration_display(self, obj: Backup) -> str:
        return f"{obj.duration_s:.1f} s" if obj.duration_s is not None else "–"

    @admin.display(description="file on disk", boolean=True)
    def file_present(self, obj: Backup) -> bool:
        return Path(obj.path).is_file()

    @admin.display(description="sha256")
    def sha256_short(self, obj: Backup) -> str:
        return obj.sha256[:12]

    @admin.display(description="row counts")
    def row_counts_display(self, obj: Backup) -> str:
        return _pretty_json(obj.row_counts)

    @admin.display(description="metrics 1.1-1.5 at backup time")
    def metrics_display(self, obj: Backup) -> str:
        return _pretty_json(obj.metrics)

    def get_urls(self):
        urls = [
            path(
                "run-backup/",
                self.admin_site.admin_view(self.run_backup_view),
                name="ops_backup_run",
            )
        ]
        return urls + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        # The button only for whoever may use it (view-only staff got an error message).
        extra = {}
        if request.user.has_perm("ops.add_backup"):
            extra["ops_run_backup_url"] = reverse("admin:ops_backup_run")
        return super().changelist_view(request, extra_context={**(extra_context or {}), **extra})

    def run_backup_view(self, request: HttpRequest):
        """POST only: queue a manual backup on the worker (never inside the web request)."""
        if request.method == "POST" and request.user.has_perm("ops.add_backup"):
            from ops.tasks import backup_task

            if _queued(self, request, lambda: backup_task.delay("admin")):
                self.message_user(request, "Backup queued; refresh this page to see it.")
        else:
            self.message_user(
                request, "Queuing a backup needs the add backup permission.", messages.ERROR
            )
        return HttpResponseRedirect(reverse("admin:ops_backup_changelist"))

    def has_drill_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ops.add_restoredrill")

    @admin.action(
        description="Run a restore drill on the selected backup (queued)", permissions=["drill"]
    )
    def queue_restore_drill(self, request: HttpRequest, queryset) -> None:
        from ops.tasks import restore_drill_task

        if queryset.count() != 1:
            self.message_user(request, "Select exactly one backup.", messages.ERROR)
            return
        target = queryset.get().pk
        if _queued(self, request, lambda: restore_drill_task.delay(target)):
            self.message_user(request, "Restore drill queued; see Restore drills for the verdict.")


def _queued(model_admin: admin.ModelAdmin, request: HttpRequest, send) -> bool:
    """Send a task; when the broker refuses it, say so on the page instead of an error 500."""
    try:
        send()
    except Exception as exc:  # kombu raises OperationalError and friends
        model_admin.message_user(
            request,
            f"Could not queue the task: the task broker (Redis, REDIS_URL) is unreachable "
            f"({type(exc).__name__}). Nothing was started; try again once Redis is up.",
            messages.ERROR,
        )
        return False
    return True


@admin.register(RestoreDrill)
class RestoreDrillAdmin(ReadOnlyOpsAdmin):
    list_display = ("started_at", "result_display", "backup", "recovery_display", "error_short")
    list_filter = ("passed",)
    list_select_related = ("backup",)
    date_hierarchy = "started_at"
    readonly_fields = (
        "backup",
        "started_at",
        "finished_at",
        "passed",
        "recovery_time_s",
        "error",
        "details_display",
    )
    exclude = ("details",)

    @admin.display(description="result", ordering="passed")
    def result_display(self, obj: RestoreDrill) -> str:
        return status_label(_drill_status(obj))

    @admin.display(description="recovery time", ordering="recovery_time_s")
    def recovery_display(self, obj: RestoreDrill) -> str:
        return f"{obj.recovery_time_s:.1f} s" if obj.recovery_time_s is not None else "–"

    @admin.display(description="error")
    def error_short(self, obj: RestoreDrill) -> str:
        return obj.error[:120]

    @admin.display(description="per-table counts and metric comparison")
    def details_display(self, obj: RestoreDrill) -> str:
        return _pretty_json(obj.details)


@admin.register(HealthSnapshot)
class HealthSnapshotAdmin(ReadOnlyOpsAdmin):
    list_display = ("taken_at", "overall_display", "problems")
    list_filter = ("overall",)
    date_hierarchy = "taken_at"
    readonly_fields = ("taken_at", "overall", "checks_display")
    exclude = ("checks",)

    @admin.display(description="overall", ordering="overall")
    def overall_display(self, obj: HealthSnapshot) -> str:
        return status_label(obj.overall)

    @admin.display(description="checks not ok")
    def problems(self, obj: HealthSnapshot) -> str:
        return _problems(obj) or "–"

    @admin.display(description="checks")
    def checks_display(self, obj: HealthSnapshot) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((c.get("name"), status_label(c.get("status")), c.get("message")) for c in obj.checks),
        )
        return format_html("<table>{}</table>", rows)


class BenchmarkResultInline(admin.TabularInline):
    model = BenchmarkResult
    fields = ("metric_id", "slug", "median_ms", "p95_ms", "max_ms")
    readonly_fields = fields
    can_delete = False
    extra = 0
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BenchmarkRun)
class BenchmarkRunAdmin(ReadOnlyOpsAdmin):
    list_display = ("started_at", "result_display", "total_ms", "budget_ms", "runs", "warmup")
    list_filter = ("passed",)
    date_hierarchy = "started_at"
    readonly_fields = (
        "started_at",
        "runs",
        "warmup",
        "total_ms",
        "budget_ms",
        "passed",
        "table_sizes_display",
    )
    exclude = ("table_sizes",)
    inlines = (BenchmarkResultInline,)

    @admin.display(description="result", ordering="passed")
    def result_display(self, obj: BenchmarkRun) -> str:
        if obj.passed is None:
            return status_label("running")
        return status_label("passed" if obj.passed else "failed")

    @admin.display(description="table sizes")
    def table_sizes_display(self, obj: BenchmarkRun) -> str:
        return _pretty_json(obj.table_sizes)
