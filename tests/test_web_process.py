"""The web process as the Procfile runs it: gunicorn workers journal, the drainer stores."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL
from tests.support.twilio_sdk import RequestValidator
from tests.support.webhooks import call_params, new_call_sid
from tickets.journal import pending_lines
from tickets.models import Call

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(port: int, path: str, params: dict[str, str]) -> int:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE_URL + path, params)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def _wait_for(predicate, seconds: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_gunicorn_workers_journal_and_the_drainer_stores_within_moments(
    database_url, engine, db, tmp_path: Path
):
    port = _free_port()
    journal_dir = tmp_path / "journal"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HOTLINE_ENV": "test",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "JOURNAL_DIR": str(journal_dir),
        "LOG_LEVEL": "warning",
    }
    env.pop("JOURNAL_DRAIN", None)
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn_conf"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "2", "webapp:create_app()"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        sid = new_call_sid()
        assert _wait_for(lambda: _is_listening(port))
        assert _post(port, "/voice/incoming", call_params(sid, CallStatus="ringing")) == 200
        assert _post(port, "/voice/step/language?try=1", call_params(sid, Digits="2")) == 200

        def stored() -> bool:
            db.expire_all()
            call = db.scalar(select(Call).where(Call.call_sid == sid))
            return call is not None and call.front_door_path == ">greeting>language:bo"

        assert _wait_for(stored), "the drainer did not store the webhooks"
        assert list(journal_dir.glob("*.jsonl")), "the workers did not journal"
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=60)
    assert server.returncode == 0, errors.decode()[-2000:]
    assert pending_lines(journal_dir) == 0
    assert not list(journal_dir.glob("*.jsonl"))  # the workers are gone: files removed


def _is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
