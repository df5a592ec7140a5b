"""The report: a line per run, the table of medians, where the cores went, the goals."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from .load import Result, Target

GOAL_RATIO = 0.50
FLOOR_RATIO = {"sqlite": 0.30, "postgres": 0.20}
GOAL_P99_MS = 30.0
GOAL_RSS_MB = 70.0
GOAL_FIRST_S = 1.5


def progress_line(r: Result) -> str:
    line = (
        f"  round {r.round} {r.target:<22} {r.requests_per_s:8,.0f} req/s  "
        f"p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms  {r.status_2xx:,} 2xx, "
        f"{r.status_other + r.socket_errors} other"
    )
    if r.events_stored is not None:
        line += f", {r.events_stored:,} events stored"
    if r.events_unstored:
        line += f", {r.events_unstored:,} NOT STORED"
    return line


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Summary:
    target: Target
    results: list[Result]

    def median(self, get: Callable[[Result], float | None]) -> float | None:
        values = [value for value in map(get, self.results) if value is not None]
        return _median(values) if values else None

    @property
    def rps(self) -> float:
        return self.median(lambda r: r.requests_per_s) or 0.0

    @property
    def stored_ok(self) -> bool | None:
        if any(r.events_stored is None for r in self.results):
            return None
        return all((r.events_stored or 0) >= r.status_2xx for r in self.results)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(summaries: list[Summary], bare_rps: float) -> None:
    header = (
        "target",
        "req/s",
        "of bare",
        "p50 ms",
        "p99 ms",
        "cpu ms/req",
        "drainer",
        "db cpu ms/req",
        "worker RSS MB",
        "first resp s",
        "2xx",
        "non-2xx",
        "events stored",
    )
    rows = []
    for s in summaries:
        stored = sum(r.events_stored or 0 for r in s.results)
        ok_2xx = sum(r.status_2xx for r in s.results)
        relation = ">=" if s.stored_ok else "<"
        events = "-" if s.stored_ok is None else f"{stored:,} {relation} 2xx"
        unstored = sum(r.events_unstored for r in s.results)
        if unstored:
            events += f" ({unstored:,} NOT STORED)"
        rows.append(
            (
                s.target.label,
                f"{s.rps:,.0f}",
                f"{s.rps / bare_rps:.1%}" if bare_rps else "-",
                _fmt(s.median(lambda r: r.p50_ms), ".1f"),
                _fmt(s.median(lambda r: r.p99_ms), ".1f"),
                _fmt(s.median(lambda r: r.cpu_ms_per_request), ".2f"),
                _fmt(s.median(lambda r: r.drainer_cpu_ms_per_request), ".2f"),
                _fmt(s.median(lambda r: r.db_cpu_ms_per_request), ".2f"),
                _fmt(s.median(lambda r: r.worker_rss_mb), ".1f"),
                _fmt(s.median(lambda r: r.first_response_s), ".2f"),
                f"{ok_2xx:,}",
                f"{sum(r.status_other + r.socket_errors for r in s.results):,}",
                events,
            )
        )
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    for index, row in enumerate((header, *rows)):
        cells = [
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def print_cpu_budget(summaries: list[Summary], cores: int) -> float:
    """Prints where the cores went; returns the most cores other processes took."""
    print(f"\nWhere the {cores} cores went during the load (median per round, cores busy):")
    worst_others = 0.0
    for s in summaries:
        app = s.median(lambda r: r.server_cpu_s / r.seconds) or 0.0
        db = s.median(lambda r: r.db_cpu_s / r.seconds if r.db_cpu_s is not None else None)
        wrk = s.median(lambda r: r.wrk_cpu_s / r.seconds) or 0.0
        others = s.median(lambda r: r.others_cpu_s / r.seconds) or 0.0
        busy = s.median(lambda r: r.machine_busy_s / r.seconds) or 0.0
        worst_others = max(worst_others, max(r.others_cpu_s / r.seconds for r in s.results))
        db_text = f"  postgres backends {db:.2f}" if db is not None else ""
        print(
            f"  {s.target.label:<22} gunicorn {app:.2f}{db_text}  wrk {wrk:.2f}  "
            f"other processes {others:.2f}  idle {max(cores - busy, 0.0):.2f}"
        )
    return worst_others


def print_goals(summaries: list[Summary], bare_rps: float) -> list[str]:
    print(
        f"\nGoals (issue): >= {GOAL_RATIO:.0%} of bare, p99 <= {GOAL_P99_MS:.0f} ms, "
        f"worker RSS < {GOAL_RSS_MB:.0f} MB, first response <= {GOAL_FIRST_S} s; "
        f"floor {FLOOR_RATIO['sqlite']:.0%} on SQLite, {FLOOR_RATIO['postgres']:.0%} on PostgreSQL"
    )
    verdicts = []
    for s in summaries:
        if s.target.kind != "hotline" or s.target.backend is None:
            continue
        ratio = s.rps / bare_rps if bare_rps else 0.0
        floor = FLOOR_RATIO[s.target.backend]
        p99 = s.median(lambda r: r.p99_ms) or 0.0
        rss = s.median(lambda r: r.worker_rss_mb) or 0.0
        first = s.median(lambda r: r.first_response_s) or 0.0
        stored = {True: "yes", False: "NO", None: "-"}[s.stored_ok]
        non_2xx = sum(r.status_other + r.socket_errors for r in s.results)

        def mark(ok: bool) -> str:
            return "ok" if ok else "MISSED"

        print(
            f"  {s.target.label}: ratio {ratio:.1%} {mark(ratio >= GOAL_RATIO)}, "
            f"p99 {p99:.1f} ms {mark(p99 <= GOAL_P99_MS)}, "
            f"RSS {rss:.1f} MB {mark(rss < GOAL_RSS_MB)}, "
            f"first response {first:.2f} s {mark(first <= GOAL_FIRST_S)}, "
            f"events stored >= 2xx: {stored}, non-2xx: {non_2xx}"
        )
        if ratio >= GOAL_RATIO:
            standing = "meets the goal"
        elif ratio >= floor:
            standing = "above the floor, below the goal"
        else:
            standing = "BELOW THE FLOOR"
        verdicts.append(
            f"{s.target.label} {ratio:.1%} of bare (goal {GOAL_RATIO:.0%}, floor {floor:.0%}): "
            f"{standing}"
        )
    return verdicts
