"""Work orders opened by the voice side: the urgent order of the emergency lane, and
what a caller may hear about an order's progress. The full lifecycle comes later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tickets import sms_outbox
from tickets.db import utcnow
from tickets.lifecycle import SYSTEM
from tickets.models import (
    SmsPurpose,
    WorkOrder,
    WorkOrderHistory,
    WorkOrderKind,
    WorkOrderState,
)

SYSTEM_ACTOR = "system:ivr"


def _received(
    session: Session,
    order: WorkOrder,
    zone: tzinfo,
    actor: str,
    reason: str,
    actor_role: str = SYSTEM,
) -> WorkOrder:
    """A new order in the store: its number (from its row id, unique across web nodes)
    and the first line of its history."""
    session.add(order)
    session.flush()
    order.number = _number_for(order.id, order.created_at, zone)
    order.history.append(
        WorkOrderHistory(
            actor=actor,
            actor_role=actor_role,
            action="receive",
            from_state=None,
            to_state=WorkOrderState.RECEIVED,
            reason=reason,
            at=order.created_at,
        )
    )
    session.flush()
    return order


def _number_for(order_id: int, at: datetime, zone: tzinfo) -> str:
    """Digits only, so a caller can key it: local date + the row id, e.g. 20261127000042."""
    return f"{at.astimezone(zone):%Y%m%d}{order_id:06d}"


def open_emergency_work_order(
    *,
    session: Session,
    call_sid: str,
    caller_number: str | None,
    language: str,
    line: str,
    line_number: str,
    zone: tzinfo,
) -> WorkOrder | None:
    """Open the urgent order of an emergency call; None when the call already has one."""
    existing = session.scalar(
        select(WorkOrder.id).where(
            WorkOrder.call_sid == call_sid, WorkOrder.kind == WorkOrderKind.EMERGENCY
        )
    )
    if existing is not None:
        return None
    now = utcnow()
    order = WorkOrder(
        number=f"pending-{call_sid}"[:24],
        kind=WorkOrderKind.EMERGENCY,
        state=WorkOrderState.RECEIVED,
        is_urgent=True,
        call_sid=call_sid,
        caller_number=caller_number,
        language=language,
        summary=f"Emergency lane: {line}",
        emergency_line=line,
        emergency_number=line_number,
        emergency_requested_at=now,
        created_at=now,
        updated_at=now,
    )
    return _received(
        session, order, zone, SYSTEM_ACTOR, f"caller chose the emergency lane ({line})"
    )


def note_emergency_dialed(*, session: Session, call_sid: str, leg_sid: str) -> None:
    """The emergency line's leg was placed (the first placement's time counts)."""
    session.execute(
        update(WorkOrder)
        .where(WorkOrder.call_sid == call_sid, WorkOrder.kind == WorkOrderKind.EMERGENCY)
        .values(emergency_leg_sid=leg_sid, updated_at=utcnow())
    )
    session.execute(
        update(WorkOrder)
        .where(
            WorkOrder.call_sid == call_sid,
            WorkOrder.kind == WorkOrderKind.EMERGENCY,
            WorkOrder.emergency_dialed_at.is_(None),
        )
        .values(emergency_dialed_at=utcnow())
    )


def note_emergency_connected(*, session: Session, parent_call_sid: str, at: datetime) -> None:
    session.execute(
        update(WorkOrder)
        .where(
            WorkOrder.call_sid == parent_call_sid,
            WorkOrder.kind == WorkOrderKind.EMERGENCY,
            WorkOrder.emergency_connected_at.is_(None),
        )
        .values(emergency_connected_at=at, updated_at=utcnow())
    )


def find_emergency_order(*, session: Session, call_sid: str) -> WorkOrder | None:
    return session.scalar(
        select(WorkOrder).where(
            WorkOrder.call_sid == call_sid, WorkOrder.kind == WorkOrderKind.EMERGENCY
        )
    )


@dataclass(frozen=True, slots=True)
class OrderProgress:
    number: str
    state: str
    department: str | None
    due_at: datetime | None


def find_progress_for_caller(
    *, session: Session, number: str, caller_number: str | None
) -> OrderProgress | None:
    """The order's progress, only when ``caller_number`` opened it.

    An unknown number and someone else's order look the same to the caller, so the
    hotline never confirms that an order exists to a stranger.
    """
    if not caller_number:
        return None
    order = session.scalar(
        select(WorkOrder).where(
            WorkOrder.number == number, WorkOrder.caller_number == caller_number
        )
    )
    if order is None:
        return None
    return OrderProgress(order.number, order.state.value, order.handling_department, order.due_at)


# -- orders recorded by a call-taker from the console ----------------------------------------

CONSOLE_KINDS = (
    WorkOrderKind.CONSULTATION,
    WorkOrderKind.COMPLAINT,
    WorkOrderKind.HELP,
    WorkOrderKind.SUGGESTION,
)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What a call-taker writes down about a call (the dispatch part comes later)."""

    kind: WorkOrderKind
    summary: str
    caller_words: str = ""
    district: str = ""
    street: str = ""
    is_confidential: bool = False
    notify_by_sms: bool = True  # the citizen gets the order's number by SMS


def open_call_work_order(
    record: CallRecord,
    *,
    session: Session,
    call_sid: str,
    caller_number: str | None,
    language: str | None,
    actor: str,
    actor_role: str,
    zone: tzinfo,
) -> WorkOrder:
    """A received order for a call, numbered like every order, with its first history row
    (who, in which role, when). ``ValueError`` for a kind the console does not record or
    an empty summary."""
    if record.kind not in CONSOLE_KINDS:
        raise ValueError(f"a call-taker does not record {record.kind.value!r} orders")
    summary = record.summary.strip()
    if not summary:
        raise ValueError("a summary is required")
    now = utcnow()
    order = WorkOrder(
        number=f"pending-{call_sid}"[:24],
        kind=record.kind,
        state=WorkOrderState.RECEIVED,
        is_urgent=False,
        call_sid=call_sid,
        caller_number=caller_number,
        language=language,
        summary=summary,
        caller_words=record.caller_words.strip(),
        district=record.district.strip() or None,
        street=record.street.strip() or None,
        is_confidential=record.is_confidential,
        notify_by_sms=record.notify_by_sms,
        created_at=now,
        updated_at=now,
    )
    _received(
        session,
        order,
        zone,
        actor,
        f"recorded from the console by {actor} as {actor_role}",
        actor_role,
    )
    _text_the_number(order, session=session)
    return order


def _text_the_number(order: WorkOrder, *, session: Session) -> None:
    """The citizen's SMS with the order's number (not when they asked not to be texted,
    nor to a number that may not be texted)."""
    if not order.notify_by_sms or not order.caller_number:
        return
    sms_outbox.schedule(
        session=session,
        dedupe_key=f"order-opened:{order.id}",
        purpose=SmsPurpose.ORDER_OPENED,
        to_number=order.caller_number,
        body=(
            f"【12345热线】您的诉求已受理，工单号{order.number}。"
            "查询进度请拨打12345，按提示输入工单号。"
        ),
        due_at=order.created_at,
        work_order_id=order.id,
    )


def list_orders_for_caller(
    *, session: Session, caller_number: str, limit: int = 10
) -> list[WorkOrder]:
    """The orders a number opened, newest first (the console's screen pop)."""
    return list(
        session.scalars(
            select(WorkOrder)
            .where(WorkOrder.caller_number == caller_number)
            .order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
            .limit(limit)
        )
    )
