"""What the call-taker's live screen shows, as one JSON-able snapshot.

The snapshot holds the call-taker's state (with the end of wrap-up), and, while they are
ringing, on a call or wrapping one up, that call: the caller's number (in full for the
roles that take and supervise calls, masked for everyone else), language, intent,
front-door path, when the call-taker answered, the conference's phase and parties with
their live states, and the screen pop: the caller's earlier calls and work orders.

Built from the database only, so any console node can serve any call-taker; the event
stream (``live_events``) rebuilds it every few hundred milliseconds and sends it when it
changed. Nothing here reads Flask's request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import conferences, work_orders
from tickets import staff as staff_store
from tickets.models import (
    Call,
    CallDirection,
    CallEvent,
    CallTaker,
    CallTakerState,
    Role,
    Staff,
    WorkOrder,
    WorkOrderKind,
)
from tickets.phones import mask_number
from webapp.staff.forms import LANGUAGE_LABELS, STATE_LABELS

log = logging.getLogger(__name__)

# Who sees a caller's number in full: the people who talk to callers and supervise them.
FULL_NUMBER_ROLES = frozenset({Role.CALL_TAKER, Role.FLOOR_MANAGER})
# The states in which the console shows a call (wrap-up: the one just finished).
CALL_STATES = frozenset({CallTakerState.RINGING, CallTakerState.ON_CALL, CallTakerState.WRAP_UP})
HISTORY_LIMIT = 10
NOTICE_KIND = "conference:notify"  # ivr.conference_edge logs the machine's NotifyTaker so
NOTICE_LIMIT = 5
INTENT_LABELS = {
    "consultation": "Policy consultation 政策咨询",
    "complaint": "Complaint or report 投诉举报",
    "help": "Help or suggestion 求助建议",
    "progress": "Work-order progress 工单查询",
    "operator": "Asked for a call-taker 人工服务",
    "emergency": "Emergency 紧急",
}
KIND_LABELS = {
    WorkOrderKind.CONSULTATION: "Consultation 咨询",
    WorkOrderKind.COMPLAINT: "Complaint or report 投诉举报",
    WorkOrderKind.HELP: "Request for help 求助",
    WorkOrderKind.SUGGESTION: "Suggestion 建议",
    WorkOrderKind.EMERGENCY: "Emergency 紧急",
}
EMERGENCY_LINES = {  # the one-key transfer buttons: line -> what the button says
    "police": "110 Police",
    "fire": "119 Fire",
    "medical": "120 Medical",
    "traffic": "122 Traffic",
    "utility": "Utilities",
}


def can_see_numbers(roles: Iterable[Role]) -> bool:
    return bool(FULL_NUMBER_ROLES.intersection(roles))


@dataclass(frozen=True)
class Viewer:
    """Who the snapshot is for (a copy of the login, so the stream needs no request)."""

    staff_id: int
    session_token: str
    roles: frozenset[Role]

    @property
    def sees_numbers(self) -> bool:
        return can_see_numbers(self.roles)

    def number(self, value: str | None) -> str | None:
        if not value:
            return None
        return value if self.sees_numbers else mask_number(value)


@dataclass
class ScreenPopCache:
    """The screen pop changes only with the call: kept per stream, read once per call."""

    call_sid: str | None = None
    history: dict[str, Any] = field(default_factory=dict)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build_snapshot(
    viewer: Viewer,
    *,
    session: Session,
    cache: ScreenPopCache | None = None,
) -> dict[str, Any] | None:
    """The viewer's screen; None when their login is no longer valid (closed account, new
    password) or they are not a call-taker any more."""
    staff = session.get(Staff, viewer.staff_id)
    if staff is None or not staff.is_active or staff.session_token != viewer.session_token:
        return None
    profile = staff.call_taker
    if profile is None:
        return None
    call_sid = profile.call_sid if profile.state in CALL_STATES else None
    return {
        "me": _me(staff, profile),
        "call": _call(viewer, profile, call_sid, session=session, cache=cache)
        if call_sid
        else None,
    }


def _me(staff: Staff, profile: CallTaker) -> dict[str, Any]:
    choices = staff_store.TRANSITIONS[profile.state] & set(staff_store.CONSOLE_STATES)
    return {
        "staff_id": staff.id,
        "name": staff.display_name,
        "state": profile.state.value,
        "state_label": STATE_LABELS[profile.state],
        "away_reason": profile.away_reason,
        "since": _iso(profile.state_changed_at),
        "wrap_up_until": _iso(profile.wrap_up_until)
        if profile.state is CallTakerState.WRAP_UP
        else None,
        "choices": sorted(state.value for state in choices),
    }


def _call(
    viewer: Viewer,
    profile: CallTaker,
    call_sid: str,
    *,
    session: Session,
    cache: ScreenPopCache | None,
) -> dict[str, Any]:
    call = session.scalar(select(Call).where(Call.call_sid == call_sid))
    room = find_room_state(session=session, call_sid=call_sid)
    caller = call.from_number if call else None
    if cache is not None and cache.call_sid == call_sid:
        history = cache.history
    else:
        history = screen_pop(viewer, session=session, call=call)
        if cache is not None:
            cache.call_sid, cache.history = call_sid, history
    recorded = session.scalars(
        select(WorkOrder)
        .where(WorkOrder.call_sid == call_sid, WorkOrder.kind != WorkOrderKind.EMERGENCY)
        .order_by(WorkOrder.id)
    ).all()
    return {
        "call_sid": call_sid,
        "caller": viewer.number(caller) or _caller_kind(call),
        "caller_masked": bool(caller) and not viewer.sees_numbers,
        "language": call.language if call else None,
        "language_label": LANGUAGE_LABELS.get(call.language or "", call.language) if call else None,
        "intent": call.intent if call else None,
        "intent_label": INTENT_LABELS.get(call.intent or "", call.intent) if call else None,
        "path": _path(call.front_door_path) if call else [],
        "status": call.status.value if call else None,
        "started_at": _iso(call.created_at) if call else None,
        "answered_at": _iso(profile.state_changed_at)
        if profile.state is CallTakerState.ON_CALL
        else None,
        "emergency_line": call.emergency_line if call else None,
        "conference": _room(viewer, room),
        "recorded_orders": [_order(order) for order in recorded],
        "history": history,
        "notices": notices_for(viewer.staff_id, call_sid, session=session),
    }


def notices_for(staff_id: int, call_sid: str, *, session: Session) -> list[dict[str, Any]]:
    """What the conference told this call-taker about the call (the caller hung up, the
    consulted party did not answer...), newest first: the machine's ``NotifyTaker``."""
    rows = session.scalars(
        select(CallEvent)
        .where(CallEvent.call_sid == call_sid, CallEvent.kind == NOTICE_KIND)
        .order_by(CallEvent.id.desc())
        .limit(NOTICE_LIMIT * 4)
    ).all()
    mine = [row for row in rows if str(row.params.get("who")) == str(staff_id)]
    return [
        {"at": _iso(row.received_at), "message": str(row.params.get("outcome", ""))}
        for row in mine[:NOTICE_LIMIT]
    ]


def _caller_kind(call: Call | None) -> str:
    if call is None:
        return "unknown caller"
    return {
        "anonymous": "withheld number",
        "client": "browser caller",
        "sip": "SIP caller",
    }.get(call.caller_kind, "unknown number")


def _path(raw: str) -> list[str]:
    return [step for step in raw.split(">") if step]


def _room(viewer: Viewer, state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The conference state (``ConferenceState.to_dict()``) as the console shows it."""
    if not state:
        return None
    parties = [
        {
            "label": party.get("label", ""),
            "role": party.get("role", ""),
            "state": party.get("state", ""),
            "name": party.get("name", ""),
            "address": viewer.number(party.get("address")) or "",
            "staff_id": party.get("staff_id", ""),
            "reason": party.get("reason", ""),
        }
        for party in state.get("roster", ())
        if isinstance(party, dict)
    ]
    handoffs = [
        {
            "label": handoff.get("label", ""),
            "line": handoff.get("line", ""),
            "taken_by": handoff.get("taken_by", ""),
            "confirmed_at": handoff.get("confirmed_at"),
        }
        for handoff in state.get("handoffs", ())
        if isinstance(handoff, dict)
    ]
    return {
        "phase": state.get("phase", ""),
        "taker": state.get("taker", ""),
        "target": state.get("target", ""),
        "parties": parties,
        "handoffs": handoffs,
    }


def find_room_state(*, session: Session, call_sid: str) -> dict[str, Any] | None:
    """The stored conference state (``ConferenceState.to_dict()``) of the citizen's call
    ``call_sid``, if it has a room."""
    room = conferences.find_room(session=session, call_sid=call_sid)
    return room.state if room is not None else None


def screen_pop(viewer: Viewer, *, session: Session, call: Call | None) -> dict[str, Any]:
    """The caller's earlier calls and work orders, newest first (10 each)."""
    if call is None or not call.from_number:
        return {"calls": [], "orders": []}
    earlier = session.scalars(
        select(Call)
        .where(
            Call.from_number == call.from_number,
            Call.direction == CallDirection.INBOUND,
            Call.call_sid != call.call_sid,
        )
        .order_by(Call.created_at.desc(), Call.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    orders = work_orders.list_orders_for_caller(
        session=session, caller_number=call.from_number, limit=HISTORY_LIMIT
    )
    return {
        "calls": [
            {
                "call_sid": item.call_sid,
                "at": _iso(item.created_at),
                "intent": INTENT_LABELS.get(item.intent or "", item.intent or "-"),
                "status": item.status.value,
                "duration_seconds": item.duration_seconds,
                "emergency_line": item.emergency_line,
            }
            for item in earlier
        ],
        "orders": [_order(order) for order in orders],
    }


def _order(order: WorkOrder) -> dict[str, Any]:
    return {
        "number": order.number,
        "kind": KIND_LABELS.get(order.kind, order.kind.value),
        "state": order.state.value,
        "summary": order.summary,
        "at": _iso(order.created_at),
        "department": order.handling_department,
        "is_confidential": order.is_confidential,
        "is_urgent": order.is_urgent,
    }
