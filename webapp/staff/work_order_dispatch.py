"""The console's dispatch step (派单): once a call is recorded as a work order, the
call-taker sees the recommender's top three directory items, each with its department
for the caller's location and the words that matched, and picks one; or closes the
order as answered on the spot (直接答复).

``POST /console/work-orders/<id>/dispatch`` (``item_code``, and ``department_code`` when
the call-taker chose the department by hand or the item's department could not be
resolved) and ``POST /console/work-orders/<id>/close`` (``answer``). Only the person who
recorded the order, or a floor manager, may do either. The suggestions shown are kept
with the dispatch, with the rank of the one taken.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from routing.dispatch_directory import Item
from routing.dispatch_places import Location
from tickets import directory as directory_store
from tickets import order_flow
from tickets.models import DirectoryDepartment, DirectoryItem, Role, WorkOrder
from webapp.auth import db_session
from webapp.dispatching import (
    Model,
    as_json,
    current_model,
    location_of,
    recommend,
    suggestions_of,
)
from webapp.order_services import Refused, actor_as, commit_move, first_role, order_clocks

log = logging.getLogger(__name__)


class DispatchForm(FlaskForm):
    item_code = StringField("Item", validators=[Optional(), Length(max=20)])
    department_code = StringField("Department", validators=[Optional(), Length(max=40)])
    reason = StringField("Note", validators=[Optional(), Length(max=500)])


class CloseForm(FlaskForm):
    answer = TextAreaField("Answer given", validators=[InputRequired(), Length(max=4000)])


def recommendations_for(order: WorkOrder) -> dict[str, Any] | None:
    """The console's top three for an order (None: the call-taker picks by hand)."""
    model = current_model()
    return as_json(recommend(model, order)) if model else None


def _my_order(order_id: int) -> WorkOrder:
    order = db_session().get(WorkOrder, order_id)
    if order is None:
        raise Refused(404, "No such work order.")
    recorded_by = order.history[0].actor if order.history else None
    if recorded_by != current_user.actor and not current_user.has_role(Role.FLOOR_MANAGER):
        raise Refused(
            403, "Only whoever recorded this work order, or a floor manager, may do this."
        )
    return order


def dispatch_work_order(order_id: int) -> ResponseReturnValue:
    session = db_session()
    form = DispatchForm()
    try:
        if not form.validate_on_submit():
            raise Refused(400, "Check the dispatch: " + _errors(form))
        order = _my_order(order_id)
        version = directory_store.find_current_version(session=session)
        if version is None:
            raise Refused(409, "No duty directory has been imported: nothing to dispatch to.")
        item = _item(version.id, form.item_code.data or "")
        model = current_model()
        suggestions = recommend(model, order) if model else None
        department = _department(version.id, form.department_code.data or "", item, order, model)
        actor = actor_as(first_role(Role.CALL_TAKER, Role.FLOOR_MANAGER))
        record = commit_move(
            lambda: order_flow.dispatch(
                order,
                item=item,
                department=department,
                actor=actor,
                session=session,
                clocks=order_clocks(),
                reason=form.reason.data or "",
                recommended=suggestions_of(suggestions) if suggestions else (),
            )
        )
    except Refused as refused:
        return jsonify(error=refused.message), refused.status
    log.info(
        "%s dispatched work order %s to %s (item %s, suggestion rank %s)",
        current_user.actor,
        order.number,
        department.code,
        item.code if item else "-",
        record.recommended_rank or "none",
    )
    return jsonify(
        message=f"Work order {order.number} dispatched to {department.name}.",
        number=order.number,
        department=department.name,
        due_at=order.due_at.isoformat() if order.due_at else None,
    ), 200


def close_work_order(order_id: int) -> ResponseReturnValue:
    session = db_session()
    form = CloseForm()
    try:
        if not form.validate_on_submit():
            raise Refused(400, "Write down the answer the caller was given.")
        order = _my_order(order_id)
        actor = actor_as(first_role(Role.CALL_TAKER, Role.FLOOR_MANAGER))
        commit_move(
            lambda: order_flow.close_on_the_spot(
                order, answer=form.answer.data or "", actor=actor, session=session
            )
        )
    except Refused as refused:
        return jsonify(error=refused.message), refused.status
    log.info("%s closed work order %s on the spot", current_user.actor, order.number)
    return jsonify(message=f"Work order {order.number} closed: answered on the spot."), 200


def _item(version_id: int, code: str) -> DirectoryItem | None:
    code = code.strip().upper()
    if not code:
        return None
    version = directory_store.get_version(version_id, session=db_session())
    item = directory_store.find_item(version, code, session=db_session())
    if item is None:
        raise Refused(400, f"The duty directory has no item {code}.")
    return item


def _department(
    version_id: int,
    code: str,
    item: DirectoryItem | None,
    order: WorkOrder,
    model: Model | None,
) -> DirectoryDepartment:
    """The department typed or chosen; else the item's, resolved for the order's location."""
    version = directory_store.get_version(version_id, session=db_session())
    code = code.strip().upper()
    if not code:
        if item is None:
            raise Refused(400, "Pick an item or a department.")
        if model is None:
            raise Refused(400, "Pick the department: the recommender is not available.")
        routing_item: Item = model.recommender.index.directory.item(item.code)
        resolution = model.recommender.index.resolver.resolve(
            routing_item, location_of(order) or Location()
        )
        if resolution.department_code is None:
            raise Refused(
                400,
                "Ask the caller which county or district they are in, or pick the department.",
            )
        code = resolution.department_code
    department = directory_store.find_department(version, code, session=db_session())
    if department is None:
        raise Refused(400, f"The duty directory has no department {code}.")
    return department


def _errors(form: FlaskForm) -> str:
    return "; ".join(
        f"{name.replace('_', ' ')}: {errors[0]}" for name, errors in form.errors.items() if errors
    )
