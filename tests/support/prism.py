"""Run the Stoplight Prism mock of Twilio's OpenAPI document for contract tests.

Prism reads a repeated form field (``StatusCallbackEvent=a&StatusCallbackEvent=b``, as
twilio-python sends it) as an array only when the media type declares an ``encoding`` for
it, so tests serve a derived copy of the pristine document with those entries added.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO_ROOT / "tests" / "contract" / "twilio-oai" / "twilio_api_v2010.json"
DEFAULT_PRISM_BIN = REPO_ROOT / ".tools" / "prism" / "node_modules" / ".bin" / "prism"
FORM = "application/x-www-form-urlencoded"
READY_MARKER = "Prism is listening"
START_TIMEOUT_SECONDS = 60.0
ARRAY_ENCODING = {"style": "form", "explode": True, "allowReserved": True}


@dataclass
class PrismServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_in_seconds: float

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the one Prism process (it has no children: the binary runs without npx)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def find_prism() -> Path | None:
    """``$PRISM_BIN``, else ``<repo>/.tools/prism/node_modules/.bin/prism``; None when unusable."""
    configured = os.environ.get("PRISM_BIN")
    candidate = Path(configured) if configured else DEFAULT_PRISM_BIN
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        return None
    if shutil.which("node") is None:  # the npm shim is a node script
        return None
    return candidate


def prism_or_skip() -> Path:
    """The Prism binary; skip the test when it is missing, or fail when REQUIRE_PRISM=1."""
    binary = find_prism()
    if binary is not None:
        return binary
    where = os.environ.get("PRISM_BIN") or str(DEFAULT_PRISM_BIN)
    reason = (
        f"Prism not installed: run `make prism` (or bin/install-prism); looked for {where} "
        "(override with PRISM_BIN; needs Node >= 18.20)"
    )
    if os.environ.get("REQUIRE_PRISM") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref`` pointers (``#/components/...``)."""
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def add_array_encodings(document: dict[str, Any]) -> int:
    """Declare form/explode encoding for every array property of form request bodies.

    Mutates ``document``; returns how many properties were given an encoding.
    """
    count = 0
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            body = _resolve(document, operation["requestBody"])
            media = body.get("content", {}).get(FORM)
            if media is None:
                continue
            schema = _resolve(document, media.get("schema", {}))
            for name, prop in schema.get("properties", {}).items():
                if _resolve(document, prop).get("type") == "array":
                    media.setdefault("encoding", {})[name] = dict(ARRAY_ENCODING)
                    count += 1
    return count


def derive_spec(target_dir: Path, source: Path = SPEC_PATH) -> Path:
    """Write the Prism-ready copy of ``source`` into ``target_dir``; the source stays pristine."""
    document = json.loads(source.read_text(encoding="utf-8"))
    if add_array_encodings(document) == 0:
        raise RuntimeError(f"no array form fields found in {source}: has the document changed?")
    target = target_dir / f"{source.stem}.prism.json"
    target.write_text(json.dumps(document), encoding="utf-8")
    return target


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_prism(
    binary: Path, spec: Path, workdir: Path, timeout: float = START_TIMEOUT_SECONDS
) -> PrismServer:
    """Start ``prism mock`` on a free local port and wait until it listens."""
    port = _free_port()
    log_path = workdir / "prism.log"
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    started = time.monotonic()
    # Output goes straight to a file, so Prism can never block on a full pipe.
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
        )
    server = PrismServer(f"http://127.0.0.1:{port}", process, log_path, 0.0)
    while time.monotonic() - started < timeout:
        if READY_MARKER in log_path.read_text(encoding="utf-8", errors="replace"):
            server.started_in_seconds = time.monotonic() - started
            return server
        if process.poll() is not None:
            raise RuntimeError(f"Prism exited with {process.returncode}:\n{server.log_tail()}")
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"Prism not listening after {timeout:.0f} s:\n{server.log_tail()}")


@contextmanager
def running_prism(workdir: Path) -> Iterator[PrismServer]:
    """Skip (or fail) when Prism is absent; otherwise serve the derived spec until exit."""
    binary = prism_or_skip()
    server = start_prism(binary, derive_spec(workdir), workdir)
    try:
        yield server
    finally:
        server.stop()
