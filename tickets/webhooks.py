"""Storing one webhook delivery: its event row and what it changes on the call.

A webhook is described by a ``StoredWebhook`` (plain, JSON-serialisable data), so the
same function stores it live and, when the database was down, later from the spool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from tickets import calls, work_orders
from tickets.events import record_event
from tickets.models import CallStatus
from tickets.phones import parse_caller


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredWebhook:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def store_webhook(*, session: Session, hook: StoredWebhook, context: StoreContext) -> bool:
    """Record the delivery once; apply its changes only the first time. False on a retry."""
    if not record_event(
        session=session,
        kind=hook.kind,
        call_sid=hook.call_sid,
        params=hook.params,
        dedupe_key=hook.dedupe_key,
        sequence_number=hook.sequence_number,
    ):
        return False
    if not hook.call_sid:
        return True
    if hook.is_new_call:
        calls.register_call(
            session=session,
            call_sid=hook.call_sid,
            caller=parse_caller(hook.params.get("From"), context.default_region),
            to_number=parse_caller(hook.params.get("To"), context.default_region).number,
            status=CallStatus.RINGING,
        )
    if hook.step:
        calls.note_front_door(
            session=session,
            call_sid=hook.call_sid,
            step=hook.step,
            language=hook.language,
            intent=hook.intent,
            emergency_line=hook.emergency_line,
            enters_queue=hook.enters_queue,
        )
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
    at = datetime.fromisoformat(hook.status_at) if hook.status_at else None
    if hook.status and at:
        calls.record_call_status(
            session=session,
            call_sid=hook.call_sid,
            status=CallStatus(hook.status),
            at=at,
            duration_seconds=hook.duration_seconds,
        )
    if hook.leaves_queue and at:
        calls.leave_queue(session=session, call_sid=hook.call_sid, at=at)
    return True
