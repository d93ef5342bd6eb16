"""Staging: every source row into the temp table `stg`, typed and validated (SPEC §4.1-4.2).

How, and why this way: Python does no per-cell work on the common path. Each batch of raw
cells is COPYed as text into `raw` and typed set-based by the SQL fast path
(``tickets.fastpath``) into `typed`, from a sender thread while the main thread reads the next
batch -- so reading the file and typing it in PostgreSQL overlap. Rows the fast path could not
fully vouch for (odd formats, warnings, rejections) are flagged and then run through the
Python parsers of ``tickets.values`` (``convert_row``), which define what a value means and
word every issue. The derived columns (the registry's SQL) are computed in the same typing
query, and for the Python-typed rows when they replace their flagged rows; `typed` is then
renamed `stg`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.copy import QueuedLibpqWriter

from tickets import fastpath
from tickets import values as v
from tickets.columns import (
    ASSIGNEE,
    BOOL,
    ID_TEXT,
    TEXT,
    Column,
    Entity,
    header_lookup,
    normalise_header,
)
from tickets.models import ImportIssue, ImportRun
from tickets.readers import RawTable, SourceError
from tickets.readers.base import BadRow

log = logging.getLogger(__name__)

ISSUE_COLUMNS = (
    "run_id",
    "entity",
    "row_number",
    "natural_key",
    "column",
    "raw_value",
    "reason",
    "severity",
)
ERROR, WARNING = ImportIssue.Severity.ERROR.value, ImportIssue.Severity.WARNING.value
STAGING_TABLES = ("raw", "typed", "fixed", "stg")
GATHER_BYTES = 1 << 20


@dataclass
class Counts:
    read: int = 0
    staged: int = 0
    rejected: int = 0
    warned: int = 0
    superseded: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    orphans: int = 0
    reasons: Counter = field(default_factory=Counter)  # rejection reasons for the summary


# --- column mapping ---------------------------------------------------------------------------


@dataclass
class Mapping:
    entity: Entity
    positions: list[tuple[int, Column]]  # source column index -> registry column
    file_issues: list[tuple[str, str]]  # (column, reason) warnings about the header row

    def __post_init__(self) -> None:
        # Precomputed for the per-cell loop in convert_row.
        self.plan = [(i, c.parser, c.field, c.required, c.header) for i, c in self.positions]
        mapped = {c.field for _, c in self.positions}
        self.absent = [c.field for c in self.entity.columns if c.field not in mapped]


def map_headers(entity: Entity, headers: list[str], file_name: str) -> Mapping:
    """Match the header row to the registry; a missing required column refuses the file."""
    lookup = header_lookup(entity)
    # A column's own header wins over another column that matches only by a field name or
    # legacy alias ("Status" before "TKT-Status" in an export must not become the status).
    own = {normalise_header(c.header): c for c in entity.columns}
    named = {own[n].field for n in map(normalise_header, headers) if n in own}
    positions: list[tuple[int, Column]] = []
    seen: set[str] = set()
    issues: list[tuple[str, str]] = []
    for index, header in enumerate(headers):
        if header is None or not str(header).strip():
            continue
        name = normalise_header(header)
        column = own.get(name) or lookup.get(name)
        if column is None:
            issues.append((str(header), "unknown column ignored"))
        elif name not in own and column.field in named:
            issues.append((str(header), f"column ignored: the file has {column.header}"))
        elif column.field in seen:
            issues.append((str(header), f"duplicate column for {column.header}: first one used"))
        else:
            seen.add(column.field)
            positions.append((index, column))
    missing_required = [c.header for c in entity.columns if c.required and c.field not in seen]
    if missing_required:
        raise SourceError(
            file_name,
            f"missing required column(s) for {entity.name}: " + ", ".join(missing_required),
        )
    for c in entity.columns:
        if c.field not in seen:
            issues.append((c.header, "missing optional column: loaded as NULL"))
    return Mapping(entity, positions, issues)


# --- one row through the Python parsers ---------------------------------------------------------


def _raw_text(raw: Any) -> str:
    """The raw value as the user would recognise it in the file (12.0 from Excel is 12)."""
    if raw is None:
        return ""
    if type(raw) is float and raw.is_integer():
        return str(int(raw))
    return str(raw)[:500]


def convert_row(
    mapping: Mapping, values: list[Any]
) -> tuple[dict[str, Any] | None, list[tuple[str, str, str, str]]]:
    """Typed row (or None when rejected) and its issues as (severity, column, raw, reason)."""
    row: dict[str, Any] = dict.fromkeys(mapping.absent)
    errors: list[tuple[str, str, str, str]] = []
    warnings: list[tuple[str, str, str, str]] = []
    width = len(values)
    for index, parser, name, required, header in mapping.plan:
        raw = values[index] if index < width else None
        try:
            value, warning = parser(raw)
        except v.InvalidValue as exc:
            if required:
                errors.append((ERROR, header, _raw_text(raw), exc.reason))
            else:
                warnings.append((WARNING, header, _raw_text(raw), f"invalid: {exc.reason}"))
            row[name] = None
            continue
        if value is None and required:
            errors.append((ERROR, header, _raw_text(raw), warning or "required value is empty"))
        elif warning:
            warnings.append((WARNING, header, _raw_text(raw), warning))
        row[name] = value
    if errors:
        return None, errors
    return row, warnings


# --- SQL helpers --------------------------------------------------------------------------------


def q(name: str) -> str:
    return f'"{name}"'


def staging_ddl(entity: Entity, table: str = "stg", derived: bool = True) -> tuple[str, list[str]]:
    cols = [(c.field, c.pg_type) for c in entity.columns]
    if derived:
        cols += [(d.name, d.pg_type) for d in entity.derived]
    ddl = ", ".join(f"{q(name)} {pg_type}" for name, pg_type in cols)
    return f"CREATE TEMP TABLE {table} (row_number integer, {ddl}) ON COMMIT DROP", [
        name for name, _ in cols
    ]


def derived_values(entity: Entity, row: dict[str, Any]) -> dict[str, Any]:
    """The derived columns of one typed row, by the same SQL staging uses (row-by-row paths)."""
    if not entity.derived:
        return {}
    select = ", ".join(f"%s::{c.pg_type} AS {q(c.field)}" for c in entity.columns)
    exprs = ", ".join(f"{d.sql()} AS {q(d.name)}" for d in entity.derived)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {exprs} FROM (SELECT {select}) s", [row.get(c.field) for c in entity.columns]
        )
        return dict(zip([d.name for d in entity.derived], cursor.fetchone(), strict=True))


def issue_rows(
    run_id: int, entity: str, number: int | None, key: str, issues: list[tuple[str, str, str, str]]
) -> list[tuple]:
    return [
        (run_id, entity, number, key, column, raw, reason, severity)
        for severity, column, raw, reason in issues
    ]


def copy_rows(
    cur: Any, table: str, columns: list[str] | tuple[str, ...], rows: list[tuple]
) -> None:
    """COPY rows through a psycopg cursor (a queued writer sends while Python formats)."""
    if not rows:
        return
    copy_sql = f"COPY {table} ({', '.join(map(q, columns))}) FROM STDIN"
    with cur.copy(copy_sql, writer=QueuedLibpqWriter(cur)) as copy:
        for row in rows:
            copy.write_row(row)


# --- raw cells as the Python parsers would see them ---------------------------------------------

_TEXT_OID = postgres.types["text"].oid


class _TextFloat(Dumper):
    """12.0 from a spreadsheet is the text 12, as values.parse_text renders it."""

    oid = _TEXT_OID

    def dump(self, obj: float) -> bytes:
        return (str(int(obj)) if obj.is_integer() else repr(obj)).encode()


class _TextBool(Dumper):
    oid = _TEXT_OID

    def dump(self, obj: bool) -> bytes:
        return b"true" if obj else b"false"


class _TextBytes(Dumper):
    """A legacy BLOB cell: its bytes read as UTF-8 text (bad bytes replaced), never bytea hex."""

    oid = _TEXT_OID

    def dump(self, obj: bytes) -> bytes:
        return bytes(obj).replace(b"\x00", b"").decode("utf-8", "replace").encode()


class _TextDuration(Dumper):
    """Spreadsheet durations are times of day: a fraction of a day, as values.parse_time reads."""

    oid = _TEXT_OID

    def dump(self, obj: dt.timedelta) -> bytes:
        return repr(obj.total_seconds() / 86400).encode()


FLOAT_SENSITIVE_KINDS = frozenset({TEXT, ASSIGNEE, ID_TEXT, BOOL})


def _raw_cursor(pg: psycopg.Connection, mapping: Mapping, table: RawTable) -> psycopg.Cursor:
    """A cursor whose dumpers render cells as text the Python parsers read the same way.

    The float dumper runs in Python (~1 µs a cell), so it is only installed when a float can
    reach a column where 12.0 and 12 differ (text, booleans); the reader says where floats can
    occur (None: anywhere).
    """
    cur = pg.cursor()
    cur.adapters.register_dumper(bool, _TextBool)
    cur.adapters.register_dumper(dt.timedelta, _TextDuration)
    for blob in (bytes, bytearray, memoryview):
        cur.adapters.register_dumper(blob, _TextBytes)
    if any(
        col.kind in FLOAT_SENSITIVE_KINDS
        and (table.float_columns is None or table.headers[i] in table.float_columns)
        for i, col in mapping.positions
    ):
        cur.adapters.register_dumper(float, _TextFloat)
    return cur


def _write_raw(copy: Any, rows: list[tuple]) -> None:
    for row in rows:
        try:
            copy.write_row(row)
        except psycopg.DataError:
            # A NUL byte, which PostgreSQL text cannot hold: drop the half-written row from the
            # formatter's buffer (it always starts at a row boundary) and write it cleaned.
            buffer = copy.formatter._write_buffer
            del buffer[buffer.rfind(b"\n") + 1 :]
            copy.write_row(tuple(x.replace("\x00", "") if type(x) is str else x for x in row))


# --- the typing query ---------------------------------------------------------------------------


def _needs_python(mapping: Mapping) -> str:
    """A row goes to Python when the fast path left a cell NULL although it holds a value, or
    a required field has no value (Python words the rejection)."""
    tests = []
    for _, c in mapping.positions:
        typed, text = q(c.field), q(f"_{c.field}")
        if c.required:
            tests.append(f"{typed} IS NULL")
        else:
            tests.append(
                f"({typed} IS NULL AND {text} IS NOT NULL "
                f"AND NOT {fastpath.blank_sql(c.kind, text)})"
            )
    return " OR ".join(tests) or "false"


def typing_sql(mapping: Mapping, today: dt.date) -> str:
    """INSERT INTO typed ... FROM raw: fast-path values, the derived columns, the needs-Python
    flag and, for flagged rows only, the trimmed cells for Python. Each layer ends in OFFSET 0
    so the planner keeps it (otherwise it would inline a trim or a conversion into every
    reference to it).

    The derived columns (a timesheet's SHA-256 fingerprint) are computed here, in every lane
    while the file is still being read, rather than in one pass over all rows afterwards;
    flagged rows get theirs in `build_stg`, once Python has typed them."""
    entity = mapping.entity
    cols = [c for _, c in mapping.positions]
    trimmed = ", ".join(f"{fastpath.trim_sql(q(c.field))} AS {q(c.field)}" for c in cols)
    fast = ", ".join(
        f"{fastpath.fast_sql(c.kind, q(c.field), today)} AS {q(c.field)}, "
        f"{q(c.field)} AS {q('_' + c.field)}"
        for c in cols
    )
    fields = ", ".join(q(c.field) for c in cols)
    texts = ", ".join(q("_" + c.field) for c in cols)
    # Columns the file lacks are NULL, and the derived columns' SQL may name them.
    absent = "".join(
        f", NULL::{c.pg_type} AS {q(c.field)}" for c in entity.columns if c.field in mapping.absent
    )
    derived_names = "".join(f", {q(d.name)}" for d in entity.derived)
    derived = "".join(f", CASE WHEN NOT python THEN {d.sql()} END" for d in entity.derived)
    return (
        f"INSERT INTO typed (row_number, {fields}{derived_names}, python, cells) "
        f"SELECT row_number, {fields}{derived}, python, "
        f"CASE WHEN python THEN ARRAY[{texts}] END "
        f"FROM (SELECT row_number, {fields}, {texts}{absent}, {_needs_python(mapping)} AS python "
        f"FROM (SELECT row_number, {fast} "
        f"FROM (SELECT row_number, {trimmed} FROM raw OFFSET 0) a OFFSET 0) b OFFSET 0) c"
    )


class _Lane:
    """One connection that takes batches from its own thread: COPY into `raw`, type them into
    `typed` (both temp tables of that connection's session).

    At most one batch is in flight per lane. A lane's thread uses its psycopg connection
    directly (Django connections are per thread); nobody else touches it until it is drained.
    """

    def __init__(self, pg: psycopg.Connection, mapping: Mapping, table: RawTable, typing: str):
        self.pg = pg
        self.raw = _raw_cursor(pg, mapping, table)
        self.sql = pg.cursor()
        names = ", ".join(q(c.field) for _, c in mapping.positions)
        self.copy_raw = f"COPY raw (row_number, {names}) FROM STDIN"
        self.typing = typing
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staging")
        self.pending: Future | None = None

    def _ship(self, rows: list[tuple], issues: list[tuple]) -> None:
        if rows:
            with self.raw.copy(self.copy_raw, writer=QueuedLibpqWriter(self.raw)) as copy:
                _write_raw(copy, rows)
            self.sql.execute(self.typing)
            self.sql.execute("TRUNCATE raw")
        copy_rows(self.sql, "tickets_importissue", ISSUE_COLUMNS, issues)

    def send(self, rows: list[tuple], issues: list[tuple]) -> None:
        self.wait()
        self.pending = self.pool.submit(self._ship, rows, issues)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # re-raises the thread's error here

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown(wait=True)
            self.raw.close()
            self.sql.close()


class _Sender:
    """Deals batches round-robin to lanes; the main thread reads the next batch meanwhile.

    Lane 0 is the run's own connection and transaction. With IMPORT_TYPING_CONNECTIONS > 1,
    further lanes are helper connections with their own temp `raw` and `typed`: typing is
    what PostgreSQL spends the load on, and one backend left the second core half idle. At
    the end their typed rows are copied (binary COPY) into the run's `typed`; the helpers
    write nothing else and roll back. Issues always go through lane 0 (the run's transaction).
    """

    def __init__(self, cursor: Any, mapping: Mapping, table: RawTable, ddl: list[str]):
        typing = typing_sql(mapping, timezone.now().date())
        self.lanes = [_Lane(cursor.cursor.connection, mapping, table, typing)]
        self.helpers: list[psycopg.Connection] = []
        try:
            for _ in range(settings.IMPORT_TYPING_CONNECTIONS - 1):
                helper = psycopg.connect(**connection.get_connection_params())
                self.helpers.append(helper)
                with helper.cursor() as cur:
                    cur.execute("SET TIME ZONE 'UTC'")
                    for statement in ddl:
                        cur.execute(statement)
                self.lanes.append(_Lane(helper, mapping, table, typing))
        except BaseException:
            self._close_helpers()
            raise
        self.sent = 0

    def send(self, rows: list[tuple], issues: list[tuple]) -> None:
        if issues and len(self.lanes) > 1:
            self.lanes[0].send([], issues)
            issues = []
        if rows or issues:
            self.lanes[self.sent % len(self.lanes)].send(rows, issues)
            self.sent += 1

    def gather(self, cursor: Any) -> None:
        """Drain every lane, then copy the helpers' typed rows into the run's `typed`."""
        for lane in self.lanes:
            lane.wait()
        for helper in self.helpers:
            with helper.cursor() as out, cursor.cursor.connection.cursor() as into:
                with (
                    out.copy("COPY typed TO STDOUT (FORMAT BINARY)") as source,
                    into.copy("COPY typed FROM STDIN (FORMAT BINARY)") as sink,
                ):
                    # The server sends a message per row: passing each on alone cost a write
                    # call per row (0.3 s for 67k), so they go on in ~1 MB pieces.
                    pieces: list[bytes] = []
                    size = 0
                    for chunk in source:
                        pieces.append(chunk)
                        size += len(chunk)
                        if size >= GATHER_BYTES:
                            sink.write(b"".join(pieces))
                            pieces, size = [], 0
                    sink.write(b"".join(pieces))

    def close(self) -> None:
        try:
            for lane in self.lanes:
                lane.close()
        finally:
            self._close_helpers()

    def _close_helpers(self) -> None:
        for helper in self.helpers:
            helper.close()  # never committed: its temp tables go with it


def copy_and_type(
    cursor: Any, run: ImportRun, mapping: Mapping, table: RawTable, progress: Any
) -> Counts:
    """Read every row; raw cells go to PostgreSQL untouched, reader-level bad rows become issues."""
    names = [c.field for _, c in mapping.positions]
    raw_ddl = (
        "CREATE TEMP TABLE raw (row_number integer, "
        + ", ".join(f"{q(n)} text" for n in names)
        + ") ON COMMIT DROP"
    )
    typed_ddl, _ = staging_ddl(mapping.entity, "typed")
    typed_ddl = typed_ddl.replace(
        ") ON COMMIT DROP", ", python boolean, cells text[]) ON COMMIT DROP"
    )
    cursor.execute(raw_ddl)
    cursor.execute(typed_ddl)
    indexes = [i for i, _ in mapping.positions]
    width = max(indexes) + 1
    identity = indexes == list(range(width))
    pick = itemgetter(*indexes) if len(indexes) > 1 else (lambda row: (row[indexes[0]],))
    entity_name = mapping.entity.name
    counts = Counts()
    issues = issue_rows(
        run.pk, entity_name, None, "", [(WARNING, c, "", r) for c, r in mapping.file_issues]
    )
    batch: list[tuple] = []
    size = settings.IMPORT_BATCH_ROWS
    sender = _Sender(cursor, mapping, table, [raw_ddl, typed_ddl])
    try:
        for number, values in table.rows:
            counts.read += 1
            if type(values) is BadRow:
                counts.rejected += 1
                counts.reasons[values.reason.split(" (")[0]] += 1
                issues.append(_bad_row_issue(run.pk, mapping, number, values))
            else:
                if len(values) < width:
                    values = [*values, *([None] * (width - len(values)))]
                if identity and len(values) == width:
                    batch.append((number, *values))
                else:
                    batch.append((number, *pick(values)))
            if len(batch) >= size or len(issues) >= size:
                sender.send(batch, issues)
                batch, issues = [], []
                progress.update(counts.read)
        sender.send(batch, issues)
        sender.gather(cursor)
    finally:
        sender.close()
    # Every row is read: the count replaces the reader's total, which may have been an estimate
    # (an XLSX without <dimension>) or counted blank rows, so a finished run shows 100 %.
    progress.total = counts.read
    progress.update(counts.read, force=True)
    return counts


def _bad_row_issue(run_id: int, mapping: Mapping, number: int, bad: BadRow) -> tuple:
    """A row the reader could not split: its key (if the key's field is there) and the raw
    fields, so the user can find the line."""
    key_at = next((i for i, c in mapping.positions if c.field == mapping.entity.key), None)
    key = _raw_text(bad.fields[key_at]) if key_at is not None and key_at < len(bad.fields) else ""
    raw = ",".join(bad.fields)
    return (run_id, mapping.entity.name, number, key[:200], "", raw[:500], bad.reason, ERROR)


def convert_flagged(cursor: Any, run: ImportRun, mapping: Mapping, counts: Counts) -> bool:
    """The rows flagged for Python, through convert_row: their values, warnings and rejections
    are exactly the registry's. Returns True when there were any (then `fixed` holds them)."""
    cursor.execute("SELECT count(*) FROM typed WHERE python")
    if not cursor.fetchone()[0]:
        return False
    entity = mapping.entity
    ddl, fields = staging_ddl(entity, "fixed", derived=False)
    cursor.execute(ddl)
    compact = Mapping(entity, [(i, c) for i, (_, c) in enumerate(mapping.positions)], [])
    key_index = next((i for i, c in compact.positions if c.field == entity.key), None)
    pg = cursor.cursor.connection
    rows: list[tuple] = []
    issues: list[tuple] = []
    size = settings.IMPORT_BATCH_ROWS
    with pg.cursor(name="flagged_rows") as source, pg.cursor() as sink:
        source.itersize = size
        source.execute("SELECT row_number, cells FROM typed WHERE python ORDER BY row_number")
        for number, values in source:
            row, row_issues = convert_row(compact, values)
            if row is None:
                counts.rejected += 1
                for _, column, _, reason in row_issues:
                    counts.reasons[f"{column}: {reason}"] += 1
            else:
                rows.append((number, *[row[f] for f in fields]))
                if row_issues:
                    counts.warned += 1
            if row_issues:
                key = _raw_text(values[key_index]) if key_index is not None else ""
                issues.extend(issue_rows(run.pk, entity.name, number, key, row_issues))
            if len(rows) >= size or len(issues) >= size:
                copy_rows(sink, "fixed", ["row_number", *fields], rows)
                copy_rows(sink, "tickets_importissue", ISSUE_COLUMNS, issues)
                rows, issues = [], []
        copy_rows(sink, "fixed", ["row_number", *fields], rows)
        copy_rows(sink, "tickets_importissue", ISSUE_COLUMNS, issues)
    return True


def build_stg(cursor: Any, entity: Entity, flagged: bool) -> None:
    """`typed` becomes `stg`: the flagged rows are replaced by their Python-typed version (with
    the derived columns the lanes left NULL for them), and the working columns go. Renaming the
    table, not copying it into a new one, spares a pass over every row."""
    if flagged:
        fields = ", ".join(q(c.field) for c in entity.columns)
        names = "".join(f", {q(d.name)}" for d in entity.derived)
        derived = "".join(f", {d.sql()}" for d in entity.derived)
        cursor.execute("DELETE FROM typed WHERE python")
        cursor.execute(
            f"INSERT INTO typed (row_number, {fields}{names}) "
            f"SELECT row_number, {fields}{derived} FROM fixed"
        )
    cursor.execute("ALTER TABLE typed DROP COLUMN python, DROP COLUMN cells")
    cursor.execute("ALTER TABLE typed RENAME TO stg")


def stage_rows(
    cursor: Any, run: ImportRun, mapping: Mapping, table: RawTable, progress: Any
) -> Counts:
    """Every row of the source into `stg`, typed and validated; issues into ImportIssue."""
    for name in STAGING_TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")
    steps: dict[str, float] = {}
    mark = time.monotonic()
    counts = copy_and_type(cursor, run, mapping, table, progress)
    steps["read+copy+sql types"] = time.monotonic() - mark
    mark = time.monotonic()
    flagged = convert_flagged(cursor, run, mapping, counts)
    steps["python types"] = time.monotonic() - mark
    mark = time.monotonic()
    build_stg(cursor, mapping.entity, flagged)
    steps["stg"] = time.monotonic() - mark
    log.info("run %s staging %s", run.pk, {k: round(t, 2) for k, t in steps.items()})
    counts.staged = counts.read - counts.rejected
    return counts
