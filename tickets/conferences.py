"""Each citizen call's conference state, stored as a versioned row (``conference_rooms``).

The state itself is the conference machine's JSON document (``ConferenceState.to_dict``);
this module does not read it, it only keeps it. Saves are optimistic: ``save_room`` writes
only when nobody saved since the room was loaded (``version``), so two web nodes applying
callbacks to the same call never overwrite each other; the loser reloads and re-applies.
Service functions take the session and never commit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from routing.queue_order import FailedRing
from tickets.db import utcnow
from tickets.models import CallTaker, CallTakerState, ConferenceRoom
from tickets.staff import (
    DEFAULT_WRAP_UP_SECONDS,
    StaffError,
    change_locked_state,
    lock_call_taker,
)

log = logging.getLogger(__name__)

WAITING = "waiting"  # callflows.conference_roster.Phase.WAITING (tickets may not import it)
_ON_A_CALL = frozenset({CallTakerState.RINGING, CallTakerState.ON_CALL, CallTakerState.WRAP_UP})


def find_room(*, session: Session, call_sid: str) -> ConferenceRoom | None:
    return session.scalar(_FIND_ROOM, {"b_call_sid": call_sid})


def load_room(
    *, session: Session, call_sid: str, initial: Callable[[], dict[str, Any]]
) -> ConferenceRoom:
    """The call's room, created from ``initial()`` when it has none yet (race-safe)."""
    room = find_room(session=session, call_sid=call_sid)
    if room is not None:
        return room
    state = initial()
    now = utcnow()
    connection = session.connection()
    connection.execute(
        _insert_room(connection.dialect.name),
        {
            "b_call_sid": call_sid,
            "b_conference_sid": state.get("conference_sid") or None,
            "b_phase": state["phase"],
            "b_state": state,
            "b_failed_rings": [],
            "b_created_at": now,
            "b_updated_at": now,
        },
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
        "b_id": room.id,
        "b_seen": room.version,
        "b_state": state,
        "b_phase": state["phase"],
        "b_conference_sid": state.get("conference_sid") or None,
        "b_version": room.version + 1,
        "b_updated_at": utcnow(),
    }
    if failed_rings is None:
        statement = _SAVE_ROOM
    else:
        statement, values["b_failed_rings"] = _SAVE_ROOM_AND_RINGS, failed_rings
    return bool(session.connection().execute(statement, values).rowcount)


# The statements of every conference change, built once (building one costs more than
# running it, and save_room runs while the transaction holds SQLite's write lock).
_ROOMS = ConferenceRoom.__table__
_FIND_ROOM = (
    select(ConferenceRoom)
    .where(ConferenceRoom.call_sid == bindparam("b_call_sid"))
    .execution_options(populate_existing=True)
)
_SAVED = {
    "state": bindparam("b_state", type_=_ROOMS.c.state.type),
    "phase": bindparam("b_phase", type_=_ROOMS.c.phase.type),
    "conference_sid": bindparam("b_conference_sid", type_=_ROOMS.c.conference_sid.type),
    "version": bindparam("b_version", type_=_ROOMS.c.version.type),
    "updated_at": bindparam("b_updated_at", type_=_ROOMS.c.updated_at.type),
}
_SAVE_ROOM = (
    update(_ROOMS)
    .where(_ROOMS.c.id == bindparam("b_id"), _ROOMS.c.version == bindparam("b_seen"))
    .values(**_SAVED)
)
_SAVE_ROOM_AND_RINGS = _SAVE_ROOM.values(
    failed_rings=bindparam("b_failed_rings", type_=_ROOMS.c.failed_rings.type)
)


@functools.cache
def _insert_room(dialect: str) -> Insert:
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(_ROOMS)
        .values(
            call_sid=bindparam("b_call_sid"),
            conference_sid=bindparam("b_conference_sid", type_=_ROOMS.c.conference_sid.type),
            phase=bindparam("b_phase", type_=_ROOMS.c.phase.type),
            state=bindparam("b_state", type_=_ROOMS.c.state.type),
            failed_rings=bindparam("b_failed_rings", type_=_ROOMS.c.failed_rings.type),
            version=1,
            created_at=bindparam("b_created_at", type_=_ROOMS.c.created_at.type),
            updated_at=bindparam("b_updated_at", type_=_ROOMS.c.updated_at.type),
        )
        .on_conflict_do_nothing(index_elements=["call_sid"])
    )


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
    callback never drags a call-taker out of another call. The row is read under its lock
    with the account in one statement (``tickets.staff.lock_call_taker``).
    """
    locked = lock_call_taker(staff_id, session=session)
    if locked is None:
        return None
    profile = locked.profile
    if profile.state not in from_states:
        return None
    if profile.state in _ON_A_CALL and profile.call_sid != call_sid:
        return None
    try:
        change_locked_state(
            locked,
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


def may_ring(*, session: Session, staff_id: int, call_sid: str) -> bool:
    """Whether ringing ``staff_id`` for ``call_sid`` can still work: the call-taker is
    available and the caller's room, if it has one, is still waiting. A plain read, no
    lock: the claim decides; this spares a claim bound to fail (on SQLite every claim takes
    the database's write lock, even one that matches nothing)."""
    found = session.connection().execute(
        _MAY_RING, {"b_staff_id": staff_id, "b_call_sid": call_sid}
    )
    return bool(found.scalar())


_MAY_RING = select(
    and_(
        select(CallTaker.staff_id)
        .where(
            CallTaker.staff_id == bindparam("b_staff_id"),
            CallTaker.state == CallTakerState.AVAILABLE,
        )
        .exists(),
        ~select(ConferenceRoom.id)
        .where(ConferenceRoom.call_sid == bindparam("b_call_sid"), ConferenceRoom.phase != WAITING)
        .exists(),
    )
)
