"""One writer at a time on a SQLite file, and the next one woken promptly.

SQLite lets one connection write at a time. A second writer waits in SQLite's busy
handler, which sleeps 1, 2, 5, 10 ... and then 100 ms between tries whatever the writer
does meanwhile, so under a burst (200 calls' webhooks, the console's "available" and the
rings they trigger) a writer may sleep up to 100 ms after the lock was given back: the
tail of routing's latency. Here every connection of the engine first takes an OS lock on
``<database>-writer.lock`` (``flock``) just before its first write statement, and gives it
back when its transaction ends; a waiter tries again within ``MAX_NAP`` seconds.

Writes a person is waiting on go first (``urgent``: a call-taker's button, ringing a
call-taker for a caller). While an urgent writer waits it holds a shared lock on
``<database>-urgent.lock``; the others look there before each try and stand back while
anyone holds it. So a call-taker's "available" waits for the transaction in progress, not
for the queue of webhook stores behind it; under the routing burst the webhooks' writers
were four processes polling against the console's one.

The OS lock is an addition, not a replacement: SQLite's own locking still holds. A writer
that cannot get the OS lock within the busy timeout writes anyway and SQLite decides, as
without this module (so two connections of one thread can never wait for each other
forever).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Engine, event

WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)
FIRST_NAP = 0.0002
MAX_NAP = 0.002
HELD = "hotline.writer_lock"
_urgent: ContextVar[bool] = ContextVar("hotline_urgent_writes", default=False)


@contextmanager
def urgent() -> Iterator[None]:
    """The writes of this thread (or task) meanwhile go before the others waiting."""
    token = _urgent.set(True)
    try:
        yield
    finally:
        _urgent.reset(token)


def install(engine: Engine, database_path: str, timeout: float) -> None:
    """Take the writer lock of ``database_path`` around every write transaction."""
    lock_path = database_path + "-writer.lock"
    urgent_path = database_path + "-urgent.lock"

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if HELD not in conn.info and WRITES.match(statement):
            conn.info[HELD] = _acquire(lock_path, urgent_path, timeout, urgent=_urgent.get())

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _transaction_ends(conn: Any) -> None:
        if not conn.invalidated:  # an invalidated one gave it back then
            _release(conn.info.pop(HELD, None))

    # A connection returned, reset, invalidated or closed never keeps the lock.
    @event.listens_for(engine, "checkin")
    @event.listens_for(engine, "close")
    def _done(dbapi_connection: Any, connection_record: Any) -> None:
        _forget(connection_record)

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
        _forget(connection_record)

    @event.listens_for(engine, "invalidate")
    @event.listens_for(engine, "soft_invalidate")
    def _invalidated(dbapi_connection: Any, connection_record: Any, exception: Any) -> None:
        _forget(connection_record)


def _forget(connection_record: Any) -> None:
    if connection_record is not None:
        _release(connection_record.info.pop(HELD, None))


def _acquire(lock_path: str, urgent_path: str, timeout: float, *, urgent: bool) -> int | None:
    """The lock's file descriptor, held; None when it was not free within ``timeout``."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    queue = os.open(urgent_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if urgent:
            fcntl.flock(queue, fcntl.LOCK_SH)  # "an urgent writer waits"; given back below
        if _poll(fd, queue, time.monotonic() + timeout, stand_back=not urgent):
            return fd
        os.close(fd)
        return None
    finally:
        os.close(queue)


def _poll(fd: int, queue: int, deadline: float, *, stand_back: bool) -> bool:
    nap = FIRST_NAP
    while True:
        if not (stand_back and _urgent_waiting(queue)):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(nap)
        nap = min(nap * 2, MAX_NAP)


def _urgent_waiting(queue: int) -> bool:
    try:
        fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(queue, fcntl.LOCK_UN)
    return False


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor gives the lock back
