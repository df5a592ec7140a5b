"""The declarative base, column types and engine set-up shared by every model.

Times are stored in UTC and always come back time-zone aware (SQLite keeps no zone, so
``UTCDateTime`` puts it back). Enums are stored by value as plain strings, so adding a
member needs no database type change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from sqlalchemy import JSON, DateTime, Enum, MetaData, String, TypeDecorator, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.orm import DeclarativeBase, mapped_column

from tickets import sqlite_writer_lock
from tickets.sqlite_writer_lock import urgent as writes_first  # noqa: F401  (re-exported)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")

utc_time = Annotated[datetime, mapped_column(UTCDateTime())]
call_sid = Annotated[str, mapped_column(String(34))]
e164 = Annotated[str, mapped_column(String(16))]


def str_enum(enum_class: type[StrEnum], length: int = 20) -> Enum:
    """A VARCHAR column holding the enum's values (not its names), with no DB enum type."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and the writer
    lock of ``tickets.sqlite_writer_lock`` (a file database).

    WAL lets the web workers read while one writes; ``synchronous=NORMAL`` is durable
    against application crashes (only an OS crash may lose the last commits).
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 15})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        database = engine.url.database
        if database and database != ":memory:":
            timeout = float(kwargs["connect_args"].get("timeout", 5))
            sqlite_writer_lock.install(engine, database, timeout)
        return engine
    # No pre-ping: it costs a round trip per checkout, and a webhook whose connection turns
    # out dead is journaled, not lost (ivr.persist); the pool then replaces the connection.
    return create_engine(url, **kwargs)
