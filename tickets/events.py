"""Recording what Twilio told us, exactly once per delivery."""

from __future__ import annotations

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
    """``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id``, built once.

    RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
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
        .returning(EVENTS.c.id)
    )


def record_event(
    *,
    session: Session,
    kind: str,
    call_sid: str | None,
    params: dict[str, Any],
    dedupe_key: str | None,
    sequence_number: int | None = None,
) -> bool:
    """Append one event; False when this delivery was stored before (a retry)."""
    connection = session.connection()
    inserted = connection.execute(
        _insert_once(connection.dialect.name),
        {
            "call_sid": call_sid,
            "kind": kind,
            "dedupe_key": dedupe_key,
            "sequence_number": sequence_number,
            "received_at": utcnow(),
            "params": params,
        },
    )
    return inserted.scalar() is not None
