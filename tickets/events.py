"""Recording what Twilio told us, exactly once per delivery."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tickets.db import utcnow
from tickets.models import CallEvent


def _insert_ignoring_duplicates(session: Session) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the session's dialect."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(CallEvent).on_conflict_do_nothing(index_elements=["dedupe_key"])


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
    statement = (
        _insert_ignoring_duplicates(session)
        .values(
            call_sid=call_sid,
            kind=kind,
            dedupe_key=dedupe_key,
            sequence_number=sequence_number,
            received_at=utcnow(),
            params=params,
        )
        .returning(CallEvent.id)
    )
    # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
    return session.execute(statement).scalar() is not None
