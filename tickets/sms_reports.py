"""The provider's delivery reports for the SMS outbox (``ivr.sms_status``): each moves a
row's provider status forward (reports arrive out of order and are never applied
backwards), confirms a row still ``sending`` (the report proves the text went), and marks
a number found opted out or invalid, as a failed send would."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import or_
from sqlalchemy.orm import Session

from tickets.db import utcnow
from tickets.models import SmsMessage, SmsStatus
from tickets.phones import mask_number
from tickets.sms_delivery import mark_number, update_row
from tickets.sms_sender import SmsFailureKind

log = logging.getLogger(__name__)

# The provider's statuses in the order a text moves through them (Twilio's names; a
# gateway's own are mapped to these by its edge). A report never moves a row backwards:
# callbacks arrive out of order.
PROVIDER_STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "partially_delivered": 4,
    "read": 5,
}
UNDELIVERED = frozenset({"undelivered", "failed"})


class ReportResult(StrEnum):
    """What a delivery report changed."""

    UNKNOWN = "unknown"  # no such row
    OTHER_SEND = "other_send"  # the row records another message id: noted in the log only
    CONFIRMED = "confirmed"  # the row was sending (or waiting): the report proves it went
    UPDATED = "updated"  # the provider status moved on
    STALE = "stale"  # an older status than the row has: nothing changed
    RECIPIENT = "recipient"  # delivery failed: the number opted out or is invalid


def record_delivery_report(
    *,
    session: Session,
    message_id: int,
    provider_id: str,
    provider_status: str,
    error_code: int | None = None,
    recipient: SmsFailureKind | None = None,
    now: datetime | None = None,
) -> ReportResult:
    """The provider reports on text ``provider_id`` of row ``message_id``. A row still
    ``sending`` (or ``pending`` again) is ``sent``: the report proves the provider took
    it, and nobody may send it again. ``recipient`` (``opted_out`` / ``invalid_number``,
    from the report's error code) marks the row and the number as a failed send would.
    In the caller's transaction; every change is conditional, so a repeated or late
    report changes nothing."""
    now = now or utcnow()
    status = provider_status.strip().lower()[:24]
    row = session.get(SmsMessage, message_id)
    if row is None:
        return ReportResult.UNKNOWN
    if row.provider_id and provider_id and row.provider_id != provider_id:
        log.warning(
            "sms report for sms-%s names %s, the row records %s (a second send?): status %s",
            message_id,
            provider_id,
            row.provider_id,
            status,
        )
        return ReportResult.OTHER_SEND
    rank = PROVIDER_STATUS_RANK.get(status, -1)
    not_later = [s for s, r in PROVIDER_STATUS_RANK.items() if r <= rank]
    newer = or_(SmsMessage.provider_status.is_(None), SmsMessage.provider_status.in_(not_later))
    values: dict[str, Any] = {"updated_at": now}
    if status in UNDELIVERED and error_code is not None:
        values |= {"error_code": error_code, "last_error": f"not delivered: error {error_code}"}
    confirmed = bool(provider_id) and update_row(
        session,
        message_id,
        [SmsMessage.status.in_((SmsStatus.SENDING, SmsStatus.PENDING))],
        status=SmsStatus.SENT,
        provider_id=provider_id[:64],
        provider_status=status or None,
        sent_at=now,
        lease_owner=None,
        lease_until=None,
        **values,
    )
    if confirmed:
        log.info("sms sms-%s confirmed by the provider's report (%s)", message_id, status)
        result = ReportResult.CONFIRMED
    elif status and update_row(session, message_id, [newer], provider_status=status, **values):
        result = ReportResult.UPDATED
    else:
        result = ReportResult.STALE
    if recipient in (SmsFailureKind.OPTED_OUT, SmsFailureKind.INVALID_NUMBER) and (
        status in UNDELIVERED
    ):
        opted_out = recipient is SmsFailureKind.OPTED_OUT
        update_row(
            session,
            message_id,
            [SmsMessage.status == SmsStatus.SENT],
            status=SmsStatus.OPTED_OUT if opted_out else SmsStatus.INVALID,
            updated_at=now,
        )
        cancelled = mark_number(
            session,
            row.to_number,
            opted_out=opted_out,
            reason=f"delivery report for sms-{message_id}: error {error_code}",
            now=now,
        )
        log.warning(
            "sms sms-%s not delivered: %s %s (error %s); %d other pending message(s) cancelled",
            message_id,
            mask_number(row.to_number),
            "opted out" if opted_out else "is invalid",
            error_code,
            cancelled,
        )
        result = ReportResult.RECIPIENT
    return result
