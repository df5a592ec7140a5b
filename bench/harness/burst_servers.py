"""The processes of the routing burst: the hotline's web and console servers as the
Procfile runs them, Twilio's REST API stand-in, and the call-takers' console logins."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .procstats import children, is_drainer
from .tools import BENCH_DIR, ROOT, HarnessError, Tools, clean_env

PROBE_DIR = BENCH_DIR / "harness" / "dispatch_probe"
FAKE_TWILIO = BENCH_DIR / "harness" / "fake_twilio.py"
ACCOUNT_SID = "AC" + "0" * 32
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def find_tools() -> Tools:
    """gunicorn and hotline from the app's environment (the burst needs no wrk)."""

    def tool(name: str) -> str:
        for folder in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
            if (folder / name).exists():
                return str(folder / name)
        found = shutil.which(name)
        if not found:
            raise HarnessError(f"{name} not found (install the app: make install)")
        return found

    return Tools(sys.executable, tool("gunicorn"), tool("hotline"), wrk="")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process:
    """A child in its own session, its output to ``log``; stopped with SIGTERM."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, *, pipe: bool = False):
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE if pipe else self._log,
            stderr=self._log if pipe else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

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


class Server(Process):
    """gunicorn serving ``webapp:create_app()`` on a free loopback port."""

    def __init__(
        self, name: str, gunicorn_args: list[str], env: dict[str, str], workdir: Path, port: int
    ) -> None:
        self.name = name
        self.port = port
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            *gunicorn_args[:1],
            "--bind",
            f"127.0.0.1:{self.port}",
            *gunicorn_args[1:],
            "--access-logfile",
            "-",
            "webapp:create_app()",
        ]
        self.started = time.monotonic()
        super().__init__(command, env, workdir / f"{name}.log")

    def wait_healthy(self) -> None:
        deadline = self.started + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"the {self.name} server exited at start:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise HarnessError(f"the {self.name} server did not answer:\n{self.log_tail()}")

    def pids(self) -> dict[int, str]:
        """Its processes now: the master, the workers and (web) the journal drainer."""
        kinds = {self.process.pid: f"{self.name} master"}
        for pid in children(self.process.pid):
            kinds[pid] = "journal drainer" if is_drainer(pid) else f"{self.name} worker"
        return kinds


@dataclass
class FakeTwilio:
    """``harness/fake_twilio.py`` in its own process; its records handed to ``on_record``."""

    workdir: Path
    on_record: Callable[[dict[str, Any]], None]
    port: int = field(default_factory=free_port)
    records: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._process = Process(
            [sys.executable, str(FAKE_TWILIO), str(self.port)],
            os.environ.copy(),
            self.workdir / "fake-twilio.log",
            pipe=True,
        )
        ready: queue.Queue[bool] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(ready,), daemon=True)
        self._reader.start()
        try:
            ready.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.stop()
            raise HarnessError("the Twilio stand-in did not start") from None

    def _read(self, ready: queue.Queue[bool]) -> None:
        stream = self._process.process.stdout
        assert stream is not None
        for line in stream:
            record = json.loads(line)
            if record["op"] == "ready":
                ready.put(True)
                continue
            self.records.append(record)
            self.on_record(record)

    @property
    def pid(self) -> int:
        return self._process.process.pid

    def stop(self) -> None:
        self._process.stop()
        self._reader.join(timeout=5)


def server_env(
    database_url: str, public_base_url: str, twilio_url: str, workdir: Path, name: str
) -> dict[str, str]:
    """The hotline's settings for the burst: its real Twilio gateway, pointed at the
    stand-in; wrap-up long enough that only the call-taker's console ends it."""
    probe_log = workdir / "dispatch"
    probe_log.mkdir(exist_ok=True)
    return clean_env(
        DATABASE_URL=database_url,
        PUBLIC_BASE_URL=public_base_url,
        JOURNAL_DIR=str(workdir / f"{name}.journal"),
        HUEY_SQLITE_PATH=str(workdir / f"{name}.huey.db"),
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_GATEWAY="twilio",
        TWILIO_API_BASE_URL=twilio_url,
        WRAP_UP_SECONDS="600",
        # The probe, then this checkout (ahead of an installed copy of the app).
        PYTHONPATH=os.pathsep.join([str(PROBE_DIR), str(ROOT)]),
        BENCH_DISPATCH_LOG=str(probe_log),
    )


def web_server(env: dict[str, str], workdir: Path, workers: int, tools: Tools, port: int) -> Server:
    """Procfile ``web``: sync workers and the journal drainer (``webapp.gunicorn_conf``)."""
    args = [tools.gunicorn, "-c", "python:webapp.gunicorn_conf", "--workers", str(workers)]
    return Server("web", args, env, workdir, port)


def console_server(env: dict[str, str], workdir: Path, workers: int, tools: Tools) -> Server:
    """Procfile ``console``: gthread workers, 32 threads each (the call-takers' buttons)."""
    args = [tools.gunicorn, "--worker-class", "gthread", "--workers", str(workers)]
    return Server("console", [*args, "--threads", "32"], env, workdir, free_port())


class Console:
    """One call-taker logged in to the console, pressing "available"."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        token = self._token("/login")
        answer = self.session.post(
            base_url + "/login",
            data={"csrf_token": token, "username": username, "password": password},
            allow_redirects=False,
        )
        if answer.status_code != 302:
            raise HarnessError(f"{username} could not log in: HTTP {answer.status_code}")
        self.token = self._token("/console")

    def _token(self, path: str) -> str:
        page = self.session.get(self.base_url + path, timeout=30)
        found = CSRF.search(page.text)
        if page.status_code != 200 or not found:
            raise HarnessError(f"no CSRF token on {path}: HTTP {page.status_code}")
        return found.group(1)

    def go_available(self) -> int:
        """POST the console's "available" button; the view commits, then dispatches.

        Sent again once when the kept-alive connection turns out closed: gunicorn closes a
        connection idle for its keep-alive time (2 s), and a call-taker idles longer than
        that between presses, so the POST may go out on a socket the server has just
        closed (reset, nothing read). A browser sends it again the same way; a second
        "available" would change nothing anyway."""
        try:
            return self._press_available()
        except requests.ConnectionError:
            return self._press_available()

    def _press_available(self) -> int:
        answer = self.session.post(
            self.base_url + "/console/state",
            data={"csrf_token": self.token, "state": "available"},
            allow_redirects=False,
            timeout=60,
        )
        return answer.status_code
