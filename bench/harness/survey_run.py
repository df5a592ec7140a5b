"""One run of the survey benchmark on one fresh database: the processes, the wait, the raw
figures (``survey_report.py`` turns them into the report).

The processes, each on its own, as the ``Procfile`` runs them: the hotline's ``web``
(gunicorn ``-c python:webapp.gunicorn_conf``, sync workers and the journal drainer), two
``worker`` processes (the Procfile's ``huey_consumer webapp.worker.huey ...`` line, run
twice, sharing one Huey storage: the SQLite file, or a Redis database of their own), and
the Twilio stand-in (``fake_calls.py``) that the workers' ``TwilioSurveyCaller`` is
pointed at (``TWILIO_API_BASE_URL``) and that plays the calls back at ``web``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .burst_servers import Process, Server, free_port, web_server
from .databases import Databases
from .procstats import CLOCK_TICKS, cpu_ticks, machine_cpu_s, server_cpu_s
from .survey_seed import Watcher, read_outcome, seed, write_rules
from .tools import BENCH_DIR, ROOT, HarnessError, Tools, clean_env

ACCOUNT_SID = "AC" + "0" * 32
PROBE_DIR = BENCH_DIR / "harness" / "survey_probe"
DEFAULT_WORKER = (
    "huey_consumer webapp.worker.huey --workers 2 --worker-type thread "
    "--delay 0.1 --backoff 1.0 --max-delay 1.0"
)
START_TIMEOUT_S = 60.0
REDIS_MARK = "bench:surveys:owner"


@dataclass
class SurveyOptions:
    orders: int = 10_000
    rate: float = 50.0  # SURVEY_CALLS_PER_SECOND
    timeout_s: float = 1800.0
    planned: bool = False  # seed the surveys planned (skip the sweep's planning step)
    attempts: int = 3  # the rules' attempts.max
    min_gap: str = "1m"  # the rules' attempts.min_gap
    fail_rate: float = 0.003  # creates answered 500 after the call was created
    hold_s: float = 150.0  # such a call waits this long in "Twilio's queue"
    ring_s: float = 0.5
    think_s: float = 0.2
    web_workers: int = 4
    workers: int = 2  # worker processes
    stagger_s: float = 0.0  # between the workers' starts
    redis_url: str = "redis://127.0.0.1:6379"
    seed: int = 12345
    progress_s: float = 15.0


def worker_command(tools: Tools) -> list[str]:
    """The Procfile's ``worker:`` line, with this environment's ``huey_consumer``."""
    line = DEFAULT_WORKER
    procfile = ROOT / "Procfile"
    if procfile.exists():
        for text in procfile.read_text().splitlines():
            if text.startswith("worker:"):
                line = text.partition(":")[2].strip()
    words = shlex.split(line)
    if not words or not words[0].endswith("huey_consumer"):
        raise HarnessError(f"the Procfile's worker is not a huey_consumer: {line!r}")
    consumer = Path(tools.hotline).with_name("huey_consumer")
    if not consumer.exists():
        raise HarnessError(f"huey_consumer not found beside {tools.hotline}")
    return [str(consumer), *words[1:]]


class RedisDatabase:
    """A Redis database number nobody uses (empty, marked as ours), flushed at the end."""

    def __init__(self, base_url: str) -> None:
        try:
            import redis
        except ImportError as error:
            raise HarnessError("Huey on Redis needs the redis package") from error
        self.number: int | None = None
        self.url = ""
        base = base_url.rstrip("/")
        for number in range(15, 0, -1):
            client = redis.Redis.from_url(f"{base}/{number}")
            try:
                if client.dbsize() == 0 and client.set(REDIS_MARK, os.getpid(), nx=True):
                    if client.dbsize() == 1:
                        self.number, self.url, self._client = number, f"{base}/{number}", client
                        return
                    client.delete(REDIS_MARK)
            except redis.RedisError as error:
                raise HarnessError(f"Redis at {base} is unreachable: {error}") from error
            client.close()
        raise HarnessError(f"no empty Redis database at {base} (1-15 are all in use)")

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self._client.flushdb()
            self._client.close()


class FakeCalls:
    """``fake_calls.py`` in its own process: its JSON lines to ``calls.jsonl``."""

    def __init__(self, workdir: Path, options: SurveyOptions) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.records_path = workdir / "calls.jsonl"
        self._out = self.records_path.open("wb")
        self._err = (workdir / "fake-calls.log").open("wb")
        command = [
            sys.executable,
            "-m",
            "harness.fake_calls",
            str(self.port),
            f"--fail-rate={options.fail_rate}",
            f"--hold={options.hold_s}",
            f"--ring={options.ring_s}",
            f"--think={options.think_s}",
            f"--seed={options.seed}",
        ]
        env = clean_env(PYTHONPATH=os.pathsep.join([str(BENCH_DIR), str(ROOT)]))
        self.process = subprocess.Popen(
            command,
            cwd=BENCH_DIR,
            env=env,
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"the Twilio stand-in exited:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/_bench/state", timeout=2).ok:
                    return
            time.sleep(0.05)
        self.stop()
        raise HarnessError(f"the Twilio stand-in did not start:\n{self.log_tail()}")

    def state(self) -> dict[str, int]:
        try:
            return dict(requests.get(self.base_url + "/_bench/state", timeout=5).json())
        except (requests.RequestException, ValueError):
            return {"creates": -1, "playing": -1}

    def log_tail(self) -> str:
        path = Path(self._err.name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:])

    def records(self) -> list[dict[str, Any]]:
        lines = self.records_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()
        self._err.close()


@dataclass
class CpuMeter:
    """CPU seconds of the run's processes, from /proc, between ``start`` and ``stop``."""

    databases: Databases
    database_url: str
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    backends_first: dict[int, int] = field(default_factory=dict)
    backends_last: dict[int, int] = field(default_factory=dict)
    _sampled: bool = False

    def _now(
        self, web: Server, workers: list[Process], fake: FakeCalls, *, starting: bool
    ) -> dict[str, float]:
        figures = {
            "web": server_cpu_s(web.process.pid),
            "fake": cpu_ticks(fake.process.pid) / CLOCK_TICKS,
            "bench": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        }
        for n, worker in enumerate(workers, start=1):
            figures[f"worker {n}"] = (
                0.0 if starting else cpu_ticks(worker.process.pid) / CLOCK_TICKS
            )
        busy, idle = machine_cpu_s()
        figures["machine busy"], figures["machine idle"] = busy, idle
        return figures

    def sample_backends(self) -> None:
        for pid in self.databases.backend_pids(self.database_url):
            ticks = cpu_ticks(pid)
            self.backends_first.setdefault(pid, 0 if self._sampled else ticks)
            self.backends_last[pid] = ticks
        self._sampled = True

    def start(self, web: Server, workers: list[Process], fake: FakeCalls) -> None:
        self.before = self._now(web, workers, fake, starting=True)
        self.sample_backends()

    def stop(self, web: Server, workers: list[Process], fake: FakeCalls) -> None:
        self.sample_backends()
        self.after = self._now(web, workers, fake, starting=False)

    def figures(self) -> dict[str, float]:
        used = {key: self.after[key] - self.before.get(key, 0.0) for key in self.after}
        if self.backends_last:
            used["postgres backends"] = (
                sum(
                    last - self.backends_first.get(pid, 0)
                    for pid, last in self.backends_last.items()
                )
                / CLOCK_TICKS
            )
        return used


class SurveyRun:
    """N answered orders due at once; two workers place their calls through the stand-in."""

    def __init__(
        self,
        databases: Databases,
        tools: Tools,
        options: SurveyOptions,
        workdir: Path,
    ) -> None:
        self.databases = databases
        self.tools = tools
        self.options = options
        self.workdir = workdir
        self.probe_dir = workdir / "sweeps"
        self.probe_dir.mkdir()

    def _env(self, database_url: str, public: str, fake: FakeCalls, redis_url: str | None) -> dict:
        o = self.options
        rules = write_rules(
            self.workdir / "survey_rules.toml", attempts=o.attempts, min_gap=o.min_gap
        )
        env = clean_env(
            DATABASE_URL=database_url,
            PUBLIC_BASE_URL=public,
            JOURNAL_DIR=str(self.workdir / "journal"),
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_GATEWAY="twilio",
            TWILIO_API_BASE_URL=fake.base_url,
            SURVEY_CALLS_PER_SECOND=f"{o.rate:g}",
            SURVEY_RULES_FILE=str(rules),
            LOG_LEVEL="info",
            PYTHONPATH=str(ROOT),
        )
        if redis_url:
            env["REDIS_URL"] = redis_url
        else:
            env["HUEY_SQLITE_PATH"] = str(self.workdir / "huey.db")
        return env

    def run(self) -> dict[str, Any]:
        o = self.options
        database_url = self.databases.fresh(f"surveys_{uuid.uuid4().hex[:6]}")
        seed_s = seed(database_url, o.orders, planned=o.planned, seed_value=o.seed)
        redis = RedisDatabase(o.redis_url) if self.databases.backend == "postgres" else None
        watcher = Watcher(database_url)
        fake: FakeCalls | None = None
        web: Server | None = None
        workers: list[Process] = []
        meter = CpuMeter(self.databases, database_url)
        progress: list[dict[str, Any]] = []
        try:
            fake = FakeCalls(self.workdir, o)
            port = free_port()
            public = f"http://127.0.0.1:{port}"
            env = self._env(database_url, public, fake, redis.url if redis else None)
            web = web_server(env, self.workdir, o.web_workers, self.tools, port)
            web.wait_healthy()
            worker_env = {
                **env,
                "PYTHONPATH": os.pathsep.join([str(PROBE_DIR), str(ROOT)]),
                "BENCH_SURVEY_PROBE": str(self.probe_dir),
            }
            command = worker_command(self.tools)
            load_before = os.getloadavg()
            meter.start(web, workers, fake)
            started = time.time()
            for n in range(1, o.workers + 1):
                if n > 1 and o.stagger_s > 0:
                    time.sleep(o.stagger_s)
                workers.append(Process(command, worker_env, self.workdir / f"worker-{n}.log"))
            drained_at = self._wait(watcher, meter, web, workers, fake, started, progress)
            idle_at = self._wait_idle(fake)
            meter.stop(web, workers, fake)
            load_after = os.getloadavg()
            finished = time.time()
        finally:
            for worker in workers:
                worker.stop()
            if web is not None:
                web.stop()
            if fake is not None:
                fake.stop()
            watcher.close()
            if redis is not None:
                redis.flush()
        return {
            "backend": self.databases.backend,
            "database": self.databases.describe(),
            "huey": f"Redis {redis.url}" if redis else "SQLite file (HUEY_SQLITE_PATH)",
            "worker_command": shlex.join(["huey_consumer", *command[1:]]),
            "seed_s": seed_s,
            "started": started,
            "drained_at": drained_at,
            "idle_at": idle_at,
            "finished": finished,
            "records": fake.records(),
            "outcome": read_outcome(database_url),
            "sweeps": read_sweeps(self.probe_dir),
            "probe_errors": [p.read_text().strip() for p in self.probe_dir.glob("*.probe-error")],
            "cpu": meter.figures(),
            "load": (load_before, load_after),
            "progress": progress,
            "logs": {
                path.name: path.read_text(errors="replace")
                for path in [web.log_path, *(w.log_path for w in workers)]
            },
        }

    def _wait(
        self,
        watcher: Watcher,
        meter: CpuMeter,
        web: Server,
        workers: list[Process],
        fake: FakeCalls,
        started: float,
        progress: list[dict[str, Any]],
    ) -> float | None:
        """Until no survey is ``scheduled`` or ``calling`` (the time), or the timeout (None)."""
        o = self.options
        deadline = started + o.timeout_s
        next_line = started + o.progress_s
        while time.time() < deadline:
            time.sleep(0.5)
            for name, process in [("web", web), ("fake", fake)] + [
                (f"worker {n}", w) for n, w in enumerate(workers, 1)
            ]:
                if process.process.poll() is not None:
                    tail = process.log_tail() if hasattr(process, "log_tail") else ""
                    raise HarnessError(f"the {name} process exited during the run:\n{tail}")
            statuses = watcher.statuses()
            unsettled = statuses["scheduled"] + statuses["calling"]
            now = time.time()
            meter.sample_backends()
            if unsettled == 0:
                return now
            if now >= next_line:
                next_line += o.progress_s
                state = fake.state()
                line = {"t": now - started, "creates": state["creates"], **statuses}
                progress.append(line)
                rest = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
                print(
                    f"    {now - started:6.0f} s: {state['creates']:,} calls created, "
                    f"{state['playing']} being played; surveys: {rest}",
                    flush=True,
                )
        return None

    @staticmethod
    def _wait_idle(fake: FakeCalls, limit_s: float = 60.0) -> float:
        """Let the stand-in play out the calls still going (their final callbacks)."""
        deadline = time.time() + limit_s
        while time.time() < deadline and fake.state().get("playing", 0) > 0:
            time.sleep(0.2)
        return time.time()


def read_sweeps(folder: Path) -> list[dict[str, Any]]:
    sweeps = []
    for path in folder.glob("*.jsonl"):
        sweeps += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(sweeps, key=lambda s: s["start"])
