#!/usr/bin/env python3
"""Webhook throughput: the hotline's signed main-menu POST against a bare WSGI app.

Both run under the same gunicorn settings on loopback, each with its own fresh database,
and are loaded in the same run with wrk (``bench/wrk_token.lua`` gives every delivery a
fresh ``I-Twilio-Idempotency-Token``, so every request stores one ``call_events`` row).
For each target it reports requests/s, p50/p99 latency, the CPU time per request of the
gunicorn master and workers (and of PostgreSQL's backends), the RSS of a worker and the
time from start to first response, then checks that the events were really stored.
Medians of ``--rounds`` rounds; the order of the targets rotates every round.

    .venv/bin/python bench/webhooks.py                 # SQLite, 3 rounds of 10 s
    .venv/bin/python bench/webhooks.py --postgres      # and PostgreSQL (BENCH_DATABASE_URL)
    .venv/bin/python bench/webhooks.py --quick         # 1 round of 3 s (CI smoke)
    .venv/bin/python bench/webhooks.py --ladder        # also Flask, +signature, +raw/ORM insert

It reports and never asserts: the exit code is 0 unless the harness itself fails (a server
that does not start, wrk missing, an unreachable PostgreSQL that was asked for).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# The harness package lives next to this script: importable however the script is started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.databases import DEFAULT_POSTGRES_URL, databases_for
from harness.deliveries import MENU_PATH
from harness.load import Options, Result, Target, measure
from harness.procstats import wait_until_quiet
from harness.report import (
    Summary,
    print_cpu_budget,
    print_goals,
    print_table,
    progress_line,
)
from harness.tools import HarnessError, Tools

HOTLINE_APP = "webapp:create_app()"


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--calls",
        type=int,
        help="distinct CallSids the deliveries cycle through (default: 64, at least twice "
        "the connections, so that a call has one webhook in flight at a time)",
    )
    parser.add_argument(
        "--app",
        default=HOTLINE_APP,
        help=f"gunicorn APP_MODULE of the hotline, to compare a variant (default: {HOTLINE_APP})",
    )
    parser.add_argument(
        "--pythonpath", action="append", default=[], help="extra import path for --app"
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s (CI smoke)")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_POSTGRES_URL,
        default=os.environ.get("BENCH_DATABASE_URL"),
        metavar="URL",
        help="also run on PostgreSQL; the URL of a database to connect to for CREATE "
        f"DATABASE (default: $BENCH_DATABASE_URL or {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    parser.add_argument(
        "--ladder",
        action="store_true",
        help="also measure Flask+VoiceResponse, +RequestValidator, +raw insert, +ORM insert",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="gunicorn --access-logfile - (as the Procfile)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        metavar="S",
        help="before each run wait up to S seconds for other processes to go quiet (0: don't)",
    )
    parser.add_argument("--json", type=Path, help="also write every round's figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, SQLite)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    if args.calls is None:
        args.calls = max(64, 2 * args.connections)
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1 or args.calls < 1:
        parser.error("rounds, duration, connections and calls must be positive")
    return args


def build_targets(backends: list[str], ladder: bool, app: str = HOTLINE_APP) -> list[Target]:
    targets = [Target("bare", "bare_app:app", kind="bare")]
    if ladder:
        targets += [
            Target("flask+twiml", "bare_app:create('flask')", kind="ladder"),
            Target("+signature", "bare_app:create('signed')", kind="ladder"),
        ]
    for backend in backends:
        if ladder:
            targets += [
                Target(f"+raw insert/{backend}", "bare_app:create('raw')", backend, "ladder"),
                Target(f"+orm insert/{backend}", "bare_app:create('orm')", backend, "ladder"),
            ]
        targets.append(Target(f"hotline/{backend}", app, backend))
    return targets


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools = Tools.find()
    backends = ([] if args.no_sqlite else ["sqlite"]) + (["postgres"] if args.postgres else [])
    targets = build_targets(backends, args.ladder, args.app)
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    options = Options(
        rounds=args.rounds,
        duration=args.duration,
        connections=args.connections,
        workers=args.workers,
        threads=args.threads,
        calls=args.calls,
        access_log=args.access_log,
        pythonpath=[str(Path(p).resolve()) for p in args.pythonpath],
        workdir=workdir,
    )
    cores = os.cpu_count() or 1
    results: dict[str, list[Result]] = {t.label: [] for t in targets}
    try:
        with databases_for(backends, tools, workdir, args.postgres) as databases:
            print(f"hotline webhook benchmark: {tools.versions()}, {cores} cores")
            print(
                f"gunicorn {args.workers} sync workers on 127.0.0.1; wrk {args.threads} threads, "
                f"{args.connections} connections, {args.duration:g} s x {args.rounds} rounds; "
                f"POST {MENU_PATH} (Digits=1) over {args.calls} calls"
            )
            for databases_ in databases.values():
                print(f"  {databases_.describe()}")
            for round_number in range(1, args.rounds + 1):
                shift = (round_number - 1) % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    if args.quiet_wait > 0:
                        busy = wait_until_quiet(args.quiet_wait)
                        if busy >= 0.3:
                            print(f"  (the machine is busy: {busy:.2f} cores in use by others)")
                    result = measure(
                        target,
                        databases.get(target.backend) if target.backend else None,
                        options,
                        tools,
                        round_number,
                    )
                    results[target.label].append(result)
                    print(progress_line(result), flush=True)
    except HarnessError as error:
        if any(workdir.rglob("*.log")):
            print(f"\nbenchmark failed: {error}\n(logs in {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"\nbenchmark failed: {error}", file=sys.stderr)
        return 2
    summaries = [Summary(t, results[t.label]) for t in targets]
    bare_rps = summaries[0].rps
    print(f"\nMedians of {args.rounds} round(s):\n")
    print_table(summaries, bare_rps)
    worst_others = print_cpu_budget(summaries, cores)
    if worst_others > 0.25:
        print(
            f"  note: other processes took up to {worst_others:.2f} cores during a run "
            "(tests, builds, other servers?): the figures are noisy; rerun on a quiet machine"
        )
    verdicts = print_goals(summaries, bare_rps)
    errors = sum(r.errors_logged for s in summaries for r in s.results)
    if errors:
        print(f"\n{errors} traceback(s) in the server logs: the app failed on some requests")
    sizes = ", ".join(f"{s.target.label} {s.results[0].response_bytes} B" for s in summaries)
    print(f"response sizes: {sizes}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "options": {k: str(v) for k, v in vars(args).items()},
                    "results": {k: [vars(r) for r in v] for k, v in results.items()},
                },
                indent=2,
            )
        )
    if args.keep or errors:
        print(f"work dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("RESULT " + ("; ".join(verdicts) if verdicts else "no hotline target was measured"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
