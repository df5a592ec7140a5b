"""The working-day calendar: which days are working days in China, and the office hours.

A day is a working day when, in this order:

1. the local override file lists it: ``holiday`` is a day off, ``workday`` is a working
   day (a make-up workday, 调休上班, or a local arrangement). The override always wins;
2. the ``chinese_calendar`` package knows its year: the State Council's holidays and
   make-up workdays (调休);
3. otherwise it is a working day from Monday to Friday. When the override file has no row
   for that year either, a warning is logged, once per year and calendar: the year's
   arrangement must be added to the override file (or ``chinese-calendar`` upgraded).
   A year with at least one override row counts as arranged locally, without a warning;
   the file then lists all of that year's exceptions to Monday-Friday.

The override file is CSV with the header ``date,kind,name`` (ISO date, ``holiday`` or
``workday``, a free-text name); lines whose first character is ``#`` are comments.

Office hours are the same on every working day: one or more spans of local time, by
default a single span 09:00-18:00 (no lunch break, so that a working hour is the same
thing in every office; pass e.g. ``parse_office_hours("09:00-12:00,13:30-17:30")`` for
a lunch break). A span is half-open: at 18:00 the office is already closed.

Every method takes timezone-aware datetimes and returns them in UTC; days are local dates
of the calendar's zone (Asia/Shanghai by default). Nothing here reads settings: the
override path, zone and office hours are arguments. Build one calendar per process and
share it: the day lookups are cached in it.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)

DEFAULT_OVERRIDES_PATH = Path(__file__).with_name("data") / "calendar_overrides.csv"
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
DEFAULT_OFFICE_HOURS: tuple[tuple[time, time], ...] = ((time(9), time(18)),)
OVERRIDE_COLUMNS = ["date", "kind", "name"]
# No calendar has a year without working days; a longer gap means a broken override file.
MAX_DAYS_OFF = 366

OfficeHours = tuple[tuple[time, time], ...]


class DayKind(StrEnum):
    HOLIDAY = "holiday"
    WORKDAY = "workday"


@dataclass(frozen=True, slots=True)
class Override:
    day: date
    kind: DayKind
    name: str


def load_overrides(path: Path) -> dict[date, Override]:
    """The override file's rows by date; ValueError naming the file and line if malformed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, 1) if not line.startswith("#")]
    numbered = [(n, line) for n, line in numbered if line.strip()]
    if not numbered:
        raise ValueError(f"{path}: missing the header line {','.join(OVERRIDE_COLUMNS)}")
    rows = csv.reader(line for _, line in numbered)
    header = [cell.strip() for cell in next(rows)]
    if header != OVERRIDE_COLUMNS:
        raise ValueError(
            f"{path}:{numbered[0][0]}: header must be {','.join(OVERRIDE_COLUMNS)}, "
            f"not {','.join(header)}"
        )
    overrides: dict[date, Override] = {}
    for (number, _), cells in zip(numbered[1:], rows, strict=True):
        where = f"{path}:{number}"
        if len(cells) != len(OVERRIDE_COLUMNS):
            raise ValueError(f"{where}: expected 3 columns (date,kind,name), got {len(cells)}")
        raw_day, raw_kind, name = (cell.strip() for cell in cells)
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            raise ValueError(f"{where}: {raw_day!r} is not a date like 2027-01-01") from None
        try:
            kind = DayKind(raw_kind)
        except ValueError:
            raise ValueError(
                f"{where}: kind must be holiday or workday, not {raw_kind!r}"
            ) from None
        if day in overrides:
            raise ValueError(f"{where}: {day} is listed twice")
        overrides[day] = Override(day, kind, name)
    return overrides


def parse_office_hours(text: str) -> OfficeHours:
    """``"09:00-12:00,13:30-17:30"`` → the spans, checked as the calendar checks them."""
    spans = []
    for part in text.split(","):
        start, sep, end = part.strip().partition("-")
        if not sep:
            raise ValueError(f"office hours {text!r}: {part.strip()!r} is not like 09:00-18:00")
        try:
            spans.append((time.fromisoformat(start.strip()), time.fromisoformat(end.strip())))
        except ValueError:
            raise ValueError(f"office hours {text!r}: {part.strip()!r} has a bad time") from None
    return _checked_office_hours(spans)


def _checked_office_hours(spans: Sequence[tuple[time, time]]) -> OfficeHours:
    checked = tuple((start, end) for start, end in spans)
    if not checked:
        raise ValueError("office hours: at least one span is needed")
    previous_end: time | None = None
    for start, end in checked:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("office hours are local times without a time zone")
        if not start < end:
            raise ValueError(f"office hours: {start}-{end} does not end after it starts")
        if previous_end is not None and start < previous_end:
            raise ValueError("office hours: spans must be in order and must not overlap")
        previous_end = end
    return checked


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: the calendar needs aware datetimes")


class WorkingCalendar:
    """Working days (Chinese holidays with make-up workdays, plus overrides) and office hours."""

    def __init__(
        self,
        *,
        overrides_path: Path | None = DEFAULT_OVERRIDES_PATH,
        zone: ZoneInfo = DEFAULT_ZONE,
        office_hours: Sequence[tuple[time, time]] = DEFAULT_OFFICE_HOURS,
    ) -> None:
        self.zone = zone
        self.office_hours = _checked_office_hours(office_hours)
        self.overrides = load_overrides(overrides_path) if overrides_path is not None else {}
        self._override_years = {day.year for day in self.overrides}
        self._working: dict[date, bool] = {}
        self._warned_years: set[int] = set()

    # -- days ---------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        if isinstance(day, datetime):
            raise TypeError("is_working_day takes a local date; use local_date(moment) first")
        known = self._working.get(day)
        if known is None:
            known = self._working[day] = self._decide(day)
        return known

    def _decide(self, day: date) -> bool:
        override = self.overrides.get(day)
        if override is not None:
            return override.kind is DayKind.WORKDAY
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # a year the package does not know
            pass
        if day.year not in self._override_years and day.year not in self._warned_years:
            self._warned_years.add(day.year)
            log.warning(
                "working calendar: neither chinese_calendar nor the override file knows "
                "the year %d; counting Monday to Friday as working days. Add the year's "
                "holiday arrangement to the override file or upgrade chinese-calendar.",
                day.year,
            )
        return day.weekday() < 5

    def shift_working_days(self, day: date, n: int) -> date:
        """The nth working day after ``day`` (n > 0), before it (n < 0), or ``day`` (0).

        ``day`` itself need not be a working day and is never counted.
        """
        step = timedelta(days=1 if n > 0 else -1)
        remaining, days_off = abs(n), 0
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining, days_off = remaining - 1, 0
            else:
                days_off += 1
                if days_off > MAX_DAYS_OFF:
                    raise ValueError(f"no working day within {MAX_DAYS_OFF} days of {day}")
        return day

    def local_date(self, moment: datetime) -> date:
        _require_aware(moment)
        return moment.astimezone(self.zone).date()

    def add_working_days(self, moment: datetime, n: int) -> datetime:
        """The same local time of day on the nth working day after (or before) ``moment``."""
        _require_aware(moment)
        local = moment.astimezone(self.zone)
        day = self.shift_working_days(local.date(), n)
        return datetime.combine(day, local.time(), tzinfo=self.zone).astimezone(UTC)

    # -- office hours -------------------------------------------------------------------

    def office_spans(self, day: date) -> list[tuple[datetime, datetime]]:
        """The office hours of ``day`` as UTC (start, end) pairs; none on a day off."""
        if not self.is_working_day(day):
            return []
        return [(self._at(day, start), self._at(day, end)) for start, end in self.office_hours]

    def _at(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.zone).astimezone(UTC)

    def _days(self, moment: datetime, step: int) -> Iterator[date]:
        """Local dates from ``moment``'s on, one way; fails after a year without work."""
        day, days_off = self.local_date(moment), 0
        while True:
            yield day
            days_off = 0 if self.is_working_day(day) else days_off + 1
            if days_off > MAX_DAYS_OFF:
                raise ValueError(f"no working day within {MAX_DAYS_OFF} days of {moment}")
            day += timedelta(days=step)

    def is_office_time(self, moment: datetime) -> bool:
        """Whether ``moment`` lies in the office hours of a working day (start ≤ t < end)."""
        return any(
            start <= moment < end for start, end in self.office_spans(self.local_date(moment))
        )

    def next_office_moment(self, moment: datetime) -> datetime:
        """``moment`` if it is office time, else the next opening of an office span."""
        for day in self._days(moment, 1):
            for start, end in self.office_spans(day):
                if moment < end:
                    return max(moment.astimezone(UTC), start)
        raise AssertionError("unreachable: _days never ends")

    def previous_office_moment(self, moment: datetime) -> datetime:
        """``moment`` if it lies in a span (start < t ≤ end), else the last closing before it."""
        for day in self._days(moment, -1):
            for start, end in reversed(self.office_spans(day)):
                if moment > start:
                    return min(moment.astimezone(UTC), end)
        raise AssertionError("unreachable: _days never ends")

    def add_working_time(self, moment: datetime, duration: timedelta) -> datetime:
        """The moment when ``duration`` of office time has passed since ``moment``.

        Only office hours of working days count. A result at the very end of a span stays
        there (17:00 plus one working hour is 18:00 the same day, not 09:00 the next).
        """
        if duration < timedelta(0):
            raise ValueError("add_working_time needs a duration of zero or more")
        moment = self.next_office_moment(moment)
        remaining = duration
        for day in self._days(moment, 1):
            for start, end in self.office_spans(day):
                if end <= moment:
                    continue
                begin = max(start, moment)
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin
        raise AssertionError("unreachable: _days never ends")

    def subtract_working_time(self, moment: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of office time before ``moment`` (the mirror of adding)."""
        if duration < timedelta(0):
            raise ValueError("subtract_working_time needs a duration of zero or more")
        moment = self.previous_office_moment(moment)
        remaining = duration
        for day in self._days(moment, -1):
            for start, end in reversed(self.office_spans(day)):
                if start >= moment:
                    continue
                finish = min(end, moment)
                if remaining <= finish - start:
                    return finish - remaining
                remaining -= finish - start
        raise AssertionError("unreachable: _days never ends")
