"""A multi-party call started from a work order (多方通话): the member of staff, the
citizen and one or more departments dialled into one new conference room.

This is not the console's conference machine (``ivr.conference_edge``): that one drives
the room of a citizen who called in, named after their CallSid. Here nobody called in, so
the room is new, named after the order (``order-<number>-<unix time>``), and each party
is one outbound call placed with the gateway's ``join_conference`` (a call whose TwiML is
``<Dial><Conference>``; no conference callbacks, so the console's machine never sees the
room). What it does:

1. records the plan (who is dialled, by whom) as a ``call_events`` row keyed by the room,
   committed before any call is placed; the room's dedupe key refuses a second start of
   the same room (a double click);
2. dials the member of staff first: their leg starts the conference and ends it when they
   hang up; if it cannot be placed, nobody else is dialled;
3. dials the others, who wait with hold music until the member of staff is in;
4. records each leg as an outbound ``calls`` row (``parent_call_sid`` = the room,
   ``leg_role`` = ``order-conference``), whose status the ordinary ``/voice/status``
   callbacks keep up to date, and one ``order-conference:leg`` event per leg.

Every leg calls from the hotline number and nothing is announced: a department never
hears or sees the citizen's number (PRODUCT.md: confidential orders, three-way calls).
The events hold no phone numbers; the ``calls`` rows hold the numbers, as for every call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.config import VoiceConfig, voice_config
from ivr.gateway import GatewayError, scrub_numbers
from tickets import calls
from tickets.events import record_event
from tickets.models import Call, CallDirection, CallEvent, CallStatus
from tickets.phones import Caller, CallerKind

log = logging.getLogger(__name__)

LEG_ROLE = "order-conference"  # calls.leg_role of every leg
PLANNED = "order-conference"  # call_events.kind: who is dialled, by whom
LEG = "order-conference:leg"  # call_events.kind: one leg placed, or not
ROOM_MAX = 34  # the room is the events' call_sid (and the legs' parent_call_sid)
STATUS_PATH = "/voice/status"


class PartyKind(StrEnum):
    STAFF = "staff"
    CITIZEN = "citizen"
    DEPARTMENT = "department"


@dataclass(frozen=True, slots=True)
class Leg:
    """One party to dial: ``address`` is E.164 or ``client:<identity>``."""

    label: str
    kind: PartyKind
    name: str
    address: str
    department_code: str | None = None


@dataclass(frozen=True, slots=True)
class OrderCall:
    """The call to place: the member of staff's leg first, then the others."""

    room: str
    work_order_id: int
    order_number: str
    started_by: str  # ``staff:<id>``
    role: str  # the role they acted in
    is_confidential: bool
    legs: tuple[Leg, ...]

    def __post_init__(self) -> None:
        if not self.legs or self.legs[0].kind is not PartyKind.STAFF:
            raise ValueError("the member of staff is dialled first")
        if len(self.room) > ROOM_MAX:
            raise ValueError(f"a room name has at most {ROOM_MAX} characters: {self.room!r}")


@dataclass(frozen=True, slots=True)
class LegResult:
    label: str
    kind: PartyKind
    name: str
    call_sid: str | None
    error: str | None = None


class AlreadyStarted(Exception):
    """This room was started before (the same button pressed twice within a second)."""


class StaffUnreachable(Exception):
    """The member of staff's leg could not be placed: nobody else was dialled."""


def room_name(order_number: str, at: datetime) -> str:
    return f"order-{order_number}-{int(at.timestamp())}"


def start(call: OrderCall) -> list[LegResult]:
    """Place ``call`` (needs an app context); see :func:`start_with`."""
    return start_with(voice_config(), call)


def start_with(config: VoiceConfig, call: OrderCall) -> list[LegResult]:
    """Record the plan, dial the member of staff, then the others; what became of each leg.

    ``AlreadyStarted`` when the room exists (nothing dialled); ``StaffUnreachable`` when
    the member of staff's leg failed (nobody else dialled; the failure is recorded).
    """
    with config.sessions.begin() as session:
        if not record_event(
            session=session,
            kind=PLANNED,
            call_sid=call.room,
            params=_plan(call),
            dedupe_key=f"{PLANNED}:{call.room}",
        ):
            raise AlreadyStarted(call.room)
    results: list[LegResult] = []
    for leg in call.legs:
        results.append(_dial(config, call, leg))
        if leg.kind is PartyKind.STAFF and results[-1].call_sid is None:
            break  # without the host the others would wait in a room that never starts
    _record(config, call, results)
    if results[0].call_sid is None:
        raise StaffUnreachable(results[0].error or "the call could not be placed")
    return results


def _plan(call: OrderCall) -> dict[str, Any]:
    return {
        "work_order_id": call.work_order_id,
        "order_number": call.order_number,
        "room": call.room,
        "by": call.started_by,
        "role": call.role,
        "confidential": call.is_confidential,
        "legs": [
            {
                "label": leg.label,
                "kind": leg.kind.value,
                "name": leg.name,
                "department_code": leg.department_code,
            }
            for leg in call.legs
        ],
    }


def _dial(config: VoiceConfig, call: OrderCall, leg: Leg) -> LegResult:
    is_host = leg.kind is PartyKind.STAFF
    query = urlencode({"leg": LEG_ROLE, "room": call.room, "label": leg.label})
    try:
        call_sid = config.gateway.join_conference(
            to_number=leg.address,
            from_number=config.hotline_number,  # never the citizen's number
            room=call.room,
            label=leg.label,
            status_callback_url=config.url(f"{STATUS_PATH}?{query}"),
            start_conference_on_enter=is_host,  # the others wait with music until then
            end_conference_on_exit=is_host,  # the host hanging up ends the call for all
        )
    except (GatewayError, ValueError) as error:
        message = scrub_numbers(str(error))[:300]
        log.warning("order call %s: could not dial %s: %s", call.room, leg.label, message)
        return LegResult(leg.label, leg.kind, leg.name, None, message)
    log.info("order call %s: dialled %s (%s)", call.room, leg.label, call_sid)
    return LegResult(leg.label, leg.kind, leg.name, call_sid)


def _record(config: VoiceConfig, call: OrderCall, results: Sequence[LegResult]) -> None:
    """The legs as calls and events; a failure here is logged, the calls are placed."""
    addresses = {leg.label: leg.address for leg in call.legs}
    try:
        with config.sessions.begin() as session:
            for result in results:
                if result.call_sid:
                    address = addresses[result.label]
                    calls.register_call(
                        session=session,
                        call_sid=result.call_sid,
                        caller=Caller(CallerKind.NUMBER, number=config.hotline_number),
                        to_number=address if address.startswith("+") else None,
                        status=CallStatus.QUEUED,
                        direction=CallDirection.OUTBOUND,
                        parent_call_sid=call.room,
                        leg_role=LEG_ROLE,
                    )
                record_event(
                    session=session,
                    kind=LEG,
                    call_sid=call.room,
                    params={
                        "label": result.label,
                        "kind": result.kind.value,
                        "name": result.name,
                        "call_sid": result.call_sid,
                        "error": result.error,
                    },
                    dedupe_key=None,
                )
    except Exception:
        log.exception("order call %s: could not record its legs", call.room)


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlacedLeg:
    label: str
    kind: str
    name: str
    call_sid: str | None
    error: str | None
    status: str | None  # the call's latest status, from its callbacks


@dataclass(frozen=True, slots=True)
class PastCall:
    room: str
    started_at: datetime
    started_by: str
    role: str
    legs: tuple[PlacedLeg, ...]


def calls_of_order(order_number: str, *, session: Session) -> list[PastCall]:
    """The multi-party calls started from the order, newest first."""
    prefix = f"order-{order_number}-"
    events = session.scalars(
        select(CallEvent)
        .where(CallEvent.kind.in_((PLANNED, LEG)), CallEvent.call_sid.startswith(prefix))
        .order_by(CallEvent.id)
    ).all()
    plans = [event for event in events if event.kind == PLANNED]
    if not plans:
        return []
    rooms = [plan.call_sid for plan in plans]
    statuses = {
        call.call_sid: call.status.value
        for call in session.scalars(select(Call).where(Call.parent_call_sid.in_(rooms)))
    }
    placed: dict[str, dict[str, dict[str, Any]]] = {}
    for event in events:
        if event.kind == LEG and event.call_sid:
            placed.setdefault(event.call_sid, {})[event.params.get("label", "")] = event.params
    past = []
    for plan in reversed(plans):
        room = plan.call_sid or ""
        legs = []
        for planned in plan.params.get("legs", ()):
            outcome = placed.get(room, {}).get(planned["label"])
            sid = outcome.get("call_sid") if outcome else None
            legs.append(
                PlacedLeg(
                    label=planned["label"],
                    kind=planned["kind"],
                    name=planned.get("name", ""),
                    call_sid=sid,
                    error=outcome.get("error") if outcome else "not dialled",
                    status=statuses.get(sid) if sid else None,
                )
            )
        past.append(
            PastCall(
                room=room,
                started_at=plan.received_at,
                started_by=plan.params.get("by", ""),
                role=plan.params.get("role", ""),
                legs=tuple(legs),
            )
        )
    return past
