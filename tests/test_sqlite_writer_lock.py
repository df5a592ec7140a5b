"""The SQLite writer lock: held from a transaction's first write to its end, never for
reads, given back however the connection ends, never a reason to wait forever, and taken
first by the writes a person waits on."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tickets import sqlite_writer_lock
from tickets.db import make_engine, writes_first


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "locked.db"


@pytest.fixture
def sqlite_engine(database: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    yield engine
    engine.dispose()


def writer_lock_is_free(database: Path) -> bool:
    """Whether another process could take the writer lock now."""
    fd = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_held_from_the_first_write_until_the_commit(sqlite_engine: Engine, database: Path) -> None:
    with sqlite_engine.connect() as connection:
        connection.execute(text("SELECT count(*) FROM notes"))
        assert writer_lock_is_free(database)  # a read takes nothing
        connection.execute(text("INSERT INTO notes (body) VALUES ('a')"))
        assert not writer_lock_is_free(database)
        connection.execute(text("UPDATE notes SET body = 'b'"))
        assert not writer_lock_is_free(database)
        connection.commit()
        assert writer_lock_is_free(database)
        assert connection.execute(text("SELECT body FROM notes")).scalar_one() == "b"


def test_given_back_on_rollback_and_when_the_connection_is_returned(
    sqlite_engine: Engine, database: Path
) -> None:
    with sqlite_engine.connect() as connection:
        connection.execute(text("INSERT INTO notes (body) VALUES ('a')"))
        connection.rollback()
        assert writer_lock_is_free(database)
        connection.execute(text("INSERT INTO notes (body) VALUES ('b')"))
    assert writer_lock_is_free(database)  # closed without commit: rolled back, returned
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM notes")).scalar_one() == 0


def test_given_back_when_the_connection_is_invalidated(
    sqlite_engine: Engine, database: Path
) -> None:
    with sqlite_engine.connect() as connection:
        connection.execute(text("INSERT INTO notes (body) VALUES ('a')"))
        connection.invalidate()
        assert writer_lock_is_free(database)


def test_a_second_writer_that_cannot_get_it_in_time_writes_anyway(database: Path) -> None:
    """Two connections of one thread: the second does not wait forever for the first's OS
    lock; SQLite's own busy timeout then decides, as without the lock."""
    first = make_engine(f"sqlite:///{database}", connect_args={"timeout": 0.2})
    second = make_engine(f"sqlite:///{database}", connect_args={"timeout": 0.2})
    try:
        with first.begin() as connection:
            connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        with first.connect() as holder, second.connect() as waiter:
            holder.execute(text("INSERT INTO notes (body) VALUES ('a')"))
            with pytest.raises(Exception, match="database is locked"):
                waiter.execute(text("INSERT INTO notes (body) VALUES ('b')"))
            waiter.rollback()
            holder.commit()
            waiter.execute(text("INSERT INTO notes (body) VALUES ('c')"))  # free again
            waiter.commit()
            assert holder.execute(text("SELECT count(*) FROM notes")).scalar_one() == 2
    finally:
        first.dispose()
        second.dispose()


def test_an_urgent_writer_goes_before_the_writers_waiting_longer(database: Path) -> None:
    """A call-taker's button (``writes_first``) waits for the transaction in progress,
    not for the webhook stores queued behind it."""
    engines = [make_engine(f"sqlite:///{database}") for _ in range(6)]
    holder_engine, urgent_engine, *webhook_engines = engines
    try:
        with holder_engine.begin() as connection:
            connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        order: list[str] = []

        def write(engine: Engine, body: str, urgent: bool) -> None:
            with ExitStack() as stack:
                if urgent:
                    stack.enter_context(writes_first())
                with engine.begin() as connection:
                    connection.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": body})
                    order.append(body)

        with holder_engine.connect() as holder:
            holder.execute(text("INSERT INTO notes (body) VALUES ('holder')"))
            writers = [
                threading.Thread(target=write, args=(engine, "webhook", False))
                for engine in webhook_engines
            ]
            for writer in writers:
                writer.start()
            time.sleep(0.05)  # the webhook stores have waited a while ...
            urgent = threading.Thread(target=write, args=(urgent_engine, "console", True))
            urgent.start()
            writers.append(urgent)
            time.sleep(0.05)  # ... and the button's write is waiting too
            holder.commit()
        for writer in writers:
            writer.join(5)
        assert order == ["console"] + ["webhook"] * len(webhook_engines)
    finally:
        for engine in engines:
            engine.dispose()


def test_the_others_stand_back_while_an_urgent_writer_waits(
    sqlite_engine: Engine, database: Path
) -> None:
    waiting = os.open(f"{database}-urgent.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(waiting, fcntl.LOCK_SH)  # as an urgent writer does while it waits
    done = threading.Event()

    def store() -> None:
        with sqlite_engine.begin() as connection:
            connection.execute(text("INSERT INTO notes (body) VALUES ('webhook')"))
        done.set()

    writer = threading.Thread(target=store)
    writer.start()
    try:
        assert not done.wait(0.2)  # the writer lock is free, yet it waits its turn
    finally:
        os.close(waiting)
    assert done.wait(5)
    writer.join(5)


def test_writes_are_urgent_only_inside_the_block(sqlite_engine: Engine) -> None:
    assert not sqlite_writer_lock._urgent.get()
    with writes_first():
        assert sqlite_writer_lock._urgent.get()
        with writes_first():
            assert sqlite_writer_lock._urgent.get()
        assert sqlite_writer_lock._urgent.get()
    assert not sqlite_writer_lock._urgent.get()
