"""A ring that did not become a call: what happens to the call-taker and who rings next.

PRODUCT.md ("The inbound call", 6): no answer within the ring timeout → the next call-taker,
and the first one is marked away. The same holds for a busy or unreachable phone: nobody is
there to take calls. A call-taker who declines from the console is at the desk: they stay
available, keep their place in the idle order (declining never earns a lighter load), and
are not offered this caller again.

Every failure is recorded on the caller, so the chain offers the call to each call-taker
once; when nobody is left the caller waits in the queue for the next decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from routing.assignment import (
    DEFAULT_POLICY,
    Assignment,
    CallTaker,
    RoutingPolicy,
    TakerState,
    choose_taker,
)
from routing.queue_order import FailedRing, WaitingCaller, require_aware


class RingResult(StrEnum):
    NO_ANSWER = "no_answer"  # the ring timeout passed (Twilio: no-answer)
    BUSY = "busy"  # the call-taker's line was busy
    FAILED = "failed"  # the call-taker's phone or browser could not be reached
    DECLINED = "declined"  # the call-taker declined from the console


class AwayReason(StrEnum):
    NO_ANSWER = "no_answer"
    LINE_BUSY = "line_busy"
    UNREACHABLE = "unreachable"


AWAY_AFTER = {
    RingResult.NO_ANSWER: AwayReason.NO_ANSWER,
    RingResult.BUSY: AwayReason.LINE_BUSY,
    RingResult.FAILED: AwayReason.UNREACHABLE,
}


@dataclass(frozen=True, slots=True)
class RingOutcome:
    """``taker`` and ``caller`` as they are now; ``next`` is who to ring (None: the caller
    waits). ``is_stale``: the call-taker was no longer ringing (a late or repeated status
    callback), so nothing changes and nobody new is rung."""

    taker: CallTaker
    caller: WaitingCaller
    next: Assignment | None
    is_stale: bool = False


def ring_failed(
    caller: WaitingCaller,
    taker: CallTaker,
    result: RingResult,
    takers: Iterable[CallTaker],
    now: datetime,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> RingOutcome:
    """The ring of ``taker`` for ``caller`` ended without an answer, with ``result``.

    ``takers`` are all the call-takers as they are now (``taker`` among them or not).
    ``next`` is this caller's pick by the queue's own rule (``choose_taker``); running
    ``assign`` over the queue with ``outcome.caller`` back in it gives the same answer,
    unless another caller's language wait ended in the meantime.
    """
    require_aware("now", now)
    result = RingResult(result)
    if taker.state is not TakerState.RINGING:
        return RingOutcome(taker, caller, next=None, is_stale=True)
    failed = FailedRing(taker.staff_id, now)
    caller = replace(caller, failed_rings=(*caller.failed_rings, failed))
    if result is RingResult.DECLINED:
        taker = replace(taker, state=TakerState.AVAILABLE, away_reason=None)
    else:
        taker = replace(taker, state=TakerState.AWAY, away_reason=AWAY_AFTER[result])
    others = [t for t in takers if t.staff_id != taker.staff_id]
    return RingOutcome(taker, caller, next=choose_taker(caller, [*others, taker], now, policy))


def ring_timed_out(
    caller: WaitingCaller,
    taker: CallTaker,
    takers: Iterable[CallTaker],
    now: datetime,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> RingOutcome:
    """Nobody answered within the ring timeout: the call-taker is away, the next one rings."""
    return ring_failed(caller, taker, RingResult.NO_ANSWER, takers, now, policy)
