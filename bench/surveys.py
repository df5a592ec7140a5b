#!/usr/bin/env python3
"""Survey calls: 10,000 answered orders due at once, two workers placing their calls.

Issue 5, point 7. Each answered order has its survey opened (as ``tickets.order_flow.answer``
leaves it); the hotline's ``web`` and two ``worker`` processes run as the Procfile runs them,
on a fresh migrated database (SQLite with Huey on its SQLite file; with ``--postgres``,
PostgreSQL with Huey on Redis); the workers' periodic sweeps plan the surveys and place the
calls through their real ``TwilioSurveyCaller``, pointed at a stand-in for Twilio's Calls
API (``harness/fake_calls.py``) that notes when each create reaches it, answers a few of
them 500 after creating the call, and plays every call back at ``web`` as Twilio and the
citizen would (signed status callbacks, answering-machine detection, the survey's keys).

It prints the calls placed per second against the configured rate (overall, the busiest
second and the busiest minute), the duplicates (must be 0), what became of the creates
answered 500, the time to drain (first sweep to last survey settled), the surveys'
statuses, and the CPU the processes used next to the machine's load.

    .venv/bin/python bench/surveys.py                          # 10,000 orders at 50/s, SQLite
    .venv/bin/python bench/surveys.py --postgres --no-sqlite   # PostgreSQL + Redis only
    .venv/bin/python bench/surveys.py --orders 2000 --rate 10 --postgres
    .venv/bin/python bench/surveys.py --quick                  # 300 orders at 5/s: a smoke run

It reports and never asserts: the exit code is 0 unless the harness itself fails (2: a
process that does not start or dies, PostgreSQL or Redis unreachable).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from harness.burst_servers import find_tools
from harness.databases import DEFAULT_POSTGRES_URL, databases_for
from harness.survey_report import figures, print_report
from harness.survey_run import SurveyOptions, SurveyRun
from harness.tools import HarnessError

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = SurveyOptions()
    parser.add_argument("--orders", type=int, default=defaults.orders, help="answered orders")
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="SURVEY_CALLS_PER_SECOND (default 50)"
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("BENCH_DATABASE_URL") or POSTGRES_ADMIN_URL,
        default=os.environ.get("BENCH_DATABASE_URL"),
        metavar="URL",
        help="also run on PostgreSQL (Huey on Redis); a database to connect to for CREATE "
        f"DATABASE (default: $BENCH_DATABASE_URL or {POSTGRES_ADMIN_URL})",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    parser.add_argument(
        "--redis",
        default=defaults.redis_url,
        metavar="URL",
        help="Redis for Huey with --postgres, without a database number: the run takes an "
        f"empty one of 1-15 and flushes it at the end (default {defaults.redis_url})",
    )
    parser.add_argument(
        "--timeout", type=float, default=defaults.timeout_s, help="s to wait for the drain"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, records)")
    parser.add_argument(
        "--quick", action="store_true", help="300 orders at 5/s, 2 attempts: a smoke run"
    )
    run = parser.add_argument_group("the run")
    run.add_argument(
        "--planned",
        action="store_true",
        help="seed the surveys already planned (first call due), so the sweeps only place",
    )
    run.add_argument("--attempts", type=int, default=defaults.attempts, help="rules: max calls")
    run.add_argument("--min-gap", default=defaults.min_gap, help="rules: between two attempts")
    run.add_argument(
        "--fail-rate",
        type=float,
        default=defaults.fail_rate,
        help="share of creates answered 500 after the call was created (default 0.003)",
    )
    run.add_argument(
        "--hold",
        type=float,
        default=defaults.hold_s,
        help="s such a call waits queued at the stand-in before it rings",
    )
    run.add_argument("--ring", type=float, default=defaults.ring_s, help="s a phone rings")
    run.add_argument("--think", type=float, default=defaults.think_s, help="s before each key")
    run.add_argument("--web-workers", type=int, default=defaults.web_workers)
    run.add_argument(
        "--stagger", type=float, default=defaults.stagger_s, help="s between the workers' starts"
    )
    run.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    if args.quick:
        args.orders, args.rate, args.attempts = 300, 5.0, 2
        args.fail_rate, args.hold = max(args.fail_rate, 0.01), min(args.hold, 90.0)
        args.timeout = min(args.timeout, 600.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = SurveyOptions(
        orders=args.orders,
        rate=args.rate,
        timeout_s=args.timeout,
        planned=args.planned,
        attempts=args.attempts,
        min_gap=args.min_gap,
        fail_rate=args.fail_rate,
        hold_s=args.hold,
        ring_s=args.ring,
        think_s=args.think,
        web_workers=args.web_workers,
        stagger_s=args.stagger,
        redis_url=args.redis,
        seed=args.seed,
    )
    backends = ([] if args.no_sqlite else ["sqlite"]) + (["postgres"] if args.postgres else [])
    if not backends:
        print("nothing to run: --no-sqlite without --postgres", file=sys.stderr)
        return 2
    print(
        f"surveys: {options.orders:,} answered orders due at once"
        f"{' (planned)' if options.planned else ''}, SURVEY_CALLS_PER_SECOND={options.rate:g}, "
        f"2 workers; {options.attempts} attempts {options.min_gap} apart; "
        f"{options.fail_rate:.1%} of creates answered 500 (held {options.hold_s:g} s); "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, load "
        "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-surveys-"))
    try:
        tools = find_tools()
        postgres_url = args.postgres or DEFAULT_POSTGRES_URL
        with databases_for(backends, tools, workdir, postgres_url) as opened:
            for backend, databases in opened.items():
                folder = workdir / f"run-{backend}"
                folder.mkdir()
                print(f"\n{backend}: running (progress every {options.progress_s:g} s)", flush=True)
                run = SurveyRun(databases, tools, options, folder).run()
                print_report(run, figures(run, options.rate), options.orders)
    except HarnessError as error:
        print(f"the survey benchmark could not run: {error}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
