"""The SQL fast path of the value parsers: clean cells are typed inside PostgreSQL.

Why: converting ~5 million cells one at a time in Python was most of a load's time. The shapes
that make up nearly every real cell (ISO and day-first dates, Excel serials, plain numbers,
yes/no words, placeholders) are typed here, set-based, in the staging query. Anything the fast
path does not fully recognise -- and every cell that would carry a warning (Excel errors,
dates from today on, junk booleans) -- comes out NULL, and its row is sent back to the Python
parsers of ``tickets.values``, which stay the one definition of what a value means.
``tests/test_fastpath.py`` holds the two to the same answers.

Each ``fast_sql`` expression takes the *trimmed* raw text (``trim_sql``) and never raises: a
cast only runs after a LIKE pattern and a regular expression have proven the shape, and length
tests have ruled out overflow. Cost matters (these run once per cell): LIKE is nearly free,
while PostgreSQL's regex engine pays per state, so patterns stay small and unbounded.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from tickets import columns as c
from tickets import values as v


def _literal(text: str) -> str:
    """A PostgreSQL E'' literal with every non-printable or non-ASCII character escaped."""
    out = []
    for ch in text:
        if ch == "'":
            out.append("''")
        elif ch == "\\":
            out.append("\\\\")
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "E'" + "".join(out) + "'"


def trim_sql(ref: str) -> str:
    return f"btrim({ref}, {_literal(v.WHITESPACE)})"


def _in_list(words: frozenset[str]) -> str:
    return "(" + ", ".join(_literal(w) for w in sorted(words)) + ")"


def blank_sql(kind: str, t: str) -> str:
    """True when the trimmed text means "no value" (empty or a placeholder). The length test
    comes first: it spares the comparisons for nearly every real value."""
    words = v.PLACEHOLDERS | (v.ASSIGNEE_PLACEHOLDERS if kind == c.ASSIGNEE else frozenset())
    longest = max(len(w.encode()) for w in words)
    return f"(octet_length({t}) <= {longest} AND {t} IN {_in_list(words | {''})})"


def _days_in_month(y: str, m: str) -> str:
    return (
        f"CASE WHEN {m} = 2 THEN CASE WHEN {y} % 4 = 0 AND ({y} % 100 <> 0 OR {y} % 400 = 0) "
        f"THEN 29 ELSE 28 END WHEN {m} IN (4, 6, 9, 11) THEN 30 ELSE 31 END"
    )


def _valid_date(y: str, m: str, d: str) -> str:
    """Integer parts; the month length is only looked up past the 28th (most days are not)."""
    return (
        f"{y} BETWEEN {v.MIN_YEAR} AND {v.MAX_YEAR} AND {m} BETWEEN 1 AND 12 "
        f"AND {d} >= 1 AND ({d} <= 28 OR {d} <= ({_days_in_month(y, m)}))"
    )


#: Digit strings compare byte-wise: the database's default collation would call strcoll.
C = 'COLLATE "C"'


def _len(expr: str) -> str:
    return f"octet_length({expr})"


# --- dates ------------------------------------------------------------------------------------

#: ISO with a space or a T between date and time. The LIKE patterns fix every separator's
#: position; _iso_ok then proves the rest are digits.
ISO_SHAPES = (
    "____-__-__",
    *(f"____-__-__{sep}__:__{rest}" for sep in (" ", "T") for rest in ("", ":__", ":__.%")),
)
DAYFIRST = r"'^[0-9]+/[0-9]+/[0-9]+( [0-9]+:[0-9]+(:[0-9]+)?)?$'"
NUMBER = r"'^[0-9]+(\.[0-9]+)?$'"


def _iso_ok(t: str, date_only: bool = False) -> str:
    shapes = ISO_SHAPES[:1] if date_only else ISO_SHAPES
    like = " OR ".join(f"{t} LIKE '{shape}'" for shape in shapes)
    # Fixed-width digit strings: compared as bytes, cast only for the month-length check.
    ys, ms, ds = (f"substr({t}, {a}, {n}) {C}" for a, n in ((1, 4), (6, 2), (9, 2)))
    y, m = f"substr({t}, 1, 4)::int", f"substr({t}, 6, 2)::int"
    valid = (
        f"{ys} BETWEEN '{v.MIN_YEAR}' AND '{v.MAX_YEAR}' AND {ms} BETWEEN '01' AND '12' "
        f"AND {ds} >= '01' AND ({ds} <= '28' OR substr({t}, 9, 2)::int <= ({_days_in_month(y, m)}))"
    )
    clock = (
        f"substr({t}, 12, 2) {C} <= '23' AND substr({t}, 15, 2) {C} <= '59' "
        f"AND substr({t}, 18, 2) {C} <= '59'"
    )
    # Every character is a digit or a separator, and there are exactly as many separators as
    # the shape has (so none sits where a digit belongs): two cheap tests instead of one
    # grouped regex, which cost twice as much.
    stripped = t
    for sep in "-: .T":
        stripped = f"replace({stripped}, '{sep}', '')"
    separators = f"CASE {_len(t)} WHEN 10 THEN 2 WHEN 16 THEN 4 WHEN 19 THEN 5 ELSE 6 END"
    # At most microseconds: Python truncates longer fractions where PostgreSQL rounds.
    return (
        f"({like}) AND {_len(t)} <= 26 AND {_len(t)} <> 20 AND {t} ~ '^[-0-9 :.T]+$' "
        f"AND {_len(t)} - {_len(stripped)} = {separators} AND {valid} AND {clock}"
    )


def _dayfirst(t: str) -> tuple[str, str, str, str, str]:
    """(shape test, year, month, day, time-of-day) of 'D/M/YYYY[ H:MM[:SS]]'."""
    day_part, clock_part = f"split_part({t}, ' ', 1)", f"split_part({t}, ' ', 2)"
    a, b, y = (f"split_part({day_part}, '/', {i})" for i in (1, 2, 3))
    h, mi, s = (f"split_part({clock_part}, ':', {i})" for i in (1, 2, 3))
    shape = (
        f"{t} LIKE '%/%/____%' AND {t} ~ {DAYFIRST} AND {_len(a)} <= 2 AND {_len(b)} <= 2 "
        f"AND {_len(y)} = 4 AND {_len(h)} <= 2 AND {_len(mi)} IN (0, 2) AND {_len(s)} IN (0, 2)"
    )
    a, b, y = f"{a}::int", f"{b}::int", f"{y}::int"
    day, month = (a, b) if settings.DATE_DAY_FIRST else (b, a)
    h, mi, s = (f"coalesce(nullif({x}, ''), '0')::int" for x in (h, mi, s))
    shape += f" AND {_valid_date(y, month, day)} AND {h} <= 23 AND {mi} <= 59 AND {s} <= 59"
    return shape, y, month, day, f"make_time({h}, {mi}, {s})"


def _serial(t: str) -> tuple[str, str]:
    """(shape test, naive timestamp) of an Excel serial, rounded to the second like Python."""
    lo, hi = v.EXCEL_SERIAL_RANGE
    seconds, clear = _day_seconds(t)
    ok = (
        f"{t} ~ {NUMBER} AND {_len(t)} <= 30 "
        f"AND {_len(f'split_part({t}, {chr(39)}.{chr(39)}, 1)')} = 5 "
        f"AND {t}::numeric BETWEEN {lo} AND {hi} AND {clear}"
    )
    return ok, f"(timestamp '{v.EXCEL_EPOCH.date()}' + round({seconds}) * interval '1 second')"


def _day_seconds(t: str) -> tuple[str, str]:
    """(seconds, test) of a day count given as digits: the test is false within a microsecond
    of half a second, where Python (rounding a float to the microsecond first) could round the
    other way -- those few values are left to Python."""
    seconds = f"({t}::numeric * 86400)"
    return seconds, f"abs({seconds} % 1 - 0.5) > 0.000002"


def _timestamp(t: str, today: dt.date) -> str:
    """Naive local times read in SOURCE_TIME_ZONE. Only dates before `today` (UTC) take the fast
    path: later ones may need the "more than a day in the future" warning, so Python decides."""
    zone = _literal(settings.SOURCE_TIME_ZONE)
    cutoff = today.isoformat()
    dayfirst, y, m, d, clock = _dayfirst(t)
    serial_ok, serial = _serial(t)
    return (
        f"CASE WHEN {_iso_ok(t)} AND substr({t}, 1, 10) {C} < '{cutoff}' "
        f"THEN timezone({zone}, date_trunc('second', {t}::timestamp + interval '0.5 second')) "
        f"WHEN {dayfirst} AND make_date({y}, {m}, {d}) < date '{cutoff}' "
        f"THEN timezone({zone}, make_date({y}, {m}, {d}) + {clock}) "
        f"WHEN {serial_ok} AND {serial} < timestamp '{cutoff}' "
        f"THEN timezone({zone}, {serial}) END"
    )


def _padded_dayfirst(t: str, today: dt.date) -> tuple[str, str]:
    """(test, date) of exactly DD/MM/YYYY (MM/DD/YYYY month-first) before `today`: the shape of
    nearly every date cell in a timesheet export. Fixed positions let byte comparisons do what
    `_dayfirst` does with `split_part`s that PostgreSQL recomputes at every mention (about
    7 µs a cell in the typing query; this takes about a third)."""
    at_day, at_month = (1, 4) if settings.DATE_DAY_FIRST else (4, 1)
    d, m, y = (f"substr({t}, {a}, {n}) {C}" for a, n in ((at_day, 2), (at_month, 2), (7, 4)))
    as_int = {part: f"substr({t}, {a}, {n})::int" for part, a, n in (("d", at_day, 2), ("m", at_month, 2), ("y", 7, 4))}  # fmt: skip
    test = (
        # The slashes where LIKE puts them and no others, and every other character a digit
        # (translate: half the cost of the regex).
        f"{t} LIKE '__/__/____' AND translate({t}, '0123456789', '') = '//' "
        f"AND {y} BETWEEN '{v.MIN_YEAR}' AND '{v.MAX_YEAR}' AND {m} BETWEEN '01' AND '12' "
        f"AND {d} >= '01' AND ({d} <= '28' OR {as_int['d']} <= "
        f"({_days_in_month(as_int['y'], as_int['m'])})) "
        f"AND ({y} || {m} || {d}) {C} < '{today:%Y%m%d}'"
    )
    return test, f"make_date({as_int['y']}, {as_int['m']}, {as_int['d']})"


def _date(t: str, today: dt.date) -> str:
    cutoff = today.isoformat()
    padded, padded_date = _padded_dayfirst(t, today)
    dayfirst, y, m, d, _ = _dayfirst(t)
    serial_ok, serial = _serial(t)
    return (
        f"CASE WHEN {padded} THEN {padded_date} "
        f"WHEN ({_iso_ok(t, date_only=True)} OR ({t} LIKE '____-__-__ 00:00:00' "
        f"AND {_iso_ok(t)})) AND substr({t}, 1, 10) {C} < '{cutoff}' "
        f"THEN substr({t}, 1, 10)::date "
        f"WHEN {dayfirst} AND {t} NOT LIKE '% %' AND make_date({y}, {m}, {d}) < date '{cutoff}' "
        f"THEN make_date({y}, {m}, {d}) "
        f"WHEN {serial_ok} AND {serial} < timestamp '{cutoff}' THEN {serial}::date END"
    )


CLOCK_SHAPES = ("_:__", "__:__", "_:__:__", "__:__:__")


def _clock(t: str, twelve_hour: bool) -> tuple[str, str]:
    """(shape test, time) of H:MM[:SS], or of H:MM[:SS] AM/PM. LIKE fixes where the colons
    are, the colon count proves there are no others and a one-class regex that the rest are
    digits: cheaper than one regex with groups."""
    clock = f"split_part({t}, ' ', 1)" if twelve_hour else t
    suffix = " __" if twelve_hour else ""
    like = " OR ".join(f"{t} LIKE '{shape}{suffix}'" for shape in CLOCK_SHAPES)
    colons = (
        f"({_len(clock)} - {_len(f'replace({clock}, {chr(39)}:{chr(39)}, {chr(39)}{chr(39)})')})"
    )
    h, mi, s = (f"split_part({clock}, ':', {i})" for i in (1, 2, 3))
    shape = (
        f"({like}) AND {clock} ~ '^[0-9:]+$' AND {colons} = {_len(clock)} / 3 "
        f"AND {mi} {C} <= '59' AND {s} {C} <= '59'"
    )
    if not twelve_hour:
        return f"{shape} AND {h}::int <= 23", f"{clock}::time"
    pm = f"upper(right({t}, 2))"
    shape += f" AND {pm} IN ('AM', 'PM') AND {h}::int BETWEEN 1 AND 12"
    hour = f"{h}::int % 12 + CASE WHEN {pm} = 'PM' THEN 12 ELSE 0 END"
    seconds = f"coalesce(nullif({s}, ''), '0')::int"
    return shape, f"make_time({hour}, {mi}::int, {seconds})"


def _time(t: str) -> str:
    """H:MM[:SS], with or without AM/PM, or an Excel day fraction rounded to the second."""
    clock24, time24 = _clock(t, twelve_hour=False)
    clock12, time12 = _clock(t, twelve_hour=True)
    seconds, clear = _day_seconds(t)
    fraction = f"{t} ~ {NUMBER} AND {_len(t)} <= 30 AND {t}::numeric < 1 AND {clear}"
    return (
        f"CASE WHEN {clock24} THEN {time24} WHEN {clock12} THEN {time12} "
        f"WHEN {fraction} THEN time '00:00' + round({seconds}) * interval '1 second' END"
    )


# --- numbers and words ------------------------------------------------------------------------


def _integer(t: str, digits: int, pg_type: str) -> str:
    """Digits, or digits and '.0' (ids written as floats), maybe negative; '+' goes to Python."""
    whole = f"split_part({t}, '.', 1)"
    return (
        rf"CASE WHEN {t} ~ '^-?[0-9]+(\.0+)?$' "
        f"AND {_len(f'ltrim({whole}, {chr(39)}-{chr(39)})')} <= {digits} "
        f"THEN {whole}::{pg_type} END"
    )


def _decimal(t: str, pg_type: str, int_digits: int, lo: str, hi: str) -> str:
    """Digits with an optional fraction ('.5' too); the cast to numeric(p,s) rounds half away from zero,
    as Python's ROUND_HALF_UP does for non-negative values. `int_digits` keeps the rounded
    value inside the type (larger values are left to Python, which words the error)."""
    value = f"{t}::{pg_type}"
    return (
        rf"CASE WHEN {t} ~ '^[0-9]*\.?[0-9]+$' AND {_len(t)} <= 30 "
        f"AND {_len(f'split_part({t}, {chr(39)}.{chr(39)}, 1)')} <= {int_digits} "
        f"AND {value} BETWEEN {lo} AND {hi} THEN {value} END"
    )


def _bool(t: str) -> str:
    trues = " ".join(f"WHEN {_literal(w)} THEN true" for w in sorted(v.TRUE_WORDS))
    falses = " ".join(f"WHEN {_literal(w)} THEN false" for w in sorted(v.FALSE_WORDS))
    longest = max(len(w) for w in v.TRUE_WORDS | v.FALSE_WORDS)
    return f"CASE WHEN {_len(t)} <= {longest} THEN CASE lower({t}) {trues} {falses} END END"


def fast_sql(kind: str, t: str, today: dt.date | None = None) -> str:
    """SQL typing the trimmed text `t` as `kind`, or NULL when Python must look at the cell."""
    today = today or dt.datetime.now(dt.UTC).date()
    pg_type = c.KINDS[kind][1]
    if kind in (c.TEXT, c.ASSIGNEE):
        # '#' may start an Excel error cell: Python words the warning.
        return f"CASE WHEN {blank_sql(kind, t)} OR {t} LIKE '#%' THEN NULL ELSE {t} END"
    if kind == c.ID_TEXT:  # '7001.0' is the id 7001
        return (
            f"CASE WHEN {blank_sql(kind, t)} OR {t} LIKE '#%' THEN NULL "
            rf"WHEN {t} LIKE '%.%0' AND {t} ~ '^-?[0-9]+\.0+$' THEN split_part({t}, '.', 1) "
            f"ELSE {t} END"
        )
    if kind == c.BIGINT:
        return _integer(t, 18, pg_type)
    if kind == c.INT:
        return _integer(t, 9, pg_type)
    if kind == c.SCORE5:
        return rf"CASE WHEN {t} ~ '^[1-5](\.0*)?$' THEN split_part({t}, '.', 1)::{pg_type} END"
    if kind == c.BOOL:
        return _bool(t)
    if kind == c.HOURS:
        return _decimal(t, pg_type, 5, "0", "99999.99")
    if kind == c.SCORE:
        return _decimal(t, pg_type, 1, "1", "5")
    if kind == c.UNIT:  # 1.99995 still rounds inside numeric(5,4); 2 and up go to Python
        return f"CASE WHEN {t} {C} < '2' THEN {_decimal(t, pg_type, 1, '0', '1')} END"
    if kind == c.TIMESTAMP:
        return _timestamp(t, today)
    if kind == c.DATE:
        return _date(t, today)
    if kind == c.TIME:
        return _time(t)
    raise ValueError(f"no fast path for kind {kind!r}")
