"""The work-order clocks: deadlines from dispatch, extensions, and when reminders go.

Pure: no database, no settings. The limits come from a TOML file (``load_clock_limits``,
by default ``tickets/data/clock_limits.toml``); the working days and office hours from a
``WorkingCalendar``. Every datetime in and out is timezone-aware; results are in UTC.

Three clocks start at dispatch (派单), not at the department's acceptance: sign-off (签收),
first contact with the citizen (响应) and resolution (办结). Which limits apply:

- an order on an urgent item uses the ``[urgent]`` section, whatever its kind (the
  caller says ``is_urgent``: the item's flag; an ``emergency`` order on an item that is
  not urgent runs on ``[kinds.emergency]``);
- any other order uses ``[kinds.<kind>]``, and the item's ``sla_days`` (when it has an
  item) replaces the resolution limit with that many working days.

Durations (``Duration.parse``) are a whole number and a unit:

- ``m``, ``h``: wall-clock minutes, hours; 24x7, nights and holidays included.
- ``wm``, ``wh``: working minutes, hours; only office hours of working days count. The
  count starts at dispatch, or at the next office opening when dispatched out of hours;
  a deadline that falls on a closing time stays there (17:00 + 1wh = 18:00 that day).
- ``d``: working days. "N working days from dispatch" is the same local time of day on
  the Nth working day after the start, where the start is the dispatch itself when it
  happens in office hours, else the next office opening (out of hours, in the lunch
  break, at the weekend or on a holiday). The day of the start never counts. Deadlines
  counted in working time therefore always fall in office hours (or at a closing time).

Worked example, the default calendar (Asia/Shanghai, office hours 09:00-18:00) and a
consultation (3 working days):

- dispatched Wednesday 2026-09-30 10:00 local (02:00 UTC): 1-7 October are National
  Day holidays, so the 1st, 2nd and 3rd working days are Thu 8, Fri 9 and the make-up
  Saturday 10 October: due Saturday 2026-10-10 10:00 local (02:00 UTC);
- dispatched Friday 2026-09-18 20:00 local: out of hours, the count starts at the next
  opening, which is the make-up Sunday 20 September 09:00; due Wednesday 23 September
  09:00 local;
- dispatched Wednesday 2026-10-07 23:30 UTC, that is Thursday 8 October 07:30 local:
  starts 09:00 local that Thursday (which does not count); Fri 9, the make-up Saturday
  10 and Monday 12 are the three working days: due Monday 12 October 09:00 local.

Extensions (延期): ``extended(due, n, calendar)`` moves a deadline by n working days with
the same rule, the due date taking the place of the dispatch (a due date at a closing
time keeps its time: 18:00 Friday + 1 working day is 18:00 on the next working day).

Reminders (``reminder_slots``), per clock, from the ``[reminders]`` rules (non-urgent
orders) or ``[urgent.reminders]`` (urgent ones):

- ``before``: an SMS to the department's contact (催办) this long before the deadline,
  counted backwards in the rule's own unit (so a working-time rule lands in office
  hours). A slot at or before the dispatch is dropped (the clock is shorter than the
  rule);
- ``overdue``: an SMS to the department's contact at the deadline (超期催办);
- ``escalation``: the order goes to the floor manager (督办) ``escalate_after`` the
  deadline, counted forwards in the rule's unit.

The slots are a plan: whoever sends them skips those of a clock that has stopped (the
order signed off, the citizen contacted, the answer given).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

from tickets.calendar import WorkingCalendar

DEFAULT_LIMITS_PATH = Path(__file__).with_name("data") / "clock_limits.toml"
KINDS = ("consultation", "complaint", "help", "suggestion", "emergency")  # WorkOrderKind


class Clock(StrEnum):
    SIGNOFF = "signoff"  # 签收
    CONTACT = "contact"  # 响应
    RESOLUTION = "resolution"  # 办结


class SlotKind(StrEnum):
    BEFORE = "before"  # 催办, to the department's contact
    OVERDUE = "overdue"  # 超期催办, to the department's contact
    ESCALATION = "escalation"  # 督办, to the floor manager


class Unit(StrEnum):
    MINUTES = "m"
    HOURS = "h"
    WORKING_MINUTES = "wm"
    WORKING_HOURS = "wh"
    WORKING_DAYS = "d"


_DURATION = re.compile(r"([0-9]+)(m|h|wm|wh|d)")
_WALL = {Unit.MINUTES: timedelta(minutes=1), Unit.HOURS: timedelta(hours=1)}
_WORKING = {Unit.WORKING_MINUTES: timedelta(minutes=1), Unit.WORKING_HOURS: timedelta(hours=1)}


@dataclass(frozen=True, slots=True)
class Duration:
    amount: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION.fullmatch(text.strip())
        if match is None or int(match[1]) < 1:
            raise ValueError(
                f"bad duration {text!r}: write a whole number of at least 1 and a unit, "
                "m or h (wall clock), wm or wh (working time), d (working days), e.g. '3d'"
            )
        return cls(int(match[1]), Unit(match[2]))

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def after(self, moment: datetime, calendar: WorkingCalendar) -> datetime:
        """The moment this long after ``moment`` (see the module docstring)."""
        if self.unit in _WALL:
            _require_aware(moment)
            return moment.astimezone(UTC) + self.amount * _WALL[self.unit]
        if self.unit in _WORKING:
            return calendar.add_working_time(moment, self.amount * _WORKING[self.unit])
        return calendar.add_working_days(calendar.next_office_moment(moment), self.amount)

    def before(self, moment: datetime, calendar: WorkingCalendar) -> datetime:
        """The moment this long before ``moment``, counted backwards the same way."""
        if self.unit in _WALL:
            _require_aware(moment)
            return moment.astimezone(UTC) - self.amount * _WALL[self.unit]
        if self.unit in _WORKING:
            return calendar.subtract_working_time(moment, self.amount * _WORKING[self.unit])
        anchor = calendar.next_office_moment(moment)
        if anchor != moment:  # out of hours: back to the last closing (itself, at a closing)
            anchor = calendar.previous_office_moment(moment)
        return calendar.add_working_days(anchor, -self.amount)


@dataclass(frozen=True, slots=True)
class OrderLimits:
    """The three limits of one order."""

    signoff: Duration
    contact: Duration
    resolution: Duration

    def of(self, clock: Clock) -> Duration:
        by_clock = {
            Clock.SIGNOFF: self.signoff,
            Clock.CONTACT: self.contact,
            Clock.RESOLUTION: self.resolution,
        }
        return by_clock[Clock(clock)]


@dataclass(frozen=True, slots=True)
class ReminderRule:
    before: Duration
    escalate_after: Duration


@dataclass(frozen=True, slots=True)
class ReminderRules:
    signoff: ReminderRule
    contact: ReminderRule
    resolution: ReminderRule

    def of(self, clock: Clock) -> ReminderRule:
        by_clock = {
            Clock.SIGNOFF: self.signoff,
            Clock.CONTACT: self.contact,
            Clock.RESOLUTION: self.resolution,
        }
        return by_clock[Clock(clock)]


@dataclass(frozen=True)
class ClockLimits:
    kinds: Mapping[str, OrderLimits]
    urgent: OrderLimits
    reminders: ReminderRules
    urgent_reminders: ReminderRules

    def for_order(self, *, kind: str, sla_days: int | None, is_urgent: bool) -> OrderLimits:
        if kind not in self.kinds:
            raise ValueError(f"unknown work-order kind {kind!r}; known: {', '.join(self.kinds)}")
        if is_urgent:
            return self.urgent
        limits = self.kinds[kind]
        if sla_days is None:
            return limits
        if sla_days < 1:
            raise ValueError(f"sla_days must be at least 1, not {sla_days}")
        return OrderLimits(limits.signoff, limits.contact, Duration(sla_days, Unit.WORKING_DAYS))

    def reminders_for(self, *, is_urgent: bool) -> ReminderRules:
        return self.urgent_reminders if is_urgent else self.reminders


@dataclass(frozen=True, slots=True)
class Deadlines:
    signoff_due: datetime
    contact_due: datetime
    resolution_due: datetime

    def due(self, clock: Clock) -> datetime:
        by_clock = {
            Clock.SIGNOFF: self.signoff_due,
            Clock.CONTACT: self.contact_due,
            Clock.RESOLUTION: self.resolution_due,
        }
        return by_clock[Clock(clock)]


@dataclass(frozen=True, slots=True)
class ReminderSlot:
    clock: Clock  # a StrEnum: "signoff", "contact" or "resolution"
    kind: SlotKind  # "before", "overdue" or "escalation"
    at: datetime


def deadlines_from(
    dispatched_at: datetime,
    *,
    kind: str,
    sla_days: int | None,
    is_urgent: bool,
    limits: ClockLimits,
    calendar: WorkingCalendar,
) -> Deadlines:
    """The three deadlines of an order dispatched at ``dispatched_at``."""
    _require_aware(dispatched_at)
    order = limits.for_order(kind=kind, sla_days=sla_days, is_urgent=is_urgent)
    return Deadlines(
        signoff_due=order.signoff.after(dispatched_at, calendar),
        contact_due=order.contact.after(dispatched_at, calendar),
        resolution_due=order.resolution.after(dispatched_at, calendar),
    )


def extended(due: datetime, working_days: int, calendar: WorkingCalendar) -> datetime:
    """``due`` moved by an approved extension of ``working_days`` working days."""
    if working_days < 1:
        raise ValueError(f"an extension is at least 1 working day, not {working_days}")
    _require_aware(due)
    anchor = due.astimezone(UTC)
    if calendar.previous_office_moment(due) != anchor:  # out of hours: the next opening
        anchor = calendar.next_office_moment(due)
    return calendar.add_working_days(anchor, working_days)


def reminder_slots(
    deadlines: Deadlines,
    limits: ClockLimits,
    *,
    dispatched_at: datetime,
    is_urgent: bool,
    calendar: WorkingCalendar,
) -> list[ReminderSlot]:
    """Every reminder of an order, in time order (see the module docstring)."""
    _require_aware(dispatched_at)
    rules = limits.reminders_for(is_urgent=is_urgent)
    slots = []
    for clock in Clock:
        due, rule = deadlines.due(clock).astimezone(UTC), rules.of(clock)
        before = rule.before.before(due, calendar)
        if before > dispatched_at:
            slots.append(ReminderSlot(clock, SlotKind.BEFORE, before))
        slots.append(ReminderSlot(clock, SlotKind.OVERDUE, due))
        slots.append(
            ReminderSlot(clock, SlotKind.ESCALATION, rule.escalate_after.after(due, calendar))
        )
    clocks, kinds = list(Clock), list(SlotKind)
    return sorted(slots, key=lambda s: (s.at, clocks.index(s.clock), kinds.index(s.kind)))


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: the clocks need aware datetimes")


# -- the limits file ----------------------------------------------------------------------

_CLOCK_KEYS = tuple(clock.value for clock in Clock)
_RULE_KEYS = ("before", "escalate_after")


def load_clock_limits(path: Path | None = None) -> ClockLimits:
    """The limits in ``path`` (default: the shipped file); ValueError naming file and key."""
    path = path or DEFAULT_LIMITS_PATH
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    return _LimitsReader(path).limits(data)


class _LimitsReader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> NoReturn:
        raise ValueError(f"{self.path}: {key}: {message}")

    def table(self, data: Any, key: str, expected: tuple[str, ...]) -> dict[str, Any]:
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

    def duration(self, value: Any, key: str) -> Duration:
        if not isinstance(value, str):
            self.fail(key, f'must be a duration in quotes like "3d", not {value!r}')
        try:
            return Duration.parse(value)
        except ValueError as exc:
            self.fail(key, str(exc))

    def limits(self, data: dict[str, Any]) -> ClockLimits:
        self.table(data, "", ("kinds", "urgent", "reminders"))
        kinds = self.table(data["kinds"], "kinds", KINDS)
        urgent = self.table(data["urgent"], "urgent", (*_CLOCK_KEYS, "reminders"))
        return ClockLimits(
            kinds={kind: self.order(kinds[kind], f"kinds.{kind}") for kind in KINDS},
            urgent=self.order(urgent, "urgent", extra=("reminders",)),
            reminders=self.rules(data["reminders"], "reminders"),
            urgent_reminders=self.rules(urgent["reminders"], "urgent.reminders"),
        )

    def order(self, data: Any, key: str, extra: tuple[str, ...] = ()) -> OrderLimits:
        table = self.table(data, key, (*_CLOCK_KEYS, *extra))
        signoff, contact, resolution = (
            self.duration(table[clock], f"{key}.{clock}") for clock in _CLOCK_KEYS
        )
        return OrderLimits(signoff, contact, resolution)

    def rules(self, data: Any, key: str) -> ReminderRules:
        table = self.table(data, key, _CLOCK_KEYS)
        signoff, contact, resolution = (
            self.rule(table[clock], f"{key}.{clock}") for clock in _CLOCK_KEYS
        )
        return ReminderRules(signoff, contact, resolution)

    def rule(self, data: Any, key: str) -> ReminderRule:
        table = self.table(data, key, _RULE_KEYS)
        return ReminderRule(
            before=self.duration(table["before"], f"{key}.before"),
            escalate_after=self.duration(table["escalate_after"], f"{key}.escalate_after"),
        )


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
