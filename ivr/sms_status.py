"""The SMS delivery reports: ``POST /voice/sms-status?ref=sms-<row id>``.

The SMS sender (``ivr.sms``) asks Twilio to report each text's progress at this URL, the
outbox row named in ``ref``. Signed like every voice webhook (403 otherwise); each
delivery is recorded once in ``call_events`` (Twilio's idempotency token, else the
message and its status), and only the first one changes the row, in the same
transaction: the provider status moves forward, a row still ``sending`` after a crash is
``sent`` (the report proves it went), and an opted-out or invalid number (21610, 21211 ...)
is marked on its contact preference. An unknown ``ref`` is answered 200 and logged: Twilio
must never see a 404 or a 500 for a report we cannot use. While the database is
unreachable the report is journaled and answered 200 all the same; the drain records it
later, once, as of its arrival (``tickets.webhooks``). Stored at once, it comes after what
the journal holds (``ivr.persist.store_or_journal``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, Response, request
from werkzeug.datastructures import MultiDict

from ivr.events import IDEMPOTENCY_HEADER, dedupe_key, form_snapshot
from ivr.persist import store_or_journal
from ivr.sms import SMS_STATUS_PATH, TWILIO_ERROR_KINDS
from ivr.voice import require_twilio_signature
from tickets.db import utcnow
from tickets.sms_delivery import message_id_of
from tickets.sms_reports import ReportResult
from tickets.sms_sender import SmsFailureKind
from tickets.webhooks import (
    SMS_STATUS,
    StoredWebhook,
    delivery_report_extra,
    store_delivery_report,
)

log = logging.getLogger(__name__)
bp = Blueprint("sms_status", __name__)
bp.before_request(require_twilio_signature)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
EVENT_KIND = SMS_STATUS
_RECIPIENT_KINDS = (SmsFailureKind.OPTED_OUT, SmsFailureKind.INVALID_NUMBER)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """Twilio's message status callback, parsed (its PascalCase stops here)."""

    message_sid: str
    status: str
    error_code: int | None

    @classmethod
    def parse(cls, form: MultiDict[str, str]) -> DeliveryReport:
        code = form.get("ErrorCode", "").strip()
        return cls(
            message_sid=(form.get("MessageSid") or form.get("SmsSid") or "").strip()[:64],
            status=(form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()[:24],
            error_code=int(code) if code.isdigit() and len(code) < 10 else None,
        )

    @property
    def recipient(self) -> SmsFailureKind | None:
        """``opted_out`` / ``invalid_number`` when the error code says so about the number."""
        kind = TWILIO_ERROR_KINDS.get(self.error_code) if self.error_code is not None else None
        return kind if kind in _RECIPIENT_KINDS else None


def _answer() -> Response:
    return Response(EMPTY_TWIML, content_type="text/xml")


@bp.route(SMS_STATUS_PATH, methods=["POST"])
def sms_status() -> Response:
    ref = request.args.get("ref", "")[:64]
    report = DeliveryReport.parse(request.form)
    message_id = message_id_of(ref)
    if message_id is None or not report.message_sid:
        log.warning(
            "sms report ignored: ref %r, message %r, status %r",
            ref,
            report.message_sid,
            report.status,
        )
        return _answer()
    try:
        result, journaled = store_or_journal(_webhook(message_id, report), store_delivery_report)
    except Exception:
        log.exception("sms report for %s failed", ref)
        return _answer()
    if journaled:
        log.error("database unavailable: sms report for %s (%s) journaled", ref, report.status)
    elif result is None:
        log.info("sms report for %s seen before (%s): nothing changed", ref, report.status)
    elif result is ReportResult.UNKNOWN:
        log.warning("sms report for unknown %s (%s %s)", ref, report.message_sid, report.status)
    else:
        log.info(
            "sms report for %s: %s, error %s: %s",
            ref,
            report.status,
            report.error_code,
            result.value,
        )
    return _answer()


def _webhook(message_id: int, report: DeliveryReport) -> StoredWebhook:
    """The delivery, stored now or journaled: keyed by Twilio's idempotency token (else
    the message and its status), with what it reports."""
    this_request = request._get_current_object()  # type: ignore[attr-defined]
    return StoredWebhook(
        kind=EVENT_KIND,
        call_sid=None,
        params=form_snapshot(this_request.args, this_request.form),
        dedupe_key=dedupe_key(
            this_request.headers.get(IDEMPOTENCY_HEADER),
            EVENT_KIND,
            report.message_sid,
            report.status or "none",
        ),
        received_at=utcnow().isoformat(),
        extra=delivery_report_extra(
            message_id=message_id,
            message_sid=report.message_sid,
            status=report.status,
            error_code=report.error_code,
            recipient=report.recipient,
        ),
    )
