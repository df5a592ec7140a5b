"""The console's dispatch step: a recorded call gets the recommender's top three, each
resolved to a department for the caller's location with the words that matched; the
call-taker dispatches (the suggestions kept with the rank taken), or types a department,
or closes the order as answered on the spot; and dispatched orders teach the recommender."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.orders import import_demo_directory
from tests.support.staff import add_staff, log_in
from tests.test_console_live import client, on_a_call, place_call, post, ring, taker, wang
from tickets.models import (
    ClosedHow,
    Staff,
    WorkOrder,
    WorkOrderDispatch,
    WorkOrderState,
)
from webapp.dispatching import SERVICE_KEY

__all__ = ["client", "on_a_call", "taker", "wang"]  # the fixtures this module uses


def record(client: FlaskClient, call_sid: str, summary: str, **fields: str) -> dict:
    response = post(client, call_sid, "work-order", kind="complaint", summary=summary, **fields)
    assert response.status_code == 201, response.json
    return response.json


def order_of(db: Session, call_sid: str) -> WorkOrder:
    db.expire_all()
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == call_sid))
    assert order is not None
    return order


def test_a_recorded_call_gets_three_suggestions_with_departments_and_matched_words(
    wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    import_demo_directory(db)
    body = record(wang, on_a_call, "小区外墙瓷砖掉下来了，差点砸到人", district="城关区")

    found = body["recommendations"]
    assert len(found["items"]) == 3
    first = found["items"][0]
    assert first["item_code"] == "C01-041"  # 建筑外墙瓷砖脱落
    assert first["is_urgent"] is True
    assert first["department_code"] == "D-CGQ-ZJJ"
    assert first["department_name"] == "城关区住房和城乡建设局"
    assert any("瓷砖" in word for word in first["matched_words"])
    assert found["location"]["county"] == "城关区" and found["asks_county"] is False
    assert body["dispatch_url"].endswith(f"/console/work-orders/{body['order_id']}/dispatch")


def test_dispatching_the_first_suggestion_keeps_the_suggestions_with_rank_1(
    wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    import_demo_directory(db)
    body = record(wang, on_a_call, "外墙瓷砖脱落，很危险", district="城关区")

    response = wang.post(
        body["dispatch_url"], data={"item_code": "C01-041"}, headers={"Accept": "application/json"}
    )

    assert response.status_code == 200, response.json
    assert "城关区住房和城乡建设局" in response.json["message"]
    order = order_of(db, on_a_call)
    assert order.state is WorkOrderState.DISPATCHED and order.is_urgent
    (record_,) = db.scalars(select(WorkOrderDispatch))
    assert record_.recommended_rank == 1
    assert record_.recommended[0]["item_code"] == "C01-041"
    assert order.history[-1].actor_role == "call_taker"


def test_an_unknown_county_asks_the_call_taker_to_ask(
    wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    import_demo_directory(db)
    body = record(wang, on_a_call, "外墙瓷砖脱落，很危险")

    assert body["recommendations"]["asks_county"] is True
    response = wang.post(body["dispatch_url"], data={"item_code": "C01-041"})
    assert response.status_code == 400
    assert "county" in response.json["error"]
    assert order_of(db, on_a_call).state is WorkOrderState.RECEIVED

    typed = wang.post(
        body["dispatch_url"], data={"item_code": "C01-041", "department_code": "d-dlq-zjj"}
    )
    assert typed.status_code == 200
    order = order_of(db, on_a_call)
    assert order.department_code == "D-DLQ-ZJJ"
    (record_,) = db.scalars(select(WorkOrderDispatch))
    assert record_.recommended_rank is None  # not one of the suggestions as resolved


def test_unknown_codes_and_a_second_dispatch_are_refused(
    wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    import_demo_directory(db)
    body = record(wang, on_a_call, "路灯不亮", district="城关区")
    assert wang.post(body["dispatch_url"], data={"item_code": "C99-999"}).status_code == 400
    assert wang.post(body["dispatch_url"], data={"department_code": "D-NOPE"}).status_code == 400
    assert wang.post(body["dispatch_url"], data={}).status_code == 400
    ok = wang.post(body["dispatch_url"], data={"department_code": "D-CGQ-CGJ"})
    assert ok.status_code == 200
    again = wang.post(body["dispatch_url"], data={"department_code": "D-CGQ-CGJ"})
    assert again.status_code == 409
    assert "cannot dispatch an order that is dispatched" in again.json["error"].lower()


def test_closing_on_the_spot(wang: FlaskClient, db: Session, on_a_call: str) -> None:
    import_demo_directory(db)
    body = record(wang, on_a_call, "问一下社保卡在哪里办")
    assert wang.post(body["close_url"], data={"answer": ""}).status_code == 400

    response = wang.post(body["close_url"], data={"answer": "告知到政务服务中心社保窗口办理"})

    assert response.status_code == 200
    order = order_of(db, on_a_call)
    assert order.state is WorkOrderState.CLOSED and order.closed_how is ClosedHow.ON_THE_SPOT
    assert order.outcome == "告知到政务服务中心社保窗口办理"


def test_only_whoever_recorded_it_may_dispatch(
    app: Flask, wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    import_demo_directory(db)
    body = record(wang, on_a_call, "路灯不亮", district="城关区")
    add_staff(db, "li", phone_number="+8613900000009")
    other = app.test_client()
    log_in(other, "li")

    response = other.post(body["dispatch_url"], data={"department_code": "D-CGQ-CGJ"})

    assert response.status_code == 403
    assert other.post("/console/work-orders/999999/dispatch", data={}).status_code in (400, 404)


def test_without_a_directory_the_call_is_still_recorded(
    wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    body = record(wang, on_a_call, "路灯不亮")

    assert body["recommendations"] is None
    response = wang.post(body["dispatch_url"], data={"department_code": "D-CGQ-CGJ"})
    assert response.status_code == 409
    assert "No duty directory" in response.json["error"]


def test_dispatched_orders_teach_the_recommender(
    app: Flask, wang: FlaskClient, taker: Staff, db: Session
) -> None:
    """A phrase the directory does not know, dispatched by hand a few times, comes first."""
    import_demo_directory(db)
    phrase = "楼下那家烧烤摊天天半夜吵"
    service = app.extensions[SERVICE_KEY]
    before = service.model().recommender.recommend(phrase).items[0].item.code
    target = "C03-001" if before != "C03-001" else "C03-002"
    for n in range(4):
        call_sid = place_call(db)
        ring(db, taker, call_sid)
        body = record(wang, call_sid, f"{phrase}{'！' * n}", district="城关区")
        ok = wang.post(body["dispatch_url"], data={"item_code": target})
        assert ok.status_code == 200, ok.json

    model = service.relearn()

    assert model.recommender.recommend(phrase).items[0].item.code == target
