"""When the satisfaction survey may call: calling hours, calling days and retries.

Pure: no database, no settings. The rules come from a TOML file (``load_survey_rules``,
by default ``tickets/data/survey_rules.toml``); the working days and the hotline's time
zone from a ``WorkingCalendar`` (its ``zone``, the hotline's ``HOTLINE_TIMEZONE``). Every
datetime in and out is timezone-aware; results are in UTC.

Calling hours are spans of local time (default 09:00-20:00), half-open: a call may be
placed at 09:00, not at 20:00. Which days have calling hours:

- a working day always (make-up workdays, 调休上班, included);
- a public holiday (法定节假日) only when ``public_holidays`` is on (default off: nobody
  wants a survey call during the Spring Festival). The weekend days inside a holiday
  block (the Saturday of the National Day week) are holidays, not weekends;
- an ordinary weekend day only when ``weekends`` is on (default on: 12345 works 24x7,
  and many citizens are easier to reach at the weekend than at work).

Attempts (default 3): the first one at the earliest calling moment at or after the
department's answer plus ``settle_delay`` (default 10 minutes, so the citizen is not rung
seconds after the answer was typed), each next one at the earliest calling moment at
least ``min_gap`` (default 2 h) after the previous attempt was placed. When the attempts
are spent, ``next_attempt_at`` says None: the SMS fallback's turn (``sms_fallback``).

Worked example, the defaults: answered Wednesday 2026-09-30 19:55 local. 20:05 is out of
hours and 1-7 October are the National Day holidays, so the first attempt is Thursday
8 October 09:00 local (01:00 UTC); no answer → 11:00; no answer → 13:00; then the SMS.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import chinese_calendar

from tickets.calendar import WorkingCalendar, parse_office_hours

DEFAULT_RULES_PATH = Path(__file__).with_name("data") / "survey_rules.toml"
MAX_ATTEMPTS = 10
# Nothing but a broken calendar or rules file leaves a whole year without a calling day.
MAX_DAYS_WITHOUT_CALLS = 366

Spans = tuple[tuple[time, time], ...]


class DayType(StrEnum):
    WORKING = "working"  # a working day, make-up workdays included
    WEEKEND = "weekend"  # an ordinary Saturday or Sunday off
    PUBLIC_HOLIDAY = "public_holiday"  # 法定节假日, with the weekend days of its block


@dataclass(frozen=True, slots=True)
class CallingHours:
    spans: Spans = ((time(9), time(20)),)  # local time of the calendar's zone
    on_weekends: bool = True
    on_public_holidays: bool = False

    def __post_init__(self) -> None:
        if not self.spans:
            raise ValueError("calling hours: at least one span is needed")
        previous_end: time | None = None
        for start, end in self.spans:
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError("calling hours are local times without a time zone")
            if not start < end:
                raise ValueError(f"calling hours: {start}-{end} does not end after it starts")
            if previous_end is not None and start < previous_end:
                raise ValueError("calling hours: spans must be in order and must not overlap")
            previous_end = end

    def calls_on(self, kind: DayType) -> bool:
        if kind is DayType.PUBLIC_HOLIDAY:
            return self.on_public_holidays
        if kind is DayType.WEEKEND:
            return self.on_weekends
        return True


@dataclass(frozen=True, slots=True)
class SurveyRules:
    hours: CallingHours = field(default_factory=CallingHours)
    attempts: int = 3  # calls in all, the first included
    min_gap: timedelta = timedelta(hours=2)  # between the placing of two attempts
    settle_delay: timedelta = timedelta(minutes=10)  # after the answer, before a call
    sms_fallback: bool = True  # an SMS with the question when the attempts are spent

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= MAX_ATTEMPTS:
            raise ValueError(f"attempts must be 1 to {MAX_ATTEMPTS}, not {self.attempts}")
        if self.min_gap <= timedelta(0):
            raise ValueError("min_gap must be positive")
        if self.settle_delay < timedelta(0):
            raise ValueError("settle_delay must not be negative")


def day_type(day: date, calendar: WorkingCalendar) -> DayType:
    """Whether a local date is a working day, a weekend day or a public holiday."""
    if calendar.is_working_day(day):
        return DayType.WORKING
    if day in calendar.overrides or day.weekday() < 5:  # a named day off, or a weekday off
        return DayType.PUBLIC_HOLIDAY
    try:
        _, holiday_name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # a year the package does not know: a plain weekend
        return DayType.WEEKEND
    return DayType.PUBLIC_HOLIDAY if holiday_name else DayType.WEEKEND


def is_inside(moment: datetime, rules: SurveyRules, calendar: WorkingCalendar) -> bool:
    """Whether a survey may call at ``moment`` (start ≤ t < end on a calling day)."""
    return any(
        start <= moment < end for start, end in _spans(calendar.local_date(moment), rules, calendar)
    )


def next_calling_moment(
    moment: datetime, rules: SurveyRules, calendar: WorkingCalendar
) -> datetime:
    """``moment`` if a survey may call then, else the next opening of calling hours.

    Also for the worker: a due call picked up after hours is moved here, not placed.
    """
    day, days_without = calendar.local_date(moment), 0
    while days_without <= MAX_DAYS_WITHOUT_CALLS:
        spans = _spans(day, rules, calendar)
        for start, end in spans:
            if moment < end:
                return max(moment.astimezone(UTC), start)
        days_without = 0 if spans else days_without + 1
        day += timedelta(days=1)
    raise ValueError(f"no calling hours within {MAX_DAYS_WITHOUT_CALLS} days of {moment}")


def first_attempt_at(
    answered_at: datetime, rules: SurveyRules, calendar: WorkingCalendar
) -> datetime:
    """When to place the first survey call for an order answered at ``answered_at``."""
    _require_aware(answered_at)
    return next_calling_moment(answered_at + rules.settle_delay, rules, calendar)


def next_attempt_at(
    last_attempt_at: datetime,
    attempts_made: int,
    rules: SurveyRules,
    calendar: WorkingCalendar,
) -> datetime | None:
    """When to call again after ``attempts_made`` failed attempts, the last placed at
    ``last_attempt_at``; None when they are spent (then the SMS fallback, if on)."""
    _require_aware(last_attempt_at)
    if attempts_made < 1:
        raise ValueError(
            f"attempts_made counts the attempts so far: 1 or more, not {attempts_made}"
        )
    if attempts_made >= rules.attempts:
        return None
    return next_calling_moment(last_attempt_at + rules.min_gap, rules, calendar)


def _spans(
    day: date, rules: SurveyRules, calendar: WorkingCalendar
) -> list[tuple[datetime, datetime]]:
    """The calling hours of a local date as UTC (start, end) pairs; none on a quiet day."""
    if not rules.hours.calls_on(day_type(day, calendar)):
        return []
    return [
        (_at(day, start, calendar), _at(day, end, calendar)) for start, end in rules.hours.spans
    ]


def _at(day: date, at: time, calendar: WorkingCalendar) -> datetime:
    return datetime.combine(day, at, tzinfo=calendar.zone).astimezone(UTC)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: the survey schedule needs aware datetimes")


# -- the rules file ------------------------------------------------------------------------

_SECTIONS = ("calling_hours", "attempts")
_HOURS_KEYS = ("hours", "weekends", "public_holidays")
_ATTEMPT_KEYS = ("max", "min_gap", "settle_delay", "sms_fallback")
_DURATION = re.compile(r"([0-9]+)(m|h)")


def parse_duration(text: str) -> timedelta:
    """``"10m"``, ``"2h"``: wall-clock minutes or hours (nights and holidays included)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"bad duration {text!r}: write a whole number and m (minutes) or h (hours), e.g. '2h'"
        )
    unit = timedelta(minutes=1) if match[2] == "m" else timedelta(hours=1)
    return int(match[1]) * unit


def load_survey_rules(path: Path | None = None) -> SurveyRules:
    """The rules in ``path`` (default: the shipped file); ValueError naming file and key."""
    path = path or DEFAULT_RULES_PATH
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    return _RulesReader(path).rules(data)


class _RulesReader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> NoReturn:
        raise ValueError(f"{self.path}: {key}: {message}")

    def table(self, data: Any, key: str, expected: Sequence[str]) -> dict[str, Any]:
        """``data`` checked to be a table holding exactly the ``expected`` keys."""
        if not isinstance(data, dict):
            self.fail(key, "must be a table")
        for name in data:
            if name not in expected:
                self.fail(_join(key, name), f"unknown key (expected: {', '.join(expected)})")
        for name in expected:
            if name not in data:
                self.fail(_join(key, name), "missing")
        return data

    def flag(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {value!r}")
        return value

    def duration(self, value: Any, key: str) -> timedelta:
        if not isinstance(value, str):
            self.fail(key, f'must be a duration in quotes like "2h", not {value!r}')
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(key, str(exc))

    def spans(self, value: Any, key: str) -> Spans:
        if not isinstance(value, str):
            self.fail(key, f'must be local times in quotes like "09:00-20:00", not {value!r}')
        try:
            return parse_office_hours(value)
        except ValueError as exc:
            self.fail(key, str(exc).replace("office hours", "calling hours"))

    def count(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be a whole number, not {value!r}")
        if not 1 <= value <= MAX_ATTEMPTS:
            self.fail(key, f"must be 1 to {MAX_ATTEMPTS}, not {value}")
        return value

    def rules(self, data: dict[str, Any]) -> SurveyRules:
        self.table(data, "", _SECTIONS)
        hours = self.table(data["calling_hours"], "calling_hours", _HOURS_KEYS)
        attempts = self.table(data["attempts"], "attempts", _ATTEMPT_KEYS)
        min_gap = self.duration(attempts["min_gap"], "attempts.min_gap")
        if min_gap <= timedelta(0):
            self.fail("attempts.min_gap", "must be at least 1m")
        return SurveyRules(
            hours=CallingHours(
                spans=self.spans(hours["hours"], "calling_hours.hours"),
                on_weekends=self.flag(hours["weekends"], "calling_hours.weekends"),
                on_public_holidays=self.flag(
                    hours["public_holidays"], "calling_hours.public_holidays"
                ),
            ),
            attempts=self.count(attempts["max"], "attempts.max"),
            min_gap=min_gap,
            settle_delay=self.duration(attempts["settle_delay"], "attempts.settle_delay"),
            sms_fallback=self.flag(attempts["sms_fallback"], "attempts.sms_fallback"),
        )


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
