"""Time every registry metric's SQL (SPEC §7): warm-up, N runs, median and p95, EXPLAIN.

Times the exact SQL the dashboards run, with no filter (the widest, slowest case), on the
connection of the given alias. Results are stored for the Platform dashboard.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connections

from metrics.facts import MATERIALIZED_VIEWS
from metrics.registry import METRICS, MetricDef, null_params

#: Tables whose size explains the timings.
SIZED_TABLES = (
    "tickets_ticket",
    "tickets_comment",
    "tickets_timesheetentry",
    "tickets_commentquality",
    *MATERIALIZED_VIEWS,
)


@dataclass
class MetricTiming:
    metric_id: str
    slug: str
    median_ms: float
    p95_ms: float
    max_ms: float
    over_budget: bool = False
    explain: str = ""


@dataclass
class BenchmarkReport:
    runs: int
    warmup: int
    budget_ms: float | None
    results: list[MetricTiming] = field(default_factory=list)
    table_sizes: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        """Sum of the per-metric medians: the time to compute them all once."""
        return round(sum(r.median_ms for r in self.results), 3)

    @property
    def passed(self) -> bool:
        return not any(r.over_budget for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(total_ms=self.total_ms, passed=self.passed)
        return data


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 20 runs is the 19th fastest)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def table_sizes(using: str = "default") -> dict[str, dict[str, int]]:
    sizes = {}
    with connections[using].cursor() as cursor:
        for table in SIZED_TABLES:
            cursor.execute(f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}")
            rows, size = cursor.fetchone()
            sizes[table] = {"rows": rows, "bytes": size}
    return sizes


def sample_ms(cursor: Any, sql: str, params: dict, runs: int, warmup: int) -> list[float]:
    """Milliseconds of `runs` executions (rows fetched), after `warmup` untimed ones."""
    samples = []
    for n in range(warmup + runs):
        started = time.perf_counter()
        cursor.execute(sql, params)
        cursor.fetchall()
        if n >= warmup:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def time_metric(
    metric: MetricDef, runs: int, warmup: int, explain: bool, using: str = "default"
) -> MetricTiming:
    params = null_params()
    with connections[using].cursor() as cursor:
        samples = sample_ms(cursor, metric.sql, params, runs, warmup)
        plan = ""
        if explain:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {metric.sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    return MetricTiming(
        metric.id,
        metric.slug,
        round(statistics.median(samples), 3),
        round(percentile(samples, 95), 3),
        round(max(samples), 3),
        explain=plan,
    )


def run_benchmark(
    runs: int = 20,
    warmup: int = 3,
    budget_ms: float | None = None,
    explain: bool = False,
    metrics: tuple[MetricDef, ...] = METRICS,
    using: str = "default",
) -> BenchmarkReport:
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    report = BenchmarkReport(runs, warmup, budget_ms, table_sizes=table_sizes(using))
    for metric in metrics:
        timing = time_metric(metric, runs, warmup, explain, using)
        timing.over_budget = budget_ms is not None and timing.p95_ms > budget_ms
        report.results.append(timing)
    return report


def store(report: BenchmarkReport) -> Any:
    """Persist as BenchmarkRun + BenchmarkResult rows (Platform dashboard, freshness check)."""
    from ops.models import BenchmarkResult, BenchmarkRun

    run = BenchmarkRun.objects.create(
        runs=report.runs,
        warmup=report.warmup,
        total_ms=report.total_ms,
        budget_ms=report.budget_ms,
        passed=report.passed,
        table_sizes=report.table_sizes,
    )
    BenchmarkResult.objects.bulk_create(
        BenchmarkResult(
            run=run,
            metric_id=r.metric_id,
            slug=r.slug,
            median_ms=r.median_ms,
            p95_ms=r.p95_ms,
            max_ms=r.max_ms,
            explain=r.explain,
        )
        for r in report.results
    )
    return run
