"""A multi-party call started from a work order (多方通话): the member of staff, the
citizen and one or more departments dialled into one new conference room.

This is not the console's conference machine (``ivr.conference_edge``): that one drives
the room of a citizen who called in, named after their CallSid. Here nobody called in, so
the room is new, named after the order (``order-<number>-<unix time>``), and each party
is one outbound call placed with the gateway's ``join_conference`` (a call whose TwiML is
``<Dial><Conference>``; no conference callbacks, so the console's machine never sees the
room). Nobody else's phone rings until the member of staff (the host) has answered:

1. :func:`start` records the plan (who is dialled, by whom: labels, names, department
   codes, never a number) as a ``call_events`` row keyed by the room, committed before
   any call is placed; the room's dedupe key refuses a second start (a double click);
2. it dials the host only: their leg starts the conference and ends it when they hang
   up. If it cannot be placed, nobody else is dialled, ever;
3. the host's leg reports its progress to ``/voice/status?leg=order-conference&room=...
   &label=...`` (signed by Twilio), and ``ivr.voice`` hands it to :func:`on_leg_status`.
   The first report that decides the room records the one decision about the others as a
   ``call_events`` row whose dedupe key is ``order-conference:dial-others:<room>``, in
   the transaction of that webhook: answered (``in-progress``): the others are dialled,
   after the commit, by :func:`dial_others`; ended without that (``no-answer``, ``busy``,
   ``failed``, ``canceled``, or ``completed`` before the answer was seen): nobody else is
   dialled. A retried, duplicated or late report finds the decision taken and does
   nothing, so every party is dialled at most once;
4. at dial time the citizen's number is read from the work order and each department's
   duty phone from the current directory by its code, as the order page does at start;
5. each placed leg is an outbound ``calls`` row (``parent_call_sid`` = the room,
   ``leg_role`` = ``order-conference``), whose status the ordinary ``/voice/status``
   callbacks keep up to date, with one ``order-conference:leg`` event per leg.

Every leg calls from the hotline number and nothing is announced: a department never
hears or sees the citizen's number (PRODUCT.md: confidential orders, three-way calls).
The events hold no phone numbers; the ``calls`` rows hold the numbers, as for every call.

The machinery serves more than one kind of room (:class:`HostFirst`): the order's
multi-party call (:data:`ORDER`, whose event kinds and ``leg`` are the constants below) and
the citizen callback (``ivr.callback_calls``). A kind names its ``leg`` (and so its event
kinds), how another party's address is read when the host answers, and optional hooks:
``on_report`` sees every report of the room's legs in the webhook's transaction (with the
room's decision), ``after_dial_others`` what became of the others' legs.

A create that failed may still have placed the call (a read timeout, a dropped connection,
a 5xx after Twilio acted: :attr:`LegResult.maybe_placed`). An order's room takes "nobody"
at once when that happens to its host. A kind with ``host_may_be_placed`` leaves the
decision to the host's status callbacks instead (:class:`HostMaybePlaced`), and must watch
for a ring that never reports (the callbacks' ``ivr.callback_legs.watch``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.config import VoiceConfig, voice_config
from ivr.events import CallStatusEvent
from ivr.gateway import GatewayError, scrub_numbers
from tickets import calls
from tickets import directory as directory_store
from tickets.events import record_event
from tickets.models import Call, CallDirection, CallEvent, CallStatus, WorkOrder
from tickets.phones import Caller, CallerKind

log = logging.getLogger(__name__)

LEG_ROLE = "order-conference"  # calls.leg_role of every leg; the callbacks' ``leg``
PLANNED = "order-conference"  # call_events.kind: who is dialled, by whom
LEG = "order-conference:leg"  # call_events.kind: one leg placed, or not
DIAL_OTHERS = "order-conference:dial-others"  # call_events.kind: the host answered
HOST_MISSED = "order-conference:host-missed"  # call_events.kind: nobody else is dialled
DECIDED = (DIAL_OTHERS, HOST_MISSED)
ROOM_MAX = 34  # the room is the events' call_sid (and the legs' parent_call_sid)
STATUS_PATH = "/voice/status"
NOT_PLACED = "not-placed"  # HOST_MISSED's status when the host's call was never placed
UNANSWERED = frozenset(
    {CallStatus.NO_ANSWER, CallStatus.BUSY, CallStatus.FAILED, CallStatus.CANCELED}
)


Resolver = Callable[[Session, Mapping[str, Any], Mapping[str, Any]], tuple[str | None, str]]


@dataclass(frozen=True, slots=True)
class Report:
    """One status report of a leg of a host-first room, as a kind's ``on_report`` sees it.

    ``answered``: the room's one decision (True: the host answered and the others are
    dialled; False: nobody else is; None: not decided yet)."""

    room: str
    plan: Mapping[str, Any]
    label: str
    is_host: bool
    event: CallStatusEvent
    answered: bool | None


@dataclass(frozen=True)
class HostFirst:
    """One kind of host-first room: the host dialled first, the others when they answer.

    ``leg_role`` is the legs' ``calls.leg_role``, the ``leg`` of their status callbacks
    and the prefix of the room's event kinds. ``resolve(session, plan, party)`` gives the
    address of a party other than the host when the host answers, or (None, why not).
    """

    leg_role: str
    resolve: Resolver
    # Sees every report of the room's legs (in the webhook's transaction); may return a
    # follow-up to run after the commit (e.g. hang up a leg left alone).
    on_report: Callable[[Session, Report], Callable[[], None] | None] | None = None
    after_dial_others: (
        Callable[[VoiceConfig, str, Mapping[str, Any], Sequence[LegResult]], None] | None
    ) = None
    host_ring_seconds: Callable[[VoiceConfig], int] | None = None  # None: the gateway's 30 s
    # A host's create that may have been placed (timeout, 5xx) leaves the decision to the
    # host's status callbacks, instead of "nobody" at once (an order's room).
    host_may_be_placed: bool = False

    @property
    def planned(self) -> str:
        return self.leg_role

    @property
    def leg(self) -> str:
        return f"{self.leg_role}:leg"

    @property
    def dial_others(self) -> str:
        return f"{self.leg_role}:dial-others"

    @property
    def host_missed(self) -> str:
        return f"{self.leg_role}:host-missed"

    def decision_key(self, room: str) -> str:
        return f"{self.dial_others}:{room}"

    def plan_key(self, room: str) -> str:
        return f"{self.planned}:{room}"


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
    announcement: str | None = None  # spoken to this party before they join


@dataclass(frozen=True, slots=True)
class OrderCall:
    """The call to place: the member of staff's leg first, then the others.

    Only the host's ``address`` is dialled by :func:`start`; the others' are read again
    when the host answers (they are checked here, so that a call that cannot reach them
    is refused before anything rings).
    """

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
    code: int | None = None  # Twilio's error code, when the create was refused with one
    maybe_placed: bool = False  # the create failed after Twilio may have acted on it


class AlreadyStarted(Exception):
    """This room was started before (the same button pressed twice within a second)."""


class StaffUnreachable(Exception):
    """The member of staff's leg could not be placed: nobody else was dialled."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code  # Twilio's error code, when it gave one


class HostMaybePlaced(StaffUnreachable):
    """The host's create failed in a way that may have placed the call (a kind with
    ``host_may_be_placed``): nothing is decided, the host's status callbacks decide."""


def room_name(order_number: str, at: datetime) -> str:
    return f"order-{order_number}-{int(at.timestamp())}"


def decision_key(room: str) -> str:
    """The dedupe key of the one decision about the others (dial them, or nobody)."""
    return ORDER.decision_key(room)


def start(call: OrderCall) -> LegResult:
    """Place ``call`` (needs an app context); see :func:`start_with`."""
    return start_with(voice_config(), call)


def start_with(config: VoiceConfig, call: OrderCall) -> LegResult:
    """Record the plan and dial the member of staff only; what became of their leg.

    The others are dialled when the host's leg reports that it was answered
    (:func:`on_leg_status`). ``AlreadyStarted`` when the room exists (nothing dialled);
    ``StaffUnreachable`` when the host's leg could not be placed (nobody else is ever
    dialled; the failure is recorded).
    """
    return start_room(config, ORDER, call.room, _plan(call), call.legs[0])


def start_room(
    config: VoiceConfig, kind: HostFirst, room: str, plan: dict[str, Any], host: Leg
) -> LegResult:
    """:func:`start_with` for any kind of room: ``plan`` holds ``legs`` (the host first,
    as :func:`_plan` writes them, never a number) and what the kind's hooks need."""
    if len(room) > ROOM_MAX:
        raise ValueError(f"a room name has at most {ROOM_MAX} characters: {room!r}")
    with config.sessions.begin() as session:
        if not record_event(
            session=session,
            kind=kind.planned,
            call_sid=room,
            params=plan,
            dedupe_key=kind.plan_key(room),
        ):
            raise AlreadyStarted(room)
    result = _dial(config, room, host, kind)
    waits = result.call_sid is None and result.maybe_placed and kind.host_may_be_placed
    # Not placed: the decision is taken now, so that nothing can dial the others later
    # (a timed-out request that Twilio placed all the same, answered after all), unless
    # the kind waits for the host's callbacks.
    not_placed = result.call_sid is None and not waits
    _record(config, room, [(host, result)], kind, host_not_placed=not_placed)
    if waits:
        raise HostMaybePlaced(result.error or "the call may have been placed", code=result.code)
    if result.call_sid is None:
        raise StaffUnreachable(result.error or "the call could not be placed", code=result.code)
    return result


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


# -- the host's progress -----------------------------------------------------------------


def on_leg_status(
    session: Session,
    event: CallStatusEvent,
    args: Mapping[str, str],
    kind: HostFirst | None = None,
) -> Callable[[], None] | None:
    """A leg of a host-first room rang, answered or ended (its callback is stored).

    Only the host's leg decides anything, once per room: answered, the others are to be
    dialled (the returned follow-up, to run after ``session`` commits); ended without
    that, nobody else is. Every other report (another party's leg, a retry, a report after
    the decision, a room that is not ours) decides nothing and returns None; the kind's
    ``on_report`` sees each report of the room's legs all the same.
    """
    kind = kind or ORDER
    room = args.get("room", "")[:ROOM_MAX]
    label = args.get("label", "")[:64]
    status = event.status
    if not room or status is None:
        return None
    if status is not CallStatus.IN_PROGRESS and not status.is_final:
        return None  # queued, initiated, ringing: nothing to decide yet
    plan = _plan_of(session, room, kind)
    if plan is None:
        return None
    is_host = _is_host(plan.params, label)
    if not is_host and kind.on_report is None:
        return None
    follow_up: Callable[[], None] | None = None
    answered: bool | None = None
    if is_host:
        answered_now = status is CallStatus.IN_PROGRESS
        decided = record_event(
            session=session,
            kind=kind.dial_others if answered_now else kind.host_missed,
            call_sid=room,
            params={"host_call_sid": event.call_sid, "host_status": status.value},
            dedupe_key=kind.decision_key(room),
        )
        if decided:
            answered = answered_now
            if answered_now:
                log.info("%s %s: the host answered; dialling the others", kind.leg_role, room)
                config = voice_config()
                follow_up = lambda: dial_others(config, room, kind)  # noqa: E731
            else:
                log.info(
                    "%s %s: the host's leg ended %s; nobody else dialled",
                    kind.leg_role,
                    room,
                    status,
                )
        elif kind.on_report is not None:
            answered = _decision_of(session, room, kind)
    elif kind.on_report is not None:
        answered = _decision_of(session, room, kind)
    if kind.on_report is not None:
        more = kind.on_report(session, Report(room, plan.params, label, is_host, event, answered))
        if more is not None:
            follow_up = _both(follow_up, more)
    return follow_up


def _both(first: Callable[[], None] | None, then: Callable[[], None]) -> Callable[[], None]:
    if first is None:
        return then

    def run() -> None:
        first()
        then()

    return run


def _plan_of(session: Session, room: str, kind: HostFirst | None = None) -> CallEvent | None:
    key = (kind or ORDER).plan_key(room)
    return session.scalar(select(CallEvent).where(CallEvent.dedupe_key == key))


def _decision_of(session: Session, room: str, kind: HostFirst) -> bool | None:
    decision = session.scalar(
        select(CallEvent.kind).where(CallEvent.dedupe_key == kind.decision_key(room))
    )
    return None if decision is None else decision == kind.dial_others


def _is_host(plan: Mapping[str, Any], label: str) -> bool:
    """``label`` (from the signed callback URL) names the plan's first leg, the host."""
    legs = plan.get("legs") or ()
    if not label or not legs:
        return False
    host = legs[0]
    return host.get("kind") == PartyKind.STAFF.value and host.get("label") == label


def dial_others(config: VoiceConfig, room: str, kind: HostFirst | None = None) -> list[LegResult]:
    """Dial everyone but the host into ``room`` (once its host answered); what became of
    each. Their addresses are read now, by the kind (an order: the order's caller, the
    directory's duty phones)."""
    kind = kind or ORDER
    resolved: list[tuple[Leg, LegResult | None]] = []
    with config.sessions.begin() as session:
        plan = _plan_of(session, room, kind)
        if plan is None:
            log.error("%s %s: no plan, nobody dialled", kind.leg_role, room)
            return []
        params = dict(plan.params)
        for party in list(params.get("legs") or ())[1:]:
            resolved.append(_resolve(session, kind, params, party))
    results = [
        failure if failure is not None else _dial(config, room, leg, kind)
        for leg, failure in resolved
    ]
    _record(config, room, list(zip((leg for leg, _ in resolved), results, strict=True)), kind)
    if kind.after_dial_others is not None:
        try:
            kind.after_dial_others(config, room, params, results)
        except Exception:
            log.exception("%s %s: could not record what became of the others", kind.leg_role, room)
    return results


def _resolve(
    session: Session, kind: HostFirst, plan: Mapping[str, Any], party: Mapping[str, Any]
) -> tuple[Leg, LegResult | None]:
    """The party's leg with its address now, or why it cannot be dialled."""
    party_kind = PartyKind(party["kind"])
    label, name, code = party["label"], party.get("name", ""), party.get("department_code")
    address, problem = kind.resolve(session, plan, party)
    leg = Leg(label, party_kind, name, address or "", code)
    if not address:
        return leg, LegResult(label, party_kind, name, None, problem)
    return leg, None


def _order_party_address(
    session: Session, plan: Mapping[str, Any], party: Mapping[str, Any]
) -> tuple[str | None, str]:
    """An order's citizen (the order's caller) or department (its current duty phone)."""
    kind, code = PartyKind(party["kind"]), party.get("department_code")
    if kind is PartyKind.CITIZEN:
        order = session.get(WorkOrder, plan.get("work_order_id"))
        address = order.caller_number if order is not None else None
        return address, "the order has no number to call the citizen on"
    if kind is PartyKind.DEPARTMENT and code:
        version = directory_store.find_current_version(session=session)
        found = directory_store.find_department(version, code, session=session) if version else None
        address = found.phone_number if found is not None else None
        return address, f"there is no department {code} in the current directory"
    return None, "cannot be dialled"


ORDER = HostFirst(leg_role=LEG_ROLE, resolve=_order_party_address)


# -- placing and recording ---------------------------------------------------------------


def _dial(config: VoiceConfig, room: str, leg: Leg, kind: HostFirst | None = None) -> LegResult:
    kind = kind or ORDER
    is_host = leg.kind is PartyKind.STAFF
    query = urlencode({"leg": kind.leg_role, "room": room, "label": leg.label})
    ring: dict[str, int] = {}
    if is_host and kind.host_ring_seconds is not None:
        ring["ring_timeout_seconds"] = kind.host_ring_seconds(config)
    try:
        call_sid = config.gateway.join_conference(
            to_number=leg.address,
            from_number=config.hotline_number,  # never the citizen's number
            room=room,
            label=leg.label,
            status_callback_url=config.url(f"{STATUS_PATH}?{query}"),
            start_conference_on_enter=is_host,  # the others join the host's room
            end_conference_on_exit=is_host,  # the host hanging up ends the call for all
            announcement=leg.announcement,
            **ring,
        )
    except (GatewayError, ValueError) as error:
        message = scrub_numbers(str(error))[:300]
        log.warning("%s %s: could not dial %s: %s", kind.leg_role, room, leg.label, message)
        code = error.code if isinstance(error, GatewayError) else None
        return LegResult(leg.label, leg.kind, leg.name, None, message, code, _maybe_placed(error))
    log.info("%s %s: dialled %s (%s)", kind.leg_role, room, leg.label, call_sid)
    return LegResult(leg.label, leg.kind, leg.name, call_sid)


def _maybe_placed(error: Exception) -> bool:
    """Whether a failed create may have placed the call all the same: no answer to judge
    (a timeout, a dropped connection, a body that is not JSON) or a 5xx. A 4xx (429 too)
    never placed anything, nor did arguments refused before sending (ValueError)."""
    if not isinstance(error, GatewayError):
        return False
    return error.status is None or error.status >= 500


def _record(
    config: VoiceConfig,
    room: str,
    placed: Sequence[tuple[Leg, LegResult]],
    kind: HostFirst | None = None,
    *,
    host_not_placed: bool = False,
) -> None:
    """The legs as calls and events; a failure here is logged, the calls are placed."""
    kind = kind or ORDER
    try:
        with config.sessions.begin() as session:
            for leg, result in placed:
                if result.call_sid:
                    calls.register_call(
                        session=session,
                        call_sid=result.call_sid,
                        caller=Caller(CallerKind.NUMBER, number=config.hotline_number),
                        to_number=leg.address if leg.address.startswith("+") else None,
                        status=CallStatus.QUEUED,
                        direction=CallDirection.OUTBOUND,
                        parent_call_sid=room,
                        leg_role=kind.leg_role,
                    )
                record_event(
                    session=session,
                    kind=kind.leg,
                    call_sid=room,
                    params={
                        "label": result.label,
                        "kind": result.kind.value,
                        "name": result.name,
                        "call_sid": result.call_sid,
                        "error": result.error,
                    },
                    dedupe_key=None,
                )
            if host_not_placed:
                record_event(
                    session=session,
                    kind=kind.host_missed,
                    call_sid=room,
                    params={"host_call_sid": None, "host_status": NOT_PLACED},
                    dedupe_key=kind.decision_key(room),
                )
    except Exception:
        log.exception("%s %s: could not record its legs", kind.leg_role, room)


# -- reading ---------------------------------------------------------------------------------


class Outcome(StrEnum):
    """Where a call stands with the others."""

    WAITING = "waiting"  # the host's phone rings: nobody else yet
    DIALLED = "dialled"  # the host answered: the others were dialled
    HOST_MISSED = "host-missed"  # the host did not answer: nobody else was called
    HOST_UNREACHABLE = "host-unreachable"  # the host's call could not be placed


@dataclass(frozen=True, slots=True)
class PlacedLeg:
    label: str
    kind: str
    name: str
    call_sid: str | None
    error: str | None  # why the leg was not placed
    status: str | None  # the call's latest status, from its callbacks
    note: str | None = None  # the leg's state, when no call was placed for it (yet)


@dataclass(frozen=True, slots=True)
class PastCall:
    room: str
    started_at: datetime
    started_by: str
    role: str
    legs: tuple[PlacedLeg, ...]
    outcome: Outcome = Outcome.WAITING
    host_status: str | None = None  # the host's status that decided a missed call


def calls_of_order(order_number: str, *, session: Session) -> list[PastCall]:
    """The multi-party calls started from the order, newest first."""
    prefix = f"order-{order_number}-"
    events = session.scalars(
        select(CallEvent)
        .where(CallEvent.kind.in_((PLANNED, LEG, *DECIDED)), CallEvent.call_sid.startswith(prefix))
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
    decisions: dict[str, CallEvent] = {}
    for event in events:
        if event.kind == LEG and event.call_sid:
            placed.setdefault(event.call_sid, {})[event.params.get("label", "")] = event.params
        elif event.kind in DECIDED and event.call_sid:
            decisions[event.call_sid] = event
    past = []
    for plan in reversed(plans):
        room = plan.call_sid or ""
        outcome, host_status = _outcome(decisions.get(room))
        legs = []
        for index, planned in enumerate(plan.params.get("legs", ())):
            result = placed.get(room, {}).get(planned["label"])
            sid = result.get("call_sid") if result else None
            error = result.get("error") if result else None
            note = None
            if index == 0 and outcome is Outcome.HOST_MISSED:
                note = _missed_note(host_status)
            elif index > 0 and result is None:
                error, note = _not_placed(outcome)
            legs.append(
                PlacedLeg(
                    label=planned["label"],
                    kind=planned["kind"],
                    name=planned.get("name", ""),
                    call_sid=sid,
                    error=error,
                    status=statuses.get(sid) if sid else None,
                    note=note,
                )
            )
        past.append(
            PastCall(
                room=room,
                started_at=plan.received_at,
                started_by=plan.params.get("by", ""),
                role=plan.params.get("role", ""),
                legs=tuple(legs),
                outcome=outcome,
                host_status=host_status,
            )
        )
    return past


def _outcome(decision: CallEvent | None) -> tuple[Outcome, str | None]:
    if decision is None:
        return Outcome.WAITING, None
    if decision.kind == DIAL_OTHERS:
        return Outcome.DIALLED, None
    status = decision.params.get("host_status")
    if status == NOT_PLACED:
        return Outcome.HOST_UNREACHABLE, None
    return Outcome.HOST_MISSED, status


def _missed_note(host_status: str | None) -> str:
    if host_status == CallStatus.COMPLETED.value:
        return "host hung up before the others were called: nobody else was called"
    return f"host did not answer ({host_status}): nobody else was called"


def _not_placed(outcome: Outcome) -> tuple[str | None, str | None]:
    """(error, note) of a party without a placed leg."""
    if outcome is Outcome.WAITING:
        return None, "called once the host answers"
    if outcome is Outcome.HOST_MISSED:
        return None, "not called"
    return "not dialled", None  # the host's call failed, or dialling them did
