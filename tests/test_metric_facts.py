"""Incremental fact maintenance after an import equals a full rebuild (metrics.facts).

Each import below goes through the real pipeline (which refreshes the facts for the run's
entity inside its transaction); the fact tables are then compared row for row with what a full
rebuild produces from the same raw tables.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from metrics import facts
from metrics.compute import compute
from tests import files as f
from tests.test_metrics import build
from tickets.pipeline import import_file


def fact_rows() -> dict[str, list[tuple]]:
    rows = {}
    with connection.cursor() as cursor:
        for table in facts.FACT_TABLES:
            cursor.execute(f"SELECT * FROM {table}")
            rows[table] = sorted(cursor.fetchall(), key=repr)
    return rows


@pytest.fixture
def rebuilds(db, monkeypatch):
    """Counts full rebuilds (the real function still runs)."""
    calls = []
    real = facts.rebuild

    def counting(cursor):
        calls.append(1)
        return real(cursor)

    monkeypatch.setattr(facts, "rebuild", counting)
    with override_settings(MIN_TEAM_SAMPLE=2):
        build()
        facts.refresh_facts()
        calls.clear()
        yield calls


def assert_same_as_full_rebuild() -> None:
    incremental = fact_rows()
    before = compute()
    facts.refresh_facts()
    assert fact_rows() == incremental
    assert compute() == before


def load(tmp_path, entity: str, rows: list[dict]) -> None:
    path = f.write_csv(tmp_path / f"{entity}.csv", entity, rows)
    run = import_file(path, entity=entity)
    assert run.status == "succeeded", run.error_summary


def test_tickets_import_updates_only_its_tickets(tmp_path, rebuilds):
    load(
        tmp_path,
        "tickets",
        [
            f.ticket(21, team="Alpha", created_at="2025-08-01 10:00:00"),  # Beta -> Alpha
            f.ticket(5000, team="Beta", status="Open"),  # links an orphan timesheet row
            f.ticket(999, team="Gamma"),  # its comments stop being orphans
        ],
    )
    assert rebuilds == []
    assert_same_as_full_rebuild()


def test_comments_import(tmp_path, rebuilds):
    load(
        tmp_path,
        "comments",
        [
            # Moves to ticket 2, taking its (ticket, time) quality match away from ticket 3.
            f.comment(1005, 2, created_at="2025-07-03 12:00:00"),
            f.comment(1030, 4, created_at="2025-07-04 12:00:00"),  # a third at that time
            f.comment(1031, 13, user_name="brian"),  # automation
            f.comment(1032, 777),  # orphan
        ],
    )
    assert rebuilds == []
    assert_same_as_full_rebuild()


def test_comment_moving_away_unseen_falls_back_to_a_rebuild(tmp_path, rebuilds):
    load(tmp_path, "comments", [f.comment(1021, 1)])  # from ticket 31, no quality match
    assert rebuilds == [1]
    assert_same_as_full_rebuild()


def test_timesheets_window_import(tmp_path, rebuilds):
    load(
        tmp_path,
        "timesheets",
        [  # 2025-08-02 .. 08-03: rows not in the file are deleted (t21 loses all its rows)
            f.timesheet(1, "02/08/2025", 0, user_full_name="Ann Smith", username="asmith"),
            f.timesheet(2, "03/08/2025", 22, user_full_name="Bo Kim", username="bkim"),
            f.timesheet(3, "03/08/2025", 22, user_full_name="Dee New", username="dnew"),
            f.timesheet(4, "03/08/2025", 0, user_full_name="Dee New", username="dnew"),
            f.timesheet(5, "02/08/2025", 4242, user_full_name="Ann Smith", username="asmith"),
        ],
    )
    assert rebuilds == []
    assert_same_as_full_rebuild()


def test_quality_import(tmp_path, rebuilds):
    quality = [
        {"comment_key": "1001", "ticket_id": 1, "quality_score": "2.1", "quality_tier": "Poor"},
        {"comment_key": "1010", "ticket_id": 4, "quality_score": "4.9"},  # id match
        {"comment_key": "1017", "quality_score": "3.9"},  # id match, no ticket given
        {"comment_key": "x-1", "quality_score": "1.0", "team": "Beta"},  # no match
    ]
    load(tmp_path, "comment_quality", quality)
    assert rebuilds == []
    assert_same_as_full_rebuild()


def test_settings_change_rebuilds(rebuilds):
    with override_settings(CLOSED_STATUSES=["closed"], MIN_TEAM_SAMPLE=2):
        compute(["1.3"])
    assert rebuilds == [1]
    facts.refresh_facts()  # back to the fixture's settings


def test_the_beat_repairs_facts_after_a_settings_change_or_a_crash(rebuilds):
    from metrics.tasks import refresh_stale_facts_task

    assert refresh_stale_facts_task() is False and rebuilds == []  # fresh: nothing to do
    built = fact_rows()
    with override_settings(CLOSED_STATUSES=["closed"], MIN_TEAM_SAMPLE=2):
        assert refresh_stale_facts_task() is True and rebuilds == [1]
        assert refresh_stale_facts_task() is False
    rebuilds.clear()
    assert refresh_stale_facts_task() is True  # the fixture's settings again
    with connection.cursor() as cursor:  # what crash recovery does to unlogged tables
        cursor.execute("TRUNCATE " + ", ".join(facts.FACT_TABLES))
    assert refresh_stale_facts_task() is True
    assert fact_rows() == built and rebuilds == [1, 1]


def test_period_bounds_inside_a_day_read_the_cut_days_ticket_by_ticket(rebuilds):
    # t21, t22, t23 are created 2025-08-01/02/03 at 10:00 UTC: bounds at 09:00 and 11:00 cut
    # the first and last day (ticket rows), 08-02 comes whole from the cube.
    wide = compute(["2.6", "1.3"], date_from="2025-08-01T09:00", date_to="2025-08-03T11:00")
    assert wide["monthly_ticket_volume"] == {"rows": [{"month": "2025-08", "tickets": 3}]}
    assert wide["fcr_rate"] == {"value": 66.67}  # t21 (1 cf) and t23 (0) of the three
    narrow = compute(["2.6", "1.3"], date_from="2025-08-01T11:00", date_to="2025-08-03T09:00")
    assert narrow["monthly_ticket_volume"] == {"rows": [{"month": "2025-08", "tickets": 1}]}
    assert narrow["fcr_rate"] == {"value": 0.0}  # t22: 3 customer-facing comments


def test_cut_days_for_root_causes_and_resolution_weeks(rebuilds):
    wide = compute(["2.2"], date_from="2025-08-01T09:00", date_to="2025-08-03T11:00")
    assert wide["root_cause_distribution"] == {  # t21 Account, t22 none, t23 Hardware
        "rows": [
            {"root_cause": "Account", "tickets": 1, "pct": 50.0},
            {"root_cause": "Hardware", "tickets": 1, "pct": 50.0},
        ]
    }
    # Created in the period: t12 (08-06 10:00), t13 (08-10); resolved: t21 (08-06 10:00, a
    # cut day) and t22 (08-12 10:00: a cut day, then a whole day of the second period).
    weekly = [
        {"week": "2025-08-04", "created": 2, "resolved": 1},
        {"week": "2025-08-11", "created": 0, "resolved": 1},
    ]
    for date_to in ("2025-08-12T11:00", "2025-08-13"):
        got = compute(["5.5"], date_from="2025-08-06T09:00", date_to=date_to)
        assert got["weekly_created_resolved"] == {"rows": weekly}


def test_a_legacy_load_stopped_between_tables_leaves_facts_known_stale(tmp_path, rebuilds):
    """Tables of migrate_legacy commit without their facts (one refresh at the end): if the
    load stops in between, the beat must see the facts as stale and rebuild them."""
    from celery.exceptions import SoftTimeLimitExceeded

    from tickets import legacy

    path = f.write_legacy(
        tmp_path / "legacy.sqlite3",
        {
            "tickets": [f.ticket(500 + i, team="Team New") for i in range(5)],
            "comments": [f.comment(9000 + i, 500) for i in range(3)],
        },
    )
    load = legacy.load_table

    def stop_at_comments(run, raw, entity, **kwargs):
        if entity.name == "comments":
            raise SoftTimeLimitExceeded()
        return load(run, raw, entity, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(legacy, "load_table", stop_at_comments)
        with pytest.raises(SoftTimeLimitExceeded):
            legacy.migrate_legacy(path)
    assert facts.settings_stale()  # the tickets committed without their facts
    with override_settings(MIN_TEAM_SAMPLE=2):
        assert facts.refresh_if_stale() is True
        assert rebuilds == [1] and not facts.settings_stale()
        assert_same_as_full_rebuild()


def _volume(measure: str) -> int:
    rows = compute(["4.3"])["volume_summary"]["rows"]
    return next(r["value"] for r in rows if r["measure"] == measure)


def test_admin_edits_and_deletes_mark_the_facts_stale(rebuilds, client, rf):
    """Tickets, comments and quality results edited or deleted in the admin bypass the
    import pipeline: the facts (read directly by Grafana) must be known stale and rebuilt."""
    from django.contrib import admin
    from django.urls import reverse

    from tests.test_admin_helpers import make_user
    from tickets.models import Comment, CommentQuality, Ticket

    user = make_user("ada", superuser=True)
    client.force_login(user)
    tickets, comments = _volume("tickets"), _volume("comments")

    ticket = Ticket.objects.filter(status="Closed").order_by("ticket_id").first()
    response = client.post(
        reverse("admin:tickets_ticket_changelist"),
        {"action": "delete_selected", "_selected_action": [ticket.pk], "post": "yes"},
    )
    assert response.status_code == 302 and not Ticket.objects.filter(pk=ticket.pk).exists()
    assert facts.settings_stale()
    assert _volume("tickets") == tickets - 1  # compute() rebuilt the stale facts
    assert not facts.settings_stale()

    comment = Comment.objects.order_by("comment_id").first()
    response = client.post(
        reverse("admin:tickets_comment_delete", args=[comment.pk]), {"post": "yes"}
    )
    assert response.status_code == 302 and facts.settings_stale()
    assert _volume("comments") == comments - 1

    open_ticket = Ticket.objects.filter(status="Open").order_by("ticket_id").first()
    closed = _volume("closed_tickets")
    open_ticket.status = "Closed"
    request = rf.post("/")
    request.user = user
    admin.site._registry[Ticket].save_model(request, open_ticket, None, True)
    assert facts.settings_stale()
    assert _volume("closed_tickets") == closed + 1

    quality = CommentQuality.objects.order_by("id").first()
    admin.site._registry[CommentQuality].delete_model(request, quality)
    assert facts.settings_stale()
    with override_settings(MIN_TEAM_SAMPLE=2):
        assert facts.refresh_if_stale() is True
        assert_same_as_full_rebuild()
