"""``/api/v1/work-orders``: the orders a client may see, one order, its history, and a
department's moves (accept, contact, progress, answer, object) through
``tickets.order_flow``, recorded as made by ``api:<client>`` in the liaison's role.

A department's client sees the orders dispatched to its department and nothing else
(another department's order is a 404, as for a liaison on the pages), and never the
caller's number of a confidential order (保密)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import Conflict, Forbidden, NotFound
from werkzeug.routing import BaseConverter

from tickets import order_flow
from tickets.models import Role, WorkOrder
from tickets.order_flow import Actor, IllegalMove, NotYours
from webapp.api.auth import current_caller, require_client
from webapp.api.clients import ApiCaller
from webapp.api.cursors import OrderPosition, order_cursor
from webapp.api.schemas import (
    ORDER_NUMBER,
    AcceptBody,
    AnswerBody,
    HistoryListSchema,
    NoteBody,
    ObjectionBody,
    WorkOrderPageSchema,
    WorkOrderQuery,
    WorkOrderSchema,
)
from webapp.auth import db_session
from webapp.order_services import order_clocks

log = logging.getLogger(__name__)
READER_ROLE = "api_reader"  # a client without a department: reads, never acts

bp = Blueprint(
    "work-orders",
    __name__,
    url_prefix="/api/v1",
    description="Work orders (工单), their history, and a department's moves on them.",
)
bp.before_request(require_client)


class OrderNumberConverter(BaseConverter):
    """A work-order number in a path: digits only (anything else is no order: 404)."""

    regex = ORDER_NUMBER.strip("^$")


def order_number_parameter(_converter: BaseConverter) -> dict[str, Any]:
    return {"type": "string", "pattern": ORDER_NUMBER}


def actor_for(caller: ApiCaller) -> Actor:
    if caller.is_department:
        return Actor(caller.actor, Role.DEPARTMENT_LIAISON.value, caller.department_code)
    return Actor(caller.actor, READER_ROLE)


# The answer's fields read straight off the order; ``present`` works out the others.
PLAIN_FIELDS = tuple(
    name
    for name in WorkOrderSchema().fields
    if name not in {"caller_number", "closed_how", "item_code", "item_title"}
)


def present(order: WorkOrder, caller: ApiCaller) -> dict[str, Any]:
    """The order as the API shows it to ``caller``."""
    hide_number = caller.is_department and order.is_confidential
    item = order.directory_item
    return {
        **{name: getattr(order, name) for name in PLAIN_FIELDS},
        "caller_number": None if hide_number else order.caller_number,
        "closed_how": order.closed_how.value if order.closed_how else None,
        "item_code": item.code if item else None,
        "item_title": item.title if item else None,
    }


@bp.route("/work-orders", methods=["GET"])
@bp.arguments(WorkOrderQuery, location="query", unknown=ma.RAISE, error_status_code=400)
@bp.response(200, WorkOrderPageSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
def list_orders(query: dict[str, Any]) -> dict[str, Any]:
    """The orders this client may see, oldest change first.

    Page through with `next_cursor`. To stay in step with the hotline, keep the
    `updated_at` of the last order seen and ask again with `updated_since`."""
    caller = current_caller()
    statement = select(WorkOrder).options(selectinload(WorkOrder.directory_item))
    if caller.is_department:
        statement = statement.where(
            WorkOrder.department_code == caller.department_code, WorkOrder.dispatch_count > 0
        )
    if "state" in query:
        statement = statement.where(WorkOrder.state == query["state"])
    if "number" in query:
        statement = statement.where(WorkOrder.number == query["number"])
    if "updated_since" in query:
        statement = statement.where(WorkOrder.updated_at >= query["updated_since"])
    after: OrderPosition | None = query.get("cursor")
    if after is not None:
        statement = statement.where(
            or_(
                WorkOrder.updated_at > after.updated_at,
                and_(WorkOrder.updated_at == after.updated_at, WorkOrder.id > after.id),
            )
        )
    limit: int = query["limit"]
    orders = list(
        db_session().scalars(
            statement.order_by(WorkOrder.updated_at, WorkOrder.id).limit(limit + 1)
        )
    )
    page = orders[:limit]
    more = len(orders) > limit
    return {
        "data": [present(order, caller) for order in page],
        "next_cursor": order_cursor(OrderPosition(page[-1].updated_at, page[-1].id))
        if more
        else None,
    }


def _visible_order(number: str, caller: ApiCaller, session: Session) -> WorkOrder:
    order_id = session.scalar(select(WorkOrder.id).where(WorkOrder.number == number))
    if order_id is not None:
        try:
            return order_flow.get_for(actor_for(caller), order_id, session=session)
        except NotYours:
            pass
    raise NotFound(f"No work order {number}.")


@bp.route("/work-orders/<order_number:number>", methods=["GET"])
@bp.response(200, WorkOrderSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
def get_order(number: str) -> dict[str, Any]:
    """One work order (404 for an order that is not this client's to see)."""
    caller = current_caller()
    return present(_visible_order(number, caller, db_session()), caller)


@bp.route("/work-orders/<order_number:number>/history", methods=["GET"])
@bp.response(200, HistoryListSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
def get_history(number: str) -> dict[str, Any]:
    """Every move of the order, oldest first: who, in which role, when, from, to, why."""
    order = _visible_order(number, current_caller(), db_session())
    return {"number": order.number, "data": order.history}


# -- a department's moves ----------------------------------------------------------------------

Move = Callable[[WorkOrder, Actor, Session], object]


def _act(number: str, move: Move) -> dict[str, Any]:
    """Make ``move`` as the calling department: 403 for a reading client, 404 for an order
    not theirs, 409 for a move the lifecycle refuses or a concurrent change."""
    caller = current_caller()
    if not caller.is_department:
        raise Forbidden("Only a department's system acts on work orders; this client reads.")
    session = db_session()
    order = _visible_order(number, caller, session)
    try:
        move(order, actor_for(caller), session)
        session.commit()
    except NotYours:
        session.rollback()
        raise NotFound(f"No work order {number}.") from None
    except IllegalMove as refusal:
        session.rollback()
        raise Conflict(_sentence(str(refusal))) from None
    except StaleDataError:
        session.rollback()
        log.info("work order %s changed under %s; nothing was written", number, caller.actor)
        raise Conflict(
            "Someone else changed this work order just now; read it again and retry."
        ) from None
    log.info("%s: %s on work order %s", caller.actor, getattr(move, "__name__", "move"), number)
    return present(order, caller)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _move_docs(summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The answers every move documents besides the order itself."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        for status, name in (
            (401, "UNAUTHORIZED"),
            (403, "FORBIDDEN"),
            (404, "NOT_FOUND"),
            (409, "CONFLICT"),
        ):
            view = bp.alt_response(status, response=name)(view)
        return bp.doc(summary=summary)(view)

    return decorate


@bp.route("/work-orders/<order_number:number>/accept", methods=["POST"])
@bp.arguments(AcceptBody, required=False, error_status_code=400)
@bp.response(200, WorkOrderSchema)
@_move_docs("Sign off the order (签收)")
def accept(body: dict[str, Any], number: str) -> dict[str, Any]:
    """The department takes the order (only when it is dispatched)."""

    def accepted(order: WorkOrder, actor: Actor, session: Session) -> object:
        return order_flow.accept(
            order, actor=actor, session=session, clocks=order_clocks(), note=body["note"]
        )

    return _act(number, accepted)


@bp.route("/work-orders/<order_number:number>/contact", methods=["POST"])
@bp.arguments(NoteBody, error_status_code=400)
@bp.response(200, WorkOrderSchema)
@_move_docs("Record the first contact with the citizen (响应)")
def contact(body: dict[str, Any], number: str) -> dict[str, Any]:
    """The department has been in touch with the citizen (only when accepted)."""

    def contacted(order: WorkOrder, actor: Actor, session: Session) -> object:
        return order_flow.record_contact(
            order, note=body["note"], actor=actor, session=session, clocks=order_clocks()
        )

    return _act(number, contacted)


@bp.route("/work-orders/<order_number:number>/progress", methods=["POST"])
@bp.arguments(NoteBody, error_status_code=400)
@bp.response(200, WorkOrderSchema)
@_move_docs("Add a progress note (办理)")
def progress(body: dict[str, Any], number: str) -> dict[str, Any]:
    """A note on the handling (only when in progress); the state stays."""

    def noted(order: WorkOrder, actor: Actor, session: Session) -> object:
        return order_flow.record_progress(order, note=body["note"], actor=actor, session=session)

    return _act(number, noted)


@bp.route("/work-orders/<order_number:number>/answer", methods=["POST"])
@bp.arguments(AnswerBody, error_status_code=400)
@bp.response(200, WorkOrderSchema)
@_move_docs("Answer the order (反馈)")
def answer(body: dict[str, Any], number: str) -> dict[str, Any]:
    """The department's outcome (only when accepted or in progress); the citizen's
    satisfaction survey follows."""

    def answered(order: WorkOrder, actor: Actor, session: Session) -> object:
        return order_flow.answer(order, outcome=body["outcome"], actor=actor, session=session)

    return _act(number, answered)


@bp.route("/work-orders/<order_number:number>/objection", methods=["POST"])
@bp.arguments(ObjectionBody, error_status_code=400)
@bp.response(200, WorkOrderSchema)
@_move_docs("Object to the order (退单)")
def object_to(body: dict[str, Any], number: str) -> dict[str, Any]:
    """Not this department's order: a reviewer decides. The clocks keep running."""

    def objected(order: WorkOrder, actor: Actor, session: Session) -> object:
        return order_flow.object_to(
            order,
            reason_code=body["reason_code"],
            text=body["text"],
            actor=actor,
            session=session,
        )

    return _act(number, objected)
