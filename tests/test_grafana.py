"""Grafana contract tests (offline: no Grafana in CI), SPEC §6.

Provisioning parses and points at the read-only datasource; the committed dashboards equal a
fresh build; every panel's SQL, with the macros expanded as Grafana would, runs against the real
PostgreSQL *as the read-only role* and returns the registry's columns and the same answers as
`metrics.compute`; that role can read nothing but the views and write nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from metrics import grafana
from metrics.compute import params, run_metric
from metrics.facts import refresh_facts
from metrics.readonly_role import PLATFORM_VIEWS, ensure_readonly_role
from metrics.registry import METRICS, STATUS_LABELS, get_metric
from ops.models import Backup, BenchmarkResult, BenchmarkRun, HealthSnapshot, RestoreDrill
from tickets.models import (
    Comment,
    CommentQuality,
    ImportRun,
    RootCauseAudit,
    Ticket,
    TimesheetEntry,
)

ROOT = Path(settings.BASE_DIR)
PROVISIONING = ROOT / "grafana" / "provisioning"
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
UTC = dt.UTC
WHOLE_RANGE = (dt.datetime(1990, 1, 1, tzinfo=UTC), dt.datetime(2100, 1, 1, tzinfo=UTC))


def committed_dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARD_DIR.glob("*.json")}


def all_panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, p) for name, board in committed_dashboards().items() for p in board["panels"]]


# --- Provisioning -----------------------------------------------------------------------------


def test_every_provisioning_file_parses_and_the_datasource_is_read_only() -> None:
    files = sorted(PROVISIONING.rglob("*.yml")) + sorted(PROVISIONING.rglob("*.yaml"))
    assert {f.parent.name for f in files} == {"datasources", "dashboards"}
    docs = {f.parent.name: yaml.safe_load(f.read_text()) for f in files}
    (source,) = docs["datasources"]["datasources"]
    assert source["uid"] == grafana.DATASOURCE_UID
    assert source["type"] == grafana.DATASOURCE["type"]
    assert source["editable"] is False
    # Credentials and database only from the environment, never literal.
    assert source["user"] == "${GRAFANA_DB_USER}"
    assert source["secureJsonData"]["password"] == "${GRAFANA_DB_PASSWORD}"
    assert re.fullmatch(r"\$\{\w+\}", source["jsonData"]["database"])
    (provider,) = docs["dashboards"]["providers"]
    assert provider["allowUiUpdates"] is False
    assert provider["disableDeletion"] is True
    assert provider["type"] == "file"


def test_provider_path_is_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "servicedesk.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    target = provider["providers"][0]["options"]["path"]
    # The volume `init` fills with dashboards built for the deployed TIME_ZONE.
    assert f"dashboards:{target}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert Path(home).parent == Path(target) and (DASHBOARD_DIR / Path(home).name).exists()


# --- Dashboard JSON ---------------------------------------------------------------------------


def test_committed_dashboards_equal_a_fresh_build() -> None:
    built = grafana.build_dashboards(settings.TIME_ZONE)
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARD_DIR.glob("*.json")}
    assert on_disk == built, "run `manage.py build_dashboards` and commit grafana/dashboards"
    assert grafana.build_dashboards(settings.TIME_ZONE) == built  # deterministic
    call_command("build_dashboards", "--check")


def test_check_flags_drift_and_build_repairs_it(tmp_path: Path) -> None:
    call_command("build_dashboards", "--out", str(tmp_path))
    target = tmp_path / "executive.json"
    target.write_text(target.read_text().replace("1.1 SLA compliance", "edited in the UI"))
    (tmp_path / "stale.json").write_text("{}")
    with pytest.raises(CommandError, match="executive.json.*stale.json"):
        call_command("build_dashboards", "--out", str(tmp_path), "--check")
    call_command("build_dashboards", "--out", str(tmp_path))
    call_command("build_dashboards", "--out", str(tmp_path), "--check")
    assert not (tmp_path / "stale.json").exists()


def test_the_five_dashboards_have_fixed_unique_uids_and_no_import_placeholders() -> None:
    boards = committed_dashboards()
    titles = {b["title"].removeprefix("Service desk - ") for b in boards.values()}
    assert {"Executive", "Operations", "Quality", "Team performance", "Platform"} <= titles
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids) and all(u.startswith("servicedesk-") for u in uids)
    for name, board in boards.items():
        text = json.dumps(board)
        assert "__inputs" not in board and "${DS_" not in text, name
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1)), name
        assert board["editable"] is False


def test_every_panel_and_variable_uses_the_servicedesk_datasource() -> None:
    for name, panel in all_panels():
        assert panel["datasource"] == grafana.DATASOURCE, (name, panel["title"])
        assert panel["targets"], (name, panel["title"])
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "servicedesk-pg"
            assert target["rawQuery"] is True
    for board in committed_dashboards().values():
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] == "servicedesk-pg"


def test_no_query_is_relative_to_the_database_clock() -> None:
    clock = re.compile(
        r"\b(now|current_date|current_timestamp|localtimestamp|localtime|clock_timestamp|"
        r"statement_timestamp|transaction_timestamp)\b",
        re.IGNORECASE,
    )
    for name, panel in all_panels():
        for target in panel["targets"]:
            assert not clock.search(target["rawSql"]), (name, panel["title"])


def test_every_registry_metric_is_on_a_dashboard_with_its_sql_unchanged() -> None:
    assert grafana.missing_metrics() == []
    sqls = [t["rawSql"] for _, p in all_panels() for t in p["targets"]]
    for metric in METRICS:
        expected = grafana.grafana_sql(metric.sql)
        assert any(expected in sql for sql in sqls), metric.id


def test_time_picker_and_variables_are_wired() -> None:
    for name, board in committed_dashboards().items():
        variables = {v["name"] for v in board["templating"]["list"]}
        for panel in board["panels"]:
            sql = panel["targets"][0]["rawSql"]
            uses_time = "$__timeFilter(" in sql or ("$__timeFrom()" in sql and "$__timeTo()" in sql)
            assert uses_time, (name, panel["title"])
            assert "%(" not in sql, (name, panel["title"])
            for used in re.findall(r"\$(?!__)(\w+)", sql):
                assert used in variables, (name, panel["title"], used)
        if name != "platform.json":
            assert "team" in variables, name
    team_board = committed_dashboards()["team-performance.json"]
    assert {"team", "category"} <= {v["name"] for v in team_board["templating"]["list"]}
    for board in committed_dashboards().values():
        for variable in board["templating"]["list"]:
            # All = the custom value NULL, which the registry SQL reads as "no filter".
            assert variable["includeAll"] and variable["allValue"] == "NULL"
            assert variable["multi"] is False


def _grafana_colour(steps: list[dict[str, Any]], value: float) -> str:
    colour = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            colour = step["color"]
    return colour


@pytest.mark.parametrize("metric", [m for m in METRICS if m.thresholds], ids=lambda m: m.id)
def test_grafana_thresholds_colour_like_the_registry(metric) -> None:
    th = metric.thresholds
    steps = grafana.threshold_steps(th)
    for edge in (th.green, th.yellow, Decimal(0), Decimal(100)):
        for delta in (Decimal("-0.01"), Decimal(0), Decimal("0.01")):
            value = edge + delta
            assert (
                _grafana_colour(steps, float(value)) == grafana.STATUS_COLOURS[th.status(value)]
            ), (metric.id, value)


def test_stat_panels_carry_registry_thresholds_and_text_status() -> None:
    stats = [(n, p) for n, p in all_panels() if p["type"] == "stat" and n != "platform.json"]
    assert len(stats) >= 7
    labels = set(STATUS_LABELS.values())
    for name, panel in stats:
        metric = get_metric(panel["title"].split()[0])
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["thresholds"]["steps"] == grafana.threshold_steps(metric.thresholds)
        mapped = set(defaults["mappings"][0]["options"])
        assert mapped == labels, (name, panel["title"])
        assert panel["options"]["textMode"] == "value_and_name"
        assert "status" in panel["options"]["reduceOptions"]["fields"]


def test_palette_is_colour_blind_safe() -> None:
    allowed = set(grafana.SERIES_COLOURS) | set(grafana.STATUS_COLOURS.values())
    found: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif key in ("color", "fixedColor") and isinstance(node, str):
            found.add(node)

    walk(committed_dashboards())
    assert found and found <= allowed, found - allowed
    assert not {"red", "green", "#FF0000", "#00FF00"} & {c.lower() for c in found}


def test_expand_macros_matches_grafana_postgres_rendering() -> None:
    start, end = dt.datetime(2025, 7, 1, tzinfo=UTC), dt.datetime(2025, 8, 1, tzinfo=UTC)
    sql = "SELECT 1 WHERE $__timeFilter(t.at) AND $team::text = ${team} AND $__timeFrom() < x"
    assert grafana.expand_macros(sql, start, end, {"team": "O'Neil"}) == (
        "SELECT 1 WHERE t.at BETWEEN '2025-07-01T00:00:00Z' AND '2025-08-01T00:00:00Z' "
        "AND 'O''Neil'::text = 'O''Neil' AND '2025-07-01T00:00:00Z' < x"
    )
    assert grafana.expand_macros("$team::text", start, end, {}) == "NULL::text"
    with pytest.raises(ValueError, match="macro"):
        grafana.expand_macros("$__timeGroupAlias(x, 1h)", start, end)
    with pytest.raises(ValueError, match="variable"):
        grafana.expand_macros("$nosuch", start, end)


# --- SQL as the read-only role against the real PostgreSQL ------------------------------------


def at(month: int, day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, tzinfo=UTC)


def build_data() -> None:
    """Two teams, three categories, comments, timesheets, quality, audits and platform rows."""
    teams = ("Alpha", "Beta")
    categories = ("Support Tickets", "Alert", "Standard")
    for i in range(1, 41):
        closed = i % 4 != 0
        created = at(7 + i % 3, 1 + i % 27)
        Ticket.objects.create(
            ticket_id=i,
            team=teams[i % 2],
            status="Closed" if closed else "Open",
            category=categories[i % 3],
            root_cause_category=("Security", "Account", None)[i % 3],
            created_at=created,
            resolved_at=created + dt.timedelta(hours=7 * i) if closed else None,
            sla_met=None if i % 7 == 0 else i % 5 != 0,
        )
        for c in range(i % 4):
            Comment.objects.create(
                comment_id=i * 10 + c,
                ticket_id=i,
                user_name="brian" if c == 2 else f"agent{c}",
                comment_type="comments" if c < 2 else "system",
                created_at=created + dt.timedelta(hours=c + 1),
            )
        for n, user in enumerate(("ann", "bo")[: 1 + i % 2]):
            TimesheetEntry.objects.create(
                username=user,
                user_full_name=user.title(),
                crm_id=i,
                ticket_id=i,
                hours=Decimal("1.25"),
                work_date=created.date(),
                fingerprint=f"g{i}-{n}",
            )
        if i % 3 == 0:
            CommentQuality.objects.create(
                comment_key=str(i * 10),
                ticket_id=i,
                created_at=created,
                quality_score=Decimal("1.5") + Decimal("0.5") * (i % 7),
                professionalism_score=4,
                clarity_score=3,
                empathy_score=4,
                actionability_score=3,
                quality_tier=None,
            )
        if i % 5 == 0:
            RootCauseAudit.objects.create(ticket_id=i, accurate=i % 10 == 0)
    ImportRun.objects.create(
        source_kind="xlsx",
        entity="tickets",
        file_name="tickets.xlsx",
        status="succeeded",
        started_at=at(9, 1),
        finished_at=at(9, 1, 10),
        rows_read=40,
        rows_inserted=40,
    )
    ImportRun.objects.create(source_kind="csv", entity="comments", status="failed")
    backup = Backup.objects.create(path="/b/1.dump", status="succeeded", size_bytes=1234)
    RestoreDrill.objects.create(backup=backup, passed=True, recovery_time_s=2.5)
    HealthSnapshot.objects.create(
        overall="warning",
        checks=[
            {"name": "database", "status": "ok", "message": "up"},
            {"name": "last_backup", "status": "warning", "message": "old"},
        ],
    )
    run = BenchmarkRun.objects.create(runs=5, warmup=1, total_ms=120.0, budget_ms=100.0)
    BenchmarkResult.objects.create(
        run=run, metric_id="1.1", slug="sla_compliance_rate", median_ms=3, p95_ms=4, max_ms=5
    )


def _role_name() -> str:
    return re.sub(r"\W", "_", f"grafana_ro_{connection.settings_dict['NAME']}")[:60]


@pytest.fixture
def reader(transactional_db):
    """A psycopg connection as the read-only role, on committed fixture data."""
    role, password = _role_name(), "test-only-reader-pw"
    with override_settings(MIN_TEAM_SAMPLE=3):
        build_data()
        refresh_facts()
    views = ensure_readonly_role(role, password)
    dsn = dict(connection.settings_dict)
    conn = psycopg.connect(
        host=dsn["HOST"] or "127.0.0.1",
        port=dsn["PORT"] or 5432,
        dbname=dsn["NAME"],
        user=role,
        password=password,
        autocommit=True,
    )
    conn.views = views  # type: ignore[attr-defined]
    yield conn
    conn.close()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE "{role}"')
    for model in (Comment, CommentQuality, TimesheetEntry, RootCauseAudit, Ticket):
        model.objects.all().delete()
    refresh_facts()  # leave no stale facts behind for other tests


def _rows(conn: psycopg.Connection, sql: str) -> tuple[list[str], list[tuple]]:
    cursor = conn.execute(sql)
    return [c.name for c in cursor.description], cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_every_panel_runs_as_the_reader_and_returns_the_registry_columns(reader) -> None:
    boards = committed_dashboards()
    checked = 0
    teams = (None, "Alpha")
    for board in grafana.DASHBOARDS:
        panels = boards[board.file_name]["panels"]
        items = grafana.dashboard_items(board)
        assert len(panels) == len(items)
        for item, panel in zip(items, panels, strict=True):
            sql = panel["targets"][0]["rawSql"]
            if board.platform:
                expected = grafana.PLATFORM[item.key].columns
            else:
                expected = grafana.panel_columns(get_metric(item.key), item.variant)
            for team in teams:
                expanded = grafana.expand_macros(sql, *WHOLE_RANGE, {"team": team})
                names, rows = _rows(reader, expanded)
                assert tuple(names) == expected, (board.uid, panel["title"], team)
                checked += 1
            if board.platform:
                assert rows, (board.uid, panel["title"])  # fixture has platform rows
    assert checked >= 2 * 40
    for query in grafana.VARIABLE_QUERIES.values():
        names, rows = _rows(reader, query)
        assert len(names) == 1 and rows


@pytest.mark.django_db(transaction=True)
def test_panels_answer_like_compute_metrics(reader) -> None:
    """Grafana's rendering of the registry SQL gives compute_metrics' answer and status."""
    window = (at(7, 10), at(9, 1))
    for board in grafana.DASHBOARDS:
        if board.platform:
            continue
        for item in grafana.dashboard_items(board):
            metric = get_metric(item.key)
            sql = grafana.metric_panel_sql(metric, item.variant, board.variables)
            for team in (None, "Beta"):
                expanded = grafana.expand_macros(sql, *window, {"team": team, "category": None})
                names, rows = _rows(reader, expanded)
                with override_settings(MIN_TEAM_SAMPLE=3):
                    expected = run_metric(metric, params(*window, team))
                if item.variant == "summary":
                    continue
                got = [dict(zip(names, row, strict=True)) for row in rows]
                if metric.is_scalar:
                    assert len(got) == 1
                    value = got[0]["value"]
                    assert (None if value is None else float(value)) == expected["value"]
                    if "status" in got[0]:
                        state = metric.thresholds.status(value)
                        assert got[0]["status"] == STATUS_LABELS[state], metric.id
                else:
                    plain = [
                        {
                            c: (float(r[c]) if isinstance(r[c], Decimal) else r[c])
                            for c in metric.columns
                        }
                        for r in got
                    ]
                    assert plain == expected["rows"], (metric.id, team)
    # The category variable filters rows of category tables, and All keeps every row.
    sql = grafana.metric_panel_sql(get_metric("4.1"), variables=("team", "category"))
    _, every = _rows(reader, grafana.expand_macros(sql, *WHOLE_RANGE, {"category": None}))
    _, alerts = _rows(reader, grafana.expand_macros(sql, *WHOLE_RANGE, {"category": "Alert"}))
    assert len(every) == 3 and [r[0] for r in alerts] == ["Alert"]


@pytest.mark.django_db(transaction=True)
def test_summary_panel_matches_the_registry_summary(reader) -> None:
    from metrics.compute import summary_value

    metric = get_metric("2.5")
    sql = grafana.metric_panel_sql(metric, "summary")
    _, rows = _rows(reader, grafana.expand_macros(sql, *WHOLE_RANGE, {"team": None}))
    expected = summary_value(metric, run_metric(metric, params()))
    assert expected is not None
    assert float(rows[0][0]) == expected
    assert rows[0][1] == STATUS_LABELS[metric.thresholds.status(expected)]


@pytest.mark.django_db(transaction=True)
def test_reader_cannot_write_or_read_outside_the_views(reader) -> None:
    assert set(PLATFORM_VIEWS) <= set(reader.views)
    assert "metric_ticket_facts" in reader.views
    assert not [v for v in reader.views if v.startswith(("tickets_", "ops_", "auth_", "django_"))]
    for table in (
        "tickets_ticket",
        "tickets_comment",
        "tickets_importrun",
        "ops_backup",
        "auth_user",
        "django_session",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(f"SELECT 1 FROM {table} LIMIT 1")
    # Metric relations that no metric SQL reads are not readable either.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'metric\\_%%' "
            "AND relkind IN ('r', 'v', 'm') AND NOT relname = ANY(%s)",
            [reader.views],
        )
        unlisted = [row[0] for row in cursor.fetchall()]
    for relation in unlisted:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(f"SELECT 1 FROM {relation} LIMIT 1")
    settings_of_role = dict(
        reader.execute(
            "SELECT name, setting FROM pg_settings "
            "WHERE name IN ('default_transaction_read_only', 'jit', 'statement_timeout')"
        ).fetchall()
    )
    assert settings_of_role == {
        "default_transaction_read_only": "on",
        "jit": "off",
        "statement_timeout": "30000",
    }
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader.execute("UPDATE metric_settings SET min_team_sample = 1")
    # Even after switching read-only off itself, it has no write privilege anywhere.
    reader.execute("SET default_transaction_read_only = off")
    for statement in (
        "INSERT INTO metric_settings (id) VALUES (2)",
        "UPDATE metric_settings SET min_team_sample = 1",
        "DELETE FROM metric_settings",
        "INSERT INTO tickets_ticket (ticket_id) VALUES (1)",
        "CREATE TABLE grafana_owned (x int)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(statement)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname = ANY(%s)",
            [reader.views],
        )
        tables = [row[0] for row in cursor.fetchall()]
    assert "metric_settings" in tables
    for table in tables:  # readable tables (facts, settings) stay unwritable
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(f"DELETE FROM {table}")


@pytest.mark.django_db(transaction=True)
def test_create_readonly_role_command_is_idempotent_and_needs_credentials(monkeypatch) -> None:
    role = _role_name() + "_cmd"
    monkeypatch.setenv("GRAFANA_DB_USER", role)
    monkeypatch.delenv("GRAFANA_DB_PASSWORD", raising=False)
    monkeypatch.delenv("GRAFANA_DB_PASSWORD_FILE", raising=False)
    with pytest.raises(CommandError, match="GRAFANA_DB_PASSWORD"):
        call_command("create_readonly_role")
    with pytest.raises(CommandError, match="invalid role name"):
        call_command("create_readonly_role", "--role", "bad; DROP", "--no-password")
    try:
        monkeypatch.setenv("GRAFANA_DB_PASSWORD", "one")
        call_command("create_readonly_role")
        call_command("create_readonly_role")  # again: no error, same grants
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.role_table_grants "
                "WHERE grantee = %s AND privilege_type <> 'SELECT'",
                [role],
            )
            assert cursor.fetchone()[0] == 0
            cursor.execute(
                "SELECT rolsuper, rolcanlogin, rolcreatedb FROM pg_roles WHERE rolname = %s",
                [role],
            )
            assert cursor.fetchone() == (False, True, False)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')


@pytest.mark.django_db(transaction=True)
def test_benchmark_panel_sets_the_p95_budget_against_a_p95(reader) -> None:
    """The budget is per metric p95: the panel showed it beside the total of all medians, so a
    run within budget (every p95 <= 100 ms) drew its total of 150 ms above the budget line."""
    from ops.models import BenchmarkResult, BenchmarkRun

    run = BenchmarkRun.objects.create(
        runs=3, warmup=1, total_ms=150.0, budget_ms=100.0, passed=True
    )
    for metric_id, p95 in (("1.1", 5.0), ("3.2", 60.0)):
        BenchmarkResult.objects.create(
            run=run, metric_id=metric_id, slug=metric_id, median_ms=p95, p95_ms=p95, max_ms=p95
        )
    sql = grafana.platform_panel(grafana.PLATFORM["benchmark_runs"], "timeseries")["targets"][0]
    names, rows = _rows(reader, grafana.expand_macros(sql["rawSql"], *WHOLE_RANGE))
    row = dict(zip(names, next(r for r in rows if r[0] == run.started_at), strict=True))
    assert row["max_p95_ms"] == 60.0 and row["p95_budget_ms"] == 100.0
    assert row["max_p95_ms"] <= row["p95_budget_ms"] < row["total_ms"]
    BenchmarkRun.objects.filter(pk=run.pk).delete()
