"""Pacing the survey calls across every worker process.

Twilio's rate (calls per second) is per account, not per worker, so the pace lives in the
database: one ``outbound_pacing`` row per lane holds the next free slot. Right before each
create a worker reserves the next slot in one UPDATE (``next_slot = max(next_slot, now) +
spacing``) and sleeps until it (``SharedPacer``), so the creates of all workers together
are spaced ``1 / calls_per_second`` apart, whichever worker sends them and however far
behind one of them is.

How much a sweep claims (``claimable``) keeps the lane busy for
``CallPolicy.claim_ahead`` seconds: the rate times that, less what every worker has
claimed and not placed yet. The lane is locked (``lock_lane``) for the claim's transaction, so two
workers sweeping at once count one after the other: together they never sit on more than
about a minute of calls, the lane never runs dry while surveys are due, and Twilio's own
queue stays empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import case, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tickets.db import utcnow
from tickets.models import OutboundPace

SURVEY_LANE = "survey-calls"


def lock_lane(session: Session, lane: str, now: float) -> float:
    """Lock ``lane`` for this transaction (its row; SQLite's write lock) and say how many
    seconds of it are reserved from ``now`` on (0: free now). A new lane is created."""
    for _ in range(2):  # the lane's row may be created by another worker meanwhile
        next_slot = session.scalar(
            update(OutboundPace)
            .where(OutboundPace.lane == lane)
            .values(updated_at=utcnow())
            .returning(OutboundPace.next_slot)
            .execution_options(synchronize_session=False)
        )
        if next_slot is not None:
            return max(0.0, float(next_slot) - now)
        try:
            with session.begin_nested():
                session.execute(
                    insert(OutboundPace).values(lane=lane, next_slot=now, updated_at=utcnow())
                )
        except IntegrityError:
            continue
        return 0.0
    raise RuntimeError(f"could not lock the pacing lane {lane!r}")


def reserve_in(session: Session, lane: str, spacing: float, now: float, count: int) -> float:
    """Reserve ``count`` consecutive slots of ``lane`` (never before ``now``) in this
    transaction; the first one's time (Unix seconds). The next reservation, by whoever,
    starts ``count * spacing`` later. A lane that does not exist yet is created."""
    length = spacing * count
    later = case((OutboundPace.next_slot > now, OutboundPace.next_slot), else_=now) + length
    for _ in range(2):
        reserved = session.scalar(
            update(OutboundPace)
            .where(OutboundPace.lane == lane)
            .values(next_slot=later, updated_at=utcnow())
            .returning(OutboundPace.next_slot)
            .execution_options(synchronize_session=False)
        )
        if reserved is not None:
            return float(reserved) - length
        lock_lane(session, lane, now)  # creates it
    raise RuntimeError(f"no pacing lane {lane!r}")  # pragma: no cover - just created


def reserve_slots(
    sessions: sessionmaker[Session], lane: str, spacing: float, now: float, count: int = 1
) -> float:
    """``reserve_in`` in a short transaction of its own: one UPDATE."""
    with sessions.begin() as session:
        return reserve_in(session, lane, spacing, now, count)


def claimable(*, reserved_ahead: float, unplaced: int, rate: float, ahead: float) -> int:
    """How many calls a sweep may claim: what keeps the lane busy for ``ahead`` seconds,
    less what is reserved on it and the claims of every worker not placed yet."""
    return max(0, int((ahead - reserved_ahead) * rate) - unplaced)


class SharedPacer:
    """Called right before each create: reserves the next free slot of the lane (one
    UPDATE) and waits for it. A worker that falls behind never sends on a slot that
    passed: its next create takes a slot after everything reserved, so the creates of all
    workers together never outrun the rate, however slow one of them is."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        spacing: float,
        *,
        lane: str = SURVEY_LANE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions, self.spacing, self.lane = sessions, spacing, lane
        self.sleep, self.clock = sleep, clock

    def __call__(self) -> None:
        slot = reserve_slots(self.sessions, self.lane, self.spacing, self.clock())
        wait = slot - self.clock()
        if wait > 0:
            self.sleep(wait)
