"""Every value quirk of SPEC §4.1, one parser at a time."""

import datetime as dt
from decimal import Decimal

import pytest

from tickets import values as v

UTC = dt.UTC


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("  hello ", "hello"),
        ("", None),
        ("--None--", None),
        ("nan", None),
        ("NaN", None),
        ("None", None),
        ("NULL", None),
        ("N/A", None),
        (None, None),
        (float("nan"), None),
        (12.0, "12"),
        (12.5, "12.5"),
        (3652948.0, "3652948"),
        ("a\x00b", "ab"),
    ],
)
def test_text(raw, expected):
    assert v.parse_text(raw).value == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("7001.0", "7001"),
        (" 7001.00 ", "7001"),
        (7001.0, "7001"),
        ("-3.0", "-3"),
        ("7001.5", "7001.5"),
        ("7001.", "7001."),
        ("3600032_2025-07-03 11:13:00", "3600032_2025-07-03 11:13:00"),
        ("v1.0", "v1.0"),
        ("nan", None),
    ],
)
def test_id_text_reads_whole_numbers_as_the_id(raw, expected):
    assert v.parse_id_text(raw).value == expected


@pytest.mark.parametrize("raw", ["1_234", "\u0661\u0662", "\uff19\uff19", "1 234", "0x10"])
def test_numbers_are_ascii_digits_only(raw):
    """Python's int() and Decimal() accept underscores and any script's digits."""
    with pytest.raises(v.InvalidValue):
        v.parse_int(raw)
    with pytest.raises(v.InvalidValue):
        v.parse_hours(raw)


def test_assignee_placeholder_only_for_assignee():
    assert v.parse_assignee("PendingAssignment").value is None
    assert v.parse_text("PendingAssignment").value == "PendingAssignment"
    assert v.parse_assignee(" Jo Smith").value == "Jo Smith"


@pytest.mark.parametrize(
    "raw,expected", [("12", 12), (12.0, 12), (" 12 ", 12), ("3652948.0", 3652948), (7, 7)]
)
def test_int_valid(raw, expected):
    assert v.parse_int(raw).value == expected


@pytest.mark.parametrize("raw", ["12.5", 12.5, "abc", True, "1e400"])
def test_int_invalid(raw):
    with pytest.raises(v.InvalidValue):
        v.parse_int(raw)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("yes", True),
        ("No", False),
        ("TRUE", True),
        ("f", None),
        ("y", True),
        ("N", False),
        ("1", True),
        ("0", False),
        (1.0, True),
        (0, False),
        (True, True),
    ],
)
def test_bool(raw, expected):
    parsed = v.parse_bool(raw)
    assert parsed.value is expected
    if raw == "f":
        assert "unrecognised boolean" in parsed.warning


def test_bool_junk_is_warning_not_error():
    parsed = v.parse_bool("Arial")
    assert parsed.value is None and parsed.warning


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("2025-07-03 11:13", dt.datetime(2025, 7, 3, 11, 13, tzinfo=UTC)),
        ("2025-07-03 11:13:00", dt.datetime(2025, 7, 3, 11, 13, tzinfo=UTC)),
        # Stored to the second, like real date cells (and the SQL fast path).
        ("2025-07-03T11:13:05.250", dt.datetime(2025, 7, 3, 11, 13, 5, tzinfo=UTC)),
        ("2025-07-03 11:13:05.5", dt.datetime(2025, 7, 3, 11, 13, 6, tzinfo=UTC)),
        ("20/05/2025 8:42", dt.datetime(2025, 5, 20, 8, 42, tzinfo=UTC)),
        ("3/7/2025", dt.datetime(2025, 7, 3, tzinfo=UTC)),
        ("3/7/2025 1:05 PM", dt.datetime(2025, 7, 3, 13, 5, tzinfo=UTC)),
        ("3/7/2025 12:05 AM", dt.datetime(2025, 7, 3, 0, 5, tzinfo=UTC)),
        (45841.4673611111, dt.datetime(2025, 7, 3, 11, 13, tzinfo=UTC)),
        ("45841.5", dt.datetime(2025, 7, 3, 12, 0, tzinfo=UTC)),
        (dt.datetime(2025, 7, 3, 11, 12, 59, 999999), dt.datetime(2025, 7, 3, 11, 13, tzinfo=UTC)),
        (dt.date(2025, 7, 3), dt.datetime(2025, 7, 3, tzinfo=UTC)),
    ],
)
def test_datetime(raw, expected):
    assert v.parse_datetime(raw).value == expected


def test_datetime_source_time_zone(settings):
    settings.SOURCE_TIME_ZONE = "Australia/Perth"
    assert v.parse_datetime("2025-07-03 08:00").value == dt.datetime(2025, 7, 3, 0, 0, tzinfo=UTC)


def test_month_first_setting(settings):
    settings.DATE_DAY_FIRST = False
    assert v.parse_datetime("5/20/2025").value == dt.datetime(2025, 5, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw", ["1899-01-01", "2101-01-01 00:00", "31/02/2025", "soon", 5.0, "13:00 tomorrow"]
)
def test_datetime_invalid(raw):
    with pytest.raises(v.InvalidValue):
        v.parse_datetime(raw)


def test_future_date_is_kept_with_warning():
    future = (dt.datetime.now(UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    parsed = v.parse_datetime(future)
    assert parsed.value is not None and "future" in parsed.warning
    day = (dt.date.today() + dt.timedelta(days=400)).strftime("%d/%m/%Y")
    assert "future" in v.parse_date(day).warning


def test_date():
    assert v.parse_date("20/05/2025").value == dt.date(2025, 5, 20)
    assert v.parse_date(45841.0).value == dt.date(2025, 7, 3)
    assert v.parse_date(dt.datetime(2025, 7, 3, 23, 0)).value == dt.date(2025, 7, 3)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("08:30", dt.time(8, 30)),
        ("8:30:15", dt.time(8, 30, 15)),
        ("1:05 PM", dt.time(13, 5)),
        ("12:00 am", dt.time(0, 0)),
        (0.5, dt.time(12, 0)),
        (dt.time(9, 15), dt.time(9, 15)),
        (0.46736111, dt.time(11, 13)),
    ],
)
def test_time(raw, expected):
    assert v.parse_time(raw).value == expected


@pytest.mark.parametrize("raw", ["25:00", "noon", 1.5])
def test_time_invalid(raw):
    with pytest.raises(v.InvalidValue):
        v.parse_time(raw)


def test_hours():
    assert v.parse_hours("1.5").value == Decimal("1.50")
    assert v.parse_hours(0.125).value == Decimal("0.13")  # half away from zero
    with pytest.raises(v.InvalidValue, match="negative"):
        v.parse_hours("-1")
    with pytest.raises(v.InvalidValue):
        v.parse_hours("lots")


@pytest.mark.parametrize(
    "parser",
    [
        v.parse_text,
        v.parse_int,
        v.parse_bool,
        v.parse_datetime,
        v.parse_date,
        v.parse_time,
        v.parse_hours,
    ],
)
@pytest.mark.parametrize("raw", ["#N/A", "#VALUE!", " #DIV/0! "])
def test_excel_errors_are_null_with_warning(parser, raw):
    parsed = parser(raw)
    assert parsed.value is None
    assert "Excel error" in parsed.warning
