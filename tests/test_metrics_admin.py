"""Admin metric overview: all 23 with value, colour AND text status, filters, definitions."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from metrics.facts import refresh_facts
from metrics.registry import CORE_METRICS, STATUS_LABELS
from tests.test_metrics import build


@pytest.fixture
def staff_client(client, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("lead", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="tickets", codename="view_ticket")
    )
    client.force_login(user)
    return client


def test_staff_who_may_not_view_tickets_do_not_see_metrics(client, django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("metrics_overview")).status_code == 403
    assert client.get(reverse("metrics_definition", args=["1.1"])).status_code == 403


@pytest.fixture
def data(db):
    with override_settings(MIN_TEAM_SAMPLE=2):
        build()
        refresh_facts()
        yield


def test_anonymous_is_sent_to_login(client, db):
    response = client.get(reverse("metrics_overview"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_overview_shows_all_23_with_text_status(staff_client, data):
    with override_settings(MIN_TEAM_SAMPLE=2):
        response = staff_client.get(reverse("metrics_overview"))
    assert response.status_code == 200
    html = response.content.decode()
    for metric in CORE_METRICS:
        assert f'id="metric-{metric.slug}"' in html
        assert reverse("metrics_definition", args=[metric.id]) in html
    # 1.1 = 85.71 % is red: the colour class and the words are both there.
    card = html.split('id="metric-sla_compliance_rate"')[1].split("</section>")[0]
    assert 'data-status="red"' in card and "85.71" in card and STATUS_LABELS["red"] in card
    assert "<table>" in html and "Support Tickets" in html  # tables render as HTML tables
    assert "<details>" in html


def test_overview_filters(staff_client, data):
    with override_settings(MIN_TEAM_SAMPLE=2):
        response = staff_client.get(reverse("metrics_overview"), {"team": "Beta"})
    html = response.content.decode()
    card = html.split('id="metric-sla_compliance_rate"')[1].split("</section>")[0]
    assert "100.0" in card and 'data-status="green"' in card
    assert '<option value="Beta" selected>' in html
    with override_settings(MIN_TEAM_SAMPLE=2):
        response = staff_client.get(
            reverse("metrics_overview"), {"from": "2025-08-01", "to": "2025-09-01"}
        )
    card = response.content.decode().split('id="metric-sla_compliance_rate"')[1]
    assert "66.67" in card.split("</section>")[0]


@pytest.mark.parametrize(
    "query, message",
    [
        ({"from": "2025-13-45"}, "The from date &#x27;2025-13-45&#x27; is not a date"),
        ({"to": "garbage"}, "The to date &#x27;garbage&#x27; is not a date"),
        ({"from": "2025-09-01", "to": "2025-08-01"}, "is empty (the to date is exclusive)"),
        ({"team": "No Such Team"}, "No team is named &#x27;No Such Team&#x27;"),
        ({"team": "bad\x00team"}, "No team is named"),
    ],
)
def test_overview_says_which_filter_it_could_not_apply(staff_client, data, query, message):
    with override_settings(MIN_TEAM_SAMPLE=2):
        response = staff_client.get(reverse("metrics_overview"), query)
        unfiltered = staff_client.get(reverse("metrics_overview"))
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    card = html.split('id="metric-sla_compliance_rate"')[1].split("</section>")[0]
    assert (
        card
        == unfiltered.content.decode()
        .split('id="metric-sla_compliance_rate"')[1]
        .split("</section>")[0]
    )  # the numbers shown are the unfiltered ones, as the message says


def test_threshold_rules_are_in_the_unit_they_judge(staff_client, data):
    from metrics.registry import get_metric

    assert get_metric("2.3").threshold_rule().startswith("pct per row green <= 20%")
    assert get_metric("2.5").threshold_rule().startswith("good_excellent_pct green >= 60%")
    assert get_metric("1.2").threshold_rule() == "green <= 3 days, yellow <= 5 days, red > 5 days"


def test_overview_on_empty_database(staff_client, db):
    refresh_facts()
    response = staff_client.get(reverse("metrics_overview"))
    assert response.status_code == 200
    assert "no data" in response.content.decode()


def test_definition_page(staff_client, db):
    response = staff_client.get(reverse("metrics_definition", args=["fcr_rate"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "metric_ticket_facts" in html and "at most one customer-facing" in html
    assert staff_client.get(reverse("metrics_definition", args=["9.9"])).status_code == 404
