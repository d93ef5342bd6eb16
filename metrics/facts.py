"""Materialised metric facts: write the settings row, refresh the views (SPEC §5.3).

The views are frozen SQL, so the settings of SPEC §5.1 reach them through the one-row
`metric_settings` table; this module is the only writer of that row.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connections, transaction

#: Materialised views in refresh order (each reads only the ones before it).
MATERIALIZED_VIEWS = (
    "metric_quality_facts",
    "metric_comment_counts",
    "metric_agent_day_facts",
    "metric_linked_timesheet_facts",
    "metric_ticket_facts",
)

_SETTINGS_COLUMNS = (
    "closed_statuses",
    "automation_users",
    "min_team_sample",
    "support_category",
    "time_zone",
)


def desired_settings() -> dict[str, Any]:
    """Django settings normalised the way the views compare them (trimmed, lower case)."""
    return {
        "closed_statuses": sorted({s.strip().lower() for s in settings.CLOSED_STATUSES}),
        "automation_users": sorted({u.strip().lower() for u in settings.AUTOMATION_USERS}),
        "min_team_sample": int(settings.MIN_TEAM_SAMPLE),
        "support_category": settings.SUPPORT_CATEGORY.strip().lower(),
        "time_zone": settings.TIME_ZONE,
    }


def stored_settings(using: str = "default") -> dict[str, Any] | None:
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(_SETTINGS_COLUMNS)} FROM metric_settings WHERE id = 1")
        row = cursor.fetchone()
    if row is None:
        return None
    stored = dict(zip(_SETTINGS_COLUMNS, row, strict=True))
    stored["closed_statuses"] = sorted(stored["closed_statuses"])
    stored["automation_users"] = sorted(stored["automation_users"])
    return stored


def settings_stale(using: str = "default") -> bool:
    """True when the facts were built with other settings than Django's current ones."""
    return stored_settings(using) != desired_settings()


def write_settings(using: str = "default") -> None:
    values = desired_settings()
    with connections[using].cursor() as cursor:
        cursor.execute(
            "INSERT INTO metric_settings (id, closed_statuses, automation_users, "
            "min_team_sample, support_category, time_zone, updated_at) "
            "VALUES (1, %(closed_statuses)s, %(automation_users)s, %(min_team_sample)s, "
            "%(support_category)s, %(time_zone)s, now()) "
            "ON CONFLICT (id) DO UPDATE SET closed_statuses = EXCLUDED.closed_statuses, "
            "automation_users = EXCLUDED.automation_users, "
            "min_team_sample = EXCLUDED.min_team_sample, "
            "support_category = EXCLUDED.support_category, "
            "time_zone = EXCLUDED.time_zone, updated_at = EXCLUDED.updated_at",
            values,
        )


def refresh_facts(using: str = "default") -> float:
    """Write the settings row and refresh every metric fact view; returns seconds taken.

    Runs in the caller's transaction (the import pipeline calls it inside its run), so a failed
    import never leaves facts that disagree with the tables.
    """
    started = time.perf_counter()
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        # Whole-table aggregations: JIT compilation costs seconds and buys nothing here, and
        # hash aggregates must not spill. SET LOCAL ends with the (caller's) transaction.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        write_settings(using)
        for view in MATERIALIZED_VIEWS:
            cursor.execute(f"REFRESH MATERIALIZED VIEW {view}")
            # Fresh statistics at once: the next view's plan joins this one.
            cursor.execute(f"ANALYZE {view}")
    return time.perf_counter() - started
