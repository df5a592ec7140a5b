"""What the portal's pages show of an order: its three clocks (met, running, overdue), the
next deadline, the citizen (hidden when the order is confidential) and its history, in
the hotline's local time. No request and no database: the views pass everything in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from tickets.models import WorkOrder, WorkOrderHistory
from webapp.portal.forms import ACTION_LABELS, STATE_LABELS
from webapp.staff.forms import ROLE_LABELS
from webapp.staff.live_snapshot import KIND_LABELS

SUMMARY_CHARS = 40
CONFIDENTIAL = "保密 confidential"
ROLE_NAMES = {role.value: label for role, label in ROLE_LABELS.items()} | {"system": "System 系统"}


def local(at: datetime | None, zone: tzinfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else "-"


def span(delta: timedelta) -> str:
    """A duration as a person reads it: ``2 d 4 h``, ``3 h 20 min``, ``12 min``."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


@dataclass(frozen=True)
class Clock:
    """One of the order's deadlines and where it stands at ``now``."""

    key: str  # signoff, contact, resolution
    label: str
    due: datetime | None
    met_at: datetime | None
    now: datetime

    @property
    def status(self) -> str:
        """``met``, ``met-late``, ``running``, ``overdue`` or ``unset``."""
        if self.due is None:
            return "unset"
        if self.met_at is not None:
            return "met" if self.met_at <= self.due else "met-late"
        return "overdue" if self.now > self.due else "running"

    @property
    def is_running(self) -> bool:
        return self.status in ("running", "overdue")

    @property
    def how(self) -> str:
        """What the status means in words: time left, how overdue, met when."""
        status = self.status
        if status == "unset":
            return "no deadline"
        assert self.due is not None
        if status == "running":
            return f"{span(self.due - self.now)} left 剩余"
        if status == "overdue":
            return f"overdue by {span(self.now - self.due)} 已超期"
        assert self.met_at is not None
        if status == "met":
            return "met on time 按时"
        return f"met {span(self.met_at - self.due)} late 超时完成"


def clocks_of(order: WorkOrder, now: datetime) -> list[Clock]:
    return [
        Clock("signoff", "Sign-off 签收", order.signoff_due_at, order.accepted_at, now),
        Clock("contact", "First contact 响应", order.contact_due_at, order.contacted_at, now),
        Clock("resolution", "Resolution 办结", order.due_at, order.answered_at, now),
    ]


def next_clock(order: WorkOrder, now: datetime) -> Clock | None:
    """The earliest deadline that still runs (None once the order is answered)."""
    running = [clock for clock in clocks_of(order, now) if clock.is_running and clock.due]
    return min(running, key=lambda clock: clock.due or now, default=None)


def short(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def citizen_number(order: WorkOrder) -> str:
    """The citizen's number for the department: never for a confidential order."""
    if order.is_confidential:
        return CONFIDENTIAL
    return order.caller_number or "no number 无号码"


def list_row(order: WorkOrder, now: datetime, zone: tzinfo) -> dict[str, object]:
    clock = next_clock(order, now)
    return {
        "id": order.id,
        "number": order.number,
        "kind": KIND_LABELS.get(order.kind, order.kind.value),
        "is_urgent": order.is_urgent,
        "is_supervised": order.is_supervised,
        "is_confidential": order.is_confidential,
        "summary": short(order.summary),
        "state": order.state.value,
        "state_label": STATE_LABELS[order.state],
        "dispatched_at": local(order.dispatched_at, zone),
        "next_label": clock.label if clock else "",
        "next_due": local(clock.due, zone) if clock else "",
        "next_how": clock.how if clock else "",
        "next_status": clock.status if clock else "",
    }


def staff_ids(rows: Iterable[WorkOrderHistory]) -> set[int]:
    """The staff ids of the history's ``staff:<id>`` actors (to look their names up)."""
    found = set()
    for row in rows:
        kind, _, number = row.actor.partition(":")
        if kind == "staff" and number.isdigit():
            found.add(int(number))
    return found


def history_rows(
    rows: Iterable[WorkOrderHistory], names: Mapping[str, str], zone: tzinfo
) -> list[dict[str, str]]:
    """The history, oldest first: who (name and actor), role, when, action, from → to, why."""
    return [
        {
            "at": local(row.at, zone),
            "who": names.get(row.actor, row.actor),
            "actor": row.actor,
            "role": ROLE_NAMES.get(row.actor_role, row.actor_role or "-"),
            "action": ACTION_LABELS.get(row.action, row.action),
            "from": _state(row.from_state),
            "to": _state(row.to_state),
            "reason": row.reason,
        }
        for row in rows
    ]


def _state(value: str | None) -> str:
    if not value:
        return "-"
    labels = {state.value: label for state, label in STATE_LABELS.items()}
    return labels.get(value, value)
