"""The webhook journal: each webhook is appended to a local file, then stored by a drain.

Why: the voice routes answer from the flow state carried in the signed URL, so storing a
webhook need not hold up the caller. Each web process appends one JSON line per webhook
to a file of its own (no lock, no database round trip). A drain stores the lines in
batches, in arrival order, and remembers how far it got; the store is idempotent on each
webhook's dedupe key, so a line stored twice (a drain that died before saving its place)
changes nothing. The same journal holds webhooks while the database is down: the drain
simply tries again later.

Arrival order across files: every line carries the wall-clock time taken just before it
was written. A drain first notes the time (its cut), then reads every file and stores
only the lines older than the cut, sorted by time. A line written after another, in any
process, was stamped after that one was complete; so when a later line is below the cut,
the earlier one is already readable. Lines at or past the cut wait for the next drain.

Durability: a line is one ``write(2)``, not fsynced; it survives the process, as SQLite's
WAL with ``synchronous=NORMAL`` does, but not a power cut.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Document = dict[str, Any]
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_BATCH = 2_000
SUFFIX = ".jsonl"
OFFSETS = "offsets.json"
REJECTED = "rejected.jsonl"
TIDY_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class _Line:
    at_ns: int
    path: Path
    end: int  # the file offset just past this line
    document: Document


@dataclass(frozen=True, slots=True)
class DrainResult:
    stored: int  # lines taken from the journal and stored (first time or not)
    rejected: int  # lines that could never be stored, set aside in rejected.jsonl
    pending: int  # lines left for a later drain (past the cut, or beyond one batch)


class Journal:
    def __init__(self, directory: str | Path, *, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.directory = Path(directory)
        self.max_file_bytes = max_file_bytes
        self._host = socket.gethostname().replace(".", "_")  # names only, for people
        self._pid = 0
        self._fd = -1
        self._size = 0
        self._sequence = 0
        self._name = ""
        self._drain_fds: tuple[int, int, int] | None = None  # (pid, lock, offsets)
        self._next_tidy = 0.0

    # -- writing (every web process) ------------------------------------------------
    def append(self, document: Document) -> None:
        line = json.dumps(
            {"t": time.time_ns(), "d": document},
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )
        data = (line + "\n").encode("utf-8")
        fd = self._writer()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        self._size += len(data)
        if self._size >= self.max_file_bytes:
            self._close_writer()

    def _writer(self) -> int:
        if self._pid != os.getpid():  # a forked child never writes to its parent's file
            if self._fd >= 0:
                os.close(self._fd)
            self._fd, self._pid, self._sequence = -1, os.getpid(), 0
        if self._fd < 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._sequence += 1
            name = f"{self._host}.{self._pid}.{time.time_ns()}.{self._sequence:06d}"
            # Locked before it is visible: a drain never mistakes it for an abandoned file.
            hidden = self.directory / f".{name}.new"
            fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            hidden.rename(self.directory / f"{name}{SUFFIX}")
            self._fd, self._size, self._name = fd, 0, f"{name}{SUFFIX}"
        return self._fd

    def _close_writer(self) -> None:
        """Stop appending to the current file (the next line starts a new one)."""
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)  # also releases the writer's lock
        self._fd = -1

    # -- draining (one process at a time) ---------------------------------------------
    def has_pending(self) -> bool:
        """Cheap: is there any journal file at all? (Drained files are removed.)"""
        try:
            with os.scandir(self.directory) as entries:
                return any(
                    entry.name.endswith(SUFFIX) and entry.name != REJECTED for entry in entries
                )
        except FileNotFoundError:
            return False

    def drain(
        self,
        store: Callable[[list[Document]], None],
        *,
        is_transient: Callable[[Exception], bool],
        wait: bool = True,
        max_batch: int = MAX_BATCH,
    ) -> DrainResult | None:
        """Store one batch of journal lines in arrival order; None if another drain runs.

        ``store`` stores a list of documents in one transaction. When it raises an error
        ``is_transient`` accepts (the database is down), nothing is marked done and the
        error propagates. Any other error is a bad line: the batch is stored one line at a
        time and the lines that fail are set aside in ``rejected.jsonl``, with a log.
        """
        with self._drain_lock(wait) as locked:
            if not locked:
                return None
            cut = time.time_ns()
            offsets = self._read_offsets()
            lines, pending = self._lines_before(cut, offsets, max_batch)
            rejected = self._store(lines, store, is_transient) if lines else 0
            for line in lines:
                offsets[line.path.name] = max(offsets.get(line.path.name, 0), line.end)
            # Removing finished files costs a lock attempt per file: when idle, or each second.
            if not lines or time.monotonic() >= self._next_tidy:
                offsets = self._remove_finished(offsets)
                self._next_tidy = time.monotonic() + TIDY_EVERY_S
            if lines or rejected:
                self._write_offsets(offsets)
            return DrainResult(stored=len(lines) - rejected, rejected=rejected, pending=pending)

    def _drain_files(self) -> tuple[int, int]:
        """This process's descriptors of the drain lock and the offsets file, kept open."""
        if self._drain_fds is None or self._drain_fds[0] != os.getpid():
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = os.open(self.directory / ".drain.lock", os.O_RDWR | os.O_CREAT, 0o600)
            offsets = os.open(self.directory / OFFSETS, os.O_RDWR | os.O_CREAT, 0o600)
            self._drain_fds = (os.getpid(), lock, offsets)
        return self._drain_fds[1], self._drain_fds[2]

    @contextmanager
    def _drain_lock(self, wait: bool) -> Iterator[bool]:
        lock, _ = self._drain_files()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def _files(self) -> list[Path]:
        return [path for path, _ in self._files_with_sizes()]

    def _files_with_sizes(self) -> list[tuple[Path, int]]:
        try:
            with os.scandir(self.directory) as entries:
                found = [
                    (Path(entry.path), entry.stat().st_size)
                    for entry in entries
                    if entry.name.endswith(SUFFIX) and entry.name != REJECTED
                ]
        except FileNotFoundError:
            return []
        return sorted(found)

    def _lines_before(
        self, cut: int, offsets: dict[str, int], max_batch: int
    ) -> tuple[list[_Line], int]:
        lines: list[_Line] = []
        pending = 0
        for path, size in self._files_with_sizes():
            start = offsets.get(path.name, 0)
            if start >= size:
                continue
            in_file, waiting = self._read_file(path, start, cut)
            lines += in_file
            pending += waiting
        lines.sort(key=lambda line: line.at_ns)
        if len(lines) <= max_batch:
            return lines, pending
        # Keep a prefix of every file: stop each file at the first line past the new cut.
        cut = lines[max_batch].at_ns
        kept: list[_Line] = []
        stopped: set[Path] = set()
        for line in sorted(lines, key=lambda line: (line.path, line.end)):
            if line.path in stopped or line.at_ns >= cut:
                stopped.add(line.path)
                pending += 1
            else:
                kept.append(line)
        kept.sort(key=lambda line: line.at_ns)
        return kept, pending

    def _read_file(self, path: Path, start: int, cut: int) -> tuple[list[_Line], int]:
        """The complete lines from ``start`` stamped before ``cut``; and how many wait."""
        try:
            with open(path, "rb") as journal:
                journal.seek(start)
                data = journal.read()
        except FileNotFoundError:
            return [], 0
        lines: list[_Line] = []
        position = start
        waiting = 0
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                waiting += 1  # still being written (or its writer died mid-line)
                break
            end = position + len(raw)
            try:
                entry = json.loads(raw)
                at_ns, document = int(entry["t"]), entry["d"]
            except (ValueError, KeyError, TypeError):
                self._reject(raw.decode("utf-8", "replace").rstrip("\n"), "unreadable line")
                position = end
                lines.append(_Line(-1, path, end, {}))  # skipped, but marks progress
                continue
            if at_ns >= cut:
                waiting += 1 + data.count(b"\n", end - start)
                break
            lines.append(_Line(at_ns, path, end, document))
            position = end
        return lines, waiting

    def _store(
        self,
        lines: list[_Line],
        store: Callable[[list[Document]], None],
        is_transient: Callable[[Exception], bool],
    ) -> int:
        documents = [line.document for line in lines if line.at_ns >= 0]
        unreadable = len(lines) - len(documents)
        try:
            store(documents)
            return unreadable
        except Exception as error:
            if is_transient(error):
                raise
            log.exception("a journal batch failed; storing its %d lines one by one", len(documents))
        rejected = unreadable
        for document in documents:
            try:
                store([document])
            except Exception as error:
                if is_transient(error):
                    raise
                self._reject(json.dumps(document, ensure_ascii=False, default=str), repr(error))
                rejected += 1
        return rejected

    def _reject(self, line: str, why: str) -> None:
        log.error("a webhook from the journal was set aside in %s: %s", REJECTED, why[:200])
        with open(self.directory / REJECTED, "a", encoding="utf-8") as rejected:
            rejected.write(line + "\n")

    def _read_offsets(self) -> dict[str, int]:
        """How far each file is stored. Unreadable (a torn write): from the start, which
        only costs time, since storing a line again changes nothing."""
        _, fd = self._drain_files()
        try:
            data = json.loads(os.pread(fd, 1 << 20, 0) or b"{}")
            return {str(name): int(offset) for name, offset in data.items()}
        except (ValueError, AttributeError, TypeError):
            return {}

    def _write_offsets(self, offsets: dict[str, int]) -> None:
        _, fd = self._drain_files()
        data = json.dumps(offsets).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def _remove_finished(self, offsets: dict[str, int]) -> dict[str, int]:
        """Remove the files that are stored to the end and that no process writes.

        A writer holds a shared lock on its file while it may append; process exit or
        rotation releases it. A file left with a torn last line (its writer died in the
        middle of a write) has that fragment set aside.
        """
        kept: dict[str, int] = {}
        for path, size in self._files_with_sizes():
            done = offsets.get(path.name, 0)
            if path.name == self._name and self._pid == os.getpid() and done >= size:
                self._close_writer()  # this process's own file, all stored: let it go
            with open(path, "rb") as journal:
                try:
                    fcntl.flock(journal, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    kept[path.name] = done  # a live writer
                    continue
                journal.seek(done)
                rest = journal.read()
                if b"\n" in rest:
                    kept[path.name] = done  # complete lines past the cut: next drain
                    continue
                if rest:
                    self._reject(rest.decode("utf-8", "replace"), "torn line of a dead writer")
                path.unlink()
        return kept


def pending_lines(directory: str | Path) -> int:
    """How many lines are not stored yet (for the CLI and tests)."""
    journal = Journal(directory)
    offsets = journal._read_offsets()
    count = 0
    for path in journal._files():
        with open(path, "rb") as data:
            data.seek(offsets.get(path.name, 0))
            count += data.read().count(b"\n")
    return count
