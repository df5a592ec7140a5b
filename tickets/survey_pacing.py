"""Pacing the survey calls across every worker process.

Twilio's rate (calls per second) is per account, not per worker, so the pace lives in the
database: one ``outbound_pacing`` row per lane holds the next free slot. A sweep reserves
one slot for each survey it claims, as a block, in one UPDATE (``next_slot = max(next_slot,
now) + count * spacing``), and places each create at its own slot (``BlockPacer``): the
creates of all workers together are spaced ``1 / calls_per_second`` apart.

How much a sweep claims follows the lane too (``claimable``): enough to keep it busy for
``CallPolicy.claim_ahead`` seconds counting what is reserved already, so two workers never
sit on more than a minute or so of calls between them, the lane never runs dry while
surveys are due, and Twilio's own queue stays empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tickets.db import utcnow
from tickets.models import OutboundPace

SURVEY_LANE = "survey-calls"


def reserve_slots(
    sessions: sessionmaker[Session], lane: str, spacing: float, now: float, count: int = 1
) -> float:
    """Reserve ``count`` consecutive slots of ``lane`` (Unix seconds, never before ``now``)
    in a short transaction of their own; the first one's time. The next reservation, by
    whoever, starts ``count * spacing`` later."""
    length = spacing * count
    later = case((OutboundPace.next_slot > now, OutboundPace.next_slot), else_=now) + length
    for _ in range(2):  # the lane's row may be created by another worker meanwhile
        with sessions.begin() as session:
            reserved = session.scalar(
                update(OutboundPace)
                .where(OutboundPace.lane == lane)
                .values(next_slot=later, updated_at=utcnow())
                .returning(OutboundPace.next_slot)
                .execution_options(synchronize_session=False)
            )
            if reserved is not None:
                return float(reserved) - length
            try:
                with session.begin_nested():
                    session.execute(
                        insert(OutboundPace).values(
                            lane=lane, next_slot=now + length, updated_at=utcnow()
                        )
                    )
            except IntegrityError:
                continue
            return now
    raise RuntimeError(f"could not reserve slots on the pacing lane {lane!r}")


def reserved_ahead(session: Session, lane: str, now: float) -> float:
    """Seconds of the lane already reserved from ``now`` on (0: free now)."""
    next_slot = session.scalar(select(OutboundPace.next_slot).where(OutboundPace.lane == lane))
    return max(0.0, float(next_slot) - now) if next_slot is not None else 0.0


def claimable(session: Session, lane: str, *, now: float, rate: float, ahead: float) -> int:
    """How many calls a sweep may claim: what keeps the lane busy for ``ahead`` seconds,
    less what is reserved already."""
    return max(0, int((ahead - reserved_ahead(session, lane, now)) * rate))


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
