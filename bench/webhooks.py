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
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
WRK_SCRIPT = BENCH_DIR / "wrk_token.lua"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"  # the servers' TWILIO_AUTH_TOKEN
ACCOUNT_SID = "AC" + "0" * 32
HOTLINE_NUMBER = "+868916312345"
INCOMING_PATH = "/voice/incoming"
MENU_PATH = "/voice/step/menu?lang=zh&try=1"
MENU_KIND = "step:menu"
HOTLINE_APP = "webapp:create_app()"

GOAL_RATIO = 0.50
FLOOR_RATIO = {"sqlite": 0.30, "postgres": 0.20}
GOAL_P99_MS = 30.0
GOAL_RSS_MB = 70.0
GOAL_FIRST_S = 1.5

# The hotline's settings a developer's shell may have set (webapp/settings.py): reset.
HOTLINE_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "PUBLIC_BASE_URL",
    "FRONT_DOOR_MODE",
    "SPOOL_DIR",
    "RECORDINGS_DIR",
    "HOLD_MUSIC_URL",
    "HUEY_SQLITE_PATH",
    "LOG_LEVEL",
    "SECRET_KEY",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class HarnessError(RuntimeError):
    """The benchmark itself could not run (not a slow result: those are reported)."""


# -- tools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    python: str
    gunicorn: str
    hotline: str
    wrk: str

    @classmethod
    def find(cls) -> Tools:
        def tool(name: str) -> str:
            for folder in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
                if (folder / name).exists():
                    return str(folder / name)
            found = shutil.which(name)
            if not found:
                raise HarnessError(f"{name} not found (install the app: make install)")
            return found

        wrk = shutil.which("wrk")
        if not wrk:
            raise HarnessError("wrk not found: apt-get install wrk")
        return cls(sys.executable, tool("gunicorn"), tool("hotline"), wrk)

    def versions(self) -> str:
        gunicorn = _run_text([self.python, "-c", "import gunicorn; print(gunicorn.__version__)"])
        wrk = _run_text([self.wrk, "-v"]).split(" [")[0]
        return f"python {platform.python_version()}, gunicorn {gunicorn.strip()}, {wrk.strip()}"


def _run_text(command: list[str], **kwargs: Any) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    return done.stdout + done.stderr


def _clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a server or a migration: the hotline's own variables reset."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWILIO_", "HOTLINE_", "EMERGENCY_"))
        and key not in HOTLINE_VARIABLES
    }
    env.update(PYTHONUNBUFFERED="1", TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_SKIP_SIGNATURE="0")
    env.update(overrides)
    return env


def _migrate(tools: Tools, database_url: str) -> None:
    done = subprocess.run(
        [tools.hotline, "migrate"],
        cwd=ROOT,
        env=_clean_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise HarnessError(f"hotline migrate failed on {database_url}:\n{done.stderr[-2000:]}")


# -- databases ---------------------------------------------------------------------------


class SqliteDatabases:
    """One migrated template file; each server gets a copy of it."""

    backend = "sqlite"

    def __init__(self, tools: Tools, workdir: Path) -> None:
        self._dir = workdir / "sqlite"
        self._dir.mkdir()
        template = self._dir / "template.db"
        _migrate(tools, f"sqlite:///{template}")
        self._template = template

    def describe(self) -> str:
        return f"SQLite file per server (WAL, synchronous=NORMAL) under {self._dir}"

    def fresh(self, name: str) -> str:
        target = self._dir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self._template}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{target}{suffix}")
        return f"sqlite:///{target}"

    def count(self, url: str, kind: str) -> int:
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            (count,) = db.execute("SELECT count(*) FROM call_events WHERE kind = ?", (kind,))
            return int(count[0])

    def backend_pids(self, url: str) -> list[int]:
        return []

    def close(self) -> None:
        pass


class PostgresDatabases:
    """``CREATE DATABASE bench_...`` per server from one migrated template; all dropped."""

    backend = "postgres"

    def __init__(self, tools: Tools, admin_url: str) -> None:
        try:
            import psycopg
        except ImportError as error:
            raise HarnessError("PostgreSQL needs psycopg: pip install -e '.[postgres]'") from error
        self._psycopg = psycopg
        self._admin_url = admin_url
        self._prefix = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._created: list[str] = []
        try:
            with self._admin() as db:
                self.settings = {
                    name: db.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                    for name in ("server_version", "fsync", "synchronous_commit")
                }
        except psycopg.OperationalError as error:
            raise HarnessError(f"PostgreSQL at {admin_url} is unreachable: {error}") from error
        try:
            self._template = self._create(f"{self._prefix}_template")
            _migrate(tools, self.url_for(self._template))
        except BaseException:
            self.close()
            raise

    def _admin(self) -> Any:
        return self._psycopg.connect(_conninfo(self._admin_url), autocommit=True)

    def _create(self, name: str, template: str | None = None) -> str:
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        with self._admin() as db:
            db.execute(sql)
        self._created.append(name)
        return name

    def url_for(self, database: str) -> str:
        parts = urlsplit(self._admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def describe(self) -> str:
        s = self.settings
        return (
            f"PostgreSQL {s['server_version']} at {urlsplit(self._admin_url).netloc} "
            f"(fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}), "
            f"a database per server: {self._prefix}_*"
        )

    def fresh(self, name: str) -> str:
        return self.url_for(self._create(f"{self._prefix}_{name}", self._template))

    def count(self, url: str, kind: str) -> int:
        with self._psycopg.connect(_conninfo(url)) as db:
            row = db.execute("SELECT count(*) FROM call_events WHERE kind = %s", (kind,)).fetchone()
            return int(row[0])  # type: ignore[index]

    def backend_pids(self, url: str) -> list[int]:
        """The server processes serving ``url``'s database (their title names it)."""
        needle = f" {urlsplit(url).path.lstrip('/')} ".encode()
        pids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    title = Path(entry.path, "cmdline").read_bytes()
                    if title.startswith(b"postgres: ") and needle in title:
                        pids.append(int(entry.name))
        return pids

    def close(self) -> None:
        with self._admin() as db:
            for name in reversed(self._created):
                db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()


def _conninfo(url: str) -> str:
    """A libpq URL from an SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


Databases = SqliteDatabases | PostgresDatabases


# -- /proc ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _cpu_ticks(pid: int, *, with_children: bool = False) -> int:
    fields = _stat_fields(pid)
    if fields is None:
        return 0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime (reaped workers)
    return ticks


def _children(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in Path(task.path, "children").read_text().split()]
        return pids
    except OSError:
        return []


def _server_cpu_s(master: int) -> float:
    """CPU seconds of the gunicorn master, its live workers and the workers it reaped."""
    ticks = _cpu_ticks(master, with_children=True)
    ticks += sum(_cpu_ticks(worker) for worker in _children(master))
    return ticks / CLOCK_TICKS


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / CLOCK_TICKS, idle / CLOCK_TICKS


def wait_until_quiet(max_wait_s: float, busy_limit: float = 0.3) -> float:
    """Wait (up to ``max_wait_s``) until other processes use under ``busy_limit`` cores.

    Returns the cores they used in the last 0.5 s sample: a shared machine (tests, builds)
    skews the figures, so the harness waits for a quiet moment before each run.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        busy_before, _ = _machine_cpu_s()
        time.sleep(0.5)
        busy = (_machine_cpu_s()[0] - busy_before) / 0.5
        if busy < busy_limit or time.monotonic() >= deadline:
            return busy


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the webhook deliveries --------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    path: str
    form: list[tuple[str, str]]

    def signed(self, base_url: str) -> tuple[str, str]:
        """``(X-Twilio-Signature, body)`` for a server whose public base is ``base_url``."""
        validator = RequestValidator(AUTH_TOKEN)
        signature = validator.compute_signature(base_url + self.path, dict(self.form))
        return signature, urlencode(self.form)


def call_sids(count: int, run: str) -> list[str]:
    return [f"CA{run}{index:08d}".ljust(34, "0")[:34] for index in range(count)]


def twilio_form(call_sid: str, index: int, **extra: str) -> list[tuple[str, str]]:
    """The form Twilio posts for an inbound call (voice webhook parameters)."""
    caller = f"+86138{index:08d}"
    return [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", extra.pop("CallStatus", "in-progress")),
        ("Called", HOTLINE_NUMBER),
        ("CalledCountry", "CN"),
        ("Caller", caller),
        ("CallerCountry", "CN"),
        ("Direction", "inbound"),
        ("From", caller),
        ("FromCountry", "CN"),
        ("To", HOTLINE_NUMBER),
        ("ToCountry", "CN"),
        *extra.items(),
    ]


def post(base_url: str, delivery: Delivery, token: str, timeout: float = 5.0) -> tuple[int, str]:
    signature, body = delivery.signed(base_url)
    request = urllib.request.Request(
        base_url + delivery.path,
        data=body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": token,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


# -- one server, one load run ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    label: str
    app: str  # gunicorn's APP_MODULE
    backend: str | None = None  # "sqlite", "postgres" or None (no database)
    kind: str = "hotline"  # "bare", "hotline" or "ladder"

    @property
    def slug(self) -> str:
        return re.sub(r"\W+", "_", self.label)


@dataclass
class Options:
    rounds: int
    duration: float
    connections: int
    workers: int
    threads: int
    calls: int
    access_log: bool
    pythonpath: list[str]
    workdir: Path


@dataclass
class Result:
    target: str
    round: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    status_2xx: int
    status_other: int
    socket_errors: int
    cpu_ms_per_request: float
    db_cpu_ms_per_request: float | None
    wrk_cpu_s: float
    server_cpu_s: float
    db_cpu_s: float | None
    machine_busy_s: float  # the whole machine, all processes (/proc/stat)
    others_cpu_s: float  # the machine less gunicorn, wrk and the database backends
    seconds: float
    worker_rss_mb: float
    first_response_s: float
    response_bytes: int
    events_stored: int | None
    events_spooled: int  # webhooks the database refused, kept in the spool file
    errors_logged: int
    wrk: dict[str, Any] = field(repr=False, default_factory=dict)


class Server:
    """gunicorn on a free loopback port, in its own process group; stopped with SIGTERM."""

    def __init__(
        self, gunicorn: str, target: Target, database_url: str | None, options: Options, log: Path
    ) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        command = [
            gunicorn,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(options.workers),
            "--worker-class",
            "sync",
            "--pythonpath",
            ",".join([str(BENCH_DIR), *options.pythonpath]),
            "--log-level",
            "warning",
            "--graceful-timeout",
            "10",
        ]
        if options.access_log:
            command += ["--access-logfile", "-"]
        command.append(target.app)
        env = _clean_env(
            PUBLIC_BASE_URL=self.base_url,
            SPOOL_DIR=str(log.with_suffix(".spool")),  # webhooks the database refused
            HUEY_SQLITE_PATH=str(log.with_suffix(".huey.db")),
        )
        if database_url:
            env["DATABASE_URL"] = database_url
        self._log = log.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def workers(self) -> list[int]:
        return _children(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_first_response(self, delivery: Delivery, token: str) -> float:
        """Seconds from Popen to the first 200, polling every 10 ms."""
        deadline = self.started + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"the server exited at start:\n{self.log_tail()}")
            try:
                status, _ = post(self.base_url, delivery, token, timeout=2.0)
            except (OSError, urllib.error.URLError):
                time.sleep(0.01)
                continue
            if status == 200:
                return time.monotonic() - self.started
            raise HarnessError(f"the first answer was HTTP {status}:\n{self.log_tail()}")
        raise HarnessError(f"no answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def run_wrk(tools: Tools, url: str, options: Options, requests_file: Path, prefix: str) -> Any:
    threads = min(options.threads, options.connections)
    command = [
        tools.wrk,
        "-t",
        str(threads),
        "-c",
        str(options.connections),
        "-d",
        f"{options.duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(requests_file),
        prefix,
        str(threads),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=options.duration + 120, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    match = re.search(r"^WRK_JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        raise HarnessError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(match.group(1)), wrk_cpu


def measure(
    target: Target,
    databases: Databases | None,
    options: Options,
    tools: Tools,
    round_number: int,
) -> Result:
    run = uuid.uuid4().hex[:8]
    database_url = databases.fresh(f"{target.slug}_r{round_number}") if databases else None
    sids = call_sids(options.calls, run)
    incoming = [
        Delivery(INCOMING_PATH, twilio_form(sid, index, CallStatus="ringing"))
        for index, sid in enumerate(sids)
    ]
    menu = [
        Delivery(MENU_PATH, twilio_form(sid, index, Digits="1")) for index, sid in enumerate(sids)
    ]
    log = options.workdir / f"{target.slug}-r{round_number}.log"
    server = Server(tools.gunicorn, target, database_url, options, log)
    try:
        first_s = server.wait_first_response(incoming[0], f"{run}-incoming-0")
        for index, delivery in enumerate(incoming[1:], start=1):  # the calls' rows exist
            status, _ = post(server.base_url, delivery, f"{run}-incoming-{index}")
            if status != 200:
                raise HarnessError(f"/voice/incoming answered {status}:\n{server.log_tail()}")
        status, body = post(server.base_url, menu[0], f"{run}-preflight")
        if status != 200 or "<Response>" not in body:
            raise HarnessError(f"the menu webhook answered {status}: {body[:300]}")
        requests_file = options.workdir / f"requests-{run}.tsv"
        with requests_file.open("w") as lines:
            for delivery in menu:
                signature, form_body = delivery.signed(server.base_url)
                lines.write(f"{delivery.path}\t{signature}\t{form_body}\n")

        def db_ticks() -> dict[int, int]:
            if not (databases and database_url):
                return {}
            return {pid: _cpu_ticks(pid) for pid in databases.backend_pids(database_url)}

        db_before = db_ticks()
        cpu_before = _server_cpu_s(server.process.pid)
        machine_before = _machine_cpu_s()
        wrk, wrk_cpu = run_wrk(tools, server.base_url + MENU_PATH, options, requests_file, run)
        machine_after = _machine_cpu_s()
        cpu_after = _server_cpu_s(server.process.pid)
        db_after = db_ticks()  # a backend that connected during the load counts from 0
        db_cpu = sum(ticks - db_before.get(pid, 0) for pid, ticks in db_after.items())
        db_cpu /= CLOCK_TICKS
        rss = max((_rss_mb(pid) for pid in server.workers()), default=0.0)
    finally:
        server.stop()

    events = None
    if databases and database_url and target.kind != "bare":
        events = databases.count(database_url, MENU_KIND) - 1  # less the pre-flight
    errors_logged = log.read_text(errors="replace").count("Traceback")
    spool = log.with_suffix(".spool") / "webhooks.jsonl"
    spooled = sum(1 for line in spool.open() if line.strip()) if spool.exists() else 0
    seconds = wrk["duration_us"] / 1e6
    requests = max(int(wrk["requests"]), 1)
    server_cpu = cpu_after - cpu_before
    machine_busy = machine_after[0] - machine_before[0]
    others = machine_busy - server_cpu - wrk_cpu - (db_cpu if databases else 0.0)
    latency = wrk["latency_us"]
    errors = wrk["errors"]
    postgres = isinstance(databases, PostgresDatabases)
    return Result(
        target=target.label,
        round=round_number,
        requests_per_s=wrk["requests"] / seconds,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        requests=int(wrk["requests"]),
        status_2xx=int(wrk["status_2xx"]),
        status_other=int(wrk["status_other"]),
        socket_errors=sum(int(errors[key]) for key in ("connect", "read", "write", "timeout")),
        cpu_ms_per_request=server_cpu * 1000 / requests,
        db_cpu_ms_per_request=db_cpu * 1000 / requests if postgres else None,
        wrk_cpu_s=wrk_cpu,
        server_cpu_s=server_cpu,
        db_cpu_s=db_cpu if postgres else None,
        machine_busy_s=machine_busy,
        others_cpu_s=max(others, 0.0),
        seconds=seconds,
        worker_rss_mb=rss,
        first_response_s=first_s,
        response_bytes=len(body.encode()),
        events_stored=events,
        events_spooled=spooled,
        errors_logged=errors_logged,
        wrk=wrk,
    )


# -- reporting -----------------------------------------------------------------------------


def progress_line(r: Result) -> str:
    line = (
        f"  round {r.round} {r.target:<22} {r.requests_per_s:8,.0f} req/s  "
        f"p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms  {r.status_2xx:,} 2xx, "
        f"{r.status_other + r.socket_errors} other"
    )
    if r.events_stored is not None:
        line += f", {r.events_stored:,} events stored"
    if r.events_spooled:
        line += f", {r.events_spooled:,} spooled"
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
        spooled = sum(r.events_spooled for r in s.results)
        if spooled:
            events += f" (+{spooled:,} spooled)"
        rows.append(
            (
                s.target.label,
                f"{s.rps:,.0f}",
                f"{s.rps / bare_rps:.1%}" if bare_rps else "-",
                _fmt(s.median(lambda r: r.p50_ms), ".1f"),
                _fmt(s.median(lambda r: r.p99_ms), ".1f"),
                _fmt(s.median(lambda r: r.cpu_ms_per_request), ".2f"),
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


@contextlib.contextmanager
def databases_for(
    backends: list[str], tools: Tools, workdir: Path, postgres_url: str | None
) -> Iterator[dict[str, Databases]]:
    opened: dict[str, Databases] = {}
    try:
        if "sqlite" in backends:
            opened["sqlite"] = SqliteDatabases(tools, workdir)
        if "postgres" in backends and postgres_url:
            opened["postgres"] = PostgresDatabases(tools, postgres_url)
        yield opened
    finally:
        for databases in opened.values():
            databases.close()


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
