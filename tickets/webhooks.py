"""Storing webhook deliveries: their event rows and what they change on the call.

A webhook is described by a ``StoredWebhook`` (plain, JSON-serialisable data), so the
same functions store it at once or later, in a batch, from the webhook journal.

Besides the voice webhooks, two SMS kinds (no call): a citizen's incoming message
(``sms-incoming``, keyed by its MessageSid: a survey reply, ``tickets.survey_sms_replies``)
and a delivery report for an outbox text (``sms-status``, ``tickets.sms_reports``). The
edge stores them at once (``store_incoming_sms``, ``store_delivery_report``: what they
changed decides its answer) and journals them while the database is down; from the
journal they are applied by the same code, as of their arrival, with what the edge read
in ``extra`` (``incoming_sms_extra``, ``delivery_report_extra``). Recorded once by the
dedupe key, they are applied once, whichever way and however often they come.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from tickets import calls, work_orders
from tickets.db import utcnow
from tickets.events import event_row, record_event, record_events
from tickets.models import CallStatus
from tickets.phones import parse_caller
from tickets.sms_reports import ReportResult, record_delivery_report
from tickets.sms_sender import SmsFailureKind
from tickets.survey_sms_replies import ReplyResult, apply_reply

SMS_INCOMING = "sms-incoming"  # a citizen's text to the hotline number
SMS_STATUS = "sms-status"  # a delivery report for one of our texts


@dataclass(frozen=True, slots=True)
class StoreContext:
    zone: tzinfo
    emergency_numbers: Mapping[str, str]
    default_region: str = "CN"


@dataclass(frozen=True, slots=True)
class StoredWebhook:
    kind: str
    call_sid: str | None
    params: dict[str, Any]
    dedupe_key: str | None
    sequence_number: int | None = None
    is_new_call: bool = False  # the first webhook of an inbound call
    step: str | None = None  # front-door path step taken
    language: str | None = None
    intent: str | None = None
    enters_queue: bool = False
    emergency_line: str | None = None
    status: str | None = None
    status_at: str | None = None  # ISO time of a status or conference event
    duration_seconds: int | None = None
    leaves_queue: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    received_at: str | None = None  # ISO time the webhook arrived; None: now

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    @property
    def only_steps(self) -> bool:
        """Its only change is a front-door step (most webhooks): batched when stored."""
        return not (self.is_new_call or self.emergency_line or self.status or self.leaves_queue)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredWebhook:
        return cls(**{key: value for key, value in data.items() if key in _FIELDS})


_FIELDS = tuple(each.name for each in fields(StoredWebhook))


def store_webhook(*, session: Session, hook: StoredWebhook, context: StoreContext) -> bool:
    """Record the delivery once; apply its changes only the first time. False on a retry."""
    at = _received_at(hook)
    if not _record(session, hook, at):
        return False
    _apply(session, hook, at, context)
    return True


def store_incoming_sms(
    *, session: Session, hook: StoredWebhook, context: StoreContext
) -> ReplyResult | None:
    """Record an incoming SMS once and apply it, to be answered with the result's
    ``reply``; None on a retry."""
    at = _received_at(hook)
    if not _record(session, hook, at):  # first: on SQLite, the write lock before any read
        return None
    return _apply_incoming_sms(session, hook, at, context, answering=True)


def store_delivery_report(
    *, session: Session, hook: StoredWebhook, context: StoreContext
) -> ReportResult | None:
    """Record an SMS delivery report once and apply it; None on a retry."""
    at = _received_at(hook)
    if not _record(session, hook, at):
        return None
    return _apply_delivery_report(session, hook, at)


def incoming_sms_extra(
    *, message_sid: str, from_number: str, body: str, words: tuple[str, str, str] | None
) -> dict[str, str]:
    """``StoredWebhook.extra`` of an incoming SMS: what the edge read (``words``: the
    codes its word reader found, ``survey_sms_replies.words_in``)."""
    return {
        "message_sid": message_sid,
        "from_number": from_number,
        "body": body,
        "words": ",".join(words) if words else "",
    }


def delivery_report_extra(
    *,
    message_id: int,
    message_sid: str,
    status: str,
    error_code: int | None,
    recipient: SmsFailureKind | None,
) -> dict[str, str]:
    """``StoredWebhook.extra`` of a delivery report for outbox row ``message_id``."""
    return {
        "message_id": str(message_id),
        "message_sid": message_sid,
        "status": status,
        "error_code": "" if error_code is None else str(error_code),
        "recipient": recipient.value if recipient else "",
    }


def store_webhooks(
    *, session: Session, hooks: Sequence[StoredWebhook], context: StoreContext
) -> int:
    """Store many deliveries in order, as ``store_webhook`` would one by one.

    The events go in as one multi-row INSERT; runs of plain front-door steps as one
    executemany. Returns how many deliveries were new.
    """
    first_of_key: dict[str, StoredWebhook] = {}
    for hook in hooks:
        if hook.dedupe_key:
            first_of_key.setdefault(hook.dedupe_key, hook)
    batch = [hook for hook in hooks if not hook.dedupe_key or first_of_key[hook.dedupe_key] is hook]
    times = [_received_at(hook) for hook in batch]
    rows = [
        event_row(h.kind, h.call_sid, h.params, h.dedupe_key, h.sequence_number, at)
        for h, at in zip(batch, times, strict=True)
    ]
    new_keys = record_events(session=session, rows=rows) if rows else set()
    steps: list[dict[str, object]] = []
    stored = 0
    for hook, at in zip(batch, times, strict=True):
        if hook.dedupe_key and hook.dedupe_key not in new_keys:
            continue
        stored += 1
        if hook.call_sid and hook.step and hook.only_steps:
            steps.append(_step(hook, at))
            continue
        calls.note_front_door_steps(session=session, steps=steps)  # keep the order
        steps = []
        _apply(session, hook, at, context)
    calls.note_front_door_steps(session=session, steps=steps)
    return stored


def _record(session: Session, hook: StoredWebhook, at: datetime | None) -> bool:
    return record_event(
        session=session,
        kind=hook.kind,
        call_sid=hook.call_sid,
        params=hook.params,
        dedupe_key=hook.dedupe_key,
        sequence_number=hook.sequence_number,
        received_at=at,
    )


def _received_at(hook: StoredWebhook) -> datetime | None:
    return datetime.fromisoformat(hook.received_at) if hook.received_at else None


def _step(hook: StoredWebhook, at: datetime | None) -> dict[str, object]:
    return calls.front_door_step(
        hook.call_sid or "",
        hook.step or "",
        hook.language,
        hook.intent,
        hook.emergency_line,
        hook.enters_queue,
        at,
    )


def _apply(
    session: Session, hook: StoredWebhook, at: datetime | None, context: StoreContext
) -> None:
    """What a new delivery changes on its call (and the emergency lane's work order); an
    SMS (from the journal: its webhook was answered long ago) on its survey or text."""
    if hook.kind == SMS_INCOMING:
        _apply_incoming_sms(session, hook, at, context, answering=False)
        return
    if hook.kind == SMS_STATUS:
        _apply_delivery_report(session, hook, at)
        return
    if not hook.call_sid:
        return
    if hook.is_new_call:
        calls.register_call(
            session=session,
            call_sid=hook.call_sid,
            caller=parse_caller(hook.params.get("From"), context.default_region),
            to_number=parse_caller(hook.params.get("To"), context.default_region).number,
            status=CallStatus.RINGING,
            at=at,
        )
    if hook.step:
        calls.note_front_door_steps(session=session, steps=[_step(hook, at)])
    if hook.emergency_line:
        work_orders.open_emergency_work_order(
            session=session,
            call_sid=hook.call_sid,
            caller_number=parse_caller(hook.params.get("From"), context.default_region).number,
            language=hook.language or hook.extra.get("lang", "zh"),
            line=hook.emergency_line,
            line_number=context.emergency_numbers[hook.emergency_line],
            zone=context.zone,
        )
    status_at = datetime.fromisoformat(hook.status_at) if hook.status_at else None
    if hook.status and status_at:
        calls.record_call_status(
            session=session,
            call_sid=hook.call_sid,
            status=CallStatus(hook.status),
            at=status_at,
            duration_seconds=hook.duration_seconds,
        )
    if hook.leaves_queue and status_at:
        calls.leave_queue(session=session, call_sid=hook.call_sid, at=status_at)


def _apply_incoming_sms(
    session: Session,
    hook: StoredWebhook,
    at: datetime | None,
    context: StoreContext,
    *,
    answering: bool,
) -> ReplyResult:
    extra = hook.extra
    codes = tuple(extra["words"].split(",")) if extra.get("words") else ()
    read = (codes[0], codes[1], codes[2]) if len(codes) == 3 else None
    return apply_reply(
        session,
        message_sid=extra["message_sid"],
        from_number=extra.get("from_number"),
        body=extra.get("body", ""),
        now=at or utcnow(),
        default_region=context.default_region,
        words=lambda _text: read,  # what the edge's reader found on arrival
        answering=answering,
    )


def _apply_delivery_report(
    session: Session, hook: StoredWebhook, at: datetime | None
) -> ReportResult:
    extra = hook.extra
    error_code = extra.get("error_code", "")
    recipient = extra.get("recipient", "")
    return record_delivery_report(
        session=session,
        message_id=int(extra["message_id"]),
        provider_id=extra["message_sid"],
        provider_status=extra.get("status", ""),
        error_code=int(error_code) if error_code else None,
        recipient=SmsFailureKind(recipient) if recipient else None,
        now=at,
    )
