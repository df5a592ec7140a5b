"""One writer at a time on a SQLite file, and the next one woken promptly.

SQLite lets one connection write at a time. A second writer waits in SQLite's busy
handler, which sleeps 1, 2, 5, 10 ... and then 100 ms between tries whatever the writer
does meanwhile, so under a burst (200 calls' webhooks, the console's "available" and the
rings they trigger) a writer may sleep up to 100 ms after the lock was given back: the
tail of routing's latency. Here every connection of the engine first takes an OS lock on
``<database>-writer.lock`` (``flock``) just before its first write statement, and gives it
back when its transaction ends; a waiter tries again within ``MAX_NAP`` seconds.

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
from typing import Any

from sqlalchemy import Engine, event

WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)
FIRST_NAP = 0.0002
MAX_NAP = 0.002
HELD = "hotline.writer_lock"


def install(engine: Engine, database_path: str, timeout: float) -> None:
    """Take the writer lock of ``database_path`` around every write transaction."""
    lock_path = database_path + "-writer.lock"

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if HELD not in conn.info and WRITES.match(statement):
            conn.info[HELD] = _acquire(lock_path, timeout)

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


def _acquire(lock_path: str, timeout: float) -> int | None:
    """The lock's file descriptor, held; None when it was not free within ``timeout``."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    nap = FIRST_NAP
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(nap)
            nap = min(nap * 2, MAX_NAP)


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor gives the lock back
