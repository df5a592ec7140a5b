"""The department portal's pages (部门工作台): a liaison's list of their department's
orders, one order with its clocks and history, and the forms of the moves the lifecycle
lets a liaison make (签收, 响应, 办理, 反馈, 延期申请, 退单).

Department liaisons only, on every route (403 for anyone else logged in, the login page
for the anonymous). Every route that names an order reads it through
``order_flow.get_for`` before anything else, so another department's order, an order
never dispatched and an order that does not exist are all 404, on GET and on POST, before
a form is even read. A confidential order's citizen number is never put on a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from math import ceil
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from tickets import directory as directory_store
from tickets import order_flow
from tickets.db import utcnow
from tickets.lifecycle import Action, allowed_actions
from tickets.models import (
    ExtensionRequest,
    ExtensionStatus,
    Objection,
    ObjectionReason,
    ObjectionStatus,
    Role,
    Staff,
    WorkOrder,
    WorkOrderState,
)
from tickets.order_flow import Actor
from webapp.auth import db_session, error_pages, roles_required
from webapp.dispatching import alternatives
from webapp.order_services import Refused, actor_as, attempt, commit_move, order_clocks
from webapp.portal import present
from webapp.portal.forms import (
    FORMS,
    OBJECTION_LABELS,
    STATE_LABELS,
    AcceptForm,
    AnswerForm,
    ContactForm,
    ExtensionForm,
    ObjectionForm,
    ProgressForm,
)
from webapp.settings import Settings
from webapp.staff.live_snapshot import KIND_LABELS

log = logging.getLogger(__name__)
bp = error_pages(Blueprint("portal", __name__, url_prefix="/portal"))
liaisons_only = roles_required(Role.DEPARTMENT_LIAISON)
PAGE_SIZE = 50
LIAISON = frozenset({Role.DEPARTMENT_LIAISON.value})
S = WorkOrderState


@dataclass(frozen=True)
class Tab:
    label: str
    states: tuple[WorkOrderState, ...]
    overdue_first: bool = False


TABS = {
    "to_sign": Tab("To sign off 待签收", (S.DISPATCHED,)),
    "in_hand": Tab("In hand 办理中", (S.ACCEPTED, S.IN_PROGRESS), overdue_first=True),
    "objected": Tab("Objected 退单审核中", (S.OBJECTED,)),
    "done": Tab("Answered and closed 已反馈/办结", (S.ANSWERED, S.CALLBACK, S.CLOSED)),
}
DEFAULT_TAB = "to_sign"


@dataclass(frozen=True)
class ActionView:
    endpoint: str
    title: str
    button: str
    done: str  # the flash after it worked


ACTION_VIEWS = {
    Action.ACCEPT: ActionView("accept", "Sign off 签收", "Sign off", "Signed off 已签收."),
    Action.CONTACT: ActionView(
        "contact",
        "First contact with the citizen 响应",
        "Record the contact",
        "First contact recorded 已响应.",
    ),
    Action.PROGRESS: ActionView(
        "progress", "Progress note 办理进展", "Add the note", "Progress note added 已记录进展."
    ),
    Action.ANSWER: ActionView(
        "answer", "Answer 反馈", "Send the answer", "Answered 已反馈: a callback survey follows."
    ),
    Action.REQUEST_EXTENSION: ActionView(
        "extension",
        "Ask for an extension 延期申请",
        "Ask for the extension",
        "Extension requested 已申请延期: a reviewer decides.",
    ),
    Action.OBJECT: ActionView(
        "objection",
        "Object: not ours 退单",
        "Object",
        "Objection sent 已退单: a reviewer decides. The clocks keep running meanwhile.",
    ),
}


def _settings() -> Settings:
    return current_app.config["HOTLINE_SETTINGS"]


def _liaison() -> Actor:
    return actor_as(Role.DEPARTMENT_LIAISON)


def _order_or_404(actor: Actor, order_id: int) -> WorkOrder:
    """The order if it is the liaison's department's; 404 for anything else."""
    try:
        return attempt(lambda: order_flow.get_for(actor, order_id, session=db_session()))
    except Refused:
        abort(404)


# -- the list ------------------------------------------------------------------------------


def _visible(department_code: str) -> ColumnElement[bool]:
    """The orders a department sees: dispatched to it (as ``get_for`` decides)."""
    return and_(WorkOrder.department_code == department_code, WorkOrder.dispatch_count > 0)


def _overdue(now: Any) -> ColumnElement[bool]:
    """A clock that still runs is past its deadline."""
    return or_(
        and_(WorkOrder.accepted_at.is_(None), WorkOrder.signoff_due_at < now),
        and_(WorkOrder.contacted_at.is_(None), WorkOrder.contact_due_at < now),
        and_(WorkOrder.answered_at.is_(None), WorkOrder.due_at < now),
    )


def _counts(db: Session, department_code: str) -> dict[str, int]:
    by_state = dict(
        db.execute(
            select(WorkOrder.state, func.count())
            .where(_visible(department_code))
            .group_by(WorkOrder.state)
        ).all()
    )
    return {
        key: sum(int(by_state.get(state, 0)) for state in tab.states) for key, tab in TABS.items()
    }


def _department_name(db: Session, department_code: str) -> str:
    version = directory_store.find_current_version(session=db)
    department = (
        directory_store.find_department(version, department_code, session=db) if version else None
    )
    return department.name if department else ""


@bp.get("/")
@liaisons_only
def index() -> ResponseReturnValue:
    actor = _liaison()
    key = request.args.get("tab", DEFAULT_TAB)
    if key not in TABS:
        key = DEFAULT_TAB
    tab = TABS[key]
    code = actor.department_code
    counts = dict.fromkeys(TABS, 0)
    rows: list[dict[str, object]] = []
    page = pages = 1
    name = ""
    if code:
        db = db_session()
        now = utcnow()
        counts = _counts(db, code)
        pages = max(1, ceil(counts[key] / PAGE_SIZE))
        page = min(max(1, request.args.get("page", 1, type=int) or 1), pages)
        query = select(WorkOrder).where(_visible(code), WorkOrder.state.in_(tab.states))
        if tab.overdue_first:
            query = query.order_by(case((_overdue(now), 0), else_=1))
        query = query.order_by(WorkOrder.dispatched_at.desc(), WorkOrder.id.desc())
        orders = db.scalars(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))
        rows = [present.list_row(order, now, _settings().zone) for order in orders]
        name = _department_name(db, code)
    return render_template(
        "portal/index.html",
        tabs=TABS,
        current_tab=key,
        counts=counts,
        rows=rows,
        page=page,
        pages=pages,
        department_code=code,
        department_name=name,
    )


# -- one order -----------------------------------------------------------------------------


@bp.get("/orders/<int:order_id>")
@liaisons_only
def show_order(order_id: int) -> ResponseReturnValue:
    actor = _liaison()
    return _order_page(_order_or_404(actor, order_id), actor)


def _order_page(
    order: WorkOrder,
    actor: Actor,
    *,
    bound: tuple[Action, FlaskForm] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    """The order's page; ``bound`` is an action's form sent back with its errors (shown
    even when the lifecycle would not offer the action now)."""
    db = db_session()
    zone = _settings().zone
    now = utcnow()
    extensions = db.scalars(
        select(ExtensionRequest)
        .where(
            ExtensionRequest.work_order_id == order.id,
            ExtensionRequest.department_code == actor.department_code,
        )
        .order_by(ExtensionRequest.id.desc())
    ).all()
    objections = db.scalars(
        select(Objection)
        .where(
            Objection.work_order_id == order.id,
            Objection.department_code == actor.department_code,
        )
        .order_by(Objection.id.desc())
    ).all()
    extension_pending = any(e.status is ExtensionStatus.PENDING for e in extensions)
    forms: dict[Action, FlaskForm] = {}
    for action in allowed_actions(order.state, LIAISON):
        if action in FORMS and not (action is Action.REQUEST_EXTENSION and extension_pending):
            forms[action] = FORMS[action](formdata=None)
    if bound is not None:
        action, form = bound
        forms[action] = form
    names = _staff_names(db, present.staff_ids(order.history))
    item = order.directory_item
    return (
        render_template(
            "portal/order.html",
            order=order,
            kind=KIND_LABELS.get(order.kind, order.kind.value),
            state_label=STATE_LABELS[order.state],
            citizen=present.citizen_number(order),
            item=item,
            department=order.department,
            clocks=present.clocks_of(order, now),
            local=lambda at: present.local(at, zone),
            history=present.history_rows(order.history, names, zone),
            extensions=extensions,
            objections=objections,
            objection_labels=OBJECTION_LABELS,
            forms=[(ACTION_VIEWS[action], form) for action, form in _in_order(forms)],
            pending=(ExtensionStatus.PENDING, ObjectionStatus.PENDING),
        ),
        status,
    )


def _in_order(forms: dict[Action, FlaskForm]) -> list[tuple[Action, FlaskForm]]:
    return [(action, forms[action]) for action in ACTION_VIEWS if action in forms]


def _staff_names(db: Session, ids: set[int]) -> dict[str, str]:
    if not ids:
        return {}
    found = db.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(ids)))
    return {f"staff:{staff_id}": name for staff_id, name in found}


# -- the moves -------------------------------------------------------------------------------

Move = Callable[[WorkOrder, Any, Actor, Session], object]


def _act(order_id: int, action: Action, move: Move) -> ResponseReturnValue:
    """One move: the order (404 unless it is the department's), the form (400 with its
    errors), the move (409 with the lifecycle's message, nothing written), then commit."""
    db = db_session()
    actor = _liaison()
    order = _order_or_404(actor, order_id)
    form = FORMS[action]()
    if not form.validate_on_submit():
        flash("Nothing was saved: see what the form says below.", "error")
        return _order_page(order, actor, bound=(action, form), status=400)
    number = order.number
    try:
        commit_move(lambda: move(order, form, actor, db))
    except Refused as refusal:
        if refusal.status == 404:
            abort(404)
        log.info(
            "portal: %s was refused %s on work order %s: %s",
            actor.actor,
            action.value,
            number,
            refusal.message,
        )
        flash(refusal.message, "error")
        return _order_page(_order_or_404(actor, order_id), actor, status=refusal.status)
    log.info("portal: %s did %s on work order %s", actor.actor, action.value, number)
    flash(ACTION_VIEWS[action].done, "success")
    return redirect(url_for("portal.show_order", order_id=order_id))


@bp.post("/orders/<int:order_id>/accept")
@liaisons_only
def accept(order_id: int) -> ResponseReturnValue:
    def move(order: WorkOrder, form: AcceptForm, actor: Actor, db: Session) -> object:
        return order_flow.accept(
            order, actor=actor, session=db, clocks=order_clocks(), note=form.accept_note.data or ""
        )

    return _act(order_id, Action.ACCEPT, move)


@bp.post("/orders/<int:order_id>/contact")
@liaisons_only
def contact(order_id: int) -> ResponseReturnValue:
    def move(order: WorkOrder, form: ContactForm, actor: Actor, db: Session) -> object:
        return order_flow.record_contact(
            order,
            note=form.contact_note.data or "",
            actor=actor,
            session=db,
            clocks=order_clocks(),
        )

    return _act(order_id, Action.CONTACT, move)


@bp.post("/orders/<int:order_id>/progress")
@liaisons_only
def progress(order_id: int) -> ResponseReturnValue:
    def move(order: WorkOrder, form: ProgressForm, actor: Actor, db: Session) -> object:
        return order_flow.record_progress(
            order, note=form.progress_note.data or "", actor=actor, session=db
        )

    return _act(order_id, Action.PROGRESS, move)


@bp.post("/orders/<int:order_id>/answer")
@liaisons_only
def answer(order_id: int) -> ResponseReturnValue:
    def move(order: WorkOrder, form: AnswerForm, actor: Actor, db: Session) -> object:
        return order_flow.answer(order, outcome=form.outcome.data or "", actor=actor, session=db)

    return _act(order_id, Action.ANSWER, move)


@bp.post("/orders/<int:order_id>/extension")
@liaisons_only
def extension(order_id: int) -> ResponseReturnValue:
    def move(order: WorkOrder, form: ExtensionForm, actor: Actor, db: Session) -> object:
        return order_flow.request_extension(
            order,
            working_days=int(form.working_days.data or 0),
            reason=form.extension_reason.data or "",
            actor=actor,
            session=db,
        )

    return _act(order_id, Action.REQUEST_EXTENSION, move)


@bp.post("/orders/<int:order_id>/objection")
@liaisons_only
def objection(order_id: int) -> ResponseReturnValue:
    def move(order: WorkOrder, form: ObjectionForm, actor: Actor, db: Session) -> object:
        return order_flow.object_to(
            order,
            reason_code=ObjectionReason(form.reason_code.data),
            text=form.objection_text.data or "",
            actor=actor,
            session=db,
            suggested=alternatives(order, excluding=order.department_code),
        )

    return _act(order_id, Action.OBJECT, move)
