"""Each citizen call's conference state, stored as a versioned row (``conference_rooms``).

The state itself is the conference machine's JSON document (``ConferenceState.to_dict``);
this module does not read it, it only keeps it. Saves are optimistic: ``save_room`` writes
only when nobody saved since the room was loaded (``version``), so two web nodes applying
callbacks to the same call never overwrite each other; the loser reloads and re-applies.
Service functions take the session and never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from routing.queue_order import FailedRing
from tickets.db import utcnow
from tickets.models import CallTaker, CallTakerState, ConferenceRoom, Staff
from tickets.staff import DEFAULT_WRAP_UP_SECONDS, StaffError, change_state

log = logging.getLogger(__name__)

WAITING = "waiting"  # callflows.conference_roster.Phase.WAITING (tickets may not import it)
_ON_A_CALL = frozenset({CallTakerState.RINGING, CallTakerState.ON_CALL, CallTakerState.WRAP_UP})


def find_room(*, session: Session, call_sid: str) -> ConferenceRoom | None:
    return session.scalar(
        select(ConferenceRoom)
        .where(ConferenceRoom.call_sid == call_sid)
        .execution_options(populate_existing=True)
    )


def load_room(
    *, session: Session, call_sid: str, initial: Callable[[], dict[str, Any]]
) -> ConferenceRoom:
    """The call's room, created from ``initial()`` when it has none yet (race-safe)."""
    room = find_room(session=session, call_sid=call_sid)
    if room is not None:
        return room
    state = initial()
    now = utcnow()
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    session.execute(
        module.insert(ConferenceRoom)
        .values(
            call_sid=call_sid,
            conference_sid=state.get("conference_sid") or None,
            phase=state["phase"],
            state=state,
            failed_rings=[],
            version=1,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["call_sid"])
    )
    room = find_room(session=session, call_sid=call_sid)
    assert room is not None
    return room


def save_room(
    room: ConferenceRoom,
    state: dict[str, Any],
    *,
    session: Session,
    failed_rings: list[dict[str, Any]] | None = None,
) -> bool:
    """Store a new state if nobody saved since ``room`` was loaded; False: reload, retry."""
    values: dict[str, Any] = {
        "state": state,
        "phase": state["phase"],
        "conference_sid": state.get("conference_sid") or None,
        "version": room.version + 1,
        "updated_at": utcnow(),
    }
    if failed_rings is not None:
        values["failed_rings"] = failed_rings
    result = session.execute(
        update(ConferenceRoom)
        .where(ConferenceRoom.id == room.id, ConferenceRoom.version == room.version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def failed_rings_of(room: ConferenceRoom | None) -> tuple[FailedRing, ...]:
    if room is None:
        return ()
    return tuple(
        FailedRing(int(ring["staff_id"]), datetime.fromisoformat(ring["at"]))
        for ring in room.failed_rings or ()
    )


def with_failed_ring(room: ConferenceRoom, staff_id: int, at: datetime) -> list[dict[str, Any]]:
    return [*(room.failed_rings or ()), {"staff_id": staff_id, "at": at.isoformat()}]


def rooms_ringing_since(*, session: Session, before: datetime) -> list[str]:
    """Calls whose call-taker has been ringing since before ``before`` (a lost callback)."""
    return list(
        session.scalars(
            select(CallTaker.call_sid).where(
                CallTaker.state == CallTakerState.RINGING,
                CallTaker.state_changed_at < before,
                CallTaker.call_sid.is_not(None),
            )
        )
    )


def claim_available(*, session: Session, staff_id: int) -> bool:
    """Take the write lock on a call-taker who is available, before moving them.

    A no-op UPDATE that matches only an available call-taker: on PostgreSQL it locks the
    row and re-reads it after a concurrent writer commits; on SQLite it takes the database's
    write lock. Either way, of two dispatchers only one finds them available.
    """
    result = session.execute(
        update(CallTaker)
        .where(CallTaker.staff_id == staff_id, CallTaker.state == CallTakerState.AVAILABLE)
        .values(state=CallTaker.state)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def move_call_taker(
    *,
    session: Session,
    staff_id: int,
    call_sid: str,
    from_states: frozenset[CallTakerState],
    to_state: CallTakerState,
    actor: str,
    reason: str = "",
    wrap_up_seconds: int = DEFAULT_WRAP_UP_SECONDS,
    now: datetime | None = None,
) -> CallTaker | None:
    """Move a call-taker who is in ``from_states`` *for this call* (a free one has no call).

    None when they are somewhere else by now (a late callback about an earlier ring), so a
    callback never drags a call-taker out of another call.
    """
    profile = session.scalars(
        select(CallTaker)
        .where(CallTaker.staff_id == staff_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if profile is None or profile.state not in from_states:
        return None
    if profile.state in _ON_A_CALL and profile.call_sid != call_sid:
        return None
    staff = session.get(Staff, staff_id)
    if staff is None:
        return None
    try:
        change_state(
            staff,
            to_state,
            session=session,
            actor=actor,
            reason=reason,
            call_sid=call_sid,
            wrap_up_seconds=wrap_up_seconds,
            now=now,
        )
    except StaffError as error:
        log.warning("call-taker %s stays %s: %s", staff_id, profile.state.value, error)
        return None
    return profile
