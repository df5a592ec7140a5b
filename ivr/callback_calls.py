"""Calling a citizen back: a free call-taker first, then the citizen into their room.

A callback is a host-first room of ``ivr.order_conference`` (:data:`CALLBACK`): the room
``callback-<task id>-<unix time>`` is new, the call-taker (the host) is dialled first, and
the citizen is dialled into it, exactly once, when the call-taker's leg reports that it was
answered (the room's one decision event). The task's schedule, claims and attempts are
``tickets.callback_calls``'; this module places the call, ``ivr.callback_legs`` follows
its legs (their reports, and the watch over reports that never come):

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

When Twilio or its callbacks fail (each attempt still rings its call-taker once and dials
its citizen at most once):

- a create whose answer is lost (a timeout, a 5xx: it may have been placed) is never
  repeated. The call-taker's: they stay ringing for the room and its status callbacks
  decide as usual (:data:`CALLBACK` waits for them: ``host_may_be_placed``); the
  citizen's: the attempt stays under watch and their leg's callbacks settle it. A leg
  first known by its callbacks gets its ``calls`` row then, so that it can be hung up;
- a create refused for good: the call-taker's because their phone number cannot be called
  (21211, 13224 ...: away, as routing marks an unreachable phone; any other refusal:
  available again), the task due again soon, nothing counted; the citizen's because their
  number cannot be called: the task keeps a note that says so, for a person, and is not
  called again by itself; any other refusal: due again soon, nothing counted. Either way
  the call-taker waiting in the room is hung up (their leg's end: wrap-up);
- status callbacks that never come: ``callback_legs.watch``, in the worker's sweep, gives up a ring
  with no report after the ring timeout and a grace, as routing's sweep does (the room
  decides "nobody", so a late answer dials nobody and is hung up; the call-taker is
  available), and settles an attempt whose watch (``CALL_WATCH``) ran out
  (``tickets.callback_calls.settle_lost_attempts``). A call-taker on the call is left to
  their own leg's report: the hotline never cuts a call it cannot see;
- retried or out-of-order callbacks: the room's one decision, the attempt's event key and
  the task's conditional updates make each count once.

The call-taker hears whom they are calling before they join the room (``spoken``: the
task, why, the number's last four digits) and sees it: their ringing state carries the
reason ("calling back 138****0001, hung up while waiting, task 12") and the callback list
shows the task as being called, with whom.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ivr.callback_legs import (
    ACTOR,
    CALLBACK,
    CITIZEN,
    ROOM_PREFIX,
    refused_for_good,
    watch,
)
from ivr.config import VoiceConfig
from ivr.order_conference import (
    AlreadyStarted,
    HostMaybePlaced,
    Leg,
    PartyKind,
    StaffUnreachable,
    start_room,
)
from ivr.routing_view import routing_taker, target_for
from routing.assignment import first_free_taker
from routing.rings import AWAY_AFTER, RingResult
from tickets import callback_calls as schedule
from tickets import conferences, staff
from tickets.db import utcnow
from tickets.models import (
    CallbackSource,
    CallbackStatus,
    CallbackTask,
)
from tickets.models import CallTakerState as S
from tickets.phones import mask_number
from tickets.surveys import SurveyPlan

log = logging.getLogger(__name__)

PICKS = 5  # call-takers tried when the chosen one was taken meanwhile
SOURCES = {
    CallbackSource.QUEUE_REQUEST: "asked for a callback in the queue",
    CallbackSource.ABANDONED: "hung up while waiting",
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
    result: str  # host-rung, host-maybe-rung, no-call-taker, host-unreachable, not-claimed
    room: str | None = None
    staff_id: int | None = None


@dataclass
class SweepCounts:
    planned: int = 0
    claimed: int = 0
    placed: list[Placed] = field(default_factory=list)
    settled: int = 0  # rooms given up by ``callback_legs.watch`` (lost status callbacks)

    def as_dict(self) -> dict[str, Any]:
        rung = sum(1 for placed in self.placed if placed.result == "host-rung")
        return {"planned": self.planned, "claimed": self.claimed, "rung": rung}


def room_name(task_id: int, at: datetime) -> str:
    return f"{ROOM_PREFIX}{task_id}-{int(at.timestamp())}"


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
    """Settle what lost callbacks left (``callback_legs.watch``), plan the open tasks, claim as many
    due ones as call-takers are free, place them."""
    now = now or utcnow()
    counts = SweepCounts(settled=watch(config, now=now))
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
    answer (``ivr.callback_legs``)."""
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
    except HostMaybePlaced as error:
        # Their phone may ring all the same: they stay ringing for the room, the task under
        # its watch; the ring's reports decide, or :func:`watch` gives the ring up.
        log.warning("callback %s: the call-taker's call may have been placed: %s", room, error)
        return Placed(task_id, "host-maybe-rung", room, host_id)
    except (AlreadyStarted, StaffUnreachable) as error:
        # Their phone number cannot be called: away, as routing marks an unreachable
        # phone (else every callback and every queue call would try it again); anything
        # else (the hotline's account or configuration) is not theirs: available.
        phone = isinstance(error, StaffUnreachable) and refused_for_good(error.code)
        log.warning(
            "callback %s: the call-taker%s could not be called: %s",
            room,
            "'s phone" if phone else "",
            error,
        )
        with config.sessions.begin() as session:
            conferences.move_call_taker(
                session=session,
                staff_id=host_id,
                call_sid=room,
                from_states=frozenset({S.RINGING}),
                to_state=S.AWAY if phone else S.AVAILABLE,
                actor=ACTOR,
                reason=(
                    AWAY_AFTER[RingResult.FAILED].value
                    if phone
                    else "the callback could not be placed"
                ),
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
