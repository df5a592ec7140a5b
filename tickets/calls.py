"""Service functions for the ``calls`` table. They take a session and never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from routing.queue_order import FailedRing, WaitingCaller
from tickets.callbacks import open_callback_task
from tickets.conferences import WAITING
from tickets.db import utcnow
from tickets.models import (
    Call,
    CallbackOfferOutcome,
    CallbackSource,
    CallDirection,
    CallEvent,
    CallStatus,
    CallTaker,
    CallTakerState,
    ConferenceRoom,
)
from tickets.phones import Caller

MAX_PATH = 500


def register_call(
    *,
    session: Session,
    call_sid: str,
    caller: Caller,
    to_number: str | None,
    status: CallStatus,
    direction: CallDirection = CallDirection.INBOUND,
    parent_call_sid: str | None = None,
    leg_role: str | None = None,
    at: datetime | None = None,
) -> None:
    """Create the call's row unless it exists (a retried first webhook)."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = (
        module.insert(Call)
        .values(
            call_sid=call_sid,
            direction=direction,
            caller_kind=caller.kind.value,
            from_number=caller.number,
            caller_identity=caller.identity,
            to_number=to_number,
            status=status,
            status_rank=status.rank,
            front_door_path="",
            created_at=at or utcnow(),
            parent_call_sid=parent_call_sid,
            leg_role=leg_role,
        )
        .on_conflict_do_nothing(index_elements=["call_sid"])
    )
    session.execute(statement)


CALLS = Call.__table__
_FRONT_DOOR_STEP = (
    update(CALLS)
    .where(CALLS.c.call_sid == bindparam("b_call_sid"))
    .values(
        front_door_path=func.substr(
            func.coalesce(CALLS.c.front_door_path, "") + ">" + bindparam("b_step"), 1, MAX_PATH
        ),
        language=func.coalesce(bindparam("b_language", type_=String), CALLS.c.language),
        intent=func.coalesce(bindparam("b_intent", type_=String), CALLS.c.intent),
        emergency_line=func.coalesce(bindparam("b_line", type_=String), CALLS.c.emergency_line),
        queued_at=func.coalesce(
            CALLS.c.queued_at, bindparam("b_queued_at", type_=CALLS.c.queued_at.type)
        ),
    )
)


def note_front_door(
    *,
    session: Session,
    call_sid: str,
    step: str,
    language: str | None = None,
    intent: str | None = None,
    emergency_line: str | None = None,
    enters_queue: bool = False,
    at: datetime | None = None,
) -> None:
    """Append a step to the call's front-door path and keep what the caller chose.

    One prebuilt UPDATE and no read. A caller who enters the queue keeps the time of
    their first entry (their place in line); ``at``: when the webhook arrived.
    """
    note_front_door_steps(
        session=session,
        steps=[front_door_step(call_sid, step, language, intent, emergency_line, enters_queue, at)],
    )


def front_door_step(
    call_sid: str,
    step: str,
    language: str | None = None,
    intent: str | None = None,
    emergency_line: str | None = None,
    enters_queue: bool = False,
    at: datetime | None = None,
) -> dict[str, object]:
    """The parameters of one ``note_front_door`` step, for ``note_front_door_steps``."""
    return {
        "b_call_sid": call_sid,
        "b_step": step,
        "b_language": language,
        "b_intent": intent,
        "b_line": emergency_line,
        "b_queued_at": (at or utcnow()) if enters_queue else None,
    }


def note_front_door_steps(*, session: Session, steps: list[dict[str, object]]) -> None:
    """Many front-door steps in one round trip (an executemany), applied in order."""
    if steps:
        session.connection().execute(_FRONT_DOOR_STEP, steps)


def record_call_status(
    *,
    session: Session,
    call_sid: str,
    status: CallStatus,
    at: datetime,
    duration_seconds: int | None = None,
) -> bool:
    """Move the call forward to ``status``; a late or repeated callback changes nothing.

    Returns True when the call moved.
    """
    values: dict[str, object] = {"status": status, "status_rank": status.rank}
    if status is CallStatus.IN_PROGRESS:
        values["answered_at"] = func.coalesce(Call.answered_at, at)
    if status.is_final:
        values["ended_at"] = at
        if duration_seconds is not None:
            values["duration_seconds"] = duration_seconds
    result = session.execute(
        update(Call)
        .where(Call.call_sid == call_sid, Call.status_rank < status.rank)
        .values(**values)
    )
    return bool(result.rowcount)


def leave_queue(*, session: Session, call_sid: str, at: datetime) -> None:
    call = find_call(session=session, call_sid=call_sid)
    if call is not None and is_hearing_callback_offer(call):
        # The hotline moved the caller out of their room to the offer; a call that ends
        # there (the final status came) was abandoned in the queue all the same.
        session.refresh(call, ["ended_at"])
        if call.ended_at is not None:
            call.callback_offer_outcome = CallbackOfferOutcome.HUNG_UP.value
            _abandon(session, call, at)
        return
    if call is None or call.queued_at is None or call.queue_left_at is not None:
        return
    # Twilio's time stamps are whole seconds; never let the leave precede the entry.
    call.queue_left_at = max(at, call.queued_at)
    call.queue_wait_seconds = int((call.queue_left_at - call.queued_at).total_seconds())


# The callers waiting for a call-taker: in the queue, not ended, and nobody rung or
# connected for them (their room, if any, is in the waiting phase).
_BUSY_TAKER = (
    select(CallTaker.staff_id)
    .where(
        CallTaker.call_sid == Call.call_sid,
        CallTaker.state.in_((CallTakerState.RINGING, CallTakerState.ON_CALL)),
    )
    .exists()
)
_WAITING = (
    select(Call.call_sid)
    .outerjoin(ConferenceRoom, ConferenceRoom.call_sid == Call.call_sid)
    .where(
        Call.queued_at.is_not(None),
        Call.queue_left_at.is_(None),
        Call.ended_at.is_(None),
        or_(ConferenceRoom.id.is_(None), ConferenceRoom.phase == WAITING),
        ~_BUSY_TAKER,
    )
)


_IS_EMERGENCY = func.coalesce(Call.emergency_line, "") != ""
# The statements of the queue are built once: building one costs more than running it,
# and every routing decision and every round of the wait room runs one.
_LIST_WAITING = _WAITING.add_columns(
    Call.language, Call.intent, Call.queued_at, Call.emergency_line, ConferenceRoom.failed_rings
)
_QUEUE_HEAD = _LIST_WAITING.order_by(_IS_EMERGENCY.desc(), Call.queued_at, Call.call_sid).limit(
    bindparam("b_first")
)
_MY_PLACE = _WAITING.add_columns(Call.queued_at, _IS_EMERGENCY).where(
    Call.call_sid == bindparam("b_call_sid")
)
_QUEUED_AT = bindparam("b_queued_at", type_=Call.queued_at.type)
_EARLIER = or_(
    Call.queued_at < _QUEUED_AT,
    and_(Call.queued_at == _QUEUED_AT, Call.call_sid < bindparam("b_call_sid")),
)
_AHEAD = {  # by whether the caller is an emergency: an emergency has only earlier
    # emergencies ahead; anyone else, every emergency and the earlier others
    True: select(func.count()).select_from(
        _WAITING.where(and_(_IS_EMERGENCY, _EARLIER)).subquery()
    ),
    False: select(func.count()).select_from(
        _WAITING.where(or_(_IS_EMERGENCY, _EARLIER)).subquery()
    ),
}


def list_waiting_callers(*, session: Session, first: int | None = None) -> list[WaitingCaller]:
    """The callers waiting for a call-taker (see ``_WAITING``); with ``first``, the
    first that many in routing's order (``routing.queue_order.queue_key``)."""
    if first is None:
        rows = session.connection().execute(_LIST_WAITING).all()
    else:
        rows = session.connection().execute(_QUEUE_HEAD, {"b_first": first}).all()
    return [
        WaitingCaller(
            call_sid=sid,
            language=language or "zh",
            intent=intent,
            queued_at=queued_at,
            is_emergency=bool(line),
            failed_rings=tuple(
                FailedRing(int(ring["staff_id"]), datetime.fromisoformat(ring["at"]))
                for ring in failed or ()
            ),
        )
        for sid, language, intent, queued_at, line, failed in rows
    ]


@dataclass(frozen=True)
class PlaceInLine:
    position: int  # 1: the next to be served
    queued_at: datetime


def place_in_line(*, session: Session, call_sid: str) -> PlaceInLine | None:
    """Where one caller stands in the queue; None when they are not waiting.

    Counted in the database (the wait room asks for every caller at every round, so
    reading the whole queue each time would cost the square of its length), with the key
    of routing's one order, ``routing.queue_order.queue_key``: emergency calls first, then
    ``queued_at``, then the call SID. ``tests/test_queue_place.py`` holds the two to the
    same answer.
    """
    connection = session.connection()
    mine = connection.execute(_MY_PLACE, {"b_call_sid": call_sid}).first()
    if mine is None:
        return None
    _sid, queued_at, is_emergency = mine
    ahead = connection.execute(
        _AHEAD[bool(is_emergency)], {"b_call_sid": call_sid, "b_queued_at": queued_at}
    ).scalar_one()
    return PlaceInLine(1 + int(ahead), queued_at)


def return_to_queue(*, session: Session, call_sid: str, at: datetime) -> None:
    """The caller is back in the queue (nobody left on their call): they keep their place."""
    call = find_call(session=session, call_sid=call_sid)
    if call is None or call.ended_at is not None:
        return
    call.queued_at = call.queued_at or at
    call.queue_left_at = None


def mark_abandoned(*, session: Session, call_sid: str, at: datetime) -> None:
    """The caller hung up before a call-taker answered: on the abandoned-call list."""
    call = find_call(session=session, call_sid=call_sid)
    if call is None or call.queued_at is None or call.queue_left_at is not None:
        return  # never queued (the emergency lane), a call-taker answered, or the hotline
        # itself took the caller out of the room (the callback offer: see below)
    leave_queue(session=session, call_sid=call_sid, at=at)
    _abandon(session, call, at)


def _abandon(session: Session, call: Call, at: datetime) -> None:
    """On the abandoned-call list, which is the callback list: a task in their place."""
    call.abandoned_at = at
    open_callback_task(session=session, call=call, source=CallbackSource.ABANDONED, at=at)


# -- the queue's callback offer ---------------------------------------------------------------
# The wait room cannot gather keys, so the hotline redirects a waiting caller's call out of
# their room to the offer (once per call) and back. While they hear it they are out of the
# queue (``queue_left_at`` is the moment of the redirect, so nobody is rung for them) but
# not abandoned; ``callback_offer_outcome`` stays None until they answer or hang up.


def is_hearing_callback_offer(call: Call) -> bool:
    return call.callback_offered_at is not None and call.callback_offer_outcome is None


def start_callback_offer(*, session: Session, call_sid: str, at: datetime) -> bool:
    """Take a waiting caller out of the queue for the offer; False when they are not
    waiting any more or were offered before (one UPDATE: two wait rounds at once, one wins)."""
    result = session.execute(
        update(Call)
        .where(
            Call.call_sid == call_sid,
            Call.callback_offered_at.is_(None),
            Call.queued_at.is_not(None),
            Call.queue_left_at.is_(None),
            Call.ended_at.is_(None),
        )
        .values(callback_offered_at=at, queue_left_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def cancel_callback_offer(*, session: Session, call_sid: str) -> None:
    """The redirect to the offer failed: the caller is still in their room, still waiting."""
    call = find_call(session=session, call_sid=call_sid)
    if call is None or not is_hearing_callback_offer(call):
        return
    call.callback_offer_outcome = CallbackOfferOutcome.NOT_MADE.value
    call.queue_left_at = None


def answer_callback_offer(
    *, session: Session, call_sid: str, requested: bool, at: datetime
) -> Call | None:
    """The caller answered the offer: a callback task in their place (``requested``), or
    back in the queue with the place kept. None when there was no offer to answer (a
    retried webhook finds it answered)."""
    call = find_call(session=session, call_sid=call_sid)
    if call is None or not is_hearing_callback_offer(call):
        return None
    if requested:
        call.callback_offer_outcome = CallbackOfferOutcome.REQUESTED.value
        if call.queued_at is not None and call.queue_left_at is not None:
            call.queue_wait_seconds = int((call.queue_left_at - call.queued_at).total_seconds())
        open_callback_task(session=session, call=call, source=CallbackSource.QUEUE_REQUEST, at=at)
    else:
        call.callback_offer_outcome = CallbackOfferOutcome.STAYED.value
        return_to_queue(session=session, call_sid=call_sid, at=at)
    return call


def find_call(*, session: Session, call_sid: str) -> Call | None:
    return session.scalar(select(Call).where(Call.call_sid == call_sid))


def get_call(*, session: Session, call_sid: str) -> Call:
    call = find_call(session=session, call_sid=call_sid)
    if call is None:
        raise LookupError(f"no call {call_sid}")
    return call


def count_events(*, session: Session, call_sid: str, kind: str) -> int:
    """How many events of ``kind`` the call has (e.g. failed emergency dials)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(CallEvent)
            .where(CallEvent.call_sid == call_sid, CallEvent.kind == kind)
        )
        or 0
    )
