"""One order's page: everything about it, and the forms the person's roles allow now.

Rendered by ``GET /orders/<id>`` and again, with the refusal's message and status (400,
409, 502), by a POST that did not go through, so the person sees why on the same page.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.order_conference import calls_of_order
from tickets import directory as directory_store
from tickets.lifecycle import Action, allowed_actions
from tickets.models import (
    DirectoryDepartment,
    ExtensionRequest,
    ExtensionStatus,
    Objection,
    ObjectionStatus,
    Role,
    SmsMessage,
    WorkOrder,
    WorkOrderDispatch,
)
from webapp.auth import db_session
from webapp.orders import display
from webapp.orders.forms import CloseForm
from webapp.staff.live_snapshot import KIND_LABELS, can_see_numbers

# The moves the order page offers (dispatch and the department's own are elsewhere).
OFFERED = (Action.REMIND, Action.SUPERVISE, Action.CLOSE, Action.REOPEN)
CALLING_ROLES = (Role.CALL_TAKER, Role.REVIEWER)  # who may start a multi-party call


def order_or_404(order_id: int) -> WorkOrder:
    order = db_session().get(WorkOrder, order_id)
    if order is None:
        abort(404)
    return order


def role_values() -> set[str]:
    return {role.value for role in current_user.roles}


def render_order(order: WorkOrder, *, status: int = 200, error: str = "") -> ResponseReturnValue:
    db = db_session()
    if error:
        flash(error, "error")
    dispatches = _rows(db, WorkOrderDispatch, order, WorkOrderDispatch.sequence)
    objections = _rows(db, Objection, order, Objection.id)
    extensions = _rows(db, ExtensionRequest, order, ExtensionRequest.id)
    messages = _rows(db, SmsMessage, order, SmsMessage.due_at, SmsMessage.id)
    past_calls = calls_of_order(order.number, session=db)
    people = display.People(
        [
            *(row.actor for row in order.history),
            *(row.dispatched_by for row in dispatches),
            *(a for o in objections for a in (o.raised_by, o.decided_by or "")),
            *(a for e in extensions for a in (e.requested_by, e.decided_by or "")),
            *(call.started_by for call in past_calls),
        ],
        session=db,
    )
    allowed = set(allowed_actions(order.state, role_values()))
    pending_extension = next((e for e in extensions if e.status is ExtensionStatus.PENDING), None)
    pending_objection = next((o for o in objections if o.status is ObjectionStatus.PENDING), None)
    body = render_template(
        "orders/show.html",
        order=order,
        kind=KIND_LABELS.get(order.kind, order.kind.value),
        caller=display.caller_number(order, full=can_see_numbers(current_user.roles)),
        item=order.directory_item,
        clocks=display.clocks_of(order),
        history=display.history_rows(order.history, people),
        dispatches=display.dispatch_rows(dispatches, people, _department_names(db, dispatches)),
        objections=[display.objection_row(o, people) for o in objections],
        extensions=[display.extension_row(e, people) for e in extensions],
        messages=display.sms_rows(messages),
        moves=[action for action in OFFERED if action in allowed],
        close_form=CloseForm(formdata=None),
        decide_extension=pending_extension
        if pending_extension and Action.APPROVE_EXTENSION in allowed
        else None,
        review_objection=pending_objection if current_user.has_role(Role.REVIEWER) else None,
        can_call=current_user.has_role(*CALLING_ROLES),
        call_candidates=_call_candidates(db, order, dispatches, objections),
        past_calls=[
            {
                "at": display.local(c.started_at),
                "by": people(c.started_by),
                "role": c.role,
                "legs": c.legs,
            }
            for c in past_calls
        ],
        **display.TEMPLATE_LABELS,
    )
    return body, status


def _rows(db: Session, model: Any, order: WorkOrder, *order_by: Any) -> list[Any]:
    statement = select(model).where(model.work_order_id == order.id).order_by(*order_by)
    return list(db.scalars(statement))


def _department_names(db: Session, dispatches: list[WorkOrderDispatch]) -> dict[int, str]:
    ids = {row.department_id for row in dispatches}
    if not ids:
        return {}
    rows = db.execute(
        select(DirectoryDepartment.id, DirectoryDepartment.name).where(
            DirectoryDepartment.id.in_(ids)
        )
    )
    return {department_id: name for department_id, name in rows}


def _call_candidates(
    db: Session,
    order: WorkOrder,
    dispatches: list[WorkOrderDispatch],
    objections: list[Objection],
) -> list[DirectoryDepartment]:
    """The departments the order has been to or was suggested for, in the current version
    (ticked boxes on the multi-party call form; any other can be typed)."""
    version = directory_store.find_current_version(session=db)
    if version is None:
        return []
    codes = [order.department_code or ""]
    codes += [row.department_code for row in reversed(dispatches)]
    codes += [s.get("department_code") or "" for o in objections for s in o.suggested]
    found = []
    for code in dict.fromkeys(code for code in codes if code):
        department = directory_store.find_department(version, code, session=db)
        if department is not None:
            found.append(department)
    return found
