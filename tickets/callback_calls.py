"""Calling back the citizens of the callback list: when, who places it, and what came of it.

An open callback task (``tickets.callbacks``) with a number to call is called back by the
worker (``ivr.callback_calls`` places the call: a free call-taker first, then the citizen
into their room). The task row is the truth, as for surveys:

- **planned**: ``next_attempt_at`` is when it is due. A new task (``next_attempt_at``
  None, no attempt yet) is due at the first moment inside calling hours, now or later
  (the survey's calling hours: ``tickets.survey_schedule``); after an attempt the citizen
  did not answer, at the earliest calling moment at least ``min_gap`` (default 2 h) after
  that attempt was placed (``last_attempt_at``);
- **claimed**: a worker (or a call-taker's "Call back now") holds ``lease_owner`` until
  ``lease_until``: the claim is a conditional UPDATE (SQLite) or ``FOR UPDATE SKIP
  LOCKED`` (PostgreSQL), so two workers never place the same callback. A claim forgets
  the previous attempt's room (``last_room``), so a late report of that room changes
  nothing. Once the call-taker is rung the lease covers the attempt (``CALL_WATCH``,
  ``last_room`` set); a claim whose lease runs out before that (a worker died) is due again;
- **an attempt**: counted (``attempts`` + 1) when the citizen is dialled, once per room,
  whichever comes first: the dial recorded, or a report of the citizen's leg. Nobody free,
  the call-taker not answering or the call not placed are not counted: the task is due
  again in ``RETRY_SOON``;
- **lost**: an attempt whose watch runs out without an outcome (a status callback lost, a
  create whose answer was lost and never placed): :func:`settle_lost_attempts` takes the
  citizen as not answering when they were dialled (planned like a survey), else due again
  soon, nothing counted. A report of that room arriving later changes nothing (a citizen
  who did talk to the call-taker is theirs to mark done on the callback list);
- **reached**: the citizen answered (``reached_at``): nothing calls them again by itself;
  what came of it is the call-taker's to record (``complete_task`` from the callback
  list), as before;
- **not reached**: after the last attempt (``SurveyRules.attempts``, default 3) the task
  stays open with the note "not reached after N attempts", for a person to decide; no SMS;
- **the number cannot be called**: the provider refused the citizen's number for good
  (invalid, not callable from here): the task stays open with a note that says so
  (:data:`CANNOT_CALL`), not counted, for a person to decide. A task with a note is never
  planned again by itself (a person's "call back now" still may).

A task marked done is never claimed, whatever its columns say. Service functions take the
session and never commit.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from tickets import survey_schedule
from tickets.events import record_event
from tickets.models import CallbackStatus, CallbackTask, CallEvent
from tickets.surveys import SurveyPlan

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # a claim, until the call-taker is rung
CALL_WATCH = timedelta(minutes=10)  # an attempt under way, until its outcome is known
RETRY_SOON = timedelta(minutes=2)  # nobody free, the call-taker missed it, not placed
NOT_REACHED = "not reached after {attempts} attempts"
CANNOT_CALL = "the number cannot be called ({why})"


def not_reached_note(attempts: int) -> str:
    return NOT_REACHED.format(attempts=attempts)


# -- planning ------------------------------------------------------------------------------


def _unplanned() -> Any:
    """Open tasks with a number, nothing due, no attempt under way, not reached, no note
    (a note is a person's to act on: "not reached after N", "cannot be called"); so a task
    whose attempts are spent only until its note says so."""
    return and_(
        CallbackTask.status == CallbackStatus.OPEN,
        CallbackTask.caller_number.is_not(None),
        CallbackTask.next_attempt_at.is_(None),
        CallbackTask.lease_owner.is_(None),
        CallbackTask.reached_at.is_(None),
        CallbackTask.note == "",
    )


def plan_open_tasks(session: Session, *, now: datetime, plan: SurveyPlan) -> int:
    """Give every unplanned open task its next attempt (or its "not reached" note); how
    many were planned."""
    rules, calendar = plan.rules, plan.calendar
    planned = 0
    tasks = session.scalars(
        select(CallbackTask).where(_unplanned()).order_by(CallbackTask.id)
    ).all()
    for task in tasks:
        if task.attempts < 1:
            due: datetime | None = survey_schedule.next_calling_moment(now, rules, calendar)
        else:
            last = task.last_attempt_at or now
            due = survey_schedule.next_attempt_at(last, task.attempts, rules, calendar)
        changed = _conditional(
            session,
            task.id,
            _unplanned(),
            {"next_attempt_at": due}
            if due is not None
            else {"note": not_reached_note(task.attempts)},
        )
        if changed and due is None:
            log.info("callback task %s: not reached after %d attempts", task.id, task.attempts)
            record_event(
                session=session,
                kind="callback:not-reached",
                call_sid=task.call_sid,
                params={"attempts": task.attempts},
                dedupe_key=f"callback:not-reached:{task.id}:{task.attempts}",
            )
        planned += changed and due is not None
    return planned


# -- claiming ------------------------------------------------------------------------------


def _claimable(now: datetime) -> Any:
    """Open, with a number, and not held: no lease, or one that ran out (never reached)."""
    return and_(
        CallbackTask.status == CallbackStatus.OPEN,
        CallbackTask.caller_number.is_not(None),
        CallbackTask.reached_at.is_(None),
        or_(
            CallbackTask.lease_owner.is_(None),
            CallbackTask.lease_until <= now,
        ),
    )


def _due(now: datetime) -> Any:
    return and_(_claimable(now), CallbackTask.next_attempt_at <= now)


def claim_due(
    session: Session, *, now: datetime, owner: str, limit: int, plan: SurveyPlan
) -> list[int]:
    """Claim up to ``limit`` due tasks for ``owner`` (earliest due first); outside calling
    hours the due ones are moved to the next opening instead. The caller commits."""
    if not survey_schedule.is_inside(now, plan.rules, plan.calendar):
        opening = survey_schedule.next_calling_moment(now, plan.rules, plan.calendar)
        session.execute(
            update(CallbackTask)
            .where(_due(now))
            .values(next_attempt_at=opening)
            .execution_options(synchronize_session=False)
        )
        return []
    if limit < 1:
        return []
    picked = (
        select(CallbackTask.id)
        .where(_due(now))
        .order_by(CallbackTask.next_attempt_at, CallbackTask.queued_at, CallbackTask.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Lock first (rows another worker is claiming are skipped), then update; the
        # UPDATE repeats the condition, so a row claimed and committed since is left.
        chosen = list(session.scalars(picked.with_for_update(skip_locked=True)))
        if not chosen:
            return []
        targets: Any = CallbackTask.id.in_(chosen)
    else:
        targets = CallbackTask.id.in_(picked.scalar_subquery())  # SQLite: one atomic UPDATE
    claimed = session.execute(
        update(CallbackTask)
        .where(targets, _due(now))
        .values(lease_owner=owner, lease_until=now + LEASE, last_room=None)
        .returning(CallbackTask.id, CallbackTask.next_attempt_at)
        .execution_options(synchronize_session=False)
    ).all()
    return [task_id for task_id, _ in sorted(claimed, key=lambda row: (row[1] or now, row[0]))]


def claim_now(session: Session, *, task_id: int, now: datetime, owner: str) -> bool:
    """A person's "call back now": claim this task whenever it is due (also after its
    attempts are spent, or after the citizen was reached once); False when it is done,
    has no number, or an attempt is under way."""
    held = and_(
        CallbackTask.status == CallbackStatus.OPEN,
        CallbackTask.caller_number.is_not(None),
        or_(CallbackTask.lease_owner.is_(None), CallbackTask.lease_until <= now),
    )
    claim = {"lease_owner": owner, "lease_until": now + LEASE, "last_room": None}
    return _conditional(session, task_id, held, claim)


# -- an attempt ----------------------------------------------------------------------------


def attempt_started(
    session: Session, *, task_id: int, owner: str, room: str, now: datetime
) -> bool:
    """The call-taker is rung into ``room``: the lease covers the attempt."""
    return _conditional(
        session,
        task_id,
        CallbackTask.lease_owner == owner,
        {"last_room": room, "last_attempt_at": now, "lease_until": now + CALL_WATCH},
    )


def release(session: Session, *, task_id: int, owner: str, now: datetime, why: str) -> bool:
    """Nothing was tried (nobody free, the call not placed): due again soon, not counted."""
    changed = _conditional(
        session,
        task_id,
        CallbackTask.lease_owner == owner,
        {"lease_owner": None, "lease_until": None, "next_attempt_at": now + RETRY_SOON},
    )
    if changed:
        log.info("callback task %s: not placed (%s); due again soon", task_id, why)
    return changed


def _of_room(room: str) -> Any:
    """The task whose attempt under way is ``room`` (not reached since)."""
    return and_(
        CallbackTask.last_room == room,
        CallbackTask.status == CallbackStatus.OPEN,
        CallbackTask.lease_owner.is_not(None),
    )


def host_missed(session: Session, *, task_id: int, room: str, now: datetime) -> bool:
    """The call-taker did not answer (or the citizen could not be dialled): nothing
    counted, due again soon."""
    return _conditional(
        session,
        task_id,
        _of_room(room),
        {"lease_owner": None, "lease_until": None, "next_attempt_at": now + RETRY_SOON},
    )


def citizen_dialled(session: Session, *, task_id: int, room: str, now: datetime) -> bool:
    """The citizen's phone rings: one attempt more, once per room (its event's key), from
    the dial or from the first report of their leg, whichever comes first."""
    task = session.get(CallbackTask, task_id)
    if task is None or not record_event(
        session=session,
        kind="callback:dialled",
        call_sid=task.call_sid,
        params={"room": room},
        dedupe_key=f"callback:dialled:{room}",
        received_at=now,
    ):
        return False
    return _conditional(session, task_id, _of_room(room), {"attempts": CallbackTask.attempts + 1})


def citizen_reached(session: Session, *, task_id: int, room: str, now: datetime) -> bool:
    """The citizen answered: never called again; the call-taker records the outcome."""
    changed = _conditional(
        session,
        task_id,
        _of_room(room),
        {"reached_at": now, "lease_owner": None, "lease_until": None, "next_attempt_at": None},
    )
    if changed:
        _event(session, task_id, "callback:reached", room, now)
    return changed


def citizen_missed(session: Session, *, task_id: int, room: str, now: datetime) -> bool:
    """The citizen did not answer (no answer, busy, failed): a failed attempt. The next
    one is planned by :func:`plan_open_tasks` (or the task is left with its note)."""
    changed = _conditional(
        session,
        task_id,
        _of_room(room),
        {"lease_owner": None, "lease_until": None, "next_attempt_at": None},
    )
    if changed:
        _event(session, task_id, "callback:not-answered", room, now)
    return changed


def citizen_uncallable(
    session: Session, *, task_id: int, room: str, now: datetime, why: str
) -> bool:
    """The provider refused the citizen's number for good (``why``: e.g. "Twilio 21211"):
    not counted (nothing rang), never planned again; the note says so, for a person."""
    changed = _conditional(
        session,
        task_id,
        _of_room(room),
        {
            "lease_owner": None,
            "lease_until": None,
            "next_attempt_at": None,
            "note": CANNOT_CALL.format(why=why),
        },
    )
    if changed:
        log.warning("callback task %s: the number cannot be called (%s)", task_id, why)
        _event(session, task_id, "callback:cannot-call", room, now)
    return changed


def settle_lost_attempts(session: Session, *, now: datetime) -> list[str]:
    """Attempts under way whose watch ran out with no outcome (a status callback lost, a
    create that may have been placed and was not): a citizen dialled in it did not answer
    (the next attempt is planned like a survey's), else the task is due again soon,
    nothing counted. The rooms settled."""
    lost = session.execute(
        select(CallbackTask.id, CallbackTask.last_room).where(
            CallbackTask.status == CallbackStatus.OPEN,
            CallbackTask.lease_owner.is_not(None),
            CallbackTask.lease_until <= now,
            CallbackTask.last_room.is_not(None),
            CallbackTask.reached_at.is_(None),
        )
    ).all()
    settled = []
    for task_id, room in lost:
        dialled = session.scalar(
            select(CallEvent.id).where(CallEvent.dedupe_key == f"callback:dialled:{room}")
        )
        still = and_(_of_room(room), CallbackTask.lease_until <= now)
        cleared = {"lease_owner": None, "lease_until": None}
        due = None if dialled is not None else now + RETRY_SOON
        if _conditional(session, task_id, still, {**cleared, "next_attempt_at": due}):
            log.warning(
                "callback task %s: no outcome for %s; %s",
                task_id,
                room,
                "taken as not answered" if dialled is not None else "due again soon",
            )
            _event(session, task_id, "callback:lost", room, now)
            settled.append(room)
    return settled


def _event(session: Session, task_id: int, kind: str, room: str, now: datetime) -> None:
    task = session.get(CallbackTask, task_id)
    if task is not None:
        record_event(
            session=session,
            kind=kind,
            call_sid=task.call_sid,
            params={"room": room, "attempts": task.attempts},
            dedupe_key=f"{kind}:{room}",
            received_at=now,
        )


def _conditional(session: Session, task_id: int, condition: Any, values: dict[str, Any]) -> bool:
    changed = session.execute(
        update(CallbackTask)
        .where(CallbackTask.id == task_id, condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    loaded = session.identity_map.get(session.identity_key(CallbackTask, task_id))
    if loaded is not None:
        session.expire(loaded)
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def unclaim(session: Session, *, task_id: int, owner: str) -> bool:
    """Give a claim back untouched (a person's "call back now" that could not ring them)."""
    return _conditional(
        session,
        task_id,
        CallbackTask.lease_owner == owner,
        {"lease_owner": None, "lease_until": None},
    )
