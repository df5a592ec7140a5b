#!/usr/bin/env python3
"""Routing: one ``assign`` over 300 call-takers and 2,000 callers; a burst of 200 calls.

Issue 3, "Benchmark", in two parts.

**Decisions.** Three cases: every call-taker free (the start of a shift with a full
queue), 30 free, and 1 free (a call-taker finishes wrap-up: the everyday decision). The
callers come in shuffled (no help from a queue that is already sorted); about 12% speak
Tibetan, 3% English, 1% are emergencies and 5% already rang out with someone.

The baseline, measured in the same run, is the rule written plainly: ``choose_taker`` for
each caller in queue order, scanning every call-taker. Both must give the same assignments.
Each figure is the median of ``--rounds`` rounds, each as many decisions as fit in about
``--round-seconds``.

**The burst** (``bench/routing_burst.py``): 200 callers at once through the signed
webhooks into the queue of the hotline's real servers (gunicorn ``web`` with the journal
drainer and ``console``, as the Procfile runs them, on a fresh migrated database), 50
call-takers logged in to the console answering; each call-taker who finishes a call
presses "available". It prints the time from "call-taker available" to "participant create
sent" (p50/p95/p99/max; goal p99 < 100 ms), the dispatch passes and assignments per second,
and checks that every call was put through exactly once.

    .venv/bin/python bench/routing.py               # both parts, SQLite
    .venv/bin/python bench/routing.py --postgres    # the burst on SQLite and PostgreSQL
    .venv/bin/python bench/routing.py --quick       # CI smoke: short rounds, 20 calls, 5 takers
    .venv/bin/python bench/routing.py --burst-only --postgres --repeat 5   # medians of 5 bursts

It reports and never asserts a time; the exit code is 1 only on a correctness failure (the
two ways of deciding disagree; a call never put through, or rung twice; a call-taker rung
again before they were free), 2 when the harness itself cannot run.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

# This script's own name would shadow the routing package: put the repository first (the
# harness package, beside this script, stays importable from the script's folder).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from harness.databases import DEFAULT_POSTGRES_URL
from harness.tools import HarnessError

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
    parser.add_argument(
        "--quick", action="store_true", help="3 rounds of 0.2 s; a burst of 20 calls, 5 takers"
    )
    burst = parser.add_argument_group("the burst")
    burst.add_argument("--calls", type=int, default=200, help="callers arriving at once")
    burst.add_argument("--burst-takers", type=int, default=50, help="call-takers answering")
    burst.add_argument("--talk", type=float, default=2.0, help="mean talk time, s")
    burst.add_argument("--ring", type=float, default=0.3, help="ring time before answering, s")
    burst.add_argument("--wrap-up", type=float, default=0.3, help="mean wrap-up time, s")
    burst.add_argument("--web-workers", type=int, default=4, help="gunicorn sync workers")
    burst.add_argument(
        "--client-nice",
        type=int,
        default=10,
        metavar="N",
        help="niceness of the threads playing Twilio and the callers (Twilio's load is not on "
        "the hotline's cores in production; 0: the same priority as the servers)",
    )
    burst.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_POSTGRES_URL,
        default=os.environ.get("BENCH_DATABASE_URL"),
        metavar="URL",
        help="also run the burst on PostgreSQL; a database to connect to for CREATE DATABASE "
        f"(default: $BENCH_DATABASE_URL or {DEFAULT_POSTGRES_URL})",
    )
    burst.add_argument("--no-sqlite", action="store_true", help="skip the SQLite burst")
    burst.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="bursts per database, each on a fresh database; with N > 1 the medians of the "
        "runs' figures follow, next to the machine's load during each run",
    )
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--decisions-only", action="store_true", help="skip the burst")
    part.add_argument("--burst-only", action="store_true", help="skip the decisions")
    parser.add_argument("--keep", action="store_true", help="keep the burst's work dir (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.round_seconds = 3, 0.2
        args.calls, args.burst_takers, args.talk = 20, 5, 0.5
    return args


def run_decisions(args: argparse.Namespace) -> bool:
    """The decision part; True when both ways gave the same assignments."""
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
    return agree


def run_bursts(args: argparse.Namespace) -> bool:
    """The burst on each database asked for; True when every one was correct."""
    from routing_burst import BurstOptions, burst_on

    options = BurstOptions(
        calls=args.calls,
        takers=args.burst_takers,
        ring_s=args.ring,
        talk_s=args.talk,
        wrap_s=args.wrap_up,
        web_workers=args.web_workers,
        seed=args.seed,
        client_nice=args.client_nice,
    )
    backends = ([] if args.no_sqlite else ["sqlite"]) + (["postgres"] if args.postgres else [])
    workdir = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    try:
        if args.repeat > 1:
            return repeated_bursts(backends, args.postgres, options, workdir, args.repeat)
        return burst_on(backends, args.postgres, options, workdir)
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def repeated_bursts(
    backends: list[str], postgres_url: str | None, options: object, workdir: Path, repeat: int
) -> bool:
    """``repeat`` bursts per backend, each printed as it ends with the load average (1 min)
    before and after it, then the medians of the runs. A shared 2-core machine makes a
    single burst's tail a matter of luck (other processes, a checkpoint at the wrong time):
    the medians of a few runs, with the load beside them, are the figures to quote."""
    from harness.burst_servers import find_tools
    from harness.databases import databases_for
    from routing_burst import Burst, print_burst

    tools = find_tools()
    correct = True
    with databases_for(backends, tools, workdir, postgres_url) as opened:
        for backend, databases in opened.items():
            runs: list[tuple[float, float, dict]] = []
            for n in range(1, repeat + 1):
                folder = workdir / f"burst-{backend}-{n}"
                folder.mkdir()
                before = os.getloadavg()[0]
                figures = Burst(databases, tools, options, folder).run()  # type: ignore[arg-type]
                after = os.getloadavg()[0]
                label = (
                    f"{databases.describe()}, run {n} of {repeat}, load {before:.2f}->{after:.2f}"
                )
                print_burst(label, figures)
                runs.append((before, after, figures))
                correct &= not figures["problems"]
            print_medians(backend, runs)
    return correct


def print_medians(backend: str, runs: list[tuple[float, float, dict]]) -> None:
    """The median over the runs of each run's percentiles (and the runs' p99 one by one)."""

    def median_of(figure: str, key: str) -> str:
        values = [f[figure][key] for _, _, f in runs if f[figure] is not None]
        return f"{statistics.median(values):7.1f}" if values else "      -"

    print(f"\n{backend}: medians of {len(runs)} bursts (each run's percentile, then the median)")
    for figure, name in (
        ("latency_ms", "available -> participant create sent"),
        ("claimed_ms", "  of which: available -> ring claimed (DB)"),
        ("console_post_ms", "console 'available' POST"),
        ("pass_ms", "one dispatch pass"),
    ):
        cells = "  ".join(f"{key} {median_of(figure, key)}" for key in ("p50", "p95", "p99", "max"))
        print(f"  {name:<44} {cells} ms")
    p99s = ", ".join(
        f"{f['latency_ms']['p99']:.0f} ms (load {before:.2f}->{after:.2f})"
        for before, after, f in runs
        if f["latency_ms"] is not None
    )
    print(f"  p99 of each run: {p99s}")
    loads = [before for before, _, _ in runs]
    print(f"  load average (1 min) at the start of the runs: median {statistics.median(loads):.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    correct = True
    if not args.burst_only:
        correct &= run_decisions(args)
    if not args.decisions_only:
        if not args.burst_only:
            print()
        try:
            correct &= run_bursts(args)
        except HarnessError as error:
            print(f"the burst could not run: {error}", file=sys.stderr)
            return 2
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
