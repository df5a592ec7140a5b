"""``/orders``: the hotline staff's work orders: a search, one order with everything about
it, and the side paths their roles allow there: remind (催办), supervise (督办), close,
reopen (重办). The extension decision's form posts to the review queue's route; the
multi-party call is ``webapp.orders.conference``.

Department liaisons have their own portal: here they get 403, as does anyone without one
of ``ORDER_ROLES``. A move the lifecycle refuses comes back as the order page with the
refusal (409), and nothing is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tickets import order_flow
from tickets.lifecycle import RULES, Action
from tickets.models import ClosedHow, Role, WorkOrder, WorkOrderState
from tickets.order_flow import Actor
from tickets.phones import to_e164
from webapp.auth import db_session, error_pages, roles_required
from webapp.order_services import Refused, actor_as, commit_move, order_clocks
from webapp.orders import conference, display
from webapp.orders.forms import CloseForm, MoveForm, form_problem
from webapp.orders.order_page import CALLING_ROLES, order_or_404, render_order
from webapp.staff.live_snapshot import KIND_LABELS, can_see_numbers

log = logging.getLogger(__name__)
bp = error_pages(Blueprint("orders", __name__, url_prefix="/orders"))
ORDER_ROLES = (
    Role.CALL_TAKER,
    Role.REVIEWER,
    Role.FLOOR_MANAGER,
    Role.CALLBACK_AGENT,
    Role.QUALITY_INSPECTOR,
)
staff_only = roles_required(*ORDER_ROLES)
# Which of a person's roles a move is recorded in, when several of theirs may make it.
ACTING_PREFERENCE = (Role.REVIEWER, Role.FLOOR_MANAGER, Role.CALLBACK_AGENT, Role.CALL_TAKER)
MAX_ROWS = 100
MOVES = {
    "remind": Action.REMIND,
    "supervise": Action.SUPERVISE,
    "close": Action.CLOSE,
    "reopen": Action.REOPEN,
}
DONE = {
    Action.REMIND: "Reminder sent to the department (催办).",
    Action.SUPERVISE: "The order is supervised now (督办).",
    Action.CLOSE: "The order is closed (办结).",
    Action.REOPEN: "The order is reopened and back with the department (重办), fresh clocks.",
}


@bp.get("")
@staff_only
def index() -> ResponseReturnValue:
    db = db_session()
    full = can_see_numbers(current_user.roles)
    number = "".join(ch for ch in request.args.get("number", "") if ch.isdigit())[:24]
    state = request.args.get("state", "")
    department = request.args.get("department", "").strip()[:100]
    caller = request.args.get("caller", "").strip()[:40] if full else ""
    statement = select(WorkOrder).order_by(WorkOrder.id.desc())
    if number:
        statement = statement.where(WorkOrder.number.contains(number))
    if state in {s.value for s in WorkOrderState}:
        statement = statement.where(WorkOrder.state == WorkOrderState(state))
    if department:
        statement = statement.where(
            or_(
                WorkOrder.department_code == department.upper(),
                WorkOrder.handling_department.contains(department, autoescape=True),
            )
        )
    problem = ""
    if caller:
        e164 = to_e164(caller)
        if e164 is None:
            problem = f"{caller!r} is not a phone number."
        statement = statement.where(WorkOrder.caller_number == (e164 or ""))
    orders = list(db.scalars(statement.limit(MAX_ROWS + 1)))
    return render_template(
        "orders/list.html",
        orders=[_list_row(order, full) for order in orders[:MAX_ROWS]],
        more=len(orders) > MAX_ROWS,
        filters={"number": number, "state": state, "department": department, "caller": caller},
        sees_numbers=full,
        problem=problem,
        state_labels=display.STATE_LABELS,
    )


def _list_row(order: WorkOrder, full: bool) -> dict[str, object]:
    return {
        "id": order.id,
        "number": order.number,
        "created": display.local(order.created_at),
        "kind": KIND_LABELS.get(order.kind, order.kind.value),
        "state": order.state.value,
        "state_label": display.STATE_LABELS[order.state],
        "summary": order.summary,
        "district": order.district or "",
        "department": order.handling_department or "-",
        "due": display.local(order.due_at),
        "caller": display.caller_number(order, full=full),
        "is_confidential": order.is_confidential,
        "is_urgent": order.is_urgent,
    }


@bp.get("/<int:order_id>")
@staff_only
def show(order_id: int) -> ResponseReturnValue:
    return render_order(order_or_404(order_id))


@bp.post("/<int:order_id>/<any(remind, supervise, close, reopen):move>")
@staff_only
def move_order(order_id: int, move: str) -> ResponseReturnValue:
    action = MOVES[move]
    role = acting_role(action)
    order = order_or_404(order_id)
    form = CloseForm() if action is Action.CLOSE else MoveForm()
    if not form.validate_on_submit():
        return render_order(order, status=400, error=form_problem(form))
    db = db_session()
    make = _MAKERS[action]
    try:
        check_seen(order, form.seen_version.data)
        commit_move(lambda: make(order, form, actor_as(role), db))
    except Refused as refusal:
        if refusal.status == 404:
            abort(404)
        log.info("%s: %s refused on %s: %s", current_user.actor, move, order_id, refusal.message)
        return render_order(order_or_404(order_id), status=refusal.status, error=refusal.message)
    log.info("%s %s order %s as %s", current_user.actor, move, order.number, role.value)
    flash(DONE[action], "success")
    return redirect(url_for("orders.show", order_id=order.id))


def acting_role(action: Action) -> Role:
    """The role the person makes ``action`` in; 403 when no role of theirs may."""
    allowed = RULES[action].roles
    for role in ACTING_PREFERENCE:
        if role.value in allowed and current_user.has_role(role):
            return role
    log.warning("%s may not %s", current_user.actor, action.value)
    abort(403)


def check_seen(order: WorkOrder, seen: str | None) -> None:
    """Refuse a move on an order that changed since the person opened its page."""
    if seen and seen.isdigit() and int(seen) != order.row_version:
        raise Refused(
            409,
            "Someone else changed this work order since you opened it. "
            "Look at it again, then decide.",
        )


def _remind(order: WorkOrder, form: MoveForm, actor: Actor, db: Session) -> object:
    return order_flow.remind(order, note=form.reason.data or "", actor=actor, session=db)


def _supervise(order: WorkOrder, form: MoveForm, actor: Actor, db: Session) -> object:
    return order_flow.supervise(order, note=form.reason.data or "", actor=actor, session=db)


def _close(order: WorkOrder, form: MoveForm, actor: Actor, db: Session) -> object:
    assert isinstance(form, CloseForm)
    return order_flow.close(
        order, how=ClosedHow(form.how.data), reason=form.reason.data or "", actor=actor, session=db
    )


def _reopen(order: WorkOrder, form: MoveForm, actor: Actor, db: Session) -> object:
    return order_flow.reopen(
        order, reason=form.reason.data or "", actor=actor, session=db, clocks=order_clocks()
    )


_MAKERS: dict[Action, Callable[[WorkOrder, MoveForm, Actor, Session], object]] = {
    Action.REMIND: _remind,
    Action.SUPERVISE: _supervise,
    Action.CLOSE: _close,
    Action.REOPEN: _reopen,
}

bp.add_url_rule(
    "/<int:order_id>/conference",
    endpoint="start_call",
    view_func=roles_required(*CALLING_ROLES)(conference.start_call),
    methods=["POST"],
)
