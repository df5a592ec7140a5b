"""How the order pages show an order: labels, local times, the three clocks, and the
history, dispatches, objections, extension requests and SMS as rows for the templates.

Numbers are shown by role as on the live console (``can_see_numbers``); SMS recipients
always masked. Actors (``staff:<id>``) are shown with their display names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.db import utcnow
from tickets.lifecycle import Action
from tickets.models import (
    ClosedHow,
    ExtensionRequest,
    ExtensionStatus,
    Objection,
    ObjectionReason,
    ObjectionStatus,
    SmsMessage,
    SmsPurpose,
    Staff,
    WorkOrder,
    WorkOrderDispatch,
    WorkOrderHistory,
    WorkOrderState,
)
from tickets.phones import mask_number
from webapp.settings import Settings

STATE_LABELS = {
    WorkOrderState.RECEIVED: "Received 受理",
    WorkOrderState.DISPATCHED: "Dispatched 派单",
    WorkOrderState.ACCEPTED: "Accepted 签收",
    WorkOrderState.IN_PROGRESS: "In progress 办理",
    WorkOrderState.ANSWERED: "Answered 反馈",
    WorkOrderState.CALLBACK: "Callback survey 回访",
    WorkOrderState.CLOSED: "Closed 办结",
    WorkOrderState.OBJECTED: "Objected 退单审核",
}
ACTION_LABELS = {
    Action.DISPATCH: "Dispatched 派单",
    Action.CLOSE_ON_THE_SPOT: "Answered on the spot 直接答复",
    Action.ACCEPT: "Accepted 签收",
    Action.CONTACT: "Contacted the citizen 响应",
    Action.PROGRESS: "Progress note 办理",
    Action.ANSWER: "Answered 反馈",
    Action.OBJECT: "Objected 退单",
    Action.UPHOLD_OBJECTION: "Objection upheld 审核通过",
    Action.REJECT_OBJECTION: "Objection rejected 审核驳回",
    Action.REQUEST_EXTENSION: "Asked for more time 延期申请",
    Action.APPROVE_EXTENSION: "Extension approved 同意延期",
    Action.REFUSE_EXTENSION: "Extension refused 不同意延期",
    Action.REMIND: "Reminder 催办",
    Action.SUPERVISE: "Supervised 督办",
    Action.START_CALLBACK: "Callback survey 回访",
    Action.CLOSE: "Closed 办结",
    Action.REOPEN: "Reopened 重办",
}
REASON_LABELS = {
    ObjectionReason.NOT_OUR_DUTY: "Not our duty 不属于本单位职责",
    ObjectionReason.WRONG_AREA: "Not in our area 不在本辖区",
    ObjectionReason.ALREADY_HANDLED: "Already handled 已办理/重复诉求",
    ObjectionReason.NEEDS_OTHER_CHANNEL: "Needs another channel 应通过诉讼、仲裁等途径解决",
    ObjectionReason.INSUFFICIENT_INFORMATION: "Not enough information 信息不全",
    ObjectionReason.OTHER: "Other 其他",
}
OBJECTION_STATUS_LABELS = {
    ObjectionStatus.PENDING: "Waiting for review",
    ObjectionStatus.UPHELD: "Upheld: re-dispatched",
    ObjectionStatus.REJECTED: "Rejected: back to the department",
}
EXTENSION_STATUS_LABELS = {
    ExtensionStatus.PENDING: "Waiting for a decision",
    ExtensionStatus.APPROVED: "Approved",
    ExtensionStatus.REFUSED: "Refused",
}
SMS_PURPOSE_LABELS = {
    SmsPurpose.ORDER_OPENED: "Order number to the citizen",
    SmsPurpose.REMINDER: "Reminder 催办",
    SmsPurpose.OVERDUE: "Overdue 超期催办",
    SmsPurpose.ESCALATION: "Escalation 督办",
}
CLOSED_HOW_LABELS = {
    ClosedHow.ON_THE_SPOT: "Answered on the spot 直接答复",
    ClosedHow.AFTER_CALLBACK: "After the callback 回访办结",
    ClosedHow.EXPLAINED: "Explained: beyond what the law allows 解释办结",
}
DETAIL_LABELS = {
    "department_name": "department",
    "item_title": "item",
    "reason_code": "reason",
    "working_days": "working days",
    "signoff_due_at": "sign-off due",
    "contact_due_at": "contact due",
    "due_at": "resolution due",
    "due_before": "due before",
    "due_after": "due after",
    "how": "how",
}
HIDDEN_DETAILS = {"department_code", "item_code", "directory_version_id"}  # shown with names
TEMPLATE_LABELS = {
    "state_labels": STATE_LABELS,
    "reason_labels": REASON_LABELS,
    "closed_how_labels": CLOSED_HOW_LABELS,
}


def zone_settings() -> Settings:
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    return settings


def local(value: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "-"
    return value.astimezone(zone_settings().zone).strftime(pattern)


def span(delta: timedelta) -> str:
    """A duration people read at a glance: 2 d 3 h, 3 h 05 min, 12 min."""
    minutes = int(abs(delta).total_seconds()) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


@dataclass(frozen=True)
class Clock:
    name: str
    due: str
    met: str
    status: str  # what the template colours by: met, late, running, overdue, none
    text: str


CLOCKS = (
    ("Sign-off 签收", "signoff_due_at", "accepted_at"),
    ("First contact 响应", "contact_due_at", "contacted_at"),
    ("Resolution 办结", "due_at", "answered_at"),
)


def clocks_of(order: WorkOrder, now: datetime | None = None) -> list[Clock]:
    """The three deadlines: met (on time or late), or how long is left / overdue."""
    now = now or utcnow()
    rows = []
    for name, due_field, met_field in CLOCKS:
        due: datetime | None = getattr(order, due_field)
        met: datetime | None = getattr(order, met_field)
        if due is None:
            rows.append(Clock(name, "-", "-", "none", "not running"))
        elif met is not None:
            late = met > due
            text = f"met {span(met - due)} late" if late else "met on time"
            rows.append(Clock(name, local(due), local(met), "late" if late else "met", text))
        elif order.state in (WorkOrderState.CLOSED, WorkOrderState.ANSWERED):
            rows.append(Clock(name, local(due), "-", "none", "stopped"))
        elif now > due:
            rows.append(Clock(name, local(due), "-", "overdue", f"overdue by {span(now - due)}"))
        else:
            rows.append(Clock(name, local(due), "-", "running", f"{span(due - now)} left"))
    return rows


class People:
    """``staff:<id>`` → display name, read once per page."""

    def __init__(self, actors: Iterable[str], *, session: Session) -> None:
        ids = {int(a.split(":", 1)[1]) for a in actors if a and _is_staff_actor(a)}
        self.names = {
            f"staff:{staff_id}": name
            for staff_id, name in session.execute(
                select(Staff.id, Staff.display_name).where(Staff.id.in_(ids))
            )
        }

    def __call__(self, actor: str | None) -> str:
        if not actor:
            return "-"
        name = self.names.get(actor)
        return f"{name} ({actor})" if name else actor


def _is_staff_actor(actor: str) -> bool:
    kind, _, number = actor.partition(":")
    return kind == "staff" and number.isdigit()


def caller_number(order: WorkOrder, *, full: bool) -> str:
    if not order.caller_number:
        return "no number"
    return order.caller_number if full else mask_number(order.caller_number)


def action_label(action: str) -> str:
    try:
        return ACTION_LABELS[Action(action)]
    except ValueError:
        return "Received 受理" if action == "receive" else action


def state_label(state: str | None) -> str:
    if not state:
        return "-"
    try:
        return STATE_LABELS[WorkOrderState(state)]
    except ValueError:
        return state


def details_text(details: dict[str, Any]) -> list[str]:
    """A history row's details as short phrases (times in local time)."""
    phrases = []
    for key, value in details.items():
        if key in HIDDEN_DETAILS or value in (None, "", [], {}):
            continue
        if key.endswith("_at") or key in ("due_before", "due_after"):
            value = _local_iso(value)
        elif key == "reason_code":
            value = _reason(value)
        elif key == "department_name" and details.get("department_code"):
            value = f"{value} ({details['department_code']})"
        elif key == "item_title" and details.get("item_code"):
            value = f"{details['item_code']} {value}"
        phrases.append(f"{DETAIL_LABELS.get(key, key.replace('_', ' '))}: {value}")
    return phrases


def _local_iso(value: Any) -> str:
    try:
        return local(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value)


def _reason(value: Any) -> str:
    try:
        return REASON_LABELS[ObjectionReason(value)]
    except ValueError:
        return str(value)


def history_rows(rows: Iterable[WorkOrderHistory], people: People) -> list[dict[str, Any]]:
    return [
        {
            "at": local(row.at, "%Y-%m-%d %H:%M:%S"),
            "who": people(row.actor),
            "role": row.actor_role or "-",
            "action": action_label(row.action),
            "from": state_label(row.from_state),
            "to": state_label(row.to_state),
            "reason": row.reason,
            "details": details_text(row.details or {}),
        }
        for row in rows
    ]


def dispatch_rows(
    rows: Iterable[WorkOrderDispatch], people: People, names: dict[int, str]
) -> list[dict[str, Any]]:
    """``names``: department id → name (a dispatch keeps ids and codes)."""
    return [
        {
            "sequence": row.sequence,
            "at": local(row.dispatched_at),
            "by": people(row.dispatched_by),
            "item_code": row.item_code or "picked by hand",
            "department": f"{names.get(row.department_id, '')} ({row.department_code})",
            "rank": f"#{row.recommended_rank} of the suggestions"
            if row.recommended_rank
            else ("not one of the suggestions" if row.recommended else "no suggestions"),
            "recommended": row.recommended[:3],
            "ended": f"{row.ended_how} {local(row.ended_at)}" if row.ended_how else "current",
        }
        for row in rows
    ]


def objection_row(objection: Objection, people: People) -> dict[str, Any]:
    return {
        "id": objection.id,
        "raised_at": local(objection.raised_at),
        "raised_by": people(objection.raised_by),
        "department_code": objection.department_code,
        "reason": REASON_LABELS[objection.reason_code],
        "text": objection.text,
        "suggested": objection.suggested,
        "status": objection.status.value,
        "status_label": OBJECTION_STATUS_LABELS[objection.status],
        "decided_by": people(objection.decided_by),
        "decided_at": local(objection.decided_at),
        "decision_reason": objection.decision_reason,
        "is_pending": objection.status is ObjectionStatus.PENDING,
    }


def extension_row(request: ExtensionRequest, people: People) -> dict[str, Any]:
    return {
        "id": request.id,
        "requested_at": local(request.requested_at),
        "requested_by": people(request.requested_by),
        "department_code": request.department_code,
        "working_days": request.working_days,
        "reason": request.reason,
        "status": request.status.value,
        "status_label": EXTENSION_STATUS_LABELS[request.status],
        "decided_by": people(request.decided_by),
        "decided_at": local(request.decided_at),
        "decision_reason": request.decision_reason,
        "due_before": local(request.due_before),
        "due_after": local(request.due_after),
        "is_pending": request.status is ExtensionStatus.PENDING,
    }


def sms_rows(messages: Iterable[SmsMessage]) -> list[dict[str, Any]]:
    return [
        {
            "purpose": SMS_PURPOSE_LABELS.get(message.purpose, message.purpose.value),
            "status": message.status.value,
            "due": local(message.due_at),
            "sent": local(message.sent_at),
            "to": mask_number(message.to_number),
            "body": message.body,
        }
        for message in messages
    ]
