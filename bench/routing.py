#!/usr/bin/env python3
"""Routing decisions per second: one ``assign`` over 300 call-takers and 2,000 waiting callers.

Issue 3, "Benchmark" (the decision part; the webhook burst is measured elsewhere). Three
cases: every call-taker free (the start of a shift with a full queue), 30 free, and 1 free
(a call-taker finishes wrap-up: the everyday decision). The callers come in shuffled (no
help from a queue that is already sorted); about 12% speak Tibetan, 3% English, 1% are
emergencies and 5% already rang out with someone.

The baseline, measured in the same run, is the rule written plainly: ``choose_taker`` for
each caller in queue order, scanning every call-taker. Both must give the same assignments.
Each figure is the median of ``--rounds`` rounds, each as many decisions as fit in about
``--round-seconds``.

    .venv/bin/python bench/routing.py
    .venv/bin/python bench/routing.py --quick       # CI smoke: 3 short rounds

It reports and never asserts; the exit code is 1 only when the two ways disagree.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

# This script's own name would shadow the routing package: put the repository first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.assignment import Assignment, CallTaker, TakerState, assign, choose_taker
from routing.queue_order import FailedRing, WaitingCaller, queue_order

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
INTENTS = [None, "consultation", "complaint", "help", "operator", "progress"]
BUSY = [TakerState.ON_CALL, TakerState.ON_CALL, TakerState.WRAP_UP, TakerState.RINGING]

Decision = Callable[[], list[Assignment]]


def make_takers(rng: random.Random, count: int, free: int) -> list[CallTaker]:
    takers = []
    for staff_id in range(1, count + 1):
        languages = {"zh"}
        if rng.random() < 0.2:
            languages.add("bo")
        if rng.random() < 0.1:
            languages.add("en")
        skills = rng.sample(["consultation", "complaint", "help"], rng.randint(0, 2))
        state = TakerState.AVAILABLE if staff_id <= free else rng.choice(BUSY)
        idle_since = NOW - timedelta(seconds=rng.randint(0, 3600))
        takers.append(
            CallTaker(staff_id, frozenset(languages), frozenset(skills), state, idle_since)
        )
    rng.shuffle(takers)
    return takers


def make_callers(rng: random.Random, count: int, staff: int) -> list[WaitingCaller]:
    callers = []
    for n in range(count):
        failed = ()
        if rng.random() < 0.05:
            failed = tuple(
                FailedRing(rng.randint(1, staff), NOW - timedelta(seconds=rng.randint(0, 60)))
                for _ in range(rng.randint(1, 2))
            )
        callers.append(
            WaitingCaller(
                call_sid=f"CA{n:032x}",
                language=rng.choices(["zh", "bo", "en"], [85, 12, 3])[0],
                intent=rng.choice(INTENTS),
                queued_at=NOW - timedelta(milliseconds=rng.randint(0, 1_800_000)),
                is_emergency=rng.random() < 0.01,
                failed_rings=failed,
            )
        )
    rng.shuffle(callers)
    return callers


def assign_by_scanning(
    callers: Sequence[WaitingCaller], takers: Sequence[CallTaker], now: datetime
) -> list[Assignment]:
    """The baseline: every caller scans every call-taker (and stops when nobody is free)."""
    free = sum(t.state is TakerState.AVAILABLE for t in takers)
    taken: set[int] = set()
    assignments = []
    for caller in queue_order(callers):
        if len(taken) == free:
            break
        found = choose_taker(caller, (t for t in takers if t.staff_id not in taken), now)
        if found is not None:
            assignments.append(found)
            taken.add(found.staff_id)
    return assignments


def decisions_per_second(decide: Decision, rounds: int, round_seconds: float) -> list[float]:
    """Rounds of back-to-back decisions, the garbage collector off as ``timeit`` does."""
    start = time.perf_counter()
    decide()
    per_round = max(1, int(round_seconds / max(time.perf_counter() - start, 1e-9)))
    rates = []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(per_round):
                decide()
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        rates.append(per_round / elapsed)
    return rates


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--takers", type=int, default=300)
    parser.add_argument("--callers", type=int, default=2000)
    parser.add_argument("--free", type=int, nargs="+", default=[300, 30, 1])
    parser.add_argument("--rounds", type=int, default=7, help="rounds; medians are reported")
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.2 s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.rounds, args.round_seconds = 3, 0.2
    print(
        f"routing: {args.takers} call-takers, {args.callers} waiting callers, "
        f"{args.rounds} rounds of ~{args.round_seconds:g} s, "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    print(
        f"{'free':>5} {'assigned':>8} {'decisions/s':>12} {'(min-max)':>13} "
        f"{'ms/decision':>12} {'baseline/s':>11} {'speed-up':>9}"
    )
    agree = True
    for free in args.free:
        rng = random.Random(args.seed)
        takers = make_takers(rng, args.takers, min(free, args.takers))
        callers = make_callers(rng, args.callers, args.takers)
        indexed = assign(callers, takers, NOW)
        agree &= indexed == assign_by_scanning(callers, takers, NOW)
        fast_rates = decisions_per_second(
            partial(assign, callers, takers, NOW), args.rounds, args.round_seconds
        )
        slow_rates = decisions_per_second(
            partial(assign_by_scanning, callers, takers, NOW), args.rounds, args.round_seconds
        )
        fast, slow = statistics.median(fast_rates), statistics.median(slow_rates)
        spread = f"{min(fast_rates):,.0f}-{max(fast_rates):,.0f}"
        print(
            f"{free:>5} {len(indexed):>8} {fast:>12,.0f} {spread:>13} {1000 / fast:>12.3f} "
            f"{slow:>11,.0f} {fast / slow:>8.1f}x"
        )
    print("same assignments as the baseline:", "yes" if agree else "NO")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
