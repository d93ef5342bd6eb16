"""The typed warehouse (SPEC §3). Source columns are generated from `tickets.columns`.

Natural keys are the primary keys where the source has one (tickets, comments), so references
between entities are logical joins on the source ids and orphans are allowed (SPEC §4.2).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tickets.columns import model_fields


class ImportRun(models.Model):
    """One load of one entity from one file: the import metadata and system of record."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PREVIEWED = "previewed"  # dry run finished, waiting for the user to confirm
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class SourceKind(models.TextChoices):
        XLSX = "xlsx"
        CSV = "csv"
        SQLITE = "sqlite"
        LEGACY_HISTORY = "legacy-history", "legacy import record"

    source_kind = models.CharField(max_length=20, choices=SourceKind.choices)
    entity = models.CharField(max_length=40, blank=True)
    file_name = models.CharField(max_length=500, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    archived_path = models.CharField(max_length=1000, blank=True)
    same_file_as = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    dry_run = models.BooleanField(default=False)
    task_id = models.CharField(max_length=100, blank=True)
    rows_read = models.IntegerField(default=0)
    rows_inserted = models.IntegerField(default=0)
    rows_updated = models.IntegerField(default=0)
    rows_unchanged = models.IntegerField(default=0)
    rows_deleted = models.IntegerField(default=0)
    rows_rejected = models.IntegerField(default=0)
    rows_warned = models.IntegerField(default=0)
    rows_superseded = models.IntegerField(default=0)
    #: The row counters above, in report order: what the pipeline saves from its counts (the
    #: field name less "rows_"), a legacy upload sums over its table runs, and import_file
    #: reports. One list, so a new counter is saved, summed and reported everywhere.
    COUNT_FIELDS = (
        "rows_read",
        "rows_inserted",
        "rows_updated",
        "rows_unchanged",
        "rows_deleted",
        "rows_rejected",
        "rows_superseded",
        "rows_warned",
    )
    orphans = models.IntegerField(default=0)
    window_start = models.DateField(null=True, blank=True)
    window_end = models.DateField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    progress_rows = models.IntegerField(default=0)
    progress_total = models.IntegerField(null=True, blank=True)
    error_summary = models.TextField(blank=True)
    notes = models.TextField(blank=True)
    legacy_import_id = models.CharField(max_length=100, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Platform dashboard and freshness check: latest successful run per entity.
            models.Index(fields=["status", "entity", "-finished_at"], name="importrun_status_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.entity or '?'} {self.file_name} ({self.status})"


class ImportIssue(models.Model):
    """A rejected row or a repaired value, with enough context to fix the source."""

    class Severity(models.TextChoices):
        ERROR = "error"  # the row was rejected
        WARNING = "warning"  # the row was kept, the value stored as NULL or as read

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="issues")
    entity = models.CharField(max_length=40)
    row_number = models.IntegerField(null=True, blank=True)
    natural_key = models.CharField(max_length=200, blank=True)
    column = models.CharField(max_length=200, blank=True)
    raw_value = models.TextField(blank=True)
    reason = models.TextField()
    severity = models.CharField(max_length=10, choices=Severity.choices)

    class Meta:
        ordering = ["run", "row_number"]
        indexes = [
            # Run report: a run's issues by severity, in row order.
            models.Index(fields=["run", "severity", "row_number"], name="importissue_run_idx"),
        ]


class Lineage(models.Model):
    """Which run inserted a row and which run last changed it (SPEC §4.2 lineage).

    No database constraint: Django's foreign keys are deferred, so a million-row load queued a
    million constraint checks for COMMIT (31 s at 10x scale). The pipeline only ever writes the
    id of the run it is executing, and runs are not deleted while rows point at them.
    """

    inserted_run = models.ForeignKey(
        ImportRun,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    changed_run = models.ForeignKey(
        ImportRun,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        abstract = True


class Ticket(Lineage):
    locals().update(model_fields("tickets"))
    ticket_id = models.BigIntegerField(primary_key=True)

    class Meta:
        indexes = [
            # Metric populations and admin filters (SPEC §5): closed set, team, category.
            models.Index(fields=["status"], name="ticket_status_idx"),
            models.Index(fields=["team"], name="ticket_team_idx"),
            models.Index(fields=["category"], name="ticket_category_idx"),
            models.Index(fields=["status", "team"], name="ticket_status_team_idx"),
            models.Index(fields=["status", "category"], name="ticket_status_category_idx"),
            # Period filter on every metric, monthly volume, admin date hierarchy.
            models.Index(fields=["created_at"], name="ticket_created_idx"),
            # Resolution time (1.2, 2.7, 3.3) and closure reporting.
            models.Index(fields=["resolved_at"], name="ticket_resolved_idx"),
            models.Index(fields=["closed_at"], name="ticket_closed_idx"),
            # Root-cause distribution (2.2) and audits (3.6).
            models.Index(fields=["root_cause_category"], name="ticket_root_cause_idx"),
            # SLA compliance (1.1).
            models.Index(fields=["sla_met"], name="ticket_sla_met_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} {self.title or ''}".strip()


class Comment(Lineage):
    locals().update(model_fields("comments"))
    comment_id = models.BigIntegerField(primary_key=True)
    is_customer_facing = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # Per-ticket comment counts in the metric facts and the ticket admin inline.
            models.Index(fields=["ticket_id", "created_at"], name="comment_ticket_idx"),
            # Quality fallback match (ticket_id, created time) and period filters.
            models.Index(fields=["created_at"], name="comment_created_idx"),
        ]


class TimesheetEntry(Lineage):
    locals().update(model_fields("timesheets"))
    ticket_id = models.BigIntegerField(null=True, blank=True)
    # Hex digest: byte-wise "C" collation makes the unique index compare with memcmp. Unique by
    # a named constraint, not unique=True, which would add a second (LIKE pattern) index that
    # every insert pays for and no query uses.
    fingerprint = models.CharField(max_length=64, db_collation="C")

    class Meta:
        verbose_name_plural = "timesheet entries"
        constraints = [
            models.UniqueConstraint(fields=["fingerprint"], name="timesheet_fingerprint_key"),
        ]
        indexes = [
            # Linked timesheets per ticket (2.1, 3.5, 4.2).
            models.Index(fields=["ticket_id"], name="timesheet_ticket_idx"),
            # Agent productivity (3.2) by user.
            models.Index(fields=["user_full_name"], name="timesheet_user_idx"),
            # Window replace: stored rows inside the file's [min, max] work_date.
            models.Index(fields=["work_date"], name="timesheet_date_idx"),
        ]


class CommentQuality(Lineage):
    locals().update(model_fields("comment_quality"))
    comment_key = models.TextField(unique=True)

    class Meta:
        verbose_name_plural = "comment quality results"
        indexes = [
            models.Index(fields=["ticket_id", "created_at"], name="quality_ticket_idx"),
        ]


class CommentSentiment(Lineage):
    locals().update(model_fields("comment_sentiment"))
    comment_key = models.TextField(unique=True)

    class Meta:
        verbose_name_plural = "comment sentiment results"


class TeamMember(Lineage):
    locals().update(model_fields("roster"))
    username = models.TextField(unique=True)

    def __str__(self) -> str:
        return self.name or self.username


class RootCauseAudit(models.Model):
    """A reviewer's verdict on whether a closed ticket's root cause is right (metric 3.6)."""

    ticket_id = models.BigIntegerField(db_index=True)
    category = models.TextField(null=True, blank=True)
    root_cause_category = models.TextField(null=True, blank=True)
    accurate = models.BooleanField(null=True, blank=True, help_text="Empty until reviewed.")
    corrected_root_cause = models.TextField(null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    sampled_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ticket_id"], name="rootcauseaudit_one_per_ticket")
        ]
