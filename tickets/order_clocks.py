"""The clocks as the work-order flow uses them: one calendar and one set of limits, read
from their files once, behind the small interface ``tickets.order_flow.OrderClocks``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tickets import clocks
from tickets.calendar import DEFAULT_OFFICE_HOURS, WorkingCalendar, parse_office_hours


@dataclass(frozen=True)
class ConfiguredClocks:
    calendar: WorkingCalendar
    limits: clocks.ClockLimits

    @classmethod
    def from_files(
        cls,
        *,
        zone: ZoneInfo,
        limits_file: str | Path | None = None,
        overrides_file: str | Path | None = None,
        office_hours: str = "",
    ) -> ConfiguredClocks:
        """Empty or None files: the ones shipped in ``tickets/data``."""
        calendar_args = {"overrides_path": Path(overrides_file)} if overrides_file else {}
        return cls(
            WorkingCalendar(
                zone=zone,
                office_hours=parse_office_hours(office_hours)
                if office_hours
                else DEFAULT_OFFICE_HOURS,
                **calendar_args,  # type: ignore[arg-type]
            ),
            clocks.load_clock_limits(Path(limits_file) if limits_file else None),
        )

    def deadlines(
        self, dispatched_at: datetime, *, kind: str, sla_days: int | None, is_urgent: bool
    ) -> clocks.Deadlines:
        return clocks.deadlines_from(
            dispatched_at,
            kind=kind,
            sla_days=sla_days,
            is_urgent=is_urgent,
            limits=self.limits,
            calendar=self.calendar,
        )

    def extended(self, due: datetime, working_days: int) -> datetime:
        return clocks.extended(due, working_days, self.calendar)

    def reminder_slots(
        self, deadlines: clocks.Deadlines, dispatched_at: datetime, *, is_urgent: bool
    ) -> Sequence[clocks.ReminderSlot]:
        return clocks.reminder_slots(
            deadlines,
            self.limits,
            dispatched_at=dispatched_at,
            is_urgent=is_urgent,
            calendar=self.calendar,
        )

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.calendar.zone)
