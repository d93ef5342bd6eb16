"""Root-cause audits (metric 3.6): sample closed tickets per category, record reviewers' verdicts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from tickets.models import RootCauseAudit, Ticket


def sample_for_audit(tickets: QuerySet[Ticket], per_category: int | None = None) -> int:
    """Add up to N not-yet-audited closed tickets with a root cause, per category, at random.

    Works on any ticket queryset (the admin passes the user's filtered selection); returns how
    many audits were created.
    """
    per_category = per_category or settings.ROOT_CAUSE_AUDIT_SAMPLE
    closed = [s.strip().lower() for s in settings.CLOSED_STATUSES]
    ids = list(tickets.values_list("ticket_id", flat=True)[:1_000_000])
    if not ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO tickets_rootcauseaudit
                (ticket_id, category, root_cause_category, sampled_at, notes)
            SELECT ticket_id, category, root_cause_category, now(), ''
            FROM (
                SELECT t.ticket_id, t.category, t.root_cause_category,
                       row_number() OVER (PARTITION BY t.category ORDER BY random()) AS pick
                FROM tickets_ticket t
                WHERE t.ticket_id = ANY(%s)
                  AND lower(btrim(t.status)) = ANY(%s)
                  AND t.root_cause_category IS NOT NULL
                  AND NOT EXISTS (
                      SELECT 1 FROM tickets_rootcauseaudit a WHERE a.ticket_id = t.ticket_id
                  )
            ) picked
            WHERE pick <= %s
            ON CONFLICT (ticket_id) DO NOTHING
            """,
            [ids, closed, per_category],
        )
        return cursor.rowcount


def record_verdict(audits: QuerySet[RootCauseAudit], accurate: bool, reviewer: Any) -> int:
    return audits.update(accurate=accurate, reviewer=reviewer, reviewed_at=timezone.now())
