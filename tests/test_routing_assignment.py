"""Who takes which call (issue 3, "Routing"): queue order, language, skill, longest idle.

Pure decisions: each test builds waiting callers and call-takers as plain values and looks at
the assignments. No database, no Flask.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from routing.assignment import (
    Assignment,
    CallTaker,
    Reason,
    RoutingPolicy,
    TakerState,
    assign,
    choose_taker,
    first_free_taker,
)
from routing.queue_order import (
    FailedRing,
    WaitingCaller,
    in_queue_order,
    position_in_queue,
    positions,
    queue_order,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
NO_WAIT = RoutingPolicy(language_wait=timedelta(0))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def caller(
    call_sid: str,
    *,
    language: str = "zh",
    intent: str | None = None,
    queued: float = 0,
    emergency: bool = False,
    failed: tuple[FailedRing, ...] = (),
) -> WaitingCaller:
    return WaitingCaller(call_sid, language, intent, at(queued), emergency, failed)


def taker(
    staff_id: int,
    *,
    languages: str = "zh",
    skills: str = "",
    state: TakerState = TakerState.AVAILABLE,
    idle: float = 0,
) -> CallTaker:
    return CallTaker(
        staff_id,
        frozenset(languages.split()),
        frozenset(skills.split()),
        state,
        at(idle),
    )


def pairs(assignments: list[Assignment]) -> list[tuple[str, int]]:
    return [(a.call_sid, a.staff_id) for a in assignments]


# -- queue order and positions --------------------------------------------------------------


def test_callers_are_served_in_arrival_order() -> None:
    callers = [caller("CA3", queued=30), caller("CA1", queued=10), caller("CA2", queued=20)]

    assert [c.call_sid for c in queue_order(callers)] == ["CA1", "CA2", "CA3"]
    assert pairs(assign(callers, [taker(7)], NOW)) == [("CA1", 7)]


def test_emergency_caller_is_served_before_callers_who_came_earlier() -> None:
    callers = [caller("CA1", queued=10), caller("CA2", queued=20, emergency=True)]

    assert [c.call_sid for c in queue_order(callers)] == ["CA2", "CA1"]
    assignments = assign(callers, [taker(7)], NOW)
    assert pairs(assignments) == [("CA2", 7)]
    assert assignments[0].reasons == (Reason.EMERGENCY, Reason.LANGUAGE)


def test_emergency_callers_among_themselves_keep_arrival_order() -> None:
    callers = [
        caller("CA1", queued=30, emergency=True),
        caller("CA2", queued=0),
        caller("CA3", queued=20, emergency=True),
    ]

    assert [c.call_sid for c in queue_order(callers)] == ["CA3", "CA1", "CA2"]


def test_callers_queued_at_the_same_instant_are_ordered_by_call_sid() -> None:
    callers = [caller("CAb", queued=5), caller("CAc", queued=5), caller("CAa", queued=5)]

    assert [c.call_sid for c in queue_order(callers)] == ["CAa", "CAb", "CAc"]


def test_queue_order_compares_instants_across_time_zones() -> None:
    beijing = timezone(timedelta(hours=8))
    early = WaitingCaller("CAz", "zh", None, T0.astimezone(beijing))
    late = WaitingCaller("CAa", "zh", None, at(1))

    assert [c.call_sid for c in queue_order([late, early])] == ["CAz", "CAa"]


def test_positions_count_from_one_in_queue_order() -> None:
    callers = [caller("CA1", queued=10), caller("CA2", queued=20), caller("CA9", emergency=True)]

    assert positions(callers) == {"CA9": 1, "CA1": 2, "CA2": 3}
    assert [position_in_queue(callers, sid) for sid in ("CA9", "CA1", "CA2")] == [1, 2, 3]


def test_a_call_that_is_not_waiting_has_no_position() -> None:
    assert position_in_queue([caller("CA1")], "CA2") is None
    assert position_in_queue([], "CA1") is None


def test_positions_agree_with_the_order_in_which_callers_are_assigned() -> None:
    rng = random.Random(3)
    callers = [
        caller(f"CA{n:03}", queued=rng.randint(0, 50), emergency=rng.random() < 0.2)
        for n in range(40)
    ]
    takers = [taker(n, idle=rng.randint(0, 100)) for n in range(15)]

    assignments = assign(callers, takers, NOW)

    places = [position_in_queue(callers, a.call_sid) for a in assignments]
    assert places == list(range(1, 16))
    assert places == [positions(callers)[a.call_sid] for a in assignments]


@pytest.mark.parametrize("seed", range(20))
def test_the_lazy_queue_order_and_the_positions_agree_with_the_sorted_queue(seed: int) -> None:
    callers, _, _, _ = random_case(seed)
    ordered = [c.call_sid for c in queue_order(callers)]

    assert [c.call_sid for c in in_queue_order(callers)] == ordered
    assert [position_in_queue(callers, sid) for sid in ordered] == list(range(1, len(ordered) + 1))
    assert positions(callers) == {sid: place for place, sid in enumerate(ordered, 1)}


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        WaitingCaller("CA1", "zh", None, datetime(2026, 11, 27, 9, 0))
    with pytest.raises(ValueError, match="aware"):
        CallTaker(1, frozenset({"zh"}), frozenset(), TakerState.AVAILABLE, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        assign([caller("CA1")], [taker(1)], datetime(2026, 11, 27, 9, 10))


def test_a_negative_language_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="language_wait"):
        RoutingPolicy(language_wait=timedelta(seconds=-1))


def test_a_state_read_from_storage_as_a_string_becomes_the_enum() -> None:
    stored = CallTaker(1, frozenset({"zh"}), frozenset(), "available", T0)  # type: ignore[arg-type]

    assert stored.state is TakerState.AVAILABLE
    assert pairs(assign([caller("CA1")], [stored], NOW)) == [("CA1", 1)]


# -- longest idle and fairness -----------------------------------------------------------


def test_longest_idle_call_taker_takes_the_call() -> None:
    takers = [taker(1, idle=300), taker(2, idle=100), taker(3, idle=200)]

    assert pairs(assign([caller("CA1")], takers, NOW)) == [("CA1", 2)]


def test_equally_idle_call_takers_are_chosen_by_staff_id() -> None:
    takers = [taker(9, idle=100), taker(4, idle=100), taker(6, idle=100)]

    assert pairs(assign([caller("CA1"), caller("CA2", queued=1)], takers, NOW)) == [
        ("CA1", 4),
        ("CA2", 6),
    ]


def test_the_decision_does_not_depend_on_the_order_of_its_inputs() -> None:
    rng = random.Random(11)
    callers = [caller(f"CA{n}", queued=n % 4, language=rng.choice(["zh", "bo"])) for n in range(12)]
    takers = [taker(n, languages=rng.choice(["zh", "zh bo"]), idle=n % 3) for n in range(8)]
    expected = assign(callers, takers, NOW)

    for _ in range(5):
        rng.shuffle(callers)
        rng.shuffle(takers)
        assert assign(callers, takers, NOW) == expected


def test_decisions_in_a_row_spread_calls_over_the_call_takers() -> None:
    takers = {n: taker(n, idle=n) for n in (1, 2, 3)}
    served: list[int] = []

    for n in range(6):
        arrived = 10 + 10 * n
        [assignment] = assign([caller(f"CA{n}", queued=arrived)], takers.values(), at(arrived))
        served.append(assignment.staff_id)
        # a short call and wrap-up: free again before the next caller arrives
        takers[assignment.staff_id] = replace(
            takers[assignment.staff_id], idle_since=at(arrived + 5)
        )

    assert served == [1, 2, 3, 1, 2, 3]


def test_a_call_taker_gets_at_most_one_caller_per_decision() -> None:
    callers = [caller(f"CA{n}", queued=n) for n in range(5)]
    takers = [taker(1, idle=10), taker(2, idle=20)]

    assignments = assign(callers, takers, NOW)

    assert pairs(assignments) == [("CA0", 1), ("CA1", 2)]


@pytest.mark.parametrize(
    "state",
    [
        TakerState.OFFLINE,
        TakerState.RINGING,
        TakerState.ON_CALL,
        TakerState.WRAP_UP,
        TakerState.AWAY,
    ],
)
def test_callers_wait_while_no_call_taker_is_available(state: TakerState) -> None:
    assert assign([caller("CA1")], [taker(1, state=state)], NOW) == []


def test_no_callers_or_no_call_takers_means_no_assignments() -> None:
    assert assign([], [taker(1)], NOW) == []
    assert assign([caller("CA1")], [], NOW) == []
    assert assign([], [], NOW) == []
    assert positions([]) == {}
    assert queue_order([]) == []


# -- language ----------------------------------------------------------------------------


def test_tibetan_caller_goes_to_tibetan_speaker_when_one_is_free() -> None:
    takers = [taker(1, idle=0), taker(2, languages="zh bo", idle=300)]

    assignments = assign([caller("CA1", language="bo")], takers, NOW)

    assert pairs(assignments) == [("CA1", 2)]
    assert assignments[0].reasons == (Reason.LANGUAGE,)
    assert not assignments[0].is_language_fallback


def test_tibetan_caller_falls_back_to_anyone_free_when_no_tibetan_speaker_is_on_duty() -> None:
    takers = [
        taker(1, idle=100),
        taker(2, languages="zh bo", state=TakerState.AWAY),
        taker(3, languages="bo", state=TakerState.OFFLINE),
    ]

    [assignment] = assign([caller("CA1", language="bo", queued=590)], takers, NOW)

    assert assignment.staff_id == 1
    assert assignment.reasons == (Reason.LANGUAGE_FALLBACK,)
    assert assignment.is_language_fallback


@pytest.mark.parametrize("busy", [TakerState.RINGING, TakerState.ON_CALL, TakerState.WRAP_UP])
def test_tibetan_caller_waits_for_a_busy_tibetan_speaker_within_the_language_wait(
    busy: TakerState,
) -> None:
    takers = [taker(1), taker(2, languages="zh bo", state=busy)]
    policy = RoutingPolicy(language_wait=timedelta(seconds=60))
    tibetan = caller("CA1", language="bo", queued=570)  # 30 s in the queue at NOW

    assert assign([tibetan], takers, NOW, policy) == []
    assert policy.falls_back_at(tibetan) == at(630)


def test_tibetan_caller_goes_to_anyone_free_once_the_language_wait_is_over() -> None:
    takers = [taker(1), taker(2, languages="zh bo", state=TakerState.ON_CALL)]
    policy = RoutingPolicy(language_wait=timedelta(seconds=60))
    tibetan = caller("CA1", language="bo", queued=0)

    [assignment] = assign([tibetan], takers, policy.falls_back_at(tibetan), policy)

    assert assignment.staff_id == 1
    assert assignment.reasons == (Reason.LANGUAGE_FALLBACK, Reason.LANGUAGE_WAIT_OVER)


def test_a_language_wait_of_zero_never_keeps_a_caller_waiting() -> None:
    takers = [taker(1), taker(2, languages="bo", state=TakerState.ON_CALL)]

    [assignment] = assign([caller("CA1", language="bo", queued=599)], takers, NOW, NO_WAIT)

    assert assignment.staff_id == 1
    assert assignment.is_language_fallback


def test_emergency_caller_never_waits_for_a_language() -> None:
    takers = [taker(1), taker(2, languages="bo", state=TakerState.ON_CALL)]
    urgent = caller("CA1", language="bo", queued=599, emergency=True)

    [assignment] = assign([urgent], takers, NOW)

    assert assignment.staff_id == 1
    assert assignment.reasons == (Reason.EMERGENCY, Reason.LANGUAGE_FALLBACK)


def test_a_caller_waiting_for_a_language_does_not_hold_up_the_callers_behind() -> None:
    takers = [taker(1), taker(2, languages="zh bo", state=TakerState.ON_CALL)]
    callers = [caller("CA1", language="bo", queued=590), caller("CA2", queued=595)]

    assert pairs(assign(callers, takers, NOW)) == [("CA2", 1)]


def test_second_tibetan_caller_waits_for_the_speaker_the_first_one_got() -> None:
    takers = [taker(1), taker(2, languages="zh bo")]
    callers = [caller("CA1", language="bo", queued=590), caller("CA2", language="bo", queued=595)]

    assert pairs(assign(callers, takers, NOW)) == [("CA1", 2)]


def test_mandarin_caller_is_not_given_to_an_english_only_call_taker_while_a_speaker_is_free() -> (
    None
):
    takers = [taker(1, languages="en", idle=0), taker(2, languages="zh en", idle=100)]

    assert pairs(assign([caller("CA1")], takers, NOW)) == [("CA1", 2)]


def test_english_caller_falls_back_with_the_reason_when_nobody_speaks_english() -> None:
    [assignment] = assign([caller("CA1", language="en")], [taker(1)], NOW)

    assert assignment.reasons == (Reason.LANGUAGE_FALLBACK,)


# -- skill by intent ---------------------------------------------------------------------


def test_caller_goes_to_a_call_taker_skilled_for_their_intent() -> None:
    takers = [taker(1, idle=0), taker(2, skills="complaint", idle=100)]

    [assignment] = assign([caller("CA1", intent="complaint")], takers, NOW)

    assert assignment.staff_id == 2
    assert assignment.reasons == (Reason.LANGUAGE, Reason.SKILL)


def test_without_a_skilled_call_taker_free_the_longest_idle_takes_the_call() -> None:
    takers = [taker(1, idle=50), taker(2, skills="consultation", idle=0), taker(3, idle=20)]

    [assignment] = assign([caller("CA1", intent="complaint")], takers, NOW)

    assert assignment.staff_id == 2
    assert assignment.reasons == (Reason.LANGUAGE,)


@pytest.mark.parametrize("intent", [None, "operator", "progress"])
def test_caller_without_a_menu_intent_goes_to_the_longest_idle(intent: str | None) -> None:
    takers = [taker(1, skills="complaint help", idle=50), taker(2, idle=10)]

    assert pairs(assign([caller("CA1", intent=intent)], takers, NOW)) == [("CA1", 2)]


def test_language_comes_before_skill() -> None:
    takers = [taker(1, skills="complaint", idle=0), taker(2, languages="bo", idle=100)]

    [assignment] = assign([caller("CA1", language="bo", intent="complaint")], takers, NOW)

    assert assignment.staff_id == 2
    assert assignment.reasons == (Reason.LANGUAGE,)


def test_skill_still_counts_when_the_language_falls_back() -> None:
    takers = [taker(1, idle=0), taker(2, skills="help", idle=100)]

    [assignment] = assign([caller("CA1", language="bo", intent="help")], takers, NOW)

    assert assignment.staff_id == 2
    assert assignment.reasons == (Reason.LANGUAGE_FALLBACK, Reason.SKILL)


def test_skilled_call_takers_are_shared_out_in_queue_order() -> None:
    takers = [taker(1, idle=0), taker(2, skills="complaint", idle=10), taker(3, idle=20)]
    callers = [
        caller("CA1", intent="consultation", queued=1),
        caller("CA2", intent="complaint", queued=2),
        caller("CA3", intent="complaint", queued=3),
    ]

    assert pairs(assign(callers, takers, NOW)) == [("CA1", 1), ("CA2", 2), ("CA3", 3)]


# -- excluded call-takers ----------------------------------------------------------------


def test_call_taker_who_let_the_call_ring_out_is_skipped_for_that_caller_only() -> None:
    takers = [taker(1, idle=0), taker(2, idle=100)]
    rang_out = caller("CA1", queued=1, failed=(FailedRing(1, at(200)),))
    other = caller("CA2", queued=2)

    assert pairs(assign([rang_out, other], takers, NOW)) == [("CA1", 2), ("CA2", 1)]


def test_caller_waits_when_every_free_call_taker_is_excluded() -> None:
    excluded = caller("CA1", failed=(FailedRing(1, at(200)), FailedRing(2, at(220))))

    assert assign([excluded], [taker(1), taker(2)], NOW) == []


def test_call_taker_who_failed_and_came_back_is_offered_the_call_again() -> None:
    back = taker(1, idle=400)  # free again at 400 s, after failing at 200 s
    waiting = caller("CA1", failed=(FailedRing(1, at(200)),))

    assert pairs(assign([waiting], [back], NOW)) == [("CA1", 1)]


def test_tibetan_caller_does_not_wait_for_a_speaker_who_declined_them() -> None:
    takers = [taker(1, idle=0), taker(2, languages="bo", state=TakerState.RINGING, idle=0)]
    declined = caller("CA1", language="bo", queued=599, failed=(FailedRing(2, at(590)),))

    [assignment] = assign([declined], takers, NOW)

    assert assignment.staff_id == 1
    assert assignment.reasons == (Reason.LANGUAGE_FALLBACK,)


# -- the emergency three-way -------------------------------------------------------------


def test_emergency_three_way_takes_the_longest_idle_speaker_of_the_callers_language() -> None:
    takers = [taker(1, idle=0), taker(2, languages="zh bo", idle=50), taker(3, languages="bo")]

    chosen = first_free_taker(takers, "bo")

    assert chosen is not None and chosen.staff_id == 3


def test_emergency_three_way_takes_anyone_free_when_nobody_speaks_the_language() -> None:
    takers = [taker(1, idle=50), taker(2, idle=10), taker(3, languages="en", state=TakerState.AWAY)]

    chosen = first_free_taker(takers, "en")

    assert chosen is not None and chosen.staff_id == 2


def test_emergency_three_way_has_no_call_taker_when_none_is_free() -> None:
    assert first_free_taker([taker(1, state=TakerState.ON_CALL)], "zh") is None
    assert first_free_taker([], "zh") is None


# -- the indexed decision against the plain one ------------------------------------------


def assign_one_by_one(
    callers: list[WaitingCaller], takers: list[CallTaker], now: datetime, policy: RoutingPolicy
) -> list[Assignment]:
    """The rule written plainly: each caller in queue order takes ``choose_taker``'s pick."""
    assignments = []
    for waiting in queue_order(callers):
        assignment = choose_taker(waiting, takers, now, policy)
        if assignment is not None:
            assignments.append(assignment)
            takers = [
                replace(t, state=TakerState.RINGING) if t.staff_id == assignment.staff_id else t
                for t in takers
            ]
    return assignments


def random_case(
    seed: int,
) -> tuple[list[WaitingCaller], list[CallTaker], datetime, RoutingPolicy]:
    rng = random.Random(seed)
    states = list(TakerState)
    takers = [
        CallTaker(
            staff_id,
            frozenset(rng.sample(["zh", "zh", "zh", "bo", "en"], rng.randint(1, 3))),
            frozenset(
                rng.sample(["consultation", "complaint", "help", "progress"], rng.randint(0, 2))
            ),
            rng.choice([*states, TakerState.AVAILABLE, TakerState.AVAILABLE]),
            at(rng.randint(0, 40) * 10),  # coarse, so that ties happen
        )
        for staff_id in rng.sample(range(1, 500), rng.randint(0, 30))
    ]
    staff_ids = [t.staff_id for t in takers] or [1]
    callers = [
        WaitingCaller(
            f"CA{n:04x}",
            rng.choice(["zh", "zh", "zh", "bo", "bo", "en"]),
            rng.choice([None, "consultation", "complaint", "help", "operator", "progress"]),
            at(rng.randint(0, 60) * 5),
            is_emergency=rng.random() < 0.1,
            failed_rings=tuple(
                FailedRing(rng.choice(staff_ids), at(rng.randint(0, 400)))
                for _ in range(rng.choice([0, 0, 0, 1, 3]))
            ),
        )
        for n in rng.sample(range(5000), rng.randint(0, 60))
    ]
    policy = RoutingPolicy(language_wait=timedelta(seconds=rng.choice([0, 30, 120])))
    return callers, takers, at(rng.randint(250, 400)), policy


@pytest.mark.parametrize("seed", range(200))
def test_indexed_decision_matches_choosing_caller_by_caller(seed: int) -> None:
    callers, takers, now, policy = random_case(seed)

    assert assign(callers, takers, now, policy) == assign_one_by_one(callers, takers, now, policy)
