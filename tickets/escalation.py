"""Escalation (督办): an order whose escalation time passed (``WorkOrder.escalation_due_at``,
planned by ``order_flow.plan_escalation`` from the clocks' rules) goes to the floor
manager: the system supervises it (a history row) and, when a floor manager's number is
configured, a text joins the SMS outbox. The worker's sweep runs it; two workers racing:
``row_version`` lets one win, the other skips the order.
"""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from tickets import sms_outbox
from tickets.lifecycle import OPEN_STATES, RULES, Action, IllegalMove
from tickets.models import SmsPurpose, WorkOrder
from tickets.order_flow import (
    CLOCK_DUE_FIELDS,
    CLOCK_MET_FIELDS,
    CLOCK_NAMES,
    SYSTEM_WORKER,
    supervise,
)

log = logging.getLogger(__name__)

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
# The orders the sweep may supervise: open ones the lifecycle lets the system supervise
# (an objected order waits for the review; its escalation follows the decision).
ESCALATABLE_STATES = frozenset(RULES[Action.SUPERVISE].sources & OPEN_STATES)


def escalate_due(
    *,
    session: Session,
    now: datetime,
    floor_manager_number: str | None,
    zone: tzinfo = DEFAULT_ZONE,
) -> list[int]:
    """督办: supervise every open order whose escalation time passed, one transaction each
    (committed here), with a text to the floor manager when a number is configured. The
    ids of the orders this call escalated; an order another worker escalated first is
    skipped (its ``row_version`` moved: ``StaleDataError``)."""
    due = (
        WorkOrder.escalation_due_at <= now,
        WorkOrder.is_supervised.is_(False),
        WorkOrder.state.in_(ESCALATABLE_STATES),
    )
    ids = list(
        session.scalars(select(WorkOrder.id).where(*due).order_by(WorkOrder.escalation_due_at))
    )
    session.rollback()  # end the read: each order is its own transaction
    escalated: list[int] = []
    for order_id in ids:
        try:
            if _escalate(session, order_id, now, floor_manager_number, zone):
                session.commit()
                escalated.append(order_id)
            else:
                session.rollback()
        except (StaleDataError, IntegrityError):
            session.rollback()
            log.info("work order %s was escalated by another worker", order_id)
        except IllegalMove as refused:
            session.rollback()
            log.warning("work order %s cannot be escalated: %s", order_id, refused)
    return escalated


def _escalate(
    session: Session, order_id: int, now: datetime, floor_manager_number: str | None, zone: tzinfo
) -> bool:
    order = session.get(WorkOrder, order_id, populate_existing=True)
    if (
        order is None
        or order.is_supervised
        or order.escalation_due_at is None
        or order.escalation_due_at > now
        or order.state not in ESCALATABLE_STATES
    ):
        return False  # changed since the query
    clock, deadline = passed_clock(order, now)
    name = CLOCK_NAMES.get(clock, clock)
    when = f"{deadline.astimezone(zone):%m-%d %H:%M}" if deadline else "-"
    history = supervise(
        order,
        note=f"超过{name}时限（{when}），系统自动督办",
        actor=SYSTEM_WORKER,
        session=session,
        now=now,
    )
    history.details = {
        **history.details,
        "clock": clock,
        "deadline": deadline.isoformat() if deadline else None,
    }
    session.flush()
    if floor_manager_number:
        sms_outbox.schedule(
            session=session,
            dedupe_key=f"escalation:{order.id}:{order.dispatch_count}",
            purpose=SmsPurpose.ESCALATION,
            to_number=floor_manager_number,
            body=(
                f"【12345热线】督办：工单{order.number}"
                f"（{order.handling_department or order.department_code or '-'}）"
                f"已超过{name}时限（{when}），请跟进。"
            ),
            due_at=now,
            work_order_id=order.id,
            details={"clock": clock, "department_code": order.department_code or ""},
        )
    log.info("work order %s escalated to the floor manager (%s overdue)", order.number, clock)
    return True


def passed_clock(order: WorkOrder, now: datetime) -> tuple[str, datetime | None]:
    """The earliest clock still running whose deadline passed (the one that escalated),
    and its deadline; the first running clock when none has passed."""
    running = [
        (clock, getattr(order, CLOCK_DUE_FIELDS[clock]))
        for clock in ("signoff", "contact", "resolution")
        if getattr(order, CLOCK_MET_FIELDS[clock]) is None
    ]
    for clock, deadline in running:
        if deadline is not None and deadline <= now:
            return clock, deadline
    return running[0] if running else ("resolution", order.due_at)
