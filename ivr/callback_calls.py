"""Calling a citizen back: a free call-taker first, then the citizen into their room.

A callback is a host-first room of ``ivr.order_conference`` (:data:`CALLBACK`): the room
``callback-<task id>-<unix time>`` is new, the call-taker (the host) is dialled first, and
the citizen is dialled into it, exactly once, when the call-taker's leg reports that it was
answered (the room's one decision event). The task's schedule, claims and attempts are
``tickets.callback_calls``'; this module places the call and follows its legs:

1. :func:`place` (the worker's :func:`sweep`, or :func:`call_now` from the console) takes a
   task claimed by ``owner``, picks the call-taker (a speaker of the task's language
   first, then the longest idle, as routing does; or the call-taker who pressed the
   button), moves them available → ringing *for the room* (``tickets.staff.
   ring_if_available``: routing does not ring them for the queue meanwhile) and records
   the attempt's room on the task, in one transaction; then it dials them;
2. the call-taker answers (``in-progress``): they are on the call, and the citizen (the
   task's number) is dialled from the hotline number; the attempt is counted;
3. the call-taker does not answer (no-answer, busy, failed): they are marked away as after
   a missed ring (``routing.rings.AWAY_AFTER``), nobody else is dialled, and the task is
   due again in a couple of minutes, nothing counted;
4. the citizen answers: the task is reached (never called again; the call-taker records
   the outcome on the callback list as before); the citizen's leg ends no-answer, busy or
   failed: a failed attempt, planned again like a survey's;
5. the call-taker's leg ends after they answered: they go to wrap-up.

The call-taker hears whom they are calling before they join the room (``spoken``: the
task, why, the number's last four digits) and sees it: their ringing state carries the
reason ("calling back 138****0001, hung up while waiting, task 12") and the callback list
shows the task as being called, with whom.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.config import VoiceConfig, voice_config
from ivr.gateway import GatewayError
from ivr.order_conference import (
    UNANSWERED,
    AlreadyStarted,
    HostFirst,
    Leg,
    LegResult,
    PartyKind,
    Report,
    StaffUnreachable,
    start_room,
)
from ivr.routing_view import routing_taker, target_for
from routing.assignment import first_free_taker
from routing.rings import AWAY_AFTER, RingResult
from tickets import callback_calls as schedule
from tickets import conferences, staff
from tickets.db import utcnow
from tickets.models import Call, CallbackSource, CallbackStatus, CallbackTask, CallStatus
from tickets.models import CallTakerState as S
from tickets.phones import mask_number
from tickets.surveys import SurveyPlan

log = logging.getLogger(__name__)

LEG_ROLE = "callback"
CITIZEN = "citizen"  # the citizen's leg label
ACTOR = "system:callback"
PICKS = 5  # call-takers tried when the chosen one was taken meanwhile
SOURCES = {
    CallbackSource.QUEUE_REQUEST: "asked for a callback in the queue",
    CallbackSource.ABANDONED: "hung up while waiting",
}
RING_RESULTS = {
    CallStatus.NO_ANSWER: RingResult.NO_ANSWER,
    CallStatus.BUSY: RingResult.BUSY,
    CallStatus.FAILED: RingResult.FAILED,
    CallStatus.CANCELED: RingResult.FAILED,
}


class CannotCall(Exception):
    """The task cannot be called now (done, no number, being called); the message says why."""


class _ClaimLost(Exception):
    pass


class NotAvailable(Exception):
    """The call-taker who would host the callback is not available."""


@dataclass(frozen=True, slots=True)
class Placed:
    task_id: int
    result: str  # host-rung, no-call-taker, host-unreachable, not-claimed
    room: str | None = None
    staff_id: int | None = None


@dataclass
class SweepCounts:
    planned: int = 0
    claimed: int = 0
    placed: list[Placed] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        rung = sum(1 for placed in self.placed if placed.result == "host-rung")
        return {"planned": self.planned, "claimed": self.claimed, "rung": rung}


def room_name(task_id: int, at: datetime) -> str:
    return f"callback-{task_id}-{int(at.timestamp())}"


SPOKEN_SOURCES = {
    CallbackSource.QUEUE_REQUEST: "排队时申请回电",
    CallbackSource.ABANDONED: "排队时挂断",
}


def spoken_announcement(task: CallbackTask) -> str:
    """What the call-taker hears on answering, before the citizen is dialled (Mandarin;
    only the number's last four digits)."""
    tail = (task.caller_number or "")[-4:]
    return (
        f"12345回拨，任务{task.id}，{SPOKEN_SOURCES.get(task.source, '')}的市民，"
        f"号码尾号{' '.join(tail)}。正在为您接通。"
    )


def announcement(task: CallbackTask) -> str:
    """What the call-taker is told about whom they call back (masked number, why)."""
    number = mask_number(task.caller_number) if task.caller_number else "no number"
    return f"calling back {number}, {SOURCES.get(task.source, task.source)}, task {task.id}"


# -- the worker ------------------------------------------------------------------------------


def sweep(
    config: VoiceConfig,
    plan: SurveyPlan,
    *,
    owner: str,
    now: datetime | None = None,
    limit: int = 20,
) -> SweepCounts:
    """Plan the open tasks, claim as many due ones as call-takers are free, place them."""
    now = now or utcnow()
    counts = SweepCounts()
    with config.sessions.begin() as session:
        counts.planned = schedule.plan_open_tasks(session, now=now, plan=plan)
    with config.sessions.begin() as session:
        free = len(staff.call_takers_for_routing(states=(S.AVAILABLE,), session=session, now=now))
        claimed = schedule.claim_due(
            session, now=now, owner=owner, limit=min(limit, free), plan=plan
        )
    counts.claimed = len(claimed)
    for task_id in claimed:
        counts.placed.append(place(config, task_id, owner=owner, now=now))
    return counts


def call_now(
    config: VoiceConfig, task_id: int, *, staff_id: int, now: datetime | None = None
) -> Placed:
    """A call-taker's "call back now": they host it, at once. ``NotAvailable`` unless they
    are available; ``CannotCall`` when the task is done, has no number or is being called."""
    now = now or utcnow()
    owner = staff.staff_actor(staff_id)
    with config.sessions.begin() as session:
        free = staff.call_takers_for_routing(states=(S.AVAILABLE,), session=session, now=now)
        if not any(row.staff_id == staff_id for row in free):
            raise NotAvailable("set yourself available to call a citizen back")
        if not schedule.claim_now(session, task_id=task_id, now=now, owner=owner):
            raise CannotCall(_why_not(session, task_id))
    placed = place(config, task_id, owner=owner, now=now, staff_id=staff_id)
    if placed.result == "no-call-taker":
        raise NotAvailable("you were taken by another call meanwhile")
    if placed.result == "host-unreachable":
        raise CannotCall("your phone could not be called; the callback is due again soon")
    return placed


def _why_not(session: Session, task_id: int) -> str:
    task = session.get(CallbackTask, task_id)
    if task is None:
        return "there is no such callback task"
    if task.status is not CallbackStatus.OPEN:
        return "this callback was already marked done"
    if not task.caller_number:
        return "there is no number to call this citizen back on"
    return "this citizen is being called back now"


def place(
    config: VoiceConfig,
    task_id: int,
    *,
    owner: str,
    now: datetime | None = None,
    staff_id: int | None = None,
) -> Placed:
    """Place one callback for a task ``owner`` claimed: ring the call-taker (``staff_id``,
    or the best free one) as the host of a new room. The citizen is dialled when they
    answer (:func:`_on_report`)."""
    now = now or utcnow()
    room = room_name(task_id, now)
    with config.sessions() as session:
        task = session.get(CallbackTask, task_id)
        if task is None or task.lease_owner != owner or task.status is not CallbackStatus.OPEN:
            return Placed(task_id, "not-claimed")
        language, source = task.language, task.source
        told, spoken = announcement(task), spoken_announcement(task)
        masked = mask_number(task.caller_number) if task.caller_number else ""
    host = _ring_host(config, task_id, owner, room, (told, spoken), language, staff_id, now)
    if host is None:
        with config.sessions.begin() as session:
            if staff_id is None:
                schedule.release(session, task_id=task_id, owner=owner, now=now, why="nobody free")
            else:  # a person's button: their schedule stays as it was
                schedule.unclaim(session, task_id=task_id, owner=owner)
        return Placed(task_id, "no-call-taker", room)
    host_id, leg = host
    plan = {
        "task_id": task_id,
        "room": room,
        "staff_id": host_id,
        "by": owner,
        "source": source.value,
        "calling": masked,
        "legs": [
            {"label": leg.label, "kind": PartyKind.STAFF.value, "name": leg.name},
            {"label": CITIZEN, "kind": PartyKind.CITIZEN.value, "name": "the citizen"},
        ],
    }
    try:
        start_room(config, CALLBACK, room, plan, leg)
    except (AlreadyStarted, StaffUnreachable) as error:
        log.warning("callback %s: the call-taker could not be called: %s", room, error)
        with config.sessions.begin() as session:
            conferences.move_call_taker(
                session=session,
                staff_id=host_id,
                call_sid=room,
                from_states=frozenset({S.RINGING}),
                to_state=S.AVAILABLE,
                actor=ACTOR,
                reason="the callback could not be placed",
                now=now,
            )
            schedule.host_missed(session, task_id=task_id, room=room, now=now)
        return Placed(task_id, "host-unreachable", room, host_id)
    return Placed(task_id, "host-rung", room, host_id)


def _ring_host(
    config: VoiceConfig,
    task_id: int,
    owner: str,
    room: str,
    announcements: tuple[str, str],
    language: str,
    staff_id: int | None,
    now: datetime,
) -> tuple[int, Leg] | None:
    """Claim the call-taker (available → ringing for ``room``) and record the attempt's
    room on the task, in one transaction; their id and leg, or None: nobody could be.
    ``announcements``: what their state says, and what they hear on answering."""
    told, spoken = announcements
    tried: set[int] = set()
    for _ in range(1 if staff_id is not None else PICKS):
        with config.sessions() as session:
            free = staff.call_takers_for_routing(states=(S.AVAILABLE,), session=session, now=now)
            session.commit()
        candidates = [row for row in free if row.staff_id not in tried]
        if staff_id is not None:
            candidates = [row for row in candidates if row.staff_id == staff_id]
        chosen = first_free_taker([routing_taker(row) for row in candidates], language)
        if chosen is None:
            return None
        tried.add(chosen.staff_id)
        row = next(row for row in candidates if row.staff_id == chosen.staff_id)
        target = target_for(row.staff_id, row.client_identity, row.phone_number, row.display_name)
        if target is None:
            continue  # no phone and no softphone
        try:
            with config.sessions.begin() as session:
                if not staff.ring_if_available(
                    session=session,
                    staff_id=row.staff_id,
                    call_sid=room,
                    actor=ACTOR,
                    reason=told,
                    now=now,
                ):
                    continue
                if not schedule.attempt_started(
                    session, task_id=task_id, owner=owner, room=room, now=now
                ):
                    raise _ClaimLost(task_id)  # its lease ran out: nobody rings (rolled back)
        except _ClaimLost:
            return None
        leg = Leg(
            f"staff-{row.staff_id}",
            PartyKind.STAFF,
            row.display_name or "",
            target.address,
            announcement=spoken,
        )
        return row.staff_id, leg
    return None


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
    if report.is_host:
        if status is CallStatus.IN_PROGRESS and report.answered:
            _move(session, host_id, room, {S.RINGING}, S.ON_CALL, "answered the callback", now)
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
    if status in (CallStatus.IN_PROGRESS, CallStatus.COMPLETED):
        schedule.citizen_reached(session, task_id=task_id, room=room, now=now)
    elif status in UNANSWERED:
        schedule.citizen_missed(session, task_id=task_id, room=room, now=now)
        # Nobody answered: the call-taker is not left waiting alone in the room.
        return _hang_up_later(_other_legs(session, room, report.event.call_sid))
    return None


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
    config = voice_config()

    def hang_up() -> None:
        for call_sid in call_sids:
            try:
                config.gateway.hang_up(call_sid)
            except GatewayError as error:  # gone already (20404) or Twilio down: logged
                log.info("callback: could not hang up %s: %s", call_sid, error)

    return hang_up


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
    """The citizen's leg placed: one attempt more; not placed: due again soon."""
    task_id = plan.get("task_id")
    if not isinstance(task_id, int):
        return
    citizen = next((result for result in results if result.label == CITIZEN), None)
    now = utcnow()
    with config.sessions.begin() as session:
        if citizen is not None and citizen.call_sid:
            schedule.citizen_dialled(session, task_id=task_id, room=room, now=now)
        else:
            log.warning("callback %s: the citizen could not be dialled", room)
            schedule.host_missed(session, task_id=task_id, room=room, now=now)


CALLBACK = HostFirst(
    leg_role=LEG_ROLE,
    resolve=_citizen_address,
    on_report=_on_report,
    after_dial_others=_after_dial_others,
    host_ring_seconds=lambda config: config.ring_timeout_seconds,
)
