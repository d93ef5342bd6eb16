"""Value parsers: turn one raw source cell into a typed value (SPEC §4.1).

Every parser takes the raw cell (str, int, float, bool, date, datetime, time or None, as the
readers deliver it) and returns ``Parsed(value, warning)``. An unusable value raises
``InvalidValue``; the pipeline decides whether that rejects the row (required field) or stores
NULL with a warning (optional field). Placeholders and Excel error markers live here, once.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.conf import settings

#: Text that means "no value" in the exports (compared after trimming).
PLACEHOLDERS = frozenset({"--None--", "nan", "NaN", "None", "NULL", "N/A", "null", "none"})
#: Extra placeholders for assignee fields only.
ASSIGNEE_PLACEHOLDERS = frozenset({"PendingAssignment"})
#: Excel error cells as they reach us through readers (cached formula results).
EXCEL_ERRORS = frozenset(
    {
        "#N/A",
        "#VALUE!",
        "#REF!",
        "#DIV/0!",
        "#NUM!",
        "#NAME?",
        "#NULL!",
        "#GETTING_DATA",
        "#SPILL!",
        "#CALC!",
        "#FIELD!",
        "#BLOCKED!",
        "#UNKNOWN!",
    }
)
#: What trimming removes: ASCII whitespace, as PostgreSQL's btrim can do cheaply (the SQL fast
#: path trims the same way). A non-breaking space is kept, as Excel's TRIM() keeps it.
WHITESPACE = " \t\n\r\x0b\x0c"
TRUE_WORDS = frozenset({"yes", "true", "y", "1"})
FALSE_WORDS = frozenset({"no", "false", "n", "0"})
MIN_YEAR, MAX_YEAR = 1990, 2100
#: Day 0 of Excel serial dates (1900 system, after its 1900 leap-year bug): the one definition
#: the readers, the SQL fast path and the demo generator's XLSX writer all count from.
EXCEL_EPOCH = dt.datetime(1899, 12, 30)
#: Serial numbers of 1990-01-01 and 2100-12-31: outside this a number is not a date.
EXCEL_SERIAL_RANGE = (32874.0, 73415.0)


class InvalidValue(ValueError):
    """The raw value cannot be read as the column's type; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Parsed(NamedTuple):
    value: Any
    warning: str | None = None


EMPTY = Parsed(None)
Parser = Callable[[Any], Parsed]


def _screen(raw: Any, placeholders: frozenset[str] = PLACEHOLDERS) -> Any:
    """The first step of every parser (once per cell of the rows the SQL fast path declines).

    Returns a Parsed for blanks, placeholders and Excel error cells, else the raw value with
    strings trimmed.
    """
    if raw is None:
        return EMPTY
    if type(raw) is str:
        s = raw.strip(WHITESPACE)
        if not s or s in placeholders:
            return EMPTY
        if s[0] == "#" and s in EXCEL_ERRORS:
            return Parsed(None, f"Excel error cell {s}")
        return s
    if type(raw) is float and raw != raw:  # NaN from pandas-built files
        return EMPTY
    return raw


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


# --- text ---------------------------------------------------------------------------------


def parse_text(raw: Any, placeholders: frozenset[str] = PLACEHOLDERS) -> Parsed:
    raw = _screen(raw, placeholders)
    if type(raw) is str:
        return Parsed(raw.replace("\x00", "") if "\x00" in raw else raw)
    if type(raw) is Parsed:
        return raw
    if isinstance(raw, bool):
        return Parsed("true" if raw else "false")
    if isinstance(raw, float):
        return Parsed(_number_text(raw))
    if isinstance(raw, dt.datetime):
        return Parsed(raw.isoformat(sep=" "))
    if isinstance(raw, (int, dt.date, dt.time)):
        return Parsed(str(raw))
    # NUL bytes cannot be stored in PostgreSQL text.
    return Parsed(str(raw).strip(WHITESPACE).replace("\x00", ""))


_ASSIGNEE_PLACEHOLDERS = PLACEHOLDERS | ASSIGNEE_PLACEHOLDERS
_INTEGRAL_TEXT = re.compile(r"-?[0-9]+\.0+")


def parse_id_text(raw: Any) -> Parsed:
    """A text id (the comment_id of quality and sentiment results): a whole number written
    with a fraction is the id itself. pandas stores a float id in a TEXT column as '7001.0',
    the export has 7001; both must name comment 7001 and be one natural key."""
    parsed = parse_text(raw)
    value = parsed.value
    if type(value) is str and value.endswith("0") and _INTEGRAL_TEXT.fullmatch(value):
        return Parsed(value.split(".", 1)[0], parsed.warning)
    return parsed


def parse_assignee(raw: Any) -> Parsed:
    return parse_text(raw, _ASSIGNEE_PLACEHOLDERS)


# --- numbers -------------------------------------------------------------------------------

BIGINT_MAX = 2**63 - 1
#: ASCII digits, sign, point and exponent only: Python's int() and Decimal() also accept
#: underscores and any script's digits, which no export means as a number.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_int(raw: Any) -> Parsed:
    raw = _screen(raw)
    if type(raw) is Parsed:
        return raw
    if isinstance(raw, bool):
        raise InvalidValue("not an integer")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not raw.is_integer():
            raise InvalidValue("not an integer")
        value = int(raw)
    elif isinstance(raw, str):
        s = raw.strip(WHITESPACE)
        if not _PLAIN_NUMBER.fullmatch(s):  # int() and Decimal() also take 1_000 and '١٢'
            raise InvalidValue("not an integer")
        try:
            value = int(s)
        except ValueError:
            try:
                f = Decimal(s)
            except InvalidOperation:
                raise InvalidValue("not an integer") from None
            if not f.is_finite() or f != f.to_integral_value():
                raise InvalidValue("not an integer") from None
            if f.adjusted() > 18:  # checked before int(): 1e999999 would take a minute
                raise InvalidValue("integer out of range") from None
            value = int(f)
    else:
        raise InvalidValue("not an integer")
    if abs(value) > BIGINT_MAX:
        raise InvalidValue("integer out of range")
    return Parsed(value)


INT_MAX = 2**31 - 1


def parse_int32(raw: Any) -> Parsed:
    """An integer that fits PostgreSQL's integer column."""
    parsed = parse_int(raw)
    if parsed.value is not None and abs(parsed.value) > INT_MAX:
        raise InvalidValue("integer out of range")
    return parsed


HOURS_MAX = Decimal("999999.99")
CENT = Decimal("0.01")


def parse_decimal(raw: Any, quantum: Decimal = CENT, maximum: Decimal = HOURS_MAX) -> Parsed:
    """A non-negative decimal rounded half away from zero to ``quantum``."""
    raw = _screen(raw)
    if type(raw) is Parsed:
        return raw
    if isinstance(raw, bool):
        raise InvalidValue("not a number")
    text = repr(raw) if isinstance(raw, float) else str(raw).strip(WHITESPACE)
    if not _PLAIN_NUMBER.fullmatch(text):
        raise InvalidValue("not a number")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidValue("not a number") from None
    if not value.is_finite():
        raise InvalidValue("not a number")
    if value < 0:
        raise InvalidValue("negative value")
    if value.adjusted() >= maximum.adjusted() + 1:  # quantize would overflow the context
        raise InvalidValue(f"greater than {maximum}")
    value = value.quantize(quantum, rounding=ROUND_HALF_UP)
    if value > maximum:
        raise InvalidValue(f"greater than {maximum}")
    return Parsed(value)


def parse_hours(raw: Any) -> Parsed:
    try:
        return parse_decimal(raw)
    except InvalidValue as exc:
        raise InvalidValue(exc.reason.replace("value", "hours")) from None


# --- booleans ------------------------------------------------------------------------------


def parse_bool(raw: Any) -> Parsed:
    raw = _screen(raw)
    if type(raw) is Parsed:
        return raw
    if isinstance(raw, bool):
        return Parsed(raw)
    word = _number_text(raw) if isinstance(raw, float) else str(raw).strip(WHITESPACE).lower()
    if word in TRUE_WORDS:
        return Parsed(True)
    if word in FALSE_WORDS:
        return Parsed(False)
    return Parsed(None, f"unrecognised boolean {str(raw)[:50]!r}")


# --- dates and times -----------------------------------------------------------------------

_DAYFIRST = re.compile(
    r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*([AaPp][Mm])?)?$"
)
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*([AaPp][Mm])?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def source_zone() -> ZoneInfo:
    return _zone(settings.SOURCE_TIME_ZONE)


def _round_second(value: dt.datetime) -> dt.datetime:
    """Excel stores times as day fractions: 11:12:59.999999 means 11:13:00."""
    if value.microsecond >= 500_000:
        value += dt.timedelta(seconds=1)
    return value.replace(microsecond=0)


def _from_serial(serial: float) -> dt.datetime:
    if not (EXCEL_SERIAL_RANGE[0] <= serial <= EXCEL_SERIAL_RANGE[1]):
        raise InvalidValue("number is not an Excel date serial in 1990-2100")
    return _round_second(EXCEL_EPOCH + dt.timedelta(days=serial))


def _hour24(hour: int, ampm: str | None) -> int:
    if ampm is None:
        return hour
    if not 1 <= hour <= 12:
        raise InvalidValue("hour out of range for AM/PM")
    pm = ampm.lower() == "pm"
    return (hour % 12) + (12 if pm else 0)


def _naive_datetime(raw: Any) -> dt.datetime:
    """Raw cell -> naive or aware datetime; raises InvalidValue."""
    if isinstance(raw, dt.datetime):
        return _round_second(raw)
    if isinstance(raw, dt.date):
        return dt.datetime(raw.year, raw.month, raw.day)
    if isinstance(raw, bool):
        raise InvalidValue("not a date")
    if isinstance(raw, (int, float)):
        return _from_serial(float(raw))
    s = str(raw).strip(WHITESPACE)
    if len(s) >= 10 and s[4] == "-":  # ISO first: the common case, parsed in C
        try:
            return _round_second(dt.datetime.fromisoformat(s.replace("Z", "+00:00")))
        except ValueError:
            pass
    if _NUMBER.match(s):
        return _from_serial(float(s))
    m = _DAYFIRST.match(s)
    if m:
        a, b, year, hh, mm, ss, ampm = m.groups()
        day, month = (int(a), int(b)) if settings.DATE_DAY_FIRST else (int(b), int(a))
        try:
            return dt.datetime(
                int(year),
                month,
                day,
                _hour24(int(hh), ampm) if hh else 0,
                int(mm or 0),
                int(ss or 0),
            )
        except ValueError as exc:
            raise InvalidValue(f"not a valid date ({exc})") from None
    try:
        return _round_second(dt.datetime.fromisoformat(s.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidValue("not a recognised date format") from None


def _check_year(value: dt.datetime | dt.date) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise InvalidValue(f"year {value.year} outside {MIN_YEAR}-{MAX_YEAR}")


_horizon: list = [0.0, None, None]  # [computed at (monotonic), datetime limit, date limit]


def _future_limits() -> tuple[dt.datetime, dt.date]:
    """Now + 1 day, recomputed once a minute: a clock read per cell costs more than the parse."""
    now = time.monotonic()
    if now - _horizon[0] > 60 or _horizon[1] is None:
        _horizon[:] = [
            now,
            dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
            dt.date.today() + dt.timedelta(days=1),
        ]
    return _horizon[1], _horizon[2]


def future_limit(kind: type) -> dt.datetime | dt.date:
    """The last instant (datetime) or day (date) that is not "more than a day in the future"."""
    return _future_limits()[0 if kind is dt.datetime else 1]


def _future_warning(value: dt.datetime) -> str | None:
    if value > _future_limits()[0]:
        return "date more than a day in the future"
    return None


def _localise(naive: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """Attach the source zone the way PostgreSQL's AT TIME ZONE does, so the SQL fast path and
    this parser agree: a repeated local hour (clocks going back) is read as standard time, the
    later instant; a skipped one (clocks going forward) with the offset before the change."""
    local = naive.replace(tzinfo=zone)
    later = naive.replace(tzinfo=zone, fold=1)
    if local.utcoffset() != later.utcoffset():
        round_trip = later.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
        if round_trip == naive:  # ambiguous, not skipped
            return later
    return local


def parse_datetime(raw: Any) -> Parsed:
    raw = _screen(raw)
    if type(raw) is Parsed:
        return raw
    value = _naive_datetime(raw)
    _check_year(value)
    if value.tzinfo is None:
        value = _localise(value, source_zone())
    value = value.astimezone(dt.UTC)
    return Parsed(value, _future_warning(value))


def parse_date(raw: Any) -> Parsed:
    raw = _screen(raw)
    if type(raw) is Parsed:
        return raw
    value = _naive_datetime(raw)
    _check_year(value)
    day = value.date()
    warning = None
    if day > _future_limits()[1]:
        warning = "date more than a day in the future"
    return Parsed(day, warning)


def parse_time(raw: Any) -> Parsed:
    raw = _screen(raw)
    if type(raw) is Parsed:
        return raw
    if isinstance(raw, dt.time):
        return Parsed(raw.replace(microsecond=0, tzinfo=None))
    if isinstance(raw, dt.datetime):
        return Parsed(_round_second(raw).time())
    if isinstance(raw, dt.timedelta):
        raw = raw.total_seconds() / 86400
    if isinstance(raw, bool):
        raise InvalidValue("not a time")
    s = raw if isinstance(raw, (int, float)) else str(raw).strip(WHITESPACE)
    if isinstance(s, str) and _NUMBER.match(s):
        s = float(s)
    if isinstance(s, (int, float)):
        if not 0 <= s < 1:
            raise InvalidValue("number is not an Excel time fraction")
        return Parsed(_round_second(dt.datetime(2000, 1, 1) + dt.timedelta(days=s)).time())
    m = _TIME.match(s)
    if not m:
        # A full date-time string: keep its time of day.
        try:
            return Parsed(_naive_datetime(s).time().replace(tzinfo=None))
        except InvalidValue:
            raise InvalidValue("not a recognised time format") from None
    hh, mm, ss, ampm = m.groups()
    try:
        return Parsed(dt.time(_hour24(int(hh), ampm), int(mm), int(ss or 0)))
    except ValueError as exc:
        raise InvalidValue(f"not a valid time ({exc})") from None
