"""One server, one load run: gunicorn on a fresh database, loaded with wrk, measured."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickets.journal import pending_lines

from .databases import Databases, PostgresDatabases
from .deliveries import INCOMING_PATH, MENU_KIND, MENU_PATH, Delivery, call_sids, post, twilio_form
from .procstats import (
    CLOCK_TICKS,
    children,
    cpu_ticks,
    is_drainer,
    machine_cpu_s,
    rss_mb,
    server_cpu_s,
)
from .tools import BENCH_DIR, ROOT, HarnessError, Tools, clean_env

WRK_SCRIPT = BENCH_DIR / "wrk_token.lua"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


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
    cpu_ms_per_request: float  # gunicorn's master and workers, and the journal drainer
    drainer_cpu_ms_per_request: float | None  # the journal drainer's share of it
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
    events_unstored: int  # journaled webhooks still not stored after the server stopped
    errors_logged: int
    wrk: dict[str, Any] = field(repr=False, default_factory=dict)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
        if target.kind == "hotline":  # as the Procfile runs it: with the journal drainer
            command += ["--config", "python:webapp.gunicorn_conf"]
        command.append(target.app)
        env = clean_env(
            PUBLIC_BASE_URL=self.base_url,
            JOURNAL_DIR=str(log.with_suffix(".journal")),
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
        """gunicorn's workers (not the hotline's journal drainer)."""
        return [pid for pid in children(self.process.pid) if not is_drainer(pid)]

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
            return {pid: cpu_ticks(pid) for pid in databases.backend_pids(database_url)}

        db_before = db_ticks()
        drainers = [pid for pid in children(server.process.pid) if is_drainer(pid)]
        drainer_before = sum(cpu_ticks(pid) for pid in drainers)
        cpu_before = server_cpu_s(server.process.pid)
        machine_before = machine_cpu_s()
        wrk, wrk_cpu = run_wrk(tools, server.base_url + MENU_PATH, options, requests_file, run)
        machine_after = machine_cpu_s()
        cpu_after = server_cpu_s(server.process.pid)
        drainer_cpu = (sum(cpu_ticks(pid) for pid in drainers) - drainer_before) / CLOCK_TICKS
        db_after = db_ticks()  # a backend that connected during the load counts from 0
        db_cpu = sum(ticks - db_before.get(pid, 0) for pid, ticks in db_after.items())
        db_cpu /= CLOCK_TICKS
        rss = max((rss_mb(pid) for pid in server.workers()), default=0.0)
    finally:
        server.stop()

    events = None
    if databases and database_url and target.kind != "bare":
        events = databases.count(database_url, MENU_KIND) - 1  # less the pre-flight
    errors_logged = log.read_text(errors="replace").count("Traceback")
    # After the stop, the drainer has stored the journal: what is left was never stored.
    journal = log.with_suffix(".journal")
    unstored = pending_lines(journal) if journal.exists() else 0
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
        drainer_cpu_ms_per_request=drainer_cpu * 1000 / requests if drainers else None,
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
        events_unstored=unstored,
        errors_logged=errors_logged,
        wrk=wrk,
    )
