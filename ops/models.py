"""Operations records: backups, restore drills, health snapshots and metric benchmarks.

These rows feed the Platform dashboard and the freshness checks of /health/.
"""

from __future__ import annotations

from django.db import models


class Backup(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        PRUNED = "pruned"  # file deleted by retention; the record stays for history

    path = models.CharField(max_length=1000)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    row_counts = models.JSONField(default=dict, blank=True)
    # Critical metrics (1.1-1.5) computed on the dump's own snapshot, so a restore drill can
    # prove the restored data gives the same answers.
    metrics = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=100, blank=True)  # scheduled, manual, pre-import, safety
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["status", "-started_at"], name="backup_status_idx")]

    def __str__(self) -> str:
        return f"Backup {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class RestoreDrill(models.Model):
    backup = models.ForeignKey(Backup, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    recovery_time_s = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)  # per-table counts, metric comparison
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Drill {self.started_at:%Y-%m-%d %H:%M} ({'pass' if self.passed else 'fail'})"


class HealthSnapshot(models.Model):
    taken_at = models.DateTimeField(auto_now_add=True, db_index=True)
    overall = models.CharField(max_length=10)  # ok, warning, critical
    checks = models.JSONField(default=list)  # [{"name", "status", "message"}]

    class Meta:
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"Health {self.taken_at:%Y-%m-%d %H:%M} {self.overall}"


class BenchmarkRun(models.Model):
    started_at = models.DateTimeField(auto_now_add=True)
    runs = models.IntegerField()
    warmup = models.IntegerField()
    total_ms = models.FloatField(null=True, blank=True)  # sum of per-metric medians
    budget_ms = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    table_sizes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Benchmark {self.started_at:%Y-%m-%d %H:%M}"


class BenchmarkResult(models.Model):
    run = models.ForeignKey(BenchmarkRun, on_delete=models.CASCADE, related_name="results")
    metric_id = models.CharField(max_length=20)
    slug = models.CharField(max_length=100)
    median_ms = models.FloatField()
    p95_ms = models.FloatField()
    max_ms = models.FloatField()
    explain = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "metric_id"]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.median_ms:.1f} ms"
