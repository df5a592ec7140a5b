"""A callback's legs once placed: their status reports, what the citizen's dial came to,
and the worker's watch over reports that never come (``ivr.callback_calls`` places them).

The room is a host-first room of ``ivr.order_conference`` (:data:`CALLBACK`); its legs'
reports arrive in the voice status webhook's transaction (``_on_report``): the call-taker
answered (on the call, the citizen is dialled), missed the ring (away, the task due again
soon), left (wrap-up); the citizen reached, or not answered (the attempt counted once per
room, the call-taker not left alone in the room). ``_after_dial_others`` settles the
citizen's dial itself; ``watch`` gives up rings and attempts whose reports were lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.config import VoiceConfig, voice_config
from ivr.dispatch import LOST_CALLBACK_GRACE
from ivr.events import CallStatusEvent
from ivr.gateway import CallGateway, GatewayError
from ivr.order_conference import (
    UNANSWERED,
    HostFirst,
    LegResult,
    Report,
)
from ivr.survey_caller import twilio_call_failure_kind
from routing.rings import AWAY_AFTER, RingResult
from tickets import callback_calls as schedule
from tickets import calls, conferences
from tickets.db import utcnow
from tickets.events import record_event
from tickets.models import (
    Call,
    CallbackStatus,
    CallbackTask,
    CallDirection,
    CallEvent,
    CallStatus,
)
from tickets.models import CallTakerState as S
from tickets.phones import Caller, CallerKind
from tickets.survey_calls import CallFailureKind

log = logging.getLogger(__name__)

LEG_ROLE = "callback"
ROOM_PREFIX = "callback-"  # every callback room's name starts so (:func:`room_name`)
CITIZEN = "citizen"  # the citizen's leg label
ACTOR = "system:callback"

RING_RESULTS = {
    CallStatus.NO_ANSWER: RingResult.NO_ANSWER,
    CallStatus.BUSY: RingResult.BUSY,
    CallStatus.FAILED: RingResult.FAILED,
    CallStatus.CANCELED: RingResult.FAILED,
}
# Twilio refuses this number for good (invalid, or not callable from the hotline).
REFUSED_FOR_GOOD = frozenset({CallFailureKind.INVALID_NUMBER, CallFailureKind.REJECTED})
RING_GIVEN_UP = "no report of the callback ring"


def refused_for_good(code: int | None) -> bool:
    """Twilio's code says this number cannot be called (21211, 13224 ...) or would be
    refused again (21215 ...)."""
    return code is not None and twilio_call_failure_kind(code, None) in REFUSED_FOR_GOOD


# -- the legs' reports (the voice status webhook, in its transaction) ---------------------


def _citizen_address(
    session: Session, plan: Mapping[str, Any], party: Mapping[str, Any]
) -> tuple[str | None, str]:
    task = session.get(CallbackTask, plan.get("task_id"))
    if task is None or task.status is not CallbackStatus.OPEN:
        return None, "the callback task was marked done"
    return task.caller_number, "there is no number to call the citizen back on"


def _on_report(session: Session, report: Report) -> Callable[[], None] | None:
    status = report.event.status
    task_id, host_id = report.plan.get("task_id"), report.plan.get("staff_id")
    if status is None or not isinstance(task_id, int) or not isinstance(host_id, int):
        return None
    now = utcnow()
    room = report.room
    _adopt(session, room, report.event)
    if report.is_host:
        if status is CallStatus.IN_PROGRESS and report.answered:
            _move(session, host_id, room, {S.RINGING}, S.ON_CALL, "answered the callback", now)
        elif status is CallStatus.IN_PROGRESS and report.answered is False:
            # Answered after the room decided "nobody" (the ring given up, a late report):
            # nobody will join them; their leg is ended rather than left in silence.
            return _hang_up_later([report.event.call_sid])
        elif status.is_final and report.answered:
            _move(session, host_id, room, {S.ON_CALL}, S.WRAP_UP, "left the callback", now)
            # The call-taker left: a citizen's phone still ringing into the room stops.
            return _hang_up_later(_other_legs(session, room, report.event.call_sid))
        elif status.is_final and report.answered is False:
            if status is CallStatus.COMPLETED:  # hung up before the citizen was dialled
                _move(session, host_id, room, {S.RINGING}, S.AVAILABLE, "ring ended", now)
            else:  # like a missed ring: away, with routing's reason
                why = AWAY_AFTER[RING_RESULTS.get(status, RingResult.FAILED)]
                _move(session, host_id, room, {S.RINGING}, S.AWAY, why.value, now)
            schedule.host_missed(session, task_id=task_id, room=room, now=now)
        return None
    if report.label != CITIZEN:
        return None
    # Their leg reports: they were dialled (counted once per room, if the dial's own
    # record has not come first: a fast failure, or a create whose answer was lost).
    schedule.citizen_dialled(session, task_id=task_id, room=room, now=now)
    if status in (CallStatus.IN_PROGRESS, CallStatus.COMPLETED):
        schedule.citizen_reached(session, task_id=task_id, room=room, now=now)
    elif status in UNANSWERED and schedule.citizen_missed(
        session, task_id=task_id, room=room, now=now
    ):
        # Nobody answered (the first report of it): the call-taker is not left waiting
        # alone in the room.
        return _hang_up_later(_other_legs(session, room, report.event.call_sid))
    return None


def _adopt(session: Session, room: str, event: CallStatusEvent) -> None:
    """The leg's ``calls`` row, unless it has one: a leg whose create's answer was lost is
    first known by its status callbacks (and must be found to be hung up)."""
    if event.status is None or not event.call_sid:
        return
    calls.register_call(
        session=session,
        call_sid=event.call_sid,
        caller=Caller(CallerKind.NUMBER, number=voice_config().hotline_number),
        to_number=None,
        status=event.status,
        direction=CallDirection.OUTBOUND,
        parent_call_sid=room,
        leg_role=LEG_ROLE,
    )


def _other_legs(session: Session, room: str, but: str) -> list[str]:
    """The room's other legs that have not ended (their calls rows)."""
    rows = session.scalars(
        select(Call).where(
            Call.parent_call_sid == room, Call.leg_role == LEG_ROLE, Call.call_sid != but
        )
    )
    return [row.call_sid for row in rows if not row.status.is_final]


def _hang_up_later(call_sids: Sequence[str]) -> Callable[[], None] | None:
    if not call_sids:
        return None
    gateway = voice_config().gateway
    return lambda: _hang_up(gateway, call_sids)


def _hang_up(gateway: CallGateway, call_sids: Sequence[str]) -> None:
    for call_sid in call_sids:
        try:
            gateway.hang_up(call_sid)
        except GatewayError as error:  # gone already (20404) or Twilio down: logged
            log.info("callback: could not hang up %s: %s", call_sid, error)


def _move(
    session: Session, staff_id: int, room: str, from_states: set[S], to: S, why: str, now: datetime
) -> None:
    conferences.move_call_taker(
        session=session,
        staff_id=staff_id,
        call_sid=room,
        from_states=frozenset(from_states),
        to_state=to,
        actor=ACTOR,
        reason=why,
        now=now,
    )


def _after_dial_others(
    config: VoiceConfig, room: str, plan: Mapping[str, Any], results: Sequence[LegResult]
) -> None:
    """The citizen's leg placed: one attempt more; maybe placed (its create's answer was
    lost): never dialled again, its reports settle the attempt; refused because the number
    cannot be called: the task's note says so; not placed otherwise: due again soon. Not
    placed: the call-taker waiting in the room is hung up."""
    task_id = plan.get("task_id")
    if not isinstance(task_id, int):
        return
    citizen = next((result for result in results if result.label == CITIZEN), None)
    now = utcnow()
    alone: list[str] = []
    with config.sessions.begin() as session:
        if citizen is not None and citizen.call_sid:
            schedule.citizen_dialled(session, task_id=task_id, room=room, now=now)
        elif citizen is not None and citizen.maybe_placed:
            log.warning(
                "callback %s: the citizen's call may have been placed (%s); its reports "
                "settle the attempt",
                room,
                citizen.error,
            )
        else:
            log.warning(
                "callback %s: the citizen could not be dialled: %s",
                room,
                citizen.error if citizen is not None else "no citizen in the plan",
            )
            if citizen is not None and refused_for_good(citizen.code):
                why = f"Twilio {citizen.code}"
                schedule.citizen_uncallable(session, task_id=task_id, room=room, now=now, why=why)
            else:
                schedule.host_missed(session, task_id=task_id, room=room, now=now)
            alone = _other_legs(session, room, "")
    _hang_up(config.gateway, alone)


# -- the worker's watch over lost status callbacks ------------------------------------------


def watch(config: VoiceConfig, *, now: datetime) -> int:
    """Settle what lost status callbacks left; how many rooms were given up.

    An attempt whose watch (``CALL_WATCH``) ran out is settled on its task
    (``tickets.callback_calls.settle_lost_attempts``); a call-taker rung for a callback
    with no report for longer than the ring timeout and a grace (as routing's sweep takes
    its own rings) is given up: the room decides "nobody" (a late answer dials nobody),
    they are available again, the task is due again soon, nothing counted."""
    limit = now - timedelta(seconds=config.ring_timeout_seconds) - LOST_CALLBACK_GRACE
    with config.sessions.begin() as session:
        lost = schedule.settle_lost_attempts(session, now=now)
    with config.sessions.begin() as session:
        stuck = conferences.rooms_ringing_since(session=session, before=limit)
    rooms = dict.fromkeys([*lost, *(room for room in stuck if room.startswith(ROOM_PREFIX))])
    given_up = 0
    for room in rooms:
        with config.sessions.begin() as session:  # one room at a time, as a webhook would
            given_up += _give_up_ring(session, room, now)
    return given_up


def _give_up_ring(session: Session, room: str, now: datetime) -> bool:
    """The room's host never reported an answer: "nobody" is its decision (unless the
    host answered), a call-taker still ringing for it is available, its task (while this
    attempt holds it) due again soon. In the order a webhook takes them: the decision,
    the call-taker, the task."""
    plan = session.scalar(select(CallEvent).where(CallEvent.dedupe_key == CALLBACK.plan_key(room)))
    if plan is None:
        return False
    task_id, host_id = plan.params.get("task_id"), plan.params.get("staff_id")
    decided_now = record_event(
        session=session,
        kind=CALLBACK.host_missed,
        call_sid=room,
        params={"host_call_sid": None, "host_status": "lost"},
        dedupe_key=CALLBACK.decision_key(room),
        received_at=now,
    )
    if not decided_now:
        decision = session.scalar(
            select(CallEvent.kind).where(CallEvent.dedupe_key == CALLBACK.decision_key(room))
        )
        if decision == CALLBACK.dial_others:
            return False  # answered: their own leg's reports move them
    if isinstance(host_id, int):
        _move(session, host_id, room, {S.RINGING}, S.AVAILABLE, RING_GIVEN_UP, now)
    if isinstance(task_id, int):
        schedule.host_missed(session, task_id=task_id, room=room, now=now)
    log.warning("callback %s: no report of the call-taker's ring; given up", room)
    return True


CALLBACK = HostFirst(
    leg_role=LEG_ROLE,
    resolve=_citizen_address,
    on_report=_on_report,
    after_dial_others=_after_dial_others,
    host_ring_seconds=lambda config: config.ring_timeout_seconds,
    host_may_be_placed=True,  # a lost create's answer: the ring's reports decide
)
