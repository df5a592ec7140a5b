"""The programs the benchmark runs (gunicorn, hotline, wrk) and the environment it runs them in."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "bench"

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"  # the servers' TWILIO_AUTH_TOKEN

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


class HarnessError(RuntimeError):
    """The benchmark itself could not run (not a slow result: those are reported)."""


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


def clean_env(**overrides: str) -> dict[str, str]:
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
