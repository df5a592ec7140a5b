"""The working-day calendar: Chinese holidays with make-up workdays, overrides, office hours.

The 2026 facts come from the State Council's notice as chinese_calendar carries it:
Spring Festival 15-23 February with make-up Saturdays 14 and 28 February; National Day
1-7 October with make-up Sunday 20 September and Saturday 10 October. No database.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tickets.calendar import (
    DEFAULT_OVERRIDES_PATH,
    DayKind,
    WorkingCalendar,
    load_overrides,
    parse_office_hours,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADER = "date,kind,name\n"


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar(overrides_path=None)


def write_overrides(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "overrides.csv"
    path.write_text(rows, encoding="utf-8")
    return path


# -- working days -------------------------------------------------------------------------


def test_spring_festival_2026_is_off_and_its_make_up_saturdays_are_working(
    calendar: WorkingCalendar,
) -> None:
    assert calendar.is_working_day(date(2026, 2, 13))  # Friday before
    assert calendar.is_working_day(date(2026, 2, 14))  # make-up Saturday
    assert not any(calendar.is_working_day(date(2026, 2, d)) for d in range(15, 24))
    assert calendar.is_working_day(date(2026, 2, 24))
    assert calendar.is_working_day(date(2026, 2, 28))  # make-up Saturday
    assert not calendar.is_working_day(date(2026, 3, 1))  # an ordinary Sunday


def test_national_day_2026_is_off_and_its_make_up_days_are_working(
    calendar: WorkingCalendar,
) -> None:
    assert calendar.is_working_day(date(2026, 9, 20))  # make-up Sunday
    assert not any(calendar.is_working_day(date(2026, 10, d)) for d in range(1, 8))
    assert calendar.is_working_day(date(2026, 10, 10))  # make-up Saturday
    assert not calendar.is_working_day(date(2026, 10, 11))


def test_working_days_are_counted_over_the_spring_festival(calendar: WorkingCalendar) -> None:
    assert calendar.shift_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert calendar.shift_working_days(date(2026, 2, 13), 2) == date(2026, 2, 24)
    assert calendar.shift_working_days(date(2026, 2, 24), -2) == date(2026, 2, 13)
    assert calendar.shift_working_days(date(2026, 2, 18), 0) == date(2026, 2, 18)


def test_a_datetime_is_not_taken_for_a_day(calendar: WorkingCalendar) -> None:
    with pytest.raises(TypeError):
        calendar.is_working_day(local(2026, 2, 14, 10))


# -- overrides and unknown years ----------------------------------------------------------


def test_the_override_file_wins_over_chinese_calendar(tmp_path: Path) -> None:
    path = write_overrides(
        tmp_path,
        "# a local arrangement\n"
        + HEADER
        + "2026-10-10,holiday,本地调整\n2026-10-08,holiday,本地调整\n2026-10-11,workday,补班\n",
    )
    calendar = WorkingCalendar(overrides_path=path)

    assert not calendar.is_working_day(date(2026, 10, 10))  # a make-up Saturday for the State
    assert not calendar.is_working_day(date(2026, 10, 8))
    assert calendar.is_working_day(date(2026, 10, 11))
    assert calendar.is_working_day(date(2026, 10, 9))  # untouched: the package decides


def test_an_unknown_year_falls_back_to_monday_to_friday_with_one_warning_per_year(
    calendar: WorkingCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tickets.calendar"):
        assert calendar.is_working_day(date(2040, 1, 2))  # Monday
        assert not calendar.is_working_day(date(2040, 1, 7))  # Sunday
        assert calendar.shift_working_days(date(2040, 1, 6), 5) == date(2040, 1, 13)
        assert calendar.is_working_day(date(2041, 1, 1))  # Tuesday, and no holiday known

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "2040" in warnings[0] and "2041" in warnings[1]


def test_a_year_in_the_override_file_is_arranged_locally_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_overrides(tmp_path, HEADER + "2040-01-02,holiday,元旦\n2040-01-07,workday,补班\n")
    calendar = WorkingCalendar(overrides_path=path)

    with caplog.at_level(logging.WARNING, logger="tickets.calendar"):
        assert not calendar.is_working_day(date(2040, 1, 2))
        assert calendar.is_working_day(date(2040, 1, 7))
        assert calendar.is_working_day(date(2040, 1, 3))
        assert not calendar.is_working_day(date(2040, 1, 14))

    assert not caplog.records


def test_the_shipped_override_file_loads() -> None:
    overrides = load_overrides(DEFAULT_OVERRIDES_PATH)

    assert all(o.kind in (DayKind.HOLIDAY, DayKind.WORKDAY) for o in overrides.values())
    WorkingCalendar()  # the default calendar reads it


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("day,kind,name\n", ":1: header must be date,kind,name"),
        ("# only a comment\n", "missing the header"),
        (HEADER + "2027-02-30,holiday,x\n", ":2: '2027-02-30' is not a date"),
        (HEADER + "2027-01-01,day off,元旦\n", ":2: kind must be holiday or workday"),
        (HEADER + "2027-01-01,holiday\n", ":2: expected 3 columns"),
        (HEADER + "2027-01-01,holiday,a\n# note\n2027-01-01,workday,b\n", ":4: 2027-01-01 is"),
    ],
)
def test_a_malformed_override_file_is_refused_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_overrides(tmp_path, text)

    with pytest.raises(ValueError, match=r"overrides\.csv") as error:
        WorkingCalendar(overrides_path=path)
    assert message in str(error.value)


# -- office hours -------------------------------------------------------------------------


def test_friday_evening_waits_for_the_make_up_sunday_opening(calendar: WorkingCalendar) -> None:
    opening = calendar.next_office_moment(local(2026, 9, 18, 20))

    assert opening == local(2026, 9, 20, 9)
    assert opening.tzinfo is UTC
    assert not calendar.is_office_time(local(2026, 9, 18, 18))  # the closing minute is out
    assert calendar.is_office_time(local(2026, 9, 18, 17, 59))


def test_2330_utc_is_the_next_morning_in_shanghai(calendar: WorkingCalendar) -> None:
    moment = datetime(2026, 10, 7, 23, 30, tzinfo=UTC)

    assert calendar.local_date(moment) == date(2026, 10, 8)
    assert calendar.next_office_moment(moment) == local(2026, 10, 8, 9)


def test_working_time_skips_nights_holidays_and_the_lunch_break() -> None:
    calendar = WorkingCalendar(
        overrides_path=None, office_hours=parse_office_hours("09:00-12:00,13:30-17:30")
    )

    assert calendar.add_working_time(local(2026, 2, 13, 11, 30), timedelta(hours=1)) == local(
        2026, 2, 13, 14
    )
    assert calendar.next_office_moment(local(2026, 2, 13, 12, 15)) == local(2026, 2, 13, 13, 30)
    # Friday 17:00 + 2 working hours: 30 minutes on Friday, 90 on the make-up Saturday.
    assert calendar.add_working_time(local(2026, 2, 13, 17), timedelta(hours=2)) == local(
        2026, 2, 14, 10, 30
    )
    # Saturday 16:30 + 2 working hours: 1 hour on Saturday, the rest after the holiday.
    assert calendar.add_working_time(local(2026, 2, 14, 16, 30), timedelta(hours=2)) == local(
        2026, 2, 24, 10
    )


def test_working_time_ending_at_a_closing_stays_there(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_time(local(2026, 9, 18, 17), timedelta(hours=1)) == local(
        2026, 9, 18, 18
    )


def test_working_time_backwards_mirrors_forwards(calendar: WorkingCalendar) -> None:
    assert calendar.subtract_working_time(local(2026, 2, 24, 10), timedelta(hours=2)) == local(
        2026, 2, 14, 17
    )
    assert calendar.subtract_working_time(local(2026, 2, 24, 9), timedelta(minutes=10)) == local(
        2026, 2, 14, 17, 50
    )
    assert calendar.previous_office_moment(local(2026, 2, 20, 3)) == local(2026, 2, 14, 18)


def test_add_working_days_keeps_the_local_time_of_day(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_days(local(2026, 9, 30, 10, 15), 3) == local(2026, 10, 10, 10, 15)
    assert calendar.add_working_days(local(2026, 10, 10, 10, 15), -3) == local(2026, 9, 30, 10, 15)


def test_office_hours_are_those_of_the_calendar_zone() -> None:
    calendar = WorkingCalendar(overrides_path=None, zone=ZoneInfo("UTC"))

    assert calendar.next_office_moment(datetime(2026, 9, 18, 20, tzinfo=UTC)) == datetime(
        2026, 9, 20, 9, tzinfo=UTC
    )


def test_naive_datetimes_are_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        calendar.next_office_moment(datetime(2026, 9, 18, 20))


@pytest.mark.parametrize(
    "text", ["", "09:00", "09:00-8:00", "18:00-09:00", "09:00-12:00,11:00-17:00", "9h-18h"]
)
def test_bad_office_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="office hours"):
        parse_office_hours(text)


def test_office_hours_are_given_as_local_times() -> None:
    with pytest.raises(ValueError, match="local times"):
        WorkingCalendar(overrides_path=None, office_hours=[(time(9, tzinfo=UTC), time(18))])
