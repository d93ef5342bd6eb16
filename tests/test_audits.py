"""Root-cause audits: sampling per category and reviewers' verdicts feed metric 3.6."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from metrics.compute import compute
from tickets.audits import record_verdict, sample_for_audit
from tickets.models import RootCauseAudit, Ticket

pytestmark = pytest.mark.django_db


def make_tickets():
    n = 0
    for category, count in (("Alert", 8), ("Support Tickets", 3)):
        for _ in range(count):
            n += 1
            Ticket.objects.create(
                ticket_id=n,
                created_at="2025-07-01T00:00Z",
                status="Closed",
                category=category,
                root_cause_category="Security",
            )
    Ticket.objects.create(
        ticket_id=100,
        created_at="2025-07-01T00:00Z",
        status="Open",
        category="Alert",
        root_cause_category="Security",
    )
    Ticket.objects.create(
        ticket_id=101,
        created_at="2025-07-01T00:00Z",
        status="Closed",
        category="Alert",
        root_cause_category=None,
    )


def test_sampling_takes_n_per_category_of_closed_tickets_once(settings):
    settings.ROOT_CAUSE_AUDIT_SAMPLE = 5
    make_tickets()
    assert sample_for_audit(Ticket.objects.all()) == 8  # 5 alerts + 3 support tickets
    by_category = {
        c: RootCauseAudit.objects.filter(category=c).count() for c in ("Alert", "Support Tickets")
    }
    assert by_category == {"Alert": 5, "Support Tickets": 3}
    assert not RootCauseAudit.objects.filter(ticket_id__in=[100, 101]).exists()
    assert sample_for_audit(Ticket.objects.all()) == 3  # the 3 alerts not yet audited
    assert sample_for_audit(Ticket.objects.all()) == 0


def test_verdicts_drive_root_cause_accuracy():
    make_tickets()
    sample_for_audit(Ticket.objects.all(), per_category=10)
    reviewer = User.objects.create_user("rev")
    audits = RootCauseAudit.objects.order_by("ticket_id")
    record_verdict(audits.filter(ticket_id__lte=9), True, reviewer)
    record_verdict(audits.filter(ticket_id__gt=9), False, reviewer)
    value = compute(["3.6"])["root_cause_accuracy_rate"]["value"]
    assert value == pytest.approx(81.82)  # 9 of 11 reviewed audits accurate


def test_admin_action_samples_the_selection(client, settings):
    settings.ROOT_CAUSE_AUDIT_SAMPLE = 2
    make_tickets()
    admin = User.objects.create_superuser("boss", password="pw")
    client.force_login(admin)
    response = client.post(
        reverse("admin:tickets_ticket_changelist"),
        {"action": "sample_for_root_cause_audit", "_selected_action": [1, 2, 3, 9]},
        follow=True,
    )
    assert response.status_code == 200
    assert set(RootCauseAudit.objects.values_list("ticket_id", flat=True)) <= {1, 2, 3, 9}
    assert RootCauseAudit.objects.count() == 3  # 2 alerts + the one support ticket selected
