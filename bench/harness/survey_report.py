"""The survey benchmark's figures, from the stand-in's records, the rows and the sweeps'
probe, and their printing. Nothing here asserts: the report says what happened."""

from __future__ import annotations

import itertools
import os
from bisect import bisect_left
from collections import Counter, defaultdict
from typing import Any

from .survey_seed import Attempt

BUSY_CORES = 0.3  # other processes using more than this: the figures are noisy


def busiest(times: list[float], window: float) -> tuple[int, float | None]:
    """The most creates inside any ``[t, t + window)`` (sliding), and where it starts."""
    best, at, low = 0, None, 0
    for high, moment in enumerate(times):
        while times[low] <= moment - window:
            low += 1
        if high - low + 1 > best:
            best, at = high - low + 1, times[low]
    return best, at


def figures(run: dict[str, Any], rate: float) -> dict[str, Any]:
    records: list[dict[str, Any]] = run["records"]
    outcome = run["outcome"]
    attempts: list[Attempt] = outcome["attempts"]
    by_key = {a.attempt_key: a for a in attempts}
    creates = sorted((r for r in records if r["op"] == "create"), key=lambda r: r["t"])
    played = {r["sid"]: r for r in records if r["op"] == "played"}
    lists = [r for r in records if r["op"] == "list"]
    times = [r["t"] for r in creates]
    f: dict[str, Any] = {"rate": rate, "creates": len(creates)}

    # -- the pace -------------------------------------------------------------------------
    if times:
        span = times[-1] - times[0]
        f["span_s"] = span
        f["overall_per_s"] = (len(times) - 1) / span if span > 0 else None
        first_wave = [r["t"] for r in creates if _number(by_key, r) == 1]
        if len(first_wave) > 1:
            wave = first_wave[-1] - first_wave[0]
            inside = [t for t in times if first_wave[0] <= t <= first_wave[-1]]
            pauses = [b - a for a, b in itertools.pairwise(inside) if b - a > 1.0]
            f["pauses"] = (len(pauses), sum(pauses), max(pauses, default=0.0))
            f["first_wave"] = (
                len(first_wave),
                wave,
                (len(first_wave) - 1) / wave if wave else None,
            )
        f["busiest_1s"] = busiest(times, 1.0)
        f["busiest_60s"] = busiest(times, 60.0)
        per_second = Counter(int(t) for t in times)
        f["seconds_over"] = sum(1 for n in per_second.values() if n > rate)
        f["seconds_with_calls"] = len(per_second)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        f["min_gap_ms"] = min(gaps) * 1000 if gaps else None
        f["first_create_after_s"] = times[0] - run["started"]
        origin = run["sweeps"][0]["start"] if run["sweeps"] else run["started"]
        minutes = Counter(int((t - origin) // 60) for t in times)
        f["per_minute"] = [minutes[m] for m in range(max(minutes) + 1)] if minutes else []

    # -- duplicates -----------------------------------------------------------------------
    per_key = Counter(r["attempt"] for r in creates)
    f["dup_keys"] = sum(1 for n in per_key.values() if n > 1)
    f["unknown_keys"] = sum(1 for r in creates if r["attempt"] not in by_key)
    per_survey: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in creates:
        attempt = by_key.get(r["attempt"])
        if attempt is not None:
            per_survey[attempt.survey_id].append(r)
    f["creates_per_survey"] = Counter(len(v) for v in per_survey.values())
    answered = Counter()
    overlapping = 0
    for survey_id, calls in per_survey.items():
        for call in calls:
            done = played.get(call["sid"])
            if done and done["answered_by"] == "human":
                answered[survey_id] += 1
        for first, second in itertools.pairwise(calls):
            ended = played.get(first["sid"], {}).get("t")
            if ended is None or second["t"] < ended:
                overlapping += 1
    f["answered_twice"] = sum(1 for n in answered.values() if n > 1)
    f["overlapping"] = overlapping
    f["surveys_called"] = len(per_survey)

    # -- 500s after the create ------------------------------------------------------------
    failed = [r for r in creates if r["http"] == 500]
    again = recorded = looked_up = by_callback = 0
    for r in failed:
        attempt = by_key.get(r["attempt"])
        calls = per_survey.get(attempt.survey_id, []) if attempt else []
        if any(c["t"] > r["t"] for c in calls):
            again += 1
        if attempt is not None and attempt.call_sid == r["sid"]:
            recorded += 1
        answered_at = played.get(r["sid"], {}).get("answered_at") or float("inf")
        if any(
            q["query"].get("To") == r["to"]
            and r["t"] < q["t"] < answered_at
            and r["sid"] in q["sids"]
            for q in lists
        ):
            looked_up += 1
        elif attempt is not None and attempt.call_sid == r["sid"]:
            by_callback += 1
    f["failed"] = len(failed)
    f["failed_called_again"] = again
    f["failed_recorded"] = recorded
    f["failed_found_by_lookup"] = looked_up
    f["failed_recorded_by_callback"] = by_callback
    f["lookups"] = len(lists)

    # -- the calls played -----------------------------------------------------------------
    f["dispositions"] = Counter(r["disposition"] for r in played.values())
    f["not_played"] = len(creates) - len(played)
    errors = [e for r in played.values() for e in r["errors"]]
    f["webhooks"] = sum(r["webhooks"] for r in played.values())
    f["webhook_errors"] = len(errors)
    f["webhook_error_samples"] = errors[:3]
    f["bugs"] = [r for r in records if r["op"] in ("bug", "unknown")][:3]

    # -- sweeps, drain --------------------------------------------------------------------
    sweeps = run["sweeps"]
    f["sweeps"] = len(sweeps)
    f["sweep_pids"] = len({s["pid"] for s in sweeps})
    totals: Counter[str] = Counter()
    for s in sweeps:
        for key, value in (s.get("counts") or {}).items():
            if isinstance(value, bool):
                totals[key] += int(value)
            elif isinstance(value, int):
                totals[key] += value
    f["sweep_totals"] = totals
    f["sweep_errors"] = [s["error"] for s in sweeps if s.get("error")][:3]
    placing = [s for s in sweeps if (s.get("counts") or {}).get("placed")]
    f["sweeps_placing"] = len(placing)
    f["sweep_max_s"] = max((s["end"] - s["start"] for s in sweeps), default=None)
    f["max_claimed"] = max(((s.get("counts") or {}).get("claimed", 0) for s in sweeps), default=0)
    f["concurrent_placing"] = _overlaps(placing)
    first_sweep = sweeps[0]["start"] if sweeps else None
    f["first_sweep_after_s"] = first_sweep - run["started"] if first_sweep else None
    origin = first_sweep or run["started"]
    f["drain_s"] = run["drained_at"] - origin if run["drained_at"] else None
    f["statuses"] = outcome["statuses"]
    f["orders"] = outcome["orders"]
    f["reviews"] = outcome["reviews"]
    f["sms"] = outcome["sms"]
    f["attempt_statuses"] = Counter(a.status for a in attempts)
    f["tracebacks"] = {name: text.count("Traceback") for name, text in run["logs"].items()}
    f["locked"] = sum(text.count("database is locked") for text in run["logs"].values())
    return f


def _number(by_key: dict[str, Attempt], record: dict[str, Any]) -> int | None:
    attempt = by_key.get(record["attempt"])
    return attempt.number if attempt else None


def _overlaps(sweeps: list[dict[str, Any]]) -> int:
    """Pairs of sweeps of different processes that placed calls at the same time."""
    pairs = 0
    starts = [s["start"] for s in sweeps]
    for i, s in enumerate(sweeps):
        for other in sweeps[i + 1 : bisect_left(starts, s["end"])]:
            if other["pid"] != s["pid"] or other["thread"] != s["thread"]:
                pairs += 1
    return pairs


def _ratio(count: int, allowed: float) -> str:
    return f"{count / allowed:.2f}x" if allowed else "-"


def print_report(run: dict[str, Any], f: dict[str, Any], orders: int) -> None:
    rate = f["rate"]
    print(f"  database: {run['database']}; Huey: {run['huey']}")
    print(f"  workers: 2 x `{run['worker_command']}`")
    print(f"  seeded {orders:,} answered orders with their surveys in {run['seed_s']:.1f} s")
    if not f["creates"]:
        print("  NO CALL WAS CREATED: see the workers' logs (--keep)")
    else:
        print(
            f"  calls created: {f['creates']:,} for {f['surveys_called']:,} surveys "
            f"(creates per survey: {_counts(f['creates_per_survey'])}); first create "
            f"{f['first_create_after_s']:.1f} s after the workers started"
        )
        overall = f["overall_per_s"]
        print(
            f"  configured rate: {rate:g}/s; while calls were due: "
            f"{overall:.2f}/s over {f['span_s']:.1f} s (first create to last)"
            if overall
            else f"  configured rate: {rate:g}/s"
        )
        if "first_wave" in f:
            n, span, per_s = f["first_wave"]
            print(
                f"  first attempts: {n:,} in {span:.1f} s = {per_s:.2f}/s "
                f"({_ratio(per_s, rate)} the rate)"
            )
        if "pauses" in f:
            count, total, longest = f["pauses"]
            print(
                f"  while first attempts were due: {count} pauses over 1 s between two creates, "
                f"{total:.0f} s in all, the longest {longest:.1f} s"
            )
        print(f"  creates in each minute from the first sweep: {f['per_minute']}")
        one, _ = f["busiest_1s"]
        sixty, _ = f["busiest_60s"]
        print(
            f"  busiest second: {one} creates = {_ratio(one, rate)} the rate; busiest 60 s: "
            f"{sixty} = {_ratio(sixty, rate * 60)} the rate x 60; seconds above the rate: "
            f"{f['seconds_over']} of {f['seconds_with_calls']}; smallest gap between two "
            f"creates: {f['min_gap_ms']:.1f} ms (spacing 1/rate = {1000 / rate:.1f} ms)"
        )
    verdict = (
        "none"
        if not (f["dup_keys"] or f["answered_twice"] or f["unknown_keys"] or f["overlapping"])
        else "FOUND"
    )
    print(
        f"  duplicates: {verdict}: {f['dup_keys']} attempt keys created twice, "
        f"{f['answered_twice']} surveys answered on two calls, {f['overlapping']} calls to a "
        f"survey while its previous call was still going, {f['unknown_keys']} creates with an "
        "attempt key the database does not have"
    )
    print(
        f"  500s after the create: {f['failed']} injected; {f['failed_called_again']} of them "
        f"called again; {f['failed_recorded']} recorded on their attempt (by the worker's "
        f"lookup: {f['failed_found_by_lookup']}, by the call's own status callback: "
        f"{f['failed_recorded_by_callback']}); {f['lookups']} Calls list requests in all"
    )
    drain = f["drain_s"]
    print(
        "  drain: "
        + (
            f"{drain:.1f} s from the first sweep to the last survey settled"
            if drain is not None
            else f"NOT DRAINED within the timeout ({run['finished'] - run['started']:.0f} s)"
        )
        + (
            f" (first sweep {f['first_sweep_after_s']:.1f} s after the workers started)"
            if f["first_sweep_after_s"] is not None
            else " (no sweep seen by the probe)"
        )
    )
    print(
        f"  surveys: {_counts(f['statuses'])}; {f['reviews']} to the reviewer; "
        f"{f['sms']} survey SMS; orders: {_counts(f['orders'])}"
    )
    print(f"  attempts: {_counts(f['attempt_statuses'])}")
    totals = f["sweep_totals"]
    summary = ", ".join(
        f"{k} {v}" for k, v in totals.items() if v and k not in ("paused", "throttled")
    )
    print(
        f"  sweeps: {f['sweeps']} in {f['sweep_pids']} processes ({f['sweeps_placing']} placed "
        f"calls; {f['concurrent_placing']} pairs placed at the same time; longest "
        f"{(f['sweep_max_s'] or 0):.1f} s; most claimed by one: {f['max_claimed']}); "
        f"{summary}" + (f"; throttled {totals['throttled']}" if totals["throttled"] else "")
    )
    for error in f["sweep_errors"] + run["probe_errors"]:
        print(f"    sweep error: {error}")
    print(
        f"  calls played: {_counts(f['dispositions'])}; {f['webhooks']:,} webhooks, "
        f"{f['webhook_errors']} not answered 200; {f['not_played']} not played out"
    )
    for sample in f["webhook_error_samples"] + f["bugs"]:
        print(f"    {sample}")
    tracebacks = {k: v for k, v in f["tracebacks"].items() if v}
    if tracebacks or f["locked"]:
        print(f"  logs: tracebacks {tracebacks or 'none'}; 'database is locked' {f['locked']}")
    print_cpu(run)


def print_cpu(run: dict[str, Any]) -> None:
    cpu = dict(run["cpu"])
    elapsed = max(run["idle_at"] - run["started"], 1e-9)
    busy = cpu.pop("machine busy")
    cpu.pop("machine idle")
    ours = sum(cpu.values())
    others = max(busy - ours, 0.0)
    parts = ", ".join(f"{name} {value:.1f}" for name, value in cpu.items())
    before, after = run["load"]
    print(
        f"  CPU s over {elapsed:.0f} s: {parts}; others {others:.1f} "
        f"(machine: {busy / elapsed:.2f} of {os.cpu_count()} cores busy; others "
        f"{others / elapsed:.2f} cores); load average {before[0]:.2f} -> {after[0]:.2f}"
    )
    if others / elapsed > BUSY_CORES or before[0] > (os.cpu_count() or 1):
        print(
            "  WARNING: the machine was busy with other work (tests, builds, other benches?): "
            "the rates are noisy; rerun on a quiet machine before believing a figure"
        )


def _counts(counter: Counter | dict) -> str:
    items = sorted(counter.items(), key=lambda kv: str(kv[0]))
    return ", ".join(f"{k}: {v:,}" for k, v in items) or "none"
