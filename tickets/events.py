"""Recording what Twilio told us, exactly once per delivery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tickets.db import utcnow
from tickets.models import CallEvent

EVENTS = CallEvent.__table__


@cache
def _insert_once(dialect: str) -> Insert:
    """``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key``, built once.

    RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING; and
    given many rows, SQLAlchemy sends them as one multi-row INSERT ("insertmanyvalues")
    whose returned keys say which rows were new.
    The statement is built once per dialect: on the webhook's hot path, building it
    costs more than running it.
    """
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(EVENTS)
        .values(
            call_sid=bindparam("call_sid"),
            kind=bindparam("kind"),
            dedupe_key=bindparam("dedupe_key"),
            sequence_number=bindparam("sequence_number"),
            received_at=bindparam("received_at", type_=EVENTS.c.received_at.type),
            params=bindparam("params", type_=EVENTS.c.params.type),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(EVENTS.c.id, EVENTS.c.dedupe_key)
    )


def record_event(
    *,
    session: Session,
    kind: str,
    call_sid: str | None,
    params: dict[str, Any],
    dedupe_key: str | None,
    sequence_number: int | None = None,
    received_at: datetime | None = None,
) -> bool:
    """Append one event; False when this delivery was stored before (a retry)."""
    row = event_row(kind, call_sid, params, dedupe_key, sequence_number, received_at)
    connection = session.connection()
    return connection.execute(_insert_once(connection.dialect.name), row).first() is not None


def record_events(*, session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Append many events (rows of ``event_row``) at once; the dedupe keys that were new.

    The keys must be distinct within ``rows``.
    """
    connection = session.connection()
    inserted = connection.execute(_insert_once(connection.dialect.name), list(rows))
    return {key for _, key in inserted}


def event_row(
    kind: str,
    call_sid: str | None,
    params: dict[str, Any],
    dedupe_key: str | None,
    sequence_number: int | None = None,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "call_sid": call_sid,
        "kind": kind,
        "dedupe_key": dedupe_key,
        "sequence_number": sequence_number,
        "received_at": received_at or utcnow(),
        "params": params,
    }
