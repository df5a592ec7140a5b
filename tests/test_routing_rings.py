"""The call-taker's leg (PRODUCT.md, "The inbound call" 6): a ring that is not answered.

No answer within the ring timeout → the call-taker is away and the next one rings; each
call-taker is offered a call once; when nobody is left the caller waits.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from routing.assignment import CallTaker, Reason, TakerState, assign
from routing.queue_order import FailedRing, WaitingCaller
from routing.rings import AwayReason, RingResult, ring_failed, ring_timed_out

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
RING_TIMEOUT = timedelta(seconds=20)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def taker(
    staff_id: int,
    *,
    languages: str = "zh",
    state: TakerState = TakerState.AVAILABLE,
    idle: float = 0,
) -> CallTaker:
    return CallTaker(staff_id, frozenset(languages.split()), frozenset(), state, at(idle))


def ringing(t: CallTaker) -> CallTaker:
    return replace(t, state=TakerState.RINGING)


def by_id(takers: list[CallTaker], staff_id: int) -> CallTaker:
    return next(t for t in takers if t.staff_id == staff_id)


def swap(takers: list[CallTaker], changed: CallTaker) -> list[CallTaker]:
    return [changed if t.staff_id == changed.staff_id else t for t in takers]


CALLER = WaitingCaller("CA1", "zh", "complaint", at(100))


def test_call_taker_who_does_not_answer_in_time_becomes_away_and_the_next_one_rings() -> None:
    takers = [ringing(taker(1, idle=10)), taker(2, idle=20), taker(3, idle=30)]

    outcome = ring_timed_out(CALLER, takers[0], takers, at(130))

    assert outcome.taker.state is TakerState.AWAY
    assert outcome.taker.away_reason == AwayReason.NO_ANSWER
    assert outcome.caller.failed_rings == (FailedRing(1, at(130)),)
    assert outcome.next is not None and outcome.next.staff_id == 2
    assert not outcome.is_stale


def test_three_call_takers_time_out_in_turn_then_the_caller_waits() -> None:
    takers = [taker(1, idle=10), taker(2, idle=20), taker(3, idle=30)]
    waiting, now = CALLER, at(110)
    [first] = assign([waiting], takers, now)
    offered = [first.staff_id]

    while True:
        current = ringing(by_id(takers, offered[-1]))
        takers = swap(takers, current)
        now += RING_TIMEOUT
        outcome = ring_timed_out(waiting, current, takers, now)
        takers, waiting = swap(takers, outcome.taker), outcome.caller
        if outcome.next is None:
            break
        offered.append(outcome.next.staff_id)

    assert offered == [1, 2, 3]
    assert all(t.state is TakerState.AWAY for t in takers)
    assert [ring.staff_id for ring in waiting.failed_rings] == [1, 2, 3]
    assert assign([waiting], takers, now) == []


def test_caller_who_rang_out_with_everyone_is_offered_to_a_call_taker_who_comes_back() -> None:
    takers = [ringing(taker(1))]
    outcome = ring_timed_out(CALLER, takers[0], takers, at(130))
    assert outcome.next is None

    back = replace(outcome.taker, state=TakerState.AVAILABLE, away_reason=None, idle_since=at(200))

    assert [(a.call_sid, a.staff_id) for a in assign([outcome.caller], [back], at(200))] == [
        ("CA1", 1)
    ]


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (RingResult.NO_ANSWER, AwayReason.NO_ANSWER),
        (RingResult.BUSY, AwayReason.LINE_BUSY),
        (RingResult.FAILED, AwayReason.UNREACHABLE),
    ],
)
def test_a_phone_that_does_not_take_the_call_makes_the_call_taker_away(
    result: RingResult, reason: AwayReason
) -> None:
    takers = [ringing(taker(1)), taker(2)]

    outcome = ring_failed(CALLER, takers[0], result, takers, at(130))

    assert (outcome.taker.state, outcome.taker.away_reason) == (TakerState.AWAY, reason)
    assert outcome.next is not None and outcome.next.staff_id == 2


def test_call_taker_who_declines_stays_available_keeps_their_place_and_is_skipped() -> None:
    takers = [ringing(taker(1, idle=10)), taker(2, idle=20)]

    outcome = ring_failed(CALLER, takers[0], RingResult.DECLINED, takers, at(130))

    assert outcome.taker.state is TakerState.AVAILABLE
    assert outcome.taker.idle_since == at(10)
    assert outcome.next is not None and outcome.next.staff_id == 2
    other = WaitingCaller("CA2", "zh", None, at(120))
    after = swap(takers, outcome.taker)
    assert [(a.call_sid, a.staff_id) for a in assign([outcome.caller, other], after, at(131))] == [
        ("CA1", 2),
        ("CA2", 1),
    ]


def test_the_last_call_taker_declining_leaves_the_caller_waiting() -> None:
    takers = [ringing(taker(1))]

    outcome = ring_failed(CALLER, takers[0], RingResult.DECLINED, takers, at(130))

    assert outcome.next is None
    assert assign([outcome.caller], [outcome.taker], at(131)) == []


def test_a_late_or_repeated_status_callback_changes_nothing() -> None:
    away = replace(taker(1), state=TakerState.AWAY, away_reason=AwayReason.NO_ANSWER)
    waiting = replace(CALLER, failed_rings=(FailedRing(1, at(130)),))

    outcome = ring_timed_out(waiting, away, [away, taker(2)], at(131))

    assert outcome.is_stale
    assert outcome.next is None
    assert (outcome.taker, outcome.caller) == (away, waiting)


def test_the_next_call_taker_follows_the_same_rules_as_the_queue() -> None:
    takers = [ringing(taker(1, languages="bo")), taker(2, idle=0), taker(3, languages="zh bo")]
    tibetan = WaitingCaller("CA1", "bo", None, at(100))

    outcome = ring_timed_out(tibetan, takers[0], takers, at(130))

    assert outcome.next is not None
    assert (outcome.next.staff_id, outcome.next.reasons) == (3, (Reason.LANGUAGE,))


def test_a_plain_string_result_from_the_status_callback_is_understood() -> None:
    takers = [ringing(taker(1)), taker(2)]

    outcome = ring_failed(CALLER, takers[0], "busy", takers, at(130))  # type: ignore[arg-type]

    assert outcome.taker.away_reason == AwayReason.LINE_BUSY
