"""Pacing the survey calls across every worker process.

Twilio's rate (calls per second) is per account, not per worker, so the pace lives in the
database: one ``outbound_pacing`` row per lane holds the next free slot. Right before each
create a worker reserves the next slot in one UPDATE (``next_slot = max(next_slot, now) +
spacing``) and sleeps until it, so the creates of all workers together are spaced
``1 / calls_per_second`` apart, whichever worker sends them (``SharedPacer``).

A sweep claims at most ``calls_per_second * 60`` new calls less those placed in the last
minute (``placed_recently``), so a worker never sits on more than a minute or two of
reserved slots, and Twilio's own queue stays empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tickets.db import utcnow
from tickets.models import OutboundPace, SurveyAttempt

SURVEY_LANE = "survey-calls"


def reserve_slot(sessions: sessionmaker[Session], lane: str, spacing: float, now: float) -> float:
    """Reserve the next slot of ``lane`` (Unix seconds, never before ``now``) in its own
    short transaction; the slot after it is ``spacing`` later, whoever takes it."""
    later = case((OutboundPace.next_slot > now, OutboundPace.next_slot), else_=now) + spacing
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
                return float(reserved) - spacing
            try:
                with session.begin_nested():
                    session.execute(
                        insert(OutboundPace).values(
                            lane=lane, next_slot=now + spacing, updated_at=utcnow()
                        )
                    )
            except IntegrityError:
                continue
            return now
    raise RuntimeError(f"could not reserve a slot on the pacing lane {lane!r}")


class SharedPacer:
    """Called right before each create: waits for this worker's next slot on the lane."""

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
        slot = reserve_slot(self.sessions, self.lane, self.spacing, self.clock())
        wait = slot - self.clock()
        if wait > 0:
            self.sleep(wait)


def placed_recently(session: Session, now: datetime, window: timedelta) -> int:
    """Attempts created in the last ``window`` (by any worker)."""
    return int(
        session.scalar(
            select(func.count(SurveyAttempt.id)).where(SurveyAttempt.placed_at > now - window)
        )
        or 0
    )
