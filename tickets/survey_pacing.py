"""Pacing the survey calls across every worker process.

Twilio's rate (calls per second) is per account, not per worker, so the pace lives in the
database: one ``outbound_pacing`` row per lane holds the next free slot. A sweep reserves
one slot for each survey it claims, as a block, in one UPDATE (``next_slot = max(next_slot,
now) + count * spacing``), and places each create at its own slot (``BlockPacer``): the
creates of all workers together are spaced ``1 / calls_per_second`` apart.

How much a sweep claims follows the lane too (``claimable``): enough to keep it busy for
``CallPolicy.claim_ahead`` seconds counting what is reserved already. The lane is locked
(``lock_lane``) for the claim's transaction, which reserves the claims' block before it
commits: two workers sweeping at once claim one after the other, never sit on more than
about a minute of calls between them, the lane never runs dry while surveys are due, and
Twilio's own queue stays empty.
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
    transaction, after ``lock_lane``; the first one's time (Unix seconds). The next
    reservation, by whoever, starts ``count * spacing`` later."""
    length = spacing * count
    later = case((OutboundPace.next_slot > now, OutboundPace.next_slot), else_=now) + length
    reserved = session.scalar(
        update(OutboundPace)
        .where(OutboundPace.lane == lane)
        .values(next_slot=later, updated_at=utcnow())
        .returning(OutboundPace.next_slot)
        .execution_options(synchronize_session=False)
    )
    if reserved is None:  # pragma: no cover - lock_lane created it
        raise RuntimeError(f"no pacing lane {lane!r}")
    return float(reserved) - length


def reserve_slots(
    sessions: sessionmaker[Session], lane: str, spacing: float, now: float, count: int = 1
) -> float:
    """``reserve_in`` in a short transaction of its own."""
    with sessions.begin() as session:
        lock_lane(session, lane, now)
        return reserve_in(session, lane, spacing, now, count)


def claimable(*, reserved_ahead: float, rate: float, ahead: float) -> int:
    """How many calls a sweep may claim: what keeps the lane busy for ``ahead`` seconds,
    less what is reserved already."""
    return max(0, int((ahead - reserved_ahead) * rate))


class BlockPacer:
    """Called right before each create: waits for the next slot of a reserved block (a
    survey that needs no create leaves its slot unused)."""

    def __init__(
        self,
        first: float,
        spacing: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.next, self.spacing, self.sleep, self.clock = first, spacing, sleep, clock

    def __call__(self) -> None:
        wait = self.next - self.clock()
        self.next += self.spacing
        if wait > 0:
            self.sleep(wait)
