"""A local append-only file for webhooks that arrived while the database was down.

The voice routes answer from the flow state in the signed URL, so a caller is served
even when the database is not; what the database could not take is appended here
(fsynced, one JSON document a line) and stored later by ``replay`` (worker, or
``hotline replay-spool``). Storing is idempotent, so replaying twice changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "webhooks.jsonl"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, document: dict[str, Any]) -> None:
        line = json.dumps(document, ensure_ascii=False, default=str) + "\n"
        with self._locked(), open(self.path, "a", encoding="utf-8") as spool:
            spool.write(line)
            spool.flush()
            os.fsync(spool.fileno())

    def pending(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, encoding="utf-8") as spool:
            return sum(1 for line in spool if line.strip())

    def replay(self, store: Callable[[dict[str, Any]], None]) -> tuple[int, int]:
        """Store every spooled document; those that fail again stay spooled.

        Returns (stored, still pending).
        """
        with self._locked():
            if not self.path.exists():
                return 0, 0
            claimed = self.path.with_name(f"replaying-{time.time_ns()}.jsonl")
            self.path.rename(claimed)
        stored, failed = 0, []
        for line in claimed.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                store(json.loads(line))
                stored += 1
            except json.JSONDecodeError:
                log.error("an unreadable spool line was set aside in rejected.jsonl")
                with open(self.directory / "rejected.jsonl", "a", encoding="utf-8") as bad:
                    bad.write(line + "\n")
            except Exception:
                log.exception("replaying a spooled webhook failed; it stays spooled")
                failed.append(line)
        for line in failed:
            self.append(json.loads(line))
        claimed.unlink()
        return stored, len(failed)
