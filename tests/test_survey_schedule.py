"""When the satisfaction survey may call: calling hours, calling days and retries, on the
2026 calendar (chinese_calendar's holidays; no override file, so that a 2027 row added
to the shipped one changes nothing here). Pure: no database, no settings.

The server runs in UTC; calling hours are local times of the hotline (Asia/Shanghai,
UTC+8): 09:00 local is 01:00 UTC, 20:00 local is 12:00 UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tickets.calendar import WorkingCalendar
from tickets.survey_schedule import (
    DEFAULT_RULES_PATH,
    CallingHours,
    DayType,
    SurveyRules,
    day_type,
    first_attempt_at,
    is_inside,
    load_survey_rules,
    next_attempt_at,
    next_calling_moment,
    parse_duration,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
RULES = SurveyRules()
NO_WEEKENDS = replace(RULES, hours=CallingHours(on_weekends=False))
ON_HOLIDAYS = replace(RULES, hours=CallingHours(on_public_holidays=True))


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar(overrides_path=None)


# -- the rules ------------------------------------------------------------------------------


def test_the_shipped_rules_are_the_documented_defaults() -> None:
    rules = load_survey_rules()

    assert rules == SurveyRules()
    assert rules.hours.spans == ((time(9), time(20)),)
    assert rules.hours.on_weekends is True
    assert rules.hours.on_public_holidays is False
    assert rules.attempts == 3
    assert rules.min_gap == timedelta(hours=2)
    assert rules.settle_delay == timedelta(minutes=10)
    assert rules.sms_fallback is True


# -- days ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "kind"),
    [
        (date(2026, 11, 18), DayType.WORKING),  # a Wednesday
        (date(2026, 11, 21), DayType.WEEKEND),  # a Saturday
        (date(2026, 11, 22), DayType.WEEKEND),  # a Sunday
        (date(2026, 10, 1), DayType.PUBLIC_HOLIDAY),  # National Day, a Thursday
        (date(2026, 10, 3), DayType.PUBLIC_HOLIDAY),  # the Saturday of the National Day week
        (date(2026, 10, 8), DayType.WORKING),  # back to work
        (date(2026, 10, 10), DayType.WORKING),  # a make-up Saturday (调休上班)
        (date(2026, 10, 11), DayType.WEEKEND),  # the Sunday after: an ordinary one
        (date(2026, 2, 14), DayType.WORKING),  # the make-up Saturday before Spring Festival
        (date(2026, 2, 17), DayType.PUBLIC_HOLIDAY),  # Spring Festival
        (date(2026, 2, 22), DayType.PUBLIC_HOLIDAY),  # a Sunday inside the Spring Festival
        (date(2026, 2, 24), DayType.WORKING),
    ],
)
def test_days_are_working_days_weekends_or_public_holidays(
    day: date, kind: DayType, calendar: WorkingCalendar
) -> None:
    assert day_type(day, calendar) is kind


def test_a_holiday_from_the_override_file_is_a_public_holiday(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.csv"
    overrides.write_text(
        "date,kind,name\n2027-10-02,holiday,国庆节\n2027-10-09,workday,国庆调休\n",
        encoding="utf-8",
    )
    calendar = WorkingCalendar(overrides_path=overrides)

    assert day_type(date(2027, 10, 2), calendar) is DayType.PUBLIC_HOLIDAY  # a Saturday
    assert day_type(date(2027, 10, 9), calendar) is DayType.WORKING  # a Saturday
    assert day_type(date(2027, 10, 10), calendar) is DayType.WEEKEND  # a plain Sunday


# -- calling hours --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (local(2026, 11, 18, 9, 0), True),
        (local(2026, 11, 18, 8, 59), False),
        (local(2026, 11, 18, 19, 59), True),
        (local(2026, 11, 18, 20, 0), False),  # half-open: no call starts at 20:00
        (local(2026, 11, 18, 23, 0), False),
        (utc(2026, 11, 18, 1, 0), True),  # 09:00 local
        (utc(2026, 11, 18, 0, 59), False),  # 08:59 local
        (utc(2026, 11, 18, 12, 0), False),  # 20:00 local
        (utc(2026, 11, 17, 23, 30), False),  # Wednesday 07:30 local, Tuesday in UTC
        (local(2026, 11, 21, 10, 0), True),  # Saturday: weekends call by default
        (local(2026, 10, 3, 10, 0), False),  # Saturday of the National Day week
        (local(2026, 10, 1, 10, 0), False),  # National Day
        (local(2026, 2, 17, 10, 0), False),  # Spring Festival
        (local(2026, 10, 10, 10, 0), True),  # a make-up Saturday
    ],
)
def test_is_inside_calling_hours(moment: datetime, inside: bool, calendar: WorkingCalendar) -> None:
    assert is_inside(moment, RULES, calendar) is inside


def test_without_weekends_only_working_days_call(calendar: WorkingCalendar) -> None:
    assert not is_inside(local(2026, 11, 21, 10), NO_WEEKENDS, calendar)
    assert is_inside(local(2026, 10, 10, 10), NO_WEEKENDS, calendar)  # make-up workday
    assert is_inside(local(2026, 11, 18, 10), NO_WEEKENDS, calendar)


def test_with_public_holidays_on_the_holidays_call(calendar: WorkingCalendar) -> None:
    assert is_inside(local(2026, 10, 1, 10), ON_HOLIDAYS, calendar)
    assert is_inside(local(2026, 2, 17, 10), ON_HOLIDAYS, calendar)


def test_calling_hours_follow_the_calendar_s_zone() -> None:
    london = WorkingCalendar(overrides_path=None, zone=ZoneInfo("Europe/London"))

    assert is_inside(utc(2026, 11, 18, 9, 0), RULES, london)
    assert not is_inside(utc(2026, 11, 18, 1, 0), RULES, london)


def test_a_quiet_lunch_hour_can_be_configured(calendar: WorkingCalendar) -> None:
    rules = replace(RULES, hours=CallingHours(spans=((time(9), time(12)), (time(14), time(20)))))

    assert not is_inside(local(2026, 11, 18, 12, 30), rules, calendar)
    assert first_attempt_at(local(2026, 11, 18, 11, 55), rules, calendar) == local(2026, 11, 18, 14)


# -- the first attempt ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answered", "first"),
    [
        # inside calling hours: after the settle delay
        (local(2026, 11, 18, 10, 0), local(2026, 11, 18, 10, 10)),
        (local(2026, 11, 18, 19, 45), local(2026, 11, 18, 19, 55)),
        # the settle delay ends after hours: next morning 09:00 local
        (local(2026, 11, 18, 19, 55), local(2026, 11, 19, 9, 0)),
        (local(2026, 11, 18, 21, 30), local(2026, 11, 19, 9, 0)),
        # before hours: 09:00 the same day
        (local(2026, 11, 18, 3, 0), local(2026, 11, 18, 9, 0)),
        (local(2026, 11, 18, 8, 55), local(2026, 11, 18, 9, 5)),
        # UTC in, local rules: 11:55 UTC is 19:55 local
        (utc(2026, 11, 18, 11, 55), utc(2026, 11, 19, 1, 0)),
        # 23:30 UTC on Tuesday is 07:30 local on Wednesday: that Wednesday's 09:00
        (utc(2026, 11, 17, 23, 30), utc(2026, 11, 18, 1, 0)),
        # 16:30 UTC on Wednesday is 00:30 local on Thursday: Thursday 09:00, not Wednesday's
        (utc(2026, 11, 18, 16, 30), local(2026, 11, 19, 9, 0)),
        # weekends call by default: Friday evening → Saturday morning
        (local(2026, 11, 20, 19, 55), local(2026, 11, 21, 9, 0)),
        # National Day 2026 (1-7 October, Saturday and Sunday 3-4 included): the 8th
        (local(2026, 9, 30, 19, 55), local(2026, 10, 8, 9, 0)),
        (local(2026, 10, 2, 11, 0), local(2026, 10, 8, 9, 0)),
        # Spring Festival 2026 (15-23 February): answered on the make-up Saturday evening
        (local(2026, 2, 14, 19, 55), local(2026, 2, 24, 9, 0)),
        (local(2026, 2, 17, 10, 0), local(2026, 2, 24, 9, 0)),
    ],
)
def test_the_first_attempt_is_the_first_calling_moment_after_the_settle_delay(
    answered: datetime, first: datetime, calendar: WorkingCalendar
) -> None:
    at = first_attempt_at(answered, RULES, calendar)

    assert at == first
    assert at.tzinfo is UTC
    assert is_inside(at, RULES, calendar)


def test_answered_at_19_55_local_is_called_at_09_00_local_the_next_morning(
    calendar: WorkingCalendar,
) -> None:
    at = first_attempt_at(utc(2026, 11, 18, 11, 55), RULES, calendar)

    assert at == datetime(2026, 11, 19, 1, 0, tzinfo=UTC)
    assert at.astimezone(SHANGHAI).time() == time(9, 0)


@pytest.mark.parametrize(
    ("answered", "first"),
    [
        (local(2026, 11, 20, 19, 55), local(2026, 11, 23, 9, 0)),  # Friday → Monday
        (local(2026, 11, 21, 10, 0), local(2026, 11, 23, 9, 0)),  # Saturday → Monday
        (local(2026, 10, 9, 19, 55), local(2026, 10, 10, 9, 0)),  # → the make-up Saturday
    ],
)
def test_without_weekends_the_first_attempt_waits_for_a_working_day(
    answered: datetime, first: datetime, calendar: WorkingCalendar
) -> None:
    assert first_attempt_at(answered, NO_WEEKENDS, calendar) == first


def test_with_public_holidays_on_national_day_is_called(calendar: WorkingCalendar) -> None:
    assert first_attempt_at(local(2026, 9, 30, 19, 55), ON_HOLIDAYS, calendar) == local(
        2026, 10, 1, 9
    )


def test_the_settle_delay_is_configurable(calendar: WorkingCalendar) -> None:
    none = replace(RULES, settle_delay=timedelta(0))
    hour = replace(RULES, settle_delay=timedelta(hours=1))

    assert first_attempt_at(local(2026, 11, 18, 10), none, calendar) == local(2026, 11, 18, 10)
    assert first_attempt_at(local(2026, 11, 18, 10), hour, calendar) == local(2026, 11, 18, 11)


def test_the_answer_time_may_be_in_any_zone(calendar: WorkingCalendar) -> None:
    new_york = datetime(2026, 11, 18, 6, 55, tzinfo=ZoneInfo("America/New_York"))  # 19:55 CST

    assert first_attempt_at(new_york, RULES, calendar) == local(2026, 11, 19, 9)


def test_a_moment_inside_is_its_own_calling_moment(calendar: WorkingCalendar) -> None:
    moment = local(2026, 11, 18, 15, 17)

    assert next_calling_moment(moment, RULES, calendar) == moment
    assert next_calling_moment(moment, RULES, calendar).tzinfo is UTC


# -- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "made", "following"),
    [
        (local(2026, 11, 18, 10, 0), 1, local(2026, 11, 18, 12, 0)),
        (local(2026, 11, 18, 12, 0), 2, local(2026, 11, 18, 14, 0)),
        (local(2026, 11, 18, 17, 59), 1, local(2026, 11, 18, 19, 59)),
        # the gap crosses the end of calling hours: next morning
        (local(2026, 11, 18, 18, 0), 1, local(2026, 11, 19, 9, 0)),
        (local(2026, 11, 18, 19, 30), 2, local(2026, 11, 19, 9, 0)),
        # ... into the National Day holidays: after them
        (local(2026, 9, 30, 18, 30), 1, local(2026, 10, 8, 9, 0)),
        # UTC in: 11:00 UTC is 19:00 local
        (utc(2026, 11, 18, 11, 0), 1, utc(2026, 11, 19, 1, 0)),
    ],
)
def test_the_next_attempt_comes_at_least_the_gap_later_inside_calling_hours(
    last: datetime, made: int, following: datetime, calendar: WorkingCalendar
) -> None:
    at = next_attempt_at(last, made, RULES, calendar)

    assert at == following
    assert at is not None and at - last >= RULES.min_gap
    assert is_inside(at, RULES, calendar)


@pytest.mark.parametrize("made", [3, 4, 10])
def test_after_the_last_attempt_there_is_no_next_one(made: int, calendar: WorkingCalendar) -> None:
    assert next_attempt_at(local(2026, 11, 18, 10), made, RULES, calendar) is None


def test_a_whole_series_of_attempts_then_the_sms(calendar: WorkingCalendar) -> None:
    attempts = [first_attempt_at(local(2026, 9, 30, 19, 55), RULES, calendar)]
    while (following := next_attempt_at(attempts[-1], len(attempts), RULES, calendar)) is not None:
        attempts.append(following)

    assert attempts == [local(2026, 10, 8, 9), local(2026, 10, 8, 11), local(2026, 10, 8, 13)]
    assert RULES.sms_fallback


def test_the_number_of_attempts_is_configurable(calendar: WorkingCalendar) -> None:
    once = replace(RULES, attempts=1)
    five = replace(RULES, attempts=5)

    assert next_attempt_at(local(2026, 11, 18, 10), 1, once, calendar) is None
    assert next_attempt_at(local(2026, 11, 18, 10), 4, five, calendar) == local(2026, 11, 18, 12)


def test_the_gap_is_configurable(calendar: WorkingCalendar) -> None:
    rules = replace(RULES, min_gap=timedelta(minutes=30))

    assert next_attempt_at(local(2026, 11, 18, 10), 1, rules, calendar) == local(
        2026, 11, 18, 10, 30
    )


@pytest.mark.parametrize("made", [0, -1])
def test_attempts_made_counts_the_attempts_so_far(made: int, calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        next_attempt_at(local(2026, 11, 18, 10), made, RULES, calendar)


def test_naive_datetimes_are_refused(calendar: WorkingCalendar) -> None:
    naive = datetime(2026, 11, 18, 10)

    with pytest.raises(ValueError, match="no time zone"):
        first_attempt_at(naive, RULES, calendar)
    with pytest.raises(ValueError, match="no time zone"):
        next_attempt_at(naive, 1, RULES, calendar)
    with pytest.raises(ValueError, match="no time zone"):
        is_inside(naive, RULES, calendar)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SurveyRules(attempts=0), "attempts must be 1 to 10"),
        (lambda: SurveyRules(min_gap=timedelta(0)), "min_gap must be positive"),
        (lambda: SurveyRules(settle_delay=timedelta(minutes=-1)), "must not be negative"),
        (lambda: CallingHours(spans=()), "at least one span"),
        (lambda: CallingHours(spans=((time(20), time(9)),)), "does not end after"),
        (
            lambda: CallingHours(spans=((time(9), time(13)), (time(12), time(20)))),
            "must not overlap",
        ),
    ],
)
def test_impossible_rules_are_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# -- the rules file ---------------------------------------------------------------------------


def rules_file(tmp_path: Path, old: str, new: str) -> Path:
    assert old in SHIPPED, old
    path = tmp_path / "survey_rules.toml"
    path.write_text(SHIPPED.replace(old, new, 1), encoding="utf-8")
    return path


def test_a_rules_file_can_change_every_rule(tmp_path: Path) -> None:
    text = (
        SHIPPED.replace('hours = "09:00-20:00"', 'hours = "09:00-12:00,14:00-19:30"')
        .replace("weekends = true", "weekends = false")
        .replace("public_holidays = false", "public_holidays = true")
        .replace("max = 3", "max = 4")
        .replace('min_gap = "2h"', 'min_gap = "90m"')
        .replace('settle_delay = "10m"', 'settle_delay = "0m"')
        .replace("sms_fallback = true", "sms_fallback = false")
    )
    path = tmp_path / "survey_rules.toml"
    path.write_text(text, encoding="utf-8")

    assert load_survey_rules(path) == SurveyRules(
        hours=CallingHours(
            spans=((time(9), time(12)), (time(14), time(19, 30))),
            on_weekends=False,
            on_public_holidays=True,
        ),
        attempts=4,
        min_gap=timedelta(minutes=90),
        settle_delay=timedelta(0),
        sms_fallback=False,
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('hours = "09:00-20:00"', 'hours = "9-20"', "calling_hours.hours: calling hours '9-20'"),
        ('hours = "09:00-20:00"', 'hours = "20:00-09:00"', "calling_hours.hours:"),
        ('hours = "09:00-20:00"', "hours = 9", "calling_hours.hours: must be local times"),
        ("weekends = true", 'weekends = "yes"', "calling_hours.weekends: must be true or false"),
        ("public_holidays = false", "", "calling_hours.public_holidays: missing"),
        ("public_holidays = false", "public_holidays = false\nnights = true", "nights: unknown"),
        ("max = 3", "max = 0", "attempts.max: must be 1 to 10"),
        ("max = 3", 'max = "3"', "attempts.max: must be a whole number"),
        ("max = 3", "max = true", "attempts.max: must be a whole number"),
        ("max = 3", "max = 2.5", "attempts.max: must be a whole number"),
        ('min_gap = "2h"', 'min_gap = "2 hours"', "attempts.min_gap: bad duration '2 hours'"),
        ('min_gap = "2h"', 'min_gap = "0m"', "attempts.min_gap: must be at least 1m"),
        ('min_gap = "2h"', 'min_gap = "2d"', "attempts.min_gap: bad duration"),
        ('settle_delay = "10m"', "settle_delay = 10", "attempts.settle_delay: must be a duration"),
        ("sms_fallback = true", "sms_fallback = 1", "attempts.sms_fallback: must be true"),
        ("[attempts]", "[retries]", "retries: unknown key"),
    ],
)
def test_a_malformed_rules_file_is_refused_naming_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = rules_file(tmp_path, old, new)

    with pytest.raises(ValueError, match=r"survey_rules\.toml") as error:
        load_survey_rules(path)
    assert message in str(error.value)


def test_a_rules_file_that_is_not_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = rules_file(tmp_path, "[attempts]", "[attempts")

    with pytest.raises(ValueError, match=r"survey_rules\.toml: not valid TOML"):
        load_survey_rules(path)


@pytest.mark.parametrize(("text", "minutes"), [("10m", 10), ("2h", 120), ("0m", 0), (" 90m ", 90)])
def test_durations_are_minutes_or_hours(text: str, minutes: int) -> None:
    assert parse_duration(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["2", "1.5h", "-1h", "3d", "2wh", "2H", "h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)
