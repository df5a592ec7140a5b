"""Pacing the survey calls: a sweep claims at most ``calls_per_second * 60`` new calls less
those placed in the last minute (``placed_recently``), and spaces the creates
``1 / calls_per_second`` apart (``Pacer``), so Twilio's queue never holds more than a
minute or two of calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tickets.models import SurveyAttempt


class Pacer:
    """Spaces the creates ``spacing`` seconds apart (the first one at once)."""

    def __init__(
        self,
        spacing: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spacing, self.sleep, self.monotonic = spacing, sleep, monotonic
        self._last: float | None = None

    def __call__(self) -> None:
        if self._last is not None:
            wait = self._last + self.spacing - self.monotonic()
            if wait > 0:
                self.sleep(wait)
        self._last = self.monotonic()


def placed_recently(session: Session, now: datetime, window: timedelta) -> int:
    """Attempts created in the last ``window`` (by any worker)."""
    return int(
        session.scalar(
            select(func.count(SurveyAttempt.id)).where(SurveyAttempt.placed_at > now - window)
        )
        or 0
    )
