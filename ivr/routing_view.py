"""Stored calls and call-takers as routing and the conference machine see them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from callflows.conference_messages import Target
from routing.assignment import CallTaker as RoutingTaker
from routing.queue_order import FailedRing, WaitingCaller
from tickets.models import Call, CallTaker, CallTakerState


class TakerRow(Protocol):
    """What routing reads of a call-taker: a ``tickets.models.CallTaker`` or a row of
    ``tickets.staff.call_takers_for_routing``."""

    @property
    def staff_id(self) -> int: ...
    @property
    def languages(self) -> list[str] | None: ...
    @property
    def skills(self) -> list[str] | None: ...
    @property
    def state(self) -> CallTakerState: ...
    @property
    def idle_since(self) -> datetime | None: ...
    @property
    def state_changed_at(self) -> datetime: ...
    @property
    def away_reason(self) -> str | None: ...


def routing_taker(profile: TakerRow) -> RoutingTaker:
    """``idle_since`` is None for someone who was never free: their last change counts."""
    return RoutingTaker(
        staff_id=profile.staff_id,
        languages=frozenset(profile.languages or ()),
        skills=frozenset(profile.skills or ()),
        state=profile.state.value,  # type: ignore[arg-type]
        idle_since=profile.idle_since or profile.state_changed_at,
        away_reason=profile.away_reason,
    )


def caller_of(call: Call, failed_rings: tuple[FailedRing, ...], now: datetime) -> WaitingCaller:
    """The caller of ``call`` as routing sees them (also when not in the queue: the
    emergency lane's caller never queued)."""
    return WaitingCaller(
        call_sid=call.call_sid,
        language=call.language or "zh",
        intent=call.intent,
        queued_at=call.queued_at or now,
        is_emergency=bool(call.emergency_line),
        failed_rings=failed_rings,
    )


def target_of(profile: CallTaker) -> Target | None:
    """Where a call-taker is rung: the browser softphone when they have one, else their
    phone; None when they have neither."""
    name = profile.staff.display_name if profile.staff is not None else ""
    return target_for(profile.staff_id, profile.client_identity, profile.phone_number, name)


def target_for(
    staff_id: int, client_identity: str | None, phone_number: str | None, name: str
) -> Target | None:
    """``target_of`` from the values themselves (a row of
    ``tickets.staff.call_takers_for_routing`` or ``tickets.staff.ring_address``)."""
    if client_identity:
        address = f"client:{client_identity}"
    elif phone_number:
        address = phone_number
    else:
        return None
    return Target(address=address, name=name or "", staff_id=str(staff_id))
