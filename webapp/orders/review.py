"""``/review``: the reviewers' queues (审核).

- Objections (退单): the pending ones, oldest first, with the dispatch accuracy KPI at the
  top. A reviewer upholds one (not the department's: re-dispatched to another, picked
  from the suggestions or a search of the current directory, resolved for the order's
  place) or rejects it (theirs after all: back where it was, its clocks never stopped),
  with a reason either way. Reviewers only, as the lifecycle says.
- Extension requests (延期): approved (the resolution deadline moves by the working days
  asked) or refused, with a reason; reviewers and floor managers.
- Satisfaction surveys (回访不满意): the surveys whose answers were not "responded, solved,
  satisfied", oldest first, with the three answers and the call they came from. The
  reviewer marks the dissatisfaction subjective (about the handling: reopened to the same
  department, 重办) or objective (about what the law allows: explained and closed), with a
  reason. Reviewers only.

Deciding something already decided, or a move the order's state no longer allows, is
refused with 409 and nothing is written.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import StringField, TextAreaField
from wtforms.validators import AnyOf, InputRequired, Length

from tickets import directory as directory_store
from tickets import order_flow, survey_results
from tickets.models import (
    DirectoryDepartment,
    DirectoryItem,
    ExtensionRequest,
    ExtensionStatus,
    Objection,
    ObjectionStatus,
    Role,
    Survey,
    SurveyAttempt,
    SurveyReview,
    WorkOrder,
    WorkOrderDispatch,
)
from webapp.auth import db_session, error_pages, roles_required
from webapp.order_services import Refused, actor_as, commit_move, first_role, order_clocks
from webapp.orders import display
from webapp.orders.forms import ExtensionDecisionForm, RejectForm, UpholdForm, form_problem
from webapp.orders.order_page import render_order
from webapp.orders.targets import TargetProblem, Targets

log = logging.getLogger(__name__)
bp = error_pages(Blueprint("review", __name__, url_prefix="/review"))
bp.context_processor(lambda: display.TEMPLATE_LABELS)
reviewers_only = roles_required(Role.REVIEWER)
EXTENSION_ROLES = (Role.REVIEWER, Role.FLOOR_MANAGER)
deciders_only = roles_required(*EXTENSION_ROLES)
RECENT = 10


# -- objections ----------------------------------------------------------------------------


@bp.get("/objections")
@reviewers_only
def objections() -> ResponseReturnValue:
    db = db_session()
    pending = db.scalars(
        select(Objection)
        .where(Objection.status == ObjectionStatus.PENDING)
        .order_by(Objection.raised_at, Objection.id)
    ).all()
    decided = db.scalars(
        select(Objection)
        .where(Objection.status != ObjectionStatus.PENDING)
        .order_by(Objection.decided_at.desc(), Objection.id.desc())
        .limit(RECENT)
    ).all()
    people = display.People(
        [a for o in (*pending, *decided) for a in (o.raised_by, o.decided_by or "")], session=db
    )
    good, dispatched = order_flow.dispatch_accuracy(session=db)
    return render_template(
        "review/objections.html",
        pending=[_queue_row(db, objection, people) for objection in pending],
        decided=[_queue_row(db, objection, people) for objection in decided],
        kpi={
            "good": good,
            "dispatched": dispatched,
            "percent": f"{100 * good / dispatched:.1f}" if dispatched else None,
        },
    )


def _queue_row(db: Session, objection: Objection, people: display.People) -> dict[str, Any]:
    order = objection.work_order
    return {
        **display.objection_row(objection, people),
        "order": order,
        "dispatched_to": _dispatch_facts(db, objection.dispatch_id),
        "clocks": [c for c in display.clocks_of(order) if c.status in ("running", "overdue")],
    }


def _dispatch_facts(db: Session, dispatch_id: int) -> dict[str, str]:
    """The item and department of the dispatch objected to (rows of its version)."""
    dispatch = db.get(WorkOrderDispatch, dispatch_id)
    if dispatch is None:  # pragma: no cover - a foreign key
        return {"item": "-", "department": "-", "at": "-"}
    item = db.get(DirectoryItem, dispatch.directory_item_id) if dispatch.directory_item_id else None
    department = db.get(DirectoryDepartment, dispatch.department_id)
    return {
        "item": f"{item.code} {item.title}" if item else "picked by hand (no item)",
        "department": f"{department.name if department else ''} ({dispatch.department_code})",
        "at": display.local(dispatch.dispatched_at),
    }


def _objection_or_404(objection_id: int) -> Objection:
    objection = db_session().get(Objection, objection_id)
    if objection is None:
        abort(404)
    return objection


@bp.get("/objections/<int:objection_id>")
@reviewers_only
def objection(objection_id: int) -> ResponseReturnValue:
    return _render_objection(_objection_or_404(objection_id))


def _render_objection(
    objection: Objection,
    *,
    status: int = 200,
    error: str = "",
    uphold: UpholdForm | None = None,
    reject: RejectForm | None = None,
) -> ResponseReturnValue:
    db = db_session()
    if error:
        flash(error, "error")
    order = db.get_one(WorkOrder, objection.work_order_id)
    people = display.People([objection.raised_by, objection.decided_by or ""], session=db)
    query, department_query = request.args.get("q", ""), request.args.get("dq", "")
    try:
        targets: Targets | None = Targets(order, session=db)
    except directory_store.DirectoryNotFound:
        targets = None
    return render_template(
        "review/objection.html",
        objection=_queue_row(db, objection, people),
        order=order,
        all_clocks=display.clocks_of(order),
        suggestions=targets.suggestions(objection.suggested) if targets else [],
        found_items=targets.search_items(query) if targets else [],
        found_departments=targets.search_departments(department_query) if targets else [],
        query=query,
        department_query=department_query,
        has_directory=targets is not None,
        uphold_form=uphold or UpholdForm(formdata=None),
        reject_form=reject or RejectForm(formdata=None),
    ), status


@bp.post("/objections/<int:objection_id>/uphold")
@reviewers_only
def uphold(objection_id: int) -> ResponseReturnValue:
    objection = _objection_or_404(objection_id)
    form = UpholdForm()
    if not form.validate_on_submit():
        return _render_objection(objection, status=400, error=form_problem(form), uphold=form)
    db = db_session()
    order = db.get_one(WorkOrder, objection.work_order_id)
    try:
        target = Targets(order, session=db).parse(form.target.data or "")
    except (TargetProblem, directory_store.DirectoryNotFound) as problem:
        return _render_objection(objection, status=400, error=str(problem), uphold=form)
    assert target.department is not None
    department = target.department
    try:
        commit_move(
            lambda: order_flow.uphold_objection(
                objection,
                item=target.item,
                department=department,
                reason=form.reason.data or "",
                actor=actor_as(Role.REVIEWER),
                session=db,
                clocks=order_clocks(),
            )
        )
    except Refused as refusal:
        return _render_objection(
            _objection_or_404(objection_id),
            status=refusal.status,
            error=refusal.message,
            uphold=form,
        )
    log.info("objection %s upheld: %s to %s", objection.id, order.number, department.code)
    flash(f"Order {order.number} re-dispatched to {department.name}.", "success")
    return redirect(url_for("review.objections"))


@bp.post("/objections/<int:objection_id>/reject")
@reviewers_only
def reject(objection_id: int) -> ResponseReturnValue:
    objection = _objection_or_404(objection_id)
    form = RejectForm()
    if not form.validate_on_submit():
        return _render_objection(objection, status=400, error=form_problem(form), reject=form)
    db = db_session()
    try:
        commit_move(
            lambda: order_flow.reject_objection(
                objection,
                reason=form.reason.data or "",
                actor=actor_as(Role.REVIEWER),
                session=db,
            )
        )
    except Refused as refusal:
        return _render_objection(
            _objection_or_404(objection_id),
            status=refusal.status,
            error=refusal.message,
            reject=form,
        )
    order = db.get_one(WorkOrder, objection.work_order_id)
    log.info("objection %s rejected: %s back to %s", objection.id, order.number, order.state)
    flash(
        f"Objection rejected: order {order.number} is back with {order.handling_department}, "
        "its clocks still running.",
        "success",
    )
    return redirect(url_for("review.objections"))


# -- extensions ----------------------------------------------------------------------------


@bp.get("/extensions")
@deciders_only
def extensions() -> ResponseReturnValue:
    return _render_extensions()


def _render_extensions(*, status: int = 200, error: str = "") -> ResponseReturnValue:
    db = db_session()
    if error:
        flash(error, "error")
    pending = db.scalars(
        select(ExtensionRequest)
        .where(ExtensionRequest.status == ExtensionStatus.PENDING)
        .order_by(ExtensionRequest.requested_at, ExtensionRequest.id)
    ).all()
    people = display.People([r.requested_by for r in pending], session=db)
    clocks = order_clocks()
    rows = []
    for request_row in pending:
        order = request_row.work_order
        after = clocks.extended(order.due_at, request_row.working_days) if order.due_at else None
        rows.append(
            {
                **display.extension_row(request_row, people),
                "order": order,
                "department": order.handling_department or request_row.department_code,
                "due_now": display.local(order.due_at),
                "due_if_approved": display.local(after),
            }
        )
    return render_template("review/extensions.html", pending=rows), status


@bp.post("/extensions/<int:request_id>")
@deciders_only
def decide_extension(request_id: int) -> ResponseReturnValue:
    db = db_session()
    extension = db.get(ExtensionRequest, request_id)
    if extension is None:
        abort(404)
    form = ExtensionDecisionForm()
    to_order = form.back.data == "order"
    order = db.get_one(WorkOrder, extension.work_order_id)

    def refused(status: int, message: str) -> ResponseReturnValue:
        if to_order:
            return render_order(db.get_one(WorkOrder, order.id), status=status, error=message)
        return _render_extensions(status=status, error=message)

    if not form.validate_on_submit():
        return refused(400, form_problem(form))
    approve = form.decision.data == "approve"
    role = first_role(*EXTENSION_ROLES)
    try:
        commit_move(
            lambda: order_flow.decide_extension(
                extension,
                approve=approve,
                reason=form.reason.data or "",
                actor=actor_as(role),
                session=db,
                clocks=order_clocks(),
            )
        )
    except Refused as refusal:
        return refused(refusal.status, refusal.message)
    due = display.local(order.due_at)
    if approve:
        flash(f"Extension approved: order {order.number} is due {due} now.", "success")
    else:
        flash(f"Extension refused: order {order.number} stays due {due}.", "success")
    if to_order:
        return redirect(url_for("orders.show", order_id=order.id))
    return redirect(url_for("review.extensions"))


# -- satisfaction surveys ------------------------------------------------------------------

SURVEY_DECISIONS = {"subjective": True, "objective": False}


class SurveyDecisionForm(FlaskForm):
    decision = StringField(validators=[InputRequired(), AnyOf(list(SURVEY_DECISIONS))])
    reason = TextAreaField("Why", validators=[InputRequired(), Length(max=2000)])


@bp.get("/surveys")
@reviewers_only
def surveys() -> ResponseReturnValue:
    return _render_surveys()


def _render_surveys(*, status: int = 200, error: str = "") -> ResponseReturnValue:
    db = db_session()
    if error:
        flash(error, "error")
    pending = db.scalars(
        select(Survey)
        .where(Survey.review == SurveyReview.PENDING)
        .order_by(Survey.answered_at, Survey.id)
    ).all()
    decided = db.scalars(
        select(Survey)
        .where(Survey.review.in_((SurveyReview.SUBJECTIVE, SurveyReview.OBJECTIVE)))
        .order_by(Survey.reviewed_at.desc(), Survey.id.desc())
        .limit(RECENT)
    ).all()
    people = display.People([s.reviewed_by or "" for s in decided], session=db)
    return render_template(
        "review/surveys.html",
        pending=[_survey_row(db, survey) for survey in pending],
        decided=[
            {**_survey_row(db, survey), "reviewed_by": people(survey.reviewed_by)}
            for survey in decided
        ],
    ), status


def _survey_row(db: Session, survey: Survey) -> dict[str, Any]:
    order = db.get_one(WorkOrder, survey.work_order_id)
    attempt = (
        db.scalar(select(SurveyAttempt).where(SurveyAttempt.call_sid == survey.answered_call_sid))
        if survey.answered_call_sid
        else None
    )
    return {
        "id": survey.id,
        "order": order,
        "department": order.handling_department or order.department_code or "-",
        "answers": survey_results.answer_words(survey),
        "call_sid": survey.answered_call_sid or "-",
        "attempt": attempt.number if attempt else None,
        "answered_at": display.local(survey.answered_at),
        "review": survey.review.value if survey.review else "",
        "reviewed_at": display.local(survey.reviewed_at),
        "review_reason": survey.review_reason,
    }


@bp.post("/surveys/<int:survey_id>")
@reviewers_only
def decide_survey(survey_id: int) -> ResponseReturnValue:
    db = db_session()
    survey = db.get(Survey, survey_id)
    if survey is None:
        abort(404)
    form = SurveyDecisionForm()
    if not form.validate_on_submit():
        return _render_surveys(status=400, error=form_problem(form))
    subjective = SURVEY_DECISIONS[form.decision.data or ""]
    try:
        commit_move(
            lambda: survey_results.decide_review(
                db,
                survey,
                subjective=subjective,
                reason=form.reason.data or "",
                actor=actor_as(Role.REVIEWER),
                clocks=order_clocks(),
            )
        )
    except Refused as refusal:
        return _render_surveys(status=refusal.status, error=refusal.message)
    order = db.get_one(WorkOrder, survey.work_order_id)
    if subjective:
        log.info("survey %s subjective: %s reopened", survey.id, order.number)
        flash(
            f"Order {order.number} reopened (重办): back to {order.handling_department}.",
            "success",
        )
    else:
        log.info("survey %s objective: %s closed as explained", survey.id, order.number)
        flash(f"Order {order.number} closed as explained (已解释).", "success")
    return redirect(url_for("review.surveys"))
