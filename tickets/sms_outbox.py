"""Putting SMS into the outbox (``sms_messages``) and taking them back out.

Scheduling is idempotent: each row has a ``dedupe_key`` that names what it is for (the
order, the clock, the kind of reminder and the deadline it is about), so scheduling the
same thing twice keeps one row, and a moved deadline gets new rows while the old ones are
cancelled. Sending is the worker's (``tickets.sms_delivery``). A number that asked not to
be texted, opted out at the provider or is invalid gets no row at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tickets.db import utcnow
from tickets.models import ContactPreference, SmsMessage, SmsPurpose, SmsStatus, WorkOrder


def may_text(number: str, *, session: Session) -> bool:
    preference = session.get(ContactPreference, number)
    return preference is None or not (
        preference.no_sms or preference.invalid or preference.opted_out_sms
    )


def set_preference(
    number: str,
    *,
    session: Session,
    actor: str,
    reason: str,
    no_sms: bool | None = None,
    no_calls: bool | None = None,
    invalid: bool | None = None,
    opted_out_sms: bool | None = None,
) -> ContactPreference:
    """Change what ``number`` allows (only the flags given), noting who and why."""
    preference = session.get(ContactPreference, number)
    if preference is None:
        preference = ContactPreference(
            number=number,
            no_sms=False,
            no_calls=False,
            invalid=False,
            opted_out_sms=False,
            updated_by=actor,
        )
        session.add(preference)
    for name, value in (
        ("no_sms", no_sms),
        ("no_calls", no_calls),
        ("invalid", invalid),
        ("opted_out_sms", opted_out_sms),
    ):
        if value is not None:
            setattr(preference, name, value)
    preference.reason = reason
    preference.updated_by = actor
    session.flush()
    return preference


def schedule(
    *,
    session: Session,
    dedupe_key: str,
    purpose: SmsPurpose,
    to_number: str,
    body: str,
    due_at: datetime,
    work_order_id: int | None = None,
    details: dict[str, str] | None = None,
) -> SmsMessage | None:
    """The row for ``dedupe_key`` (an existing one is kept as it is), or None when the
    number may not be texted."""
    existing = session.scalar(select(SmsMessage).where(SmsMessage.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    if not may_text(to_number, session=session):
        return None
    message = SmsMessage(
        dedupe_key=dedupe_key,
        purpose=purpose,
        work_order_id=work_order_id,
        to_number=to_number,
        body=body,
        due_at=due_at,
        next_attempt_at=due_at,
        status=SmsStatus.PENDING,
        attempts=0,
        details=details or {},
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    session.add(message)
    session.flush()
    return message


def cancel_pending(
    order: WorkOrder,
    *,
    session: Session,
    clocks: Iterable[str] | None = None,
    reason: str,
) -> int:
    """Cancel the order's reminders that have not gone out (of the given clocks, or all).

    A row a worker is sending right now is left to finish: it was due.
    """
    condition = [
        SmsMessage.work_order_id == order.id,
        SmsMessage.status == SmsStatus.PENDING,
        SmsMessage.purpose.in_((SmsPurpose.REMINDER, SmsPurpose.OVERDUE)),
    ]
    rows = session.scalars(select(SmsMessage).where(*condition)).all()
    wanted = set(clocks) if clocks is not None else None
    ids = [row.id for row in rows if wanted is None or row.details.get("clock") in wanted]
    if not ids:
        return 0
    session.execute(
        update(SmsMessage)
        .where(SmsMessage.id.in_(ids), SmsMessage.status == SmsStatus.PENDING)
        .values(status=SmsStatus.CANCELLED, last_error=reason, updated_at=utcnow())
    )
    return len(ids)
