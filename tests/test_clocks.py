"""The work-order clocks: deadlines, extensions and reminder slots on the 2026 calendar.

Pure: the shipped limits file and a calendar without overrides (so that a 2027 row added
to the shipped override file changes nothing here). No database.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tickets.calendar import WorkingCalendar
from tickets.clocks import (
    DEFAULT_LIMITS_PATH,
    KINDS,
    Clock,
    ClockLimits,
    Deadlines,
    Duration,
    ReminderRule,
    ReminderSlot,
    SlotKind,
    Unit,
    deadlines_from,
    extended,
    load_clock_limits,
    reminder_slots,
)
from tickets.models import WorkOrderKind

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED = DEFAULT_LIMITS_PATH.read_text(encoding="utf-8")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar(overrides_path=None)


@pytest.fixture(scope="module")
def limits() -> ClockLimits:
    return load_clock_limits()


def deadlines(
    at: datetime,
    limits: ClockLimits,
    calendar: WorkingCalendar,
    *,
    kind: str = "consultation",
    sla_days: int | None = None,
    is_urgent: bool = False,
) -> Deadlines:
    return deadlines_from(
        at, kind=kind, sla_days=sla_days, is_urgent=is_urgent, limits=limits, calendar=calendar
    )


def limits_file(tmp_path: Path, old: str, new: str) -> Path:
    assert old in SHIPPED
    path = tmp_path / "limits.toml"
    path.write_text(SHIPPED.replace(old, new, 1), encoding="utf-8")
    return path


# -- deadlines ----------------------------------------------------------------------------


def test_three_working_days_over_national_day_end_on_the_make_up_saturday(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    due = deadlines(local(2026, 9, 30, 10), limits, calendar)

    assert due.resolution_due == datetime(2026, 10, 10, 2, tzinfo=UTC)  # 10:00 in Shanghai
    assert due.signoff_due == local(2026, 9, 30, 10, 30)
    assert due.contact_due == local(2026, 9, 30, 11)
    assert {d.tzinfo for d in (due.signoff_due, due.contact_due, due.resolution_due)} == {UTC}


def test_a_friday_evening_dispatch_counts_from_the_make_up_sunday_opening(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    due = deadlines(local(2026, 9, 18, 20), limits, calendar)

    assert due.signoff_due == local(2026, 9, 20, 9, 30)
    assert due.contact_due == local(2026, 9, 20, 10)
    assert due.resolution_due == local(2026, 9, 23, 9)


def test_a_dispatch_on_a_spring_festival_holiday_counts_from_the_first_working_day(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    due = deadlines(local(2026, 2, 18, 11), limits, calendar, kind="help")

    assert due.signoff_due == local(2026, 2, 24, 9, 30)
    assert due.contact_due == local(2026, 2, 24, 10)
    # 7 working days from Tue 24 Feb 09:00: 25, 26, 27, the make-up Sat 28, 2, 3, 4 March.
    assert due.resolution_due == local(2026, 3, 4, 9)


def test_a_dispatch_at_2330_utc_is_counted_on_the_next_shanghai_morning(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    due = deadlines(datetime(2026, 10, 7, 23, 30, tzinfo=UTC), limits, calendar)

    assert due.signoff_due == local(2026, 10, 8, 9, 30)
    assert due.resolution_due == local(2026, 10, 12, 9)  # Fri 9, Sat 10 (make-up), Mon 12


def test_working_minutes_run_from_friday_evening_into_the_make_up_saturday(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    due = deadlines(local(2026, 2, 13, 17, 50), limits, calendar)

    assert due.signoff_due == local(2026, 2, 14, 9, 20)  # 10 minutes Friday, 20 Saturday
    assert due.contact_due == local(2026, 2, 14, 9, 50)
    assert due.resolution_due == local(2026, 2, 25, 17, 50)  # Sat 14, Tue 24, Wed 25


def test_the_items_sla_days_replace_the_kinds_resolution_limit(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    due = deadlines(local(2026, 2, 13, 15), limits, calendar, kind="suggestion", sla_days=1)

    assert due.resolution_due == local(2026, 2, 14, 15)


def test_an_urgent_item_runs_on_wall_clock_hours_through_the_holiday_night(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    due = deadlines(
        local(2026, 2, 16, 23), limits, calendar, kind="help", sla_days=1, is_urgent=True
    )

    assert due.signoff_due == local(2026, 2, 16, 23, 15)
    assert due.contact_due == local(2026, 2, 17, 0)
    assert due.resolution_due == local(2026, 2, 17, 7)


def test_the_limits_are_configuration(tmp_path: Path, calendar: WorkingCalendar) -> None:
    path = limits_file(tmp_path, 'resolution = "3d"', 'resolution = "5wh"')

    due = deadlines(local(2026, 9, 30, 16), load_clock_limits(path), calendar)

    assert due.resolution_due == local(2026, 10, 8, 12)  # 2 hours on 30 Sep, 3 on 8 Oct


def test_unknown_kinds_bad_sla_days_and_naive_datetimes_are_refused(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    with pytest.raises(ValueError, match="unknown work-order kind 'petition'"):
        deadlines(local(2026, 9, 30, 10), limits, calendar, kind="petition")
    with pytest.raises(ValueError, match="sla_days"):
        deadlines(local(2026, 9, 30, 10), limits, calendar, sla_days=0)
    with pytest.raises(ValueError, match="no time zone"):
        deadlines(datetime(2026, 9, 30, 10), limits, calendar)


# -- extensions ---------------------------------------------------------------------------


def test_an_extension_across_national_day_keeps_the_time_of_day(
    calendar: WorkingCalendar,
) -> None:
    assert extended(local(2026, 9, 29, 10), 3, calendar) == local(2026, 10, 9, 10)
    assert extended(local(2026, 9, 30, 10), 2, calendar) == local(2026, 10, 9, 10)


def test_an_extension_of_a_deadline_at_closing_time_keeps_the_closing(
    calendar: WorkingCalendar,
) -> None:
    assert extended(local(2026, 2, 14, 18), 1, calendar) == local(2026, 2, 24, 18)


def test_an_extension_of_a_night_deadline_counts_from_the_next_opening(
    calendar: WorkingCalendar,
) -> None:
    assert extended(local(2026, 2, 17, 7), 1, calendar) == local(2026, 2, 25, 9)


def test_an_extension_is_at_least_one_working_day(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        extended(local(2026, 9, 30, 10), 0, calendar)


# -- reminders ----------------------------------------------------------------------------


def test_reminders_before_at_and_after_each_deadline_in_time_order(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    dispatched = local(2026, 9, 30, 10)
    due = deadlines(dispatched, limits, calendar)

    slots = reminder_slots(
        due, limits, dispatched_at=dispatched, is_urgent=False, calendar=calendar
    )

    assert [(s.clock, s.kind, s.at) for s in slots] == [
        (Clock.SIGNOFF, SlotKind.BEFORE, local(2026, 9, 30, 10, 20)),
        (Clock.SIGNOFF, SlotKind.OVERDUE, local(2026, 9, 30, 10, 30)),
        (Clock.CONTACT, SlotKind.BEFORE, local(2026, 9, 30, 10, 45)),
        (Clock.CONTACT, SlotKind.OVERDUE, local(2026, 9, 30, 11)),
        (Clock.SIGNOFF, SlotKind.ESCALATION, local(2026, 9, 30, 11, 30)),
        (Clock.CONTACT, SlotKind.ESCALATION, local(2026, 9, 30, 12)),
        # a working day before Sat 10 Oct 10:00 is Fri 9 Oct, not a holiday
        (Clock.RESOLUTION, SlotKind.BEFORE, local(2026, 10, 9, 10)),
        (Clock.RESOLUTION, SlotKind.OVERDUE, local(2026, 10, 10, 10)),
        (Clock.RESOLUTION, SlotKind.ESCALATION, local(2026, 10, 12, 10)),
    ]
    assert slots[0].clock == "signoff" and slots[0].kind == "before"


def test_working_time_reminders_skip_the_night_and_the_holiday(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    dispatched = local(2026, 2, 14, 17, 50)  # the make-up Saturday before the holiday
    due = deadlines(dispatched, limits, calendar)

    slots = reminder_slots(
        due, limits, dispatched_at=dispatched, is_urgent=False, calendar=calendar
    )

    signoff = {s.kind: s.at for s in slots if s.clock is Clock.SIGNOFF}
    assert due.signoff_due == local(2026, 2, 24, 9, 20)
    assert signoff == {
        SlotKind.BEFORE: local(2026, 2, 24, 9, 10),
        SlotKind.OVERDUE: local(2026, 2, 24, 9, 20),
        SlotKind.ESCALATION: local(2026, 2, 24, 10, 20),
    }


def test_a_reminder_due_before_the_dispatch_is_dropped(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    rules = dataclasses.replace(
        limits.reminders,
        signoff=ReminderRule(before=Duration.parse("1wh"), escalate_after=Duration.parse("1wh")),
    )
    longer = dataclasses.replace(limits, reminders=rules)
    dispatched = local(2026, 9, 30, 10)
    due = deadlines(dispatched, longer, calendar)

    slots = reminder_slots(
        due, longer, dispatched_at=dispatched, is_urgent=False, calendar=calendar
    )

    assert ReminderSlot(Clock.SIGNOFF, SlotKind.OVERDUE, due.signoff_due) in slots
    assert not [s for s in slots if s.clock is Clock.SIGNOFF and s.kind is SlotKind.BEFORE]
    assert len(slots) == 8


def test_urgent_orders_use_the_urgent_reminder_rules(
    limits: ClockLimits, calendar: WorkingCalendar
) -> None:
    dispatched = local(2026, 2, 16, 23)
    due = deadlines(dispatched, limits, calendar, is_urgent=True)

    slots = reminder_slots(due, limits, dispatched_at=dispatched, is_urgent=True, calendar=calendar)

    resolution = {s.kind: s.at for s in slots if s.clock is Clock.RESOLUTION}
    assert resolution == {
        SlotKind.BEFORE: local(2026, 2, 17, 5),
        SlotKind.OVERDUE: local(2026, 2, 17, 7),
        SlotKind.ESCALATION: local(2026, 2, 17, 8),
    }
    assert [s.at for s in slots] == sorted(s.at for s in slots)


# -- the limits file ----------------------------------------------------------------------


def test_the_shipped_limits_cover_every_work_order_kind(limits: ClockLimits) -> None:
    assert set(KINDS) == {kind.value for kind in WorkOrderKind} == set(limits.kinds)
    assert limits.kinds["consultation"].resolution == Duration(3, Unit.WORKING_DAYS)
    assert limits.kinds["help"].resolution == Duration(7, Unit.WORKING_DAYS)
    assert limits.urgent.contact == Duration(1, Unit.HOURS)


@pytest.mark.parametrize("text", ["1h", "4wh", "3d", "30m", "15wm"])
def test_durations_read_back_as_written(text: str) -> None:
    assert str(Duration.parse(text)) == text


@pytest.mark.parametrize("text", ["0d", "1.5h", "3 days", "d", "-1h", "3D"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        Duration.parse(text)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('contact = "1h"', 'contact = "1 hour"', "urgent.contact: bad duration '1 hour'"),
        ('resolution = "7d"', 'resolution = "7d"\nsla = "3d"', "kinds.complaint.sla: unknown key"),
        ('resolution = "3d"', "resolution = 3", "kinds.consultation.resolution: must be"),
        ("[kinds.help]", "[kinds.petition]", "kinds.petition: unknown key"),
        ('escalate_after = "1d"', "", "reminders.resolution.escalate_after: missing"),
        ("[urgent]", "[rush]", "rush: unknown key"),
        ('before = "2h"', 'before = "0h"', "urgent.reminders.resolution.before: bad duration"),
    ],
)
def test_a_malformed_limits_file_is_refused_naming_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = limits_file(tmp_path, old, new)

    with pytest.raises(ValueError, match=r"limits\.toml") as error:
        load_clock_limits(path)
    assert message in str(error.value)


def test_a_limits_file_that_is_not_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = limits_file(tmp_path, "[urgent]", "[urgent")

    with pytest.raises(ValueError, match=r"limits\.toml: not valid TOML"):
        load_clock_limits(path)
