"""What the survey worker is given: when it may call (``SurveyPlan``: the calling-hours
rules and the hotline's calendar) and how (``CallPolicy``: pace, leases, backoff)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from tickets.calendar import WorkingCalendar
from tickets.survey_schedule import SurveyRules


@dataclass(frozen=True)
class SurveyPlan:
    """When the survey may call: the rules and the hotline's calendar (its zone)."""

    rules: SurveyRules
    calendar: WorkingCalendar


@dataclass(frozen=True)
class CallPolicy:
    """Pacing and leases. ``lease`` covers a claim until its create (a sweep lasts about a
    minute); ``call_watch`` a placed call until its final status callback: a callback
    that never comes is looked up at the provider after it."""

    calls_per_second: float = 1.0
    claim_ahead: float = 75.0  # seconds of calls a sweep keeps claimed on the lane
    max_batch: int = 5000  # rows claimed per sweep at most, whatever the rate
    plan_batch: int = 500  # surveys planned per transaction batch
    plan_for: float = 20.0  # seconds a sweep may spend planning before it places calls
    lease: timedelta = timedelta(minutes=5)
    call_watch: timedelta = timedelta(minutes=30)
    conversation_grace: timedelta = timedelta(minutes=10)  # answers may still be stored
    reconcile_after: timedelta = timedelta(minutes=1)
    clock_skew: timedelta = timedelta(minutes=2)  # ours against the provider's
    first_retry: timedelta = timedelta(minutes=1)
    max_retry: timedelta = timedelta(hours=1)
    max_retry_after: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not 0 < self.calls_per_second <= 100:
            raise ValueError("calls_per_second must be above 0 and at most 100")
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if self.claim_ahead < 1:
            raise ValueError("claim_ahead must be at least 1 second")

    @property
    def placers(self) -> int:
        """Creates in flight at once in one sweep: one per 20 calls a second (a create's
        round trip is some 20-50 ms), at most 8."""
        return max(1, min(8, math.ceil(self.calls_per_second / 20)))

    @property
    def spacing(self) -> float:
        return 1.0 / self.calls_per_second

    def retry_delay(self, failures: int, retry_after: float | None = None) -> timedelta:
        """1, 2, 4 ... minutes after the ``failures``-th failure in a row, capped, never
        shorter than the provider's Retry-After."""
        delay = min(self.first_retry * (2 ** min(max(failures, 1) - 1, 20)), self.max_retry)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(timedelta(seconds=retry_after), self.max_retry_after))
        return delay


DEFAULT_POLICY = CallPolicy()
