"""generate_demo_data: deterministic, scaled, registry-shaped and full of the real quirks."""

from __future__ import annotations

import csv
import re
import sqlite3
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
from django.core.management import CommandError, call_command
from python_calamine import CalamineWorkbook

from tickets import demo
from tickets.columns import ENTITIES, LEGACY_ORDER, detect_entity, header_lookup
from tickets.values import EXCEL_ERRORS, PLACEHOLDERS, InvalidValue

SCALE = 0.02
DAY_FIRST = re.compile(r"^\d{2}/\d{2}/\d{4}( \d{1,2}:\d{2})?$")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> demo.DemoResult:
    return demo.generate(tmp_path_factory.mktemp("demo"), scale=SCALE, seed=7)


def _tables(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    out = {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall() for n in names}
    conn.close()
    return out


def _columns(path: Path, table: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    info = [(r[1], r[2]) for r in conn.execute(f'PRAGMA table_info("{table}")')]
    conn.close()
    return info


def _sheet(path: Path) -> list[list]:
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()


def _header(rows: list[list]) -> list:
    header = list(rows[0])
    while header and header[-1] in ("", None):
        header.pop()
    return header


def test_same_seed_same_database_other_seed_differs(generated, tmp_path):
    again = demo.generate(tmp_path / "again", scale=SCALE, seed=7, exports=False)
    other = demo.generate(tmp_path / "other", scale=SCALE, seed=8, exports=False)
    first = _tables(generated.legacy_path)
    assert first == _tables(again.legacy_path)
    different = _tables(other.legacy_path)
    assert first.keys() == different.keys()
    for table in ("tickets", "comments", "timesheets"):
        assert first[table] != different[table]


def test_same_seed_same_exports(generated, tmp_path):
    again = demo.generate(tmp_path / "again", scale=SCALE, seed=7)
    for name in ("tickets.xlsx", "comments.xlsx", "timesheets.xlsx", "comments.csv"):
        assert (generated.export_dir / name).read_bytes() == (again.export_dir / name).read_bytes()


def test_counts_follow_the_scale(generated, tmp_path):
    expected = demo.volumes(SCALE)
    counts = generated.legacy_counts
    assert counts["tickets"] == expected.tickets
    assert counts["comments"] == expected.comments
    assert counts["timesheets"] == expected.timesheets
    assert counts["comment_quality"] == expected.quality
    assert counts["comment_sentiment"] == expected.sentiment
    assert counts["cloud_team_roster"] == demo.ROSTER_SIZE
    assert counts["import_metadata"] == demo.IMPORT_RECORDS
    # what was reported is what is in the file
    tables = _tables(generated.legacy_path)
    assert {name: len(rows) for name, rows in tables.items()} == counts
    # twice the scale, twice the rows
    double = demo.generate(tmp_path / "double", scale=2 * SCALE, seed=7, exports=False)
    for table in ("tickets", "comments", "timesheets"):
        assert double.legacy_counts[table] == pytest.approx(2 * counts[table], abs=1)
    # the seed scale is the profile's
    seed_scale = demo.volumes(1.0)
    assert (seed_scale.tickets, seed_scale.comments, seed_scale.timesheets) == (
        10_939,
        108_129,
        141_062,
    )


def test_ids_unique_and_orphans_are_orphans(generated):
    tables = _tables(generated.legacy_path)
    ticket_ids = [r[0] for r in tables["tickets"]]
    assert len(set(ticket_ids)) == len(ticket_ids)
    comment_ids = [int(float(r[0])) for r in tables["comments"]]
    assert len(set(comment_ids)) == len(comment_ids)
    crm = Counter(
        "admin" if r[12] == 0 else ("linked" if int(r[12]) in set(ticket_ids) else "orphan")
        for r in tables["timesheets"]
    )
    assert crm["admin"] and crm["linked"] and crm["orphan"]
    assert crm["orphan"] > crm["linked"]
    # timesheets have no key: identical rows would collapse into one fingerprint
    assert len(set(tables["timesheets"])) == len(tables["timesheets"])


def test_legacy_tables_and_columns_match_the_registry(generated):
    path = generated.legacy_path
    for name in LEGACY_ORDER:
        entity = ENTITIES[name]
        names = [n for n, _ in _columns(path, entity.legacy_table)]
        assert names == demo.legacy_columns(name)
        lookup = header_lookup(entity)
        mapped = [lookup[n.casefold()].field for n in names]
        assert len(set(mapped)) == len(mapped)
        assert {c.field for c in entity.columns if c.required} <= set(mapped)
    assert [n for n, _ in _columns(path, "tickets")] == [
        c.header for c in ENTITIES["tickets"].columns
    ]
    assert [n for n, _ in _columns(path, "import_metadata")] == list(demo.IMPORT_METADATA_COLUMNS)


def test_legacy_quirks_present(generated):
    path = generated.legacy_path
    conn = sqlite3.connect(path)

    def one(sql: str):
        return conn.execute(sql).fetchone()

    # declared types lie: a TIMESTAMP column of text, ids as REAL and as text
    types = dict(_columns(path, "tickets"))
    assert types["TKT-Created Time"] == "TIMESTAMP"
    assert one('SELECT typeof("TKT-Created Time") FROM tickets LIMIT 1') == ("text",)
    parent = one(
        'SELECT "TKT-Parent ID", typeof("TKT-Parent ID") FROM tickets '
        'WHERE "TKT-Parent ID" IS NOT NULL LIMIT 1'
    )
    assert parent[1] == "real" and float(parent[0]).is_integer()
    assert one("SELECT count(*) FROM comments WHERE typeof(ticket_id) = 'text'")[0] > 0
    assert one("SELECT count(*) FROM comments WHERE ticket_id LIKE '%.0'")[0] > 0
    # day-first strings, empty strings and placeholders
    created = [r[0] for r in conn.execute('SELECT "TKT-Created Time" FROM tickets')]
    assert any(DAY_FIRST.match(v) for v in created)
    assert any(re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", v) for v in created)
    assert one("""SELECT count(*) FROM tickets WHERE "TKT-Closure Date" = ''""")[0] > 0
    texts = [r[0] for r in conn.execute('SELECT "TKT-Customer Reference" FROM tickets')]
    assert set(texts) & (PLACEHOLDERS - {"--None--"})
    assert one("""SELECT count(*) FROM tickets WHERE "TKT-Root Cause Category" = '--None--'""")[0]
    ts_dates = [r[0] for r in conn.execute('SELECT "TS-Date" FROM timesheets')]
    assert any(DAY_FIRST.match(v) for v in ts_dates)
    assert any(v.startswith(str(demo.LEGACY_END.year + demo.FUTURE_TYPO_YEARS)) for v in ts_dates)
    keys = [r[0] for r in conn.execute("SELECT comment_id FROM comment_quality")]
    assert any(re.match(r"^\d+_\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", k) for k in keys)
    conn.close()


def test_legacy_values_parse_with_the_registry(generated):
    """Every legacy cell is readable by its column's parser, except known-junk booleans."""
    conn = sqlite3.connect(generated.legacy_path)
    for name in ("tickets", "comments", "timesheets", "comment_quality"):
        entity = ENTITIES[name]
        lookup = header_lookup(entity)
        cursor = conn.execute(f'SELECT * FROM "{entity.legacy_table}"')
        columns = [lookup[d[0].casefold()] for d in cursor.description]
        for row in cursor:
            for column, raw in zip(columns, row, strict=True):
                try:
                    parsed = column.parser(raw)
                except InvalidValue as exc:  # pragma: no cover - the assertion reports it
                    pytest.fail(f"{name}.{column.header}={raw!r}: {exc.reason}")
                if column.required:
                    assert parsed.value is not None, (name, column.header, raw)
    conn.close()


def test_exports_headers_detect_the_right_entity(generated):
    folder = generated.export_dir
    for name in ("tickets", "comments", "timesheets"):
        rows = _sheet(folder / f"{name}.xlsx")
        assert detect_entity(_header(rows)).name == name
    with (folder / "comments.csv").open(encoding="utf-8") as fh:
        assert fh.read(1) == "\ufeff"
        fh.seek(0)
        header = next(csv.reader(fh))
    assert detect_entity(header).name == "comments"


def test_exports_quirks_present(generated):
    folder = generated.export_dir
    tickets = ENTITIES["tickets"]
    created_at = [c.field for c in tickets.columns].index("created_at")
    rows = _sheet(folder / "tickets.xlsx")[1:]
    created = [r[created_at] for r in rows]
    assert any(isinstance(v, float) for v in created)  # Excel serial
    assert any(isinstance(v, str) and DAY_FIRST.match(v) for v in created)
    ids = [r[0] for r in rows]
    assert any(v in ("", None) for v in ids)  # rejectable: empty key
    assert any(isinstance(v, str) and v and not v.replace(".", "").isdigit() for v in ids)
    numeric = [int(float(v)) for v in ids if isinstance(v, float) or str(v).isdigit()]
    assert any(n > 1 for n in Counter(numeric).values())  # duplicate key
    assert any(isinstance(v, str) and v.isdigit() for v in ids)  # id as text

    # error cells survive as real Excel errors (openpyxl shows their text)
    book = openpyxl.load_workbook(folder / "tickets.xlsx", read_only=True)
    cells = [c for row in book.worksheets[0].iter_rows(values_only=True) for c in row]
    book.close()
    assert set(cells) & EXCEL_ERRORS

    comments = _sheet(folder / "comments.xlsx")
    assert len(comments[0]) > len(ENTITIES["comments"].columns) + 100  # empty trailing columns
    timesheet_rows = _sheet(folder / "timesheets.xlsx")
    assert len(_header(timesheet_rows)) == len(ENTITIES["timesheets"].columns) + 1
    work_date = [c.field for c in ENTITIES["timesheets"].columns].index("work_date")
    hours = [c.field for c in ENTITIES["timesheets"].columns].index("hours")
    dates = [r[work_date] for r in timesheet_rows[1:]]
    assert sum(isinstance(v, str) and bool(DAY_FIRST.match(v)) for v in dates) > len(dates) / 2
    assert any(isinstance(v, float) and v < 0 for v in (r[hours] for r in timesheet_rows[1:]))


def test_rejectable_rows_are_few(generated):
    """Rows an import must reject stay a small share of every file (well under the 5 % limit)."""
    folder = generated.export_dir
    for name in ("tickets", "comments", "timesheets"):
        entity = ENTITIES[name]
        rows = _sheet(folder / f"{name}.xlsx")
        required = [(i, c) for i, c in enumerate(entity.columns) if c.required]
        rejected = 0
        for row in rows[1:]:
            for i, column in required:
                try:
                    ok = column.parser(row[i]).value is not None
                except InvalidValue:
                    ok = False
                if not ok:
                    rejected += 1
                    break
        assert 1 <= rejected < 0.05 * (len(rows) - 1), (name, rejected)


def test_comments_csv_matches_xlsx(generated):
    folder = generated.export_dir
    xlsx = _sheet(folder / "comments.xlsx")
    with (folder / "comments.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == len(xlsx)
    assert all(len(r) == len(ENTITIES["comments"].columns) for r in rows)
    texts = [r[2] for r in rows[1:]]
    assert any("," in t for t in texts) and any('"' in t for t in texts)
    assert any("\n" in t for t in texts)
    ids = [r[0] for r in rows[1:]]
    assert ids[-1] == str(xlsx[-1][0]) or float(ids[-1]) == float(xlsx[-1][0])


def test_exports_overlap_the_legacy_database(generated):
    """Same keys with changes, new keys, and legacy timesheet rows missing from the window."""
    legacy = _tables(generated.legacy_path)
    legacy_status = {r[0]: r[14] for r in legacy["tickets"]}
    rows = _sheet(generated.export_dir / "tickets.xlsx")[1:]
    exported = {}
    for r in rows:
        try:
            exported[int(float(r[0]))] = r[14]
        except (TypeError, ValueError):
            continue
    shared = exported.keys() & legacy_status.keys()
    assert shared and exported.keys() - legacy_status.keys()
    closed = {"Closed", "Resolved"}
    assert any(legacy_status[k] not in closed and exported[k] in closed for k in shared), (
        "no ticket closed since the snapshot"
    )


def test_profile_shape(generated):
    """Loose checks that the data looks like DATA_PROFILE.md (not exact figures)."""
    tables = _tables(generated.legacy_path)
    tickets = tables["tickets"]
    status = [r[14] for r in tickets]
    closed = sum(s in ("Closed", "Resolved") for s in status) / len(status)
    assert 0.6 < closed < 0.85
    teams = Counter(r[18] for r in tickets)
    assert teams.most_common(1)[0][0] == "Cloud - Infrastructure"
    comments = tables["comments"]
    kinds = Counter(r[8] for r in comments)
    assert kinds["system"] > kinds["comments"] > 0 and kinds["worknotes"] > 0
    automation = sum(r[4] == demo.AUTOMATION_USER for r in comments) / len(comments)
    assert 0.45 < automation < 0.75


def test_teams_differ_as_in_the_profile():
    """DATA_PROFILE: customer-facing coverage 33-88 % and comment volume varying by team, so the
    demo's per-team metrics rank teams instead of showing them all alike."""
    world = demo.build_world(11, 0.3)
    rng = demo.Random(1)
    coverage = {}
    for team in ("Cloud - Primary Sense", "Cloud - PHI/WAPHA Support"):
        draws = [demo.public_comments(rng, team, closed=True) for _ in range(4000)]
        coverage[team] = sum(d > 0 for d in draws) / len(draws)
    assert coverage["Cloud - Primary Sense"] < 0.4 < 0.8 < coverage["Cloud - PHI/WAPHA Support"]
    per_ticket: dict[str, list[int]] = {}
    for t in world.legacy_tickets:
        if t.closed_by(demo.LEGACY_END) and t.category == "Support Tickets":
            per_ticket.setdefault(t.team, []).append(sum(t.comments))
    means = {team: sum(n) / len(n) for team, n in per_ticket.items() if len(n) >= 30}
    assert max(means.values()) > 1.8 * min(means.values()), means


def test_command_writes_and_summarises(tmp_path, capsys):
    call_command("generate_demo_data", "--out", str(tmp_path), "--scale", "0.005", "--no-exports")
    out = capsys.readouterr().out
    assert (tmp_path / "legacy.sqlite3").exists()
    assert not (tmp_path / "exports").exists()
    assert "tickets" in out and str(demo.volumes(0.005).tickets) in out
    with pytest.raises(CommandError):
        call_command("generate_demo_data", "--out", str(tmp_path), "--scale", "0")


def test_generated_rows_use_only_registry_fields():
    """A misspelt field would silently become an empty column: every stream names real fields."""
    world = demo.build_world(3, 0.01)
    streams = {
        "tickets": demo.export_ticket_rows(world),
        "comments": demo.export_comment_rows(world),
        "timesheets": demo.export_timesheet_rows(world),
    }
    for name, rows in streams.items():
        fields = {c.field for c in ENTITIES[name].columns}
        for row in rows:
            assert set(row) == fields, (name, set(row) ^ fields)
