"""Stored calls and call-takers as routing and the conference machine see them."""

from __future__ import annotations

from datetime import datetime

from callflows.conference_messages import Target
from routing.assignment import CallTaker as RoutingTaker
from routing.queue_order import FailedRing, WaitingCaller
from tickets.models import Call, CallTaker


def routing_taker(profile: CallTaker) -> RoutingTaker:
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
    if profile.client_identity:
        address = f"client:{profile.client_identity}"
    elif profile.phone_number:
        address = profile.phone_number
    else:
        return None
    name = profile.staff.display_name if profile.staff is not None else ""
    return Target(address=address, name=name, staff_id=str(profile.staff_id))
