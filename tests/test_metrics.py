"""Every registry metric on an empty and on a small hand-built database (SPEC §5).

The expected values below were worked out by hand from the rows built in `known_db`; the
comments next to them show the arithmetic.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from metrics.compute import compute, row_status, status
from metrics.facts import refresh_facts
from metrics.registry import CORE_METRICS, METRIC_RELATIONS, METRICS, PARAMS, get_metric
from tickets.models import Comment, CommentQuality, RootCauseAudit, Ticket, TimesheetEntry

UTC = dt.UTC


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, tzinfo=UTC)


# ticket_id: (team, status, category, root cause, created, resolved after days, sla_met)
TICKETS = {
    **{
        i: (
            "Alpha",
            "Closed",
            "Support Tickets",
            "Security" if i <= 6 else "Account",
            at(7, i),
            {1: 1, 2: 2, 3: 3, 4: 0.5}.get(i),
            i <= 9,
        )
        for i in range(1, 11)
    },
    11: ("Alpha", " resolved", "Alert", "Security", at(8, 5), -1, None),  # negative duration
    12: ("Alpha", "Resolved", "Alert", "Security", at(8, 6), None, None),
    13: ("Alpha", "Open", "Support Tickets", "Software", at(8, 10), None, False),
    21: ("Beta", "Closed", "Alert", "Account", at(8, 1), 5, True),
    22: ("Beta", "Closed", "Alert", None, at(8, 2), 10, True),
    23: ("Beta", "Closed", "Alert", "Hardware", at(8, 3), None, None),
    24: ("Beta", "In Progress", "Support Tickets", None, at(9, 1), None, True),
    31: (None, "Closed", None, None, at(7, 20), 4, None),
}

# comment_id: (ticket_id, user, type, visible_to_customer, created or None = ticket + 1h)
COMMENTS = {
    1001: (1, "agent1", "comments", None, None),  # cf
    1002: (1, "brian", "system", None, None),
    1003: (2, "agent1", "worknotes", None, None),
    1004: (2, "Brian ", "comments", None, None),  # automation: never customer-facing
    1005: (3, "agent2", "comments", None, at(7, 3, 12)),  # cf, quality match by time
    1006: (3, "agent2", "worknotes", True, None),  # cf by flag
    1007: (3, "agent2", "comments", False, None),  # not cf by flag
    1008: (4, "agent1", "comments", None, at(7, 4, 12)),  # 1008/1009 share a time
    1009: (4, "agent1", "comments", None, at(7, 4, 12)),
    1010: (4, "agent1", "comments", None, None),
    1011: (4, "agent1", "comments", None, None),
    1012: (5, "agent1", " COMMENTS ", None, None),  # cf (type trimmed, any case)
    1013: (11, "agent1", "comments", None, None),
    1014: (13, "agent1", "comments", None, None),
    1015: (13, "agent1", "comments", None, None),
    1016: (13, "agent1", "comments", None, None),
    1017: (21, "agent3", "comments", None, None),
    1018: (22, "agent3", "comments", None, None),
    1019: (22, "agent3", "comments", None, None),
    1020: (22, "agent3", "comments", None, None),
    1021: (31, "agent1", "comments", None, None),
    1022: (999, "agent1", "comments", None, at(7, 15)),  # orphan, cf
    1023: (999, "brian", "system", None, at(7, 16)),  # orphan
}

# (username, full name, crm_id, hours, work date)
TIMESHEETS = [
    ("jdoe", "John Doe", 1, "2.00", (7, 1)),
    ("jdoe", "John Doe", 1, "1.50", (7, 2)),
    (None, "Ann Lee", 1, "1.00", (7, 2)),  # identity falls back to the full name
    ("jdoe", "John Doe", 2, "3.00", (7, 3)),
    ("asmith", "Ann Smith", 21, "2.00", (8, 2)),
    ("bkim", "Bo Kim", 21, "1.00", (8, 2)),
    ("cray", "C Ray", 21, "0.50", (8, 2)),
    (" jdoe ", " John Doe ", 21, "0.25", (8, 2)),  # trimmed identity
    ("asmith", "Ann Smith", 13, "1.00", (8, 10)),
    ("jdoe", "John Doe", 0, "4.00", (7, 5)),  # admin time
    ("asmith", "Ann Smith", 5000, "2.00", (7, 6)),  # orphan
    ("bkim", "Bo Kim", 22, "1.00", (8, 3)),
    ("cray", "C Ray", 22, "1.00", (8, 3)),
    ("asmith", "Ann Smith", 22, "1.00", (8, 3)),
    ("zed", "Zed Admin", 0, "0.50", (7, 7)),  # admin only: no tickets
]

# comment_key, ticket_id, created, score, (prof, clarity, empathy, action), tier, team
QUALITY = [
    ("1001", 1, at(7, 1, 11), "4.60", (5, 4, 5, 4), "Excellent", None),
    ("3_2025-07-03", 3, at(7, 3, 12), "3.00", (3, 3, 3, 3), "junk", None),  # -> acceptable
    ("4_2025-07-04", 4, at(7, 4, 12), "4.00", (4, 4, 4, 4), None, None),  # ambiguous; good
    ("1018", None, None, "2.00", (2, 1, 2, 3), "POOR", None),
    ("nomatch", None, at(7, 10), "3.60", (None, None, None, None), "Good", "Alpha"),
]

AUDITS = {1: True, 2: True, 3: False, 21: True, 22: None}

# ticket_id: (response after hours, response_met, resolution_met) -- metrics beyond the 23
RESPONSES = {1: (2, True, True), 2: (4, False, None), 21: (10, True, False), 22: (-1, None, None)}


def build() -> None:
    for tid, (team, st, cat, rc, created, days, sla) in TICKETS.items():
        resolved = created + dt.timedelta(days=days) if days is not None else None
        Ticket.objects.create(
            ticket_id=tid,
            team=team,
            status=st,
            category=cat,
            root_cause_category=rc,
            created_at=created,
            resolved_at=resolved,
            sla_met=sla,
        )
    for cid, (tid, user, ctype, visible, created) in COMMENTS.items():
        ticket = TICKETS.get(tid)
        Comment.objects.create(
            comment_id=cid,
            ticket_id=tid,
            user_name=user,
            comment_type=ctype,
            visible_to_customer=visible,
            created_at=created or ticket[4] + dt.timedelta(hours=1),
            team="Alpha" if tid == 999 else None,
        )
    for n, (user, name, crm, hours, (m, d)) in enumerate(TIMESHEETS):
        TimesheetEntry.objects.create(
            username=user,
            user_full_name=name,
            crm_id=crm,
            ticket_id=crm if crm > 0 else None,
            hours=Decimal(hours),
            work_date=dt.date(2025, m, d),
            fingerprint=f"fp{n}",
        )
    for key, tid, created, score, dims, tier, team in QUALITY:
        CommentQuality.objects.create(
            comment_key=key,
            ticket_id=tid,
            created_at=created,
            quality_score=Decimal(score),
            professionalism_score=dims[0],
            clarity_score=dims[1],
            empathy_score=dims[2],
            actionability_score=dims[3],
            quality_tier=tier,
            team=team,
        )
    for tid, accurate in AUDITS.items():
        RootCauseAudit.objects.create(ticket_id=tid, accurate=accurate)
    for tid, (hours, response_met, resolution_met) in RESPONSES.items():
        Ticket.objects.filter(ticket_id=tid).update(
            responded_at=TICKETS[tid][4] + dt.timedelta(hours=hours),
            response_met=response_met,
            resolution_met=resolution_met,
        )


def r(columns: str, *rows: tuple) -> dict:
    names = columns.split()
    return {"rows": [dict(zip(names, row, strict=True)) for row in rows]}


def v(value: float | None) -> dict:
    return {"value": value}


# Closed set: 1-12 (" resolved" and "Resolved" count), 21-23, 31 = 16 tickets.
# Customer-facing comments per closed ticket: t1 1, t2 0, t3 2, t4 4, t5 1, t6-t10 0, t11 1,
# t12 0, t21 1, t22 3, t23 0, t31 1.
EXPECTED = {
    "sla_compliance_rate": v(85.71),  # 12 yes of 14 known (1-10, 13, 21, 22, 24)
    "avg_resolution_days": v(3.64),  # (1+2+3+0.5+5+10+4)/7 = 3.642857; t11 negative excluded
    "fcr_rate": v(81.25),  # 13 of 16 closed with <= 1 cf comment
    "customer_communication_coverage": v(50.0),  # 8 of 16
    "comment_quality_score": {  # (4.6+3+4+2+3.6)/5; dimensions over the 4 scored rows
        "value": 3.44,
        "professionalism": 3.5,
        "clarity": 3.0,
        "empathy": 3.5,
        "actionability": 3.5,
    },
    "reassignment_rate": v(60.0),  # linked: t1 (2 agents), t2, t13, t21 (4), t22 (3) -> 3/5
    "root_cause_distribution": r(
        "root_cause tickets pct",
        ("Security", 8, 57.14),
        ("Account", 5, 35.71),
        ("Hardware", 1, 7.14),
    ),
    "team_workload_distribution": r("team tickets pct", ("Alpha", 12, 80.0), ("Beta", 3, 20.0)),
    "team_efficiency_ranking": r("team tickets avg_comments", ("Alpha", 10, 1.2)),  # 12/10
    "quality_tier_distribution": r(
        "tier comments pct",
        ("excellent", 1, 20.0),
        ("good", 2, 40.0),
        ("acceptable", 1, 20.0),
        ("poor", 1, 20.0),
    ),
    "monthly_ticket_volume": r("month tickets", ("2025-07", 11), ("2025-08", 6), ("2025-09", 1)),
    "resolution_time_by_team": r(  # Alpha 6.5/4 = 1.625 -> 1.63 (half away from zero)
        "team tickets avg_days", ("Alpha", 4, 1.63), ("Beta", 2, 7.5)
    ),
    "team_communication_coverage": r(  # Beta 2/3, Alpha 5/12
        "team tickets pct", ("Beta", 3, 66.67), ("Alpha", 12, 41.67)
    ),
    "team_specialization_matrix": r(  # Alpha: 10 of 12; the Alert cell (2) is below 10
        "team category tickets pct_of_team", ("Alpha", "Support Tickets", 10, 83.33)
    ),
    "agent_productivity": r(
        "agent hours tickets hours_per_ticket",
        ("John Doe", 10.75, 3, 3.58),
        ("Ann Smith", 6.0, 3, 2.0),  # ticket 5000 is not loaded: not a linked ticket
        ("Bo Kim", 2.0, 2, 1.0),
        ("C Ray", 1.5, 2, 0.75),
        ("Ann Lee", 1.0, 1, 1.0),
        ("Zed Admin", 0.5, 0, None),
    ),
    "resolution_time_trend": r(  # July: t1-t4 + t31 = 10.5/5; August: t21, t22
        "month tickets avg_days", ("2025-07", 5, 2.1), ("2025-08", 2, 7.5)
    ),
    "fcr_comment_distribution": r(
        "bucket tickets pct", ("0", 8, 50.0), ("1", 5, 31.25), ("2-3", 2, 12.5), ("4+", 1, 6.25)
    ),
    "reassignment_distribution": r(
        "bucket tickets pct", ("1", 2, 40.0), ("2", 1, 20.0), ("3", 1, 20.0), ("4+", 1, 20.0)
    ),
    "root_cause_accuracy_rate": v(75.0),  # 3 of 4 reviewed (t22 not reviewed)
    "team_fcr_ranking": r("team tickets pct", ("Alpha", 12, 83.33), ("Beta", 3, 66.67)),
    "ticket_category_distribution": r(
        "category tickets pct", ("Support Tickets", 10, 66.67), ("Alert", 5, 33.33)
    ),
    "data_quality_indicators": r(
        "indicator numerator denominator pct",
        ("timesheet_coverage", 4, 16, 25.0),  # t1, t2, t21, t22
        ("root_cause_coverage", 14, 16, 87.5),
        ("sla_data_coverage", 14, 18, 77.78),
        ("quality_coverage", 3, 18, 16.67),  # 1001, 1005, 1018 of 17 + 1 orphan cf
        ("orphan_comments", 2, 23, 8.7),
        ("orphan_timesheets", 1, 15, 6.67),
    ),
    "volume_summary": r(
        "measure value",
        ("tickets", 18),
        ("closed_tickets", 16),
        ("comments", 23),
        ("customer_facing_comments", 18),
        ("timesheet_entries", 15),
        ("timesheet_hours", 21.75),
    ),
}

# Period [2025-08-01, 2025-09-01): tickets 11, 12, 13, 21, 22, 23.
EXPECTED_AUGUST = {
    "sla_compliance_rate": v(66.67),  # t13 no, t21 yes, t22 yes
    "fcr_rate": v(80.0),  # closed 11, 12, 21, 22, 23: all but t22
    "monthly_ticket_volume": r("month tickets", ("2025-08", 6)),
    "comment_quality_score": {  # only 1018's comment time is in August
        "value": 2.0,
        "professionalism": 2.0,
        "clarity": 1.0,
        "empathy": 2.0,
        "actionability": 3.0,
    },
    "agent_productivity": r(  # by work date
        "agent hours tickets hours_per_ticket",
        ("Ann Smith", 4.0, 3, 1.33),
        ("Bo Kim", 2.0, 2, 1.0),
        ("C Ray", 1.5, 2, 0.75),
        ("John Doe", 0.25, 1, 0.25),
    ),
    "volume_summary": r(  # orphan comments are July; unlinked timesheets are July
        "measure value",
        ("tickets", 6),
        ("closed_tickets", 5),
        ("comments", 8),
        ("customer_facing_comments", 8),
        ("timesheet_entries", 8),
        ("timesheet_hours", 7.75),
    ),
}

EXPECTED_BETA = {
    "sla_compliance_rate": v(100.0),
    # Beta's share of every team's closed tickets (3 of 15), not of its own (always 100 %).
    "team_workload_distribution": r("team tickets pct", ("Beta", 3, 20.0)),
    "agent_productivity": r(  # only rows linked to Beta's tickets 21 and 22
        "agent hours tickets hours_per_ticket",
        ("Ann Smith", 3.0, 2, 1.5),
        ("Bo Kim", 2.0, 2, 1.0),
        ("C Ray", 1.5, 2, 0.75),
        ("John Doe", 0.25, 1, 0.25),
    ),
    "volume_summary": r(
        "measure value",
        ("tickets", 4),
        ("closed_tickets", 3),
        ("comments", 4),
        ("customer_facing_comments", 4),
        ("timesheet_entries", 7),
        ("timesheet_hours", 6.75),
    ),
    "root_cause_accuracy_rate": v(100.0),  # t21 only (t22 unreviewed)
}


EXPECTED_BEYOND = {
    "first_response_hours": {"value": 4.0, "p90": 8.8},  # 2, 4, 10 h; t22 responded early
    "response_sla_met_rate": v(66.67),
    "resolution_sla_met_rate": v(50.0),
    "open_backlog_age": r(  # t13, t24 open; ages at the newest creation (t24)
        "bucket tickets pct",
        ("<1d", 1, 50.0),
        ("1-7d", 0, 0.0),
        ("7-30d", 1, 50.0),
        ("30d+", 0, 0.0),
    ),
    "weekly_created_resolved": r(  # Monday weeks; t11 resolved (before creation) on Aug 4
        "week created resolved",
        ("2025-06-30", 6, 4),
        ("2025-07-07", 4, 0),
        ("2025-07-14", 1, 0),
        ("2025-07-21", 0, 1),
        ("2025-07-28", 3, 0),
        ("2025-08-04", 3, 2),
        ("2025-08-11", 0, 1),
        ("2025-09-01", 1, 0),
    ),
    "resolution_days_percentiles": {"value": 3.0, "p90": 7.0},  # 0.5 1 2 3 4 5 10
}


@pytest.fixture
def known_db(db):
    with override_settings(MIN_TEAM_SAMPLE=2):
        build()
        refresh_facts()
        yield


def test_registry_has_the_23_in_id_order():
    assert len(CORE_METRICS) == 23
    ids = [m.id for m in CORE_METRICS]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("."))))
    assert len({m.slug for m in METRICS}) == len(METRICS)
    assert set(EXPECTED) == {m.slug for m in CORE_METRICS}
    assert set(EXPECTED_BEYOND) == {m.slug for m in METRICS if not m.core}
    assert all(m.id.startswith("5.") for m in METRICS if not m.core)


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.id)
def test_sql_uses_only_documented_params_and_views(metric):
    sql = metric.sql.replace("%(date_from)s", "").replace("%(date_to)s", "")
    sql = sql.replace("%(team)s", "")
    assert "%" not in sql, "a literal % would break psycopg parameter binding"
    assert "tickets_" not in metric.sql, "metric SQL reads the metric views, not raw tables"
    relations = set(re.findall(r"\b(?:FROM|JOIN)\s+(metric_\w+)", metric.sql))
    assert relations and relations <= set(METRIC_RELATIONS)
    assert set(PARAMS) == {"date_from", "date_to", "team"}


@pytest.mark.parametrize("metric", CORE_METRICS, ids=lambda m: m.id)
def test_metric_on_empty_database(db, metric):
    refresh_facts()
    result = compute([metric.id])[metric.slug]
    if metric.is_scalar:
        assert result == dict.fromkeys(metric.columns)
    elif metric.fixed_rows:
        assert [row[metric.columns[0]] for row in result["rows"]] == list(metric.fixed_rows)
        for row in result["rows"]:
            for col in metric.columns[1:]:
                assert row[col] in (0, None)
    else:
        assert result == {"rows": []}


@pytest.mark.parametrize("metric", CORE_METRICS, ids=lambda m: m.id)
def test_metric_on_known_database(known_db, metric):
    assert compute([metric.id]) == {metric.slug: EXPECTED[metric.slug]}


@pytest.mark.parametrize("metric", [m for m in METRICS if not m.core], ids=lambda m: m.id)
def test_metrics_beyond_the_23(known_db, metric):
    assert compute([metric.id]) == {metric.slug: EXPECTED_BEYOND[metric.slug]}


@pytest.mark.parametrize("metric", [m for m in METRICS if not m.core], ids=lambda m: m.id)
def test_metrics_beyond_the_23_on_empty_database(db, metric):
    refresh_facts()
    result = compute([metric.id])[metric.slug]
    if metric.is_scalar:
        assert result == dict.fromkeys(metric.columns)
    else:
        assert all(row.get("tickets", 0) == 0 for row in result["rows"])
        assert [row[metric.columns[0]] for row in result["rows"]] == list(metric.fixed_rows)


@pytest.mark.parametrize("slug", sorted(EXPECTED_AUGUST))
def test_period_filter(known_db, slug):
    got = compute([slug], date_from=dt.date(2025, 8, 1), date_to="2025-09-01")
    assert got[slug] == EXPECTED_AUGUST[slug]


@pytest.mark.parametrize("slug", sorted(EXPECTED_BETA))
def test_team_filter(known_db, slug):
    assert compute([slug], team="Beta")[slug] == EXPECTED_BETA[slug]


def test_period_is_half_open_at_midnight(known_db):
    # t21 is created 2025-08-01 10:00; a period ending that day at midnight excludes it.
    got = compute(["monthly_ticket_volume"], date_from="2025-07-31", date_to="2025-08-01")
    assert got["monthly_ticket_volume"] == {"rows": []}
    got = compute(["monthly_ticket_volume"], date_from="2025-08-01", date_to="2025-08-02")
    assert got["monthly_ticket_volume"] == r("month tickets", ("2025-08", 1))


def test_unknown_team_gives_null_not_error(known_db):
    got = compute(["1.1", "2.3", "3.4"], team="Nobody")
    assert got["sla_compliance_rate"] == {"value": None}
    assert got["team_workload_distribution"] == {"rows": []}
    assert [row["tickets"] for row in got["fcr_comment_distribution"]["rows"]] == [0, 0, 0, 0]


def test_settings_are_honoured(known_db):
    with override_settings(CLOSED_STATUSES=["closed"], MIN_TEAM_SAMPLE=2):
        # t11 and t12 (resolved) leave the closed set: 11 of 14 with <= 1 cf comment.
        assert compute(["1.3"])["fcr_rate"] == {"value": 78.57}
    with override_settings(AUTOMATION_USERS=["nobody"], MIN_TEAM_SAMPLE=2):
        # Brian's public comment on t2 now counts: coverage 9 of 16.
        assert compute(["1.4"])["customer_communication_coverage"] == {"value": 56.25}
    with override_settings(MIN_TEAM_SAMPLE=4):
        got = compute(["2.8"])["team_communication_coverage"]
        assert got == r("team tickets pct", ("Alpha", 12, 41.67))
    with override_settings(MIN_TEAM_SAMPLE=3):  # "at least": Beta's 3 closed tickets count
        got = compute(["2.8", "3.7"])
        assert got["team_communication_coverage"] == r(
            "team tickets pct", ("Beta", 3, 66.67), ("Alpha", 12, 41.67)
        )
        assert got["team_fcr_ranking"] == r(
            "team tickets pct", ("Alpha", 12, 83.33), ("Beta", 3, 66.67)
        )
    with override_settings(SUPPORT_CATEGORY=" alert ", MIN_TEAM_SAMPLE=2):
        # Alert tickets: Alpha t11, t12 (1 comment / 2); Beta t21-23 (4 / 3).
        got = compute(["2.4"])["team_efficiency_ranking"]
        assert got == r("team tickets avg_comments", ("Alpha", 2, 0.5), ("Beta", 3, 1.33))


@override_settings(TIME_ZONE="Australia/Perth")
def test_months_and_periods_follow_time_zone(db):
    # 2025-07-31 20:00 UTC is 2025-08-01 04:00 in Perth.
    Ticket.objects.create(
        ticket_id=1, status="Open", created_at=dt.datetime(2025, 7, 31, 20, tzinfo=UTC)
    )
    refresh_facts()
    assert compute(["2.6"])["monthly_ticket_volume"] == r("month tickets", ("2025-08", 1))
    got = compute(["2.6"], date_from="2025-08-01", date_to="2025-08-02")
    assert got["monthly_ticket_volume"] == r("month tickets", ("2025-08", 1))


def test_status_of_scalars_and_tables(known_db):
    results = compute()
    assert status(get_metric("1.1"), results["sla_compliance_rate"]) == "red"  # 85.71 < 90
    assert status(get_metric("1.2"), results["avg_resolution_days"]) == "yellow"  # 3.64
    assert status(get_metric("1.3"), results["fcr_rate"]) == "green"
    assert status(get_metric("2.5"), results["quality_tier_distribution"]) == "green"  # 60 %
    assert status(get_metric("2.3"), results["team_workload_distribution"]) == "red"  # 80 %
    # Per row, SPEC 5.2: above 20 % is yellow, so Beta's exactly 20 % is green.
    rows = results["team_workload_distribution"]["rows"]
    assert [row_status(get_metric("2.3"), row) for row in rows] == ["red", "green"]
    assert status(get_metric("2.6"), results["monthly_ticket_volume"]) is None


def test_compute_metrics_json_shape(known_db):
    out = StringIO()
    call_command("compute_metrics", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert list(data) == ["metrics"]
    assert list(data["metrics"]) == [m.slug for m in CORE_METRICS]
    assert data["metrics"] == EXPECTED


def test_compute_metrics_filters_and_ids(known_db):
    out = StringIO()
    call_command(
        "compute_metrics",
        "--metric",
        "1.1",
        "--metric",
        "volume_summary",
        "--from",
        "2025-08-01",
        "--to",
        "2025-09-01",
        "--json",
        stdout=out,
    )
    data = json.loads(out.getvalue())["metrics"]
    assert data == {
        "sla_compliance_rate": EXPECTED_AUGUST["sla_compliance_rate"],
        "volume_summary": EXPECTED_AUGUST["volume_summary"],
    }
    out = StringIO()
    call_command("compute_metrics", "--team", "Beta", "--metric", "1.1", stdout=out)
    assert "100.0" in out.getvalue() and "On target" in out.getvalue()
    out = StringIO()  # the same metric named twice (id and slug) is computed and shown once
    call_command(
        "compute_metrics", "--metric", "1.1", "--metric", "sla_compliance_rate", stdout=out
    )
    assert out.getvalue().count("SLA compliance") == 1


def test_compute_metrics_human_output_has_text_status(known_db):
    out = StringIO()
    call_command("compute_metrics", stdout=out)
    text = out.getvalue()
    assert "SLA compliance" in text and "85.71" in text and "[Off target]" in text
    assert "Support Tickets" in text


def test_compute_metrics_rejects_bad_input(db):
    with pytest.raises(CommandError, match="unknown metric"):
        call_command("compute_metrics", "--metric", "9.9")
    with pytest.raises(CommandError, match="^--from 'not-a-date' is not a date: use YYYY-MM-DD"):
        call_command("compute_metrics", "--from", "not-a-date")
    with pytest.raises(CommandError, match=r"^--to '2025-13-01' is not a date: .*month must be"):
        call_command("compute_metrics", "--to", "2025-13-01")
    with pytest.raises(CommandError, match="is not before --to"):
        call_command("compute_metrics", "--from", "2025-10-01", "--to", "2025-01-01")
    with pytest.raises(CommandError, match="would be empty"):
        call_command("compute_metrics", "--from", "2025-10-01", "--to", "2025-10-01")


def test_the_good_excellent_share_rounds_half_away_from_zero():
    """1 good of 32 results is 3.125 %: the admin's summary said 3.12 (half to even) where
    the 2.5 table row and the Grafana summary stat (PostgreSQL round) say 3.13."""
    from metrics.compute import summary_value

    rows = [
        {"tier": "good", "comments": 1, "pct": 3.13},
        {"tier": "poor", "comments": 31, "pct": 96.88},
    ]
    assert summary_value(get_metric("2.5"), {"rows": rows}) == 3.13
