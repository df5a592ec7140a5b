"""Survey calls (回访), scheduled inside calling hours and each placed exactly once: the
worker's sweep, and the names callers import (re-exported from the modules below).

The worker's sweep (``sweep``, every minute) runs in short transactions:

1. ``survey_planning.plan_waiting``: surveys not planned yet get their first call time
   (the order moves to CALLBACK), or are cancelled when their number may not be called;
   in batches, for at most ``CallPolicy.plan_for`` seconds.
2. ``survey_claims.claim_due``: due surveys become ``calling`` under this sweep's lease,
   committed before anything else: what keeps the pacing lane all workers share busy for
   ``CallPolicy.claim_ahead`` seconds, counting every worker's claims not placed yet
   (``survey_pacing``); outside calling hours they move to the next opening instead. Each
   create waits for the next free slot of the lane.
3. For each claimed row (``advance``): a FRESH one gets a new attempt
   (``survey_attempts.place_attempt``); a RECOVER one is looked at through its latest
   attempt:

   - ``placing`` / ``unknown`` (the worker died during the create, or it timed out):
     **reconciled before anything is placed again** (``survey_reconciliation``);
   - a live call whose final status callback never came: asked of the provider;
   - a final status nobody acted on: settled (``survey_settling``: next attempt, SMS
     fallback, completed).

A throttled (20429) or refused (auth) create stops the sweep; it gives its other claims
back. The status callback from the voice edge is ``survey_status.record_attempt_status``.

The webapp hands in a sessionmaker, the caller and the settings' values (there is no Flask
in any of these modules); every log line masks the citizen's number.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tickets.db import utcnow
from tickets.models import Survey, SurveyStatus
from tickets.sms_delivery import new_owner
from tickets.survey_attempts import (
    ACTOR,
    START_PATH,
    STATUS_PATH,
    CallContext,
    call_urls,
    mark_number_invalid,
    place_attempt,
)
from tickets.survey_calls import FINAL_STATUSES, SurveyCaller
from tickets.survey_claims import Claim, ClaimKind, claim_due, claimed_unplaced, release
from tickets.survey_pacing import SURVEY_LANE, SharedPacer, claimable, lock_lane
from tickets.survey_planning import Planned, plan_new, plan_waiting
from tickets.survey_policy import DEFAULT_POLICY, CallPolicy, SurveyPlan
from tickets.survey_reconciliation import reconcile, watch
from tickets.survey_rows import (
    CALLABLE_ORDER_STATES,
    INVALID,
    NOT_PLACED,
    PLACING,
    REJECTED,
    UNKNOWN,
    UNSETTLED,
    Outcome,
    latest_attempt,
)
from tickets.survey_settling import SMS_TEXTS, settle, survey_sms_text
from tickets.survey_status import find_attempt, record_attempt_status

__all__ = [
    "ACTOR",
    "CALLABLE_ORDER_STATES",
    "DEFAULT_POLICY",
    "INVALID",
    "NOT_PLACED",
    "PLACING",
    "REJECTED",
    "SMS_TEXTS",
    "START_PATH",
    "STATUS_PATH",
    "UNKNOWN",
    "UNSETTLED",
    "CallContext",
    "CallPolicy",
    "Claim",
    "ClaimKind",
    "Outcome",
    "Planned",
    "SharedPacer",
    "SurveyPlan",
    "SweepCounts",
    "advance",
    "call_urls",
    "claim_due",
    "claimed_unplaced",
    "find_attempt",
    "mark_number_invalid",
    "place_attempt",
    "plan_new",
    "plan_waiting",
    "record_attempt_status",
    "release",
    "survey_sms_text",
    "sweep",
]

log = logging.getLogger(__name__)


def advance(claim: Claim, ctx: CallContext) -> Outcome:
    """Do what a claimed survey needs (see the module's docstring)."""
    with ctx.sessions() as session:
        survey = session.get(Survey, claim.survey_id)
        if survey is None or survey.status is not SurveyStatus.CALLING:
            return Outcome.SKIPPED
        if survey.lease_owner != ctx.owner:
            return Outcome.SKIPPED
        latest = latest_attempt(session, survey.id) if claim.kind is ClaimKind.RECOVER else None
        status = latest.status if latest is not None else None
    if latest is not None and status in FINAL_STATUSES:  # a final status nobody acted on
        with ctx.sessions.begin() as session:
            return settle(session, claim.survey_id, latest.id, ctx.plan, ctx.now_fn(), ctx.owner)
    if latest is not None and latest.call_sid:  # placed, live: its final status was lost
        return watch(claim.survey_id, latest.id, ctx)
    if latest is not None and status in UNSETTLED:  # the create's outcome is unknown
        return reconcile(claim.survey_id, latest.id, ctx)
    return place_attempt(claim.survey_id, ctx)


@dataclass
class SweepCounts:
    """What one sweep did (the worker logs its summary)."""

    planned: int = 0
    cancelled: int = 0
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    released: int = 0
    paused: bool = False
    throttled: bool = False

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1

    def __getitem__(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "cancelled_unplanned": self.cancelled,
            "claimed": self.claimed,
            **{outcome.value: self[outcome.value] for outcome in Outcome},
            "errors": self.errors,
            "released": self.released,
            "paused": self.paused,
            "throttled": self.throttled,
        }

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.as_dict().items() if v) or "nothing due"


def sweep(
    *,
    sessions: sessionmaker[Session],
    caller: SurveyCaller,
    plan: SurveyPlan,
    public_base_url: str,
    from_number: str,
    policy: CallPolicy = DEFAULT_POLICY,
    owner: str | None = None,
    now_fn: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> SweepCounts:
    """Plan new surveys, claim the due ones within the rate, and place their calls."""
    owner = owner or new_owner("survey")
    counts = SweepCounts()
    try:
        planned = plan_waiting(
            sessions,
            now_fn=now_fn,
            rules=plan.rules,
            calendar=plan.calendar,
            batch=policy.plan_batch,
            budget=policy.plan_for,
        )
        counts.planned, counts.cancelled = len(planned.planned), len(planned.cancelled)
    except Exception:
        counts.errors += 1
        log.exception("planning survey calls failed")
    with sessions() as session:  # the lane locked while the claim is counted and made
        now, wall = now_fn(), clock()
        limit = claimable(
            reserved_ahead=lock_lane(session, SURVEY_LANE, wall),
            unplaced=claimed_unplaced(session, now=now, lease=policy.lease),
            rate=policy.calls_per_second,
            ahead=policy.claim_ahead,
        )
        claims = claim_due(
            session,
            now=now,
            owner=owner,
            limit=min(limit, policy.max_batch),
            lease=policy.lease,
            plan=plan,
            recover_limit=policy.max_batch,
            commit=False,
        )
        session.commit()
    counts.claimed = len(claims)
    ctx = CallContext(
        sessions=sessions,
        caller=caller,
        plan=plan,
        owner=owner,
        public_base_url=public_base_url,
        from_number=from_number,
        policy=policy,
        now_fn=now_fn,
        pace=SharedPacer(sessions, policy.spacing, sleep=sleep, clock=clock),
    )
    _place_all(claims, ctx, counts, placers=min(policy.placers, max(1, len(claims))))
    if counts.claimed or counts.planned or counts.cancelled or counts.errors:
        log.info("survey sweep %s: %s", owner, counts.summary())
    return counts


def _place_all(claims: list[Claim], ctx: CallContext, counts: SweepCounts, *, placers: int) -> None:
    """Advance every claim, ``placers`` at a time (a create's round trip, not the pace,
    limits one placer: at 50 calls a second one would fall behind; the shared lane keeps
    them all to the rate). A throttled (20429) or refused (auth) create stops them: the
    claims nobody started are given back."""
    stop = threading.Event()
    lock = threading.Lock()
    left = list(reversed(claims))

    def place_next() -> None:
        while not stop.is_set():
            with lock:
                if not left:
                    return
                claim = left.pop()
            try:
                outcome = advance(claim, ctx)
            except Exception:
                with lock:
                    counts.errors += 1
                log.exception("survey %s: placing its call failed", claim.survey_id)
                continue
            with lock:
                counts.count(outcome)
                if outcome in (Outcome.PAUSED, Outcome.THROTTLED):
                    counts.paused = counts.paused or outcome is Outcome.PAUSED
                    counts.throttled = counts.throttled or outcome is Outcome.THROTTLED
                    stop.set()

    if placers == 1:
        place_next()
    else:
        threads = [threading.Thread(target=place_next, daemon=True) for _ in range(placers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if stop.is_set():
        counts.released = release(list(reversed(left)), sessions=ctx.sessions, owner=ctx.owner)
        log.log(
            logging.ERROR if counts.paused else logging.WARNING,
            "survey sweep stopped (%s): %d claimed survey(s) given back",
            "paused" if counts.paused else "throttled",
            counts.released,
        )
