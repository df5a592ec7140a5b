"""Issue 4's "done when", through the pages people use: a call-taker records a call and
dispatches it from the console's suggestions; the department signs off, objects; a
reviewer upholds the objection and the order goes to the right department, which signs
off, contacts the citizen and answers. The SMS go out when the working-day clocks say
(the citizen's number at once, a reminder before the new department's sign-off
deadline), and every step is in the order's history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from tests.support.orders import import_demo_directory
from tests.support.sms import RecordingSmsSender
from tests.support.staff import add_staff, log_in
from tests.test_console_live import CALLER, client, on_a_call, post, taker, wang
from tickets.models import (
    Objection,
    Role,
    SmsMessage,
    SmsPurpose,
    SmsStatus,
    WorkOrder,
    WorkOrderState,
)
from webapp.sms import SMS_SENDER_KEY, run_sweep

__all__ = ["client", "on_a_call", "taker", "wang"]  # the fixtures this module uses

ZJJ, CGJ = "D-CGQ-ZJJ", "D-CGQ-CGJ"  # 城关区住建局, 城关区城管局


@pytest.fixture
def sms(app: Flask) -> RecordingSmsSender:
    sender = RecordingSmsSender()
    app.extensions[SMS_SENDER_KEY] = sender
    return sender


def person(app: Flask, db: Session, username: str, *roles: Role, **details: str) -> FlaskClient:
    add_staff(db, username, *roles, phone_number=None, **details)
    browser = app.test_client()
    assert log_in(browser, username).status_code == 302
    return browser


def order_of(db: Session, call_sid: str) -> WorkOrder:
    db.expire_all()
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == call_sid))
    assert order is not None
    return order


def ok(response: TestResponse) -> None:
    assert response.status_code in (200, 302), response.get_data(as_text=True)[:500]


def test_record_dispatch_object_overrule_answer_with_reminders_and_history(
    app: Flask, wang: FlaskClient, db: Session, on_a_call: str, sms: RecordingSmsSender
) -> None:
    import_demo_directory(db)
    zjj = person(app, db, "liaison.zjj", Role.DEPARTMENT_LIAISON, department_code=ZJJ)
    cgj = person(app, db, "liaison.cgj", Role.DEPARTMENT_LIAISON, department_code=CGJ)
    reviewer = person(app, db, "reviewer", Role.REVIEWER)

    # 1. The call-taker records the call and gets three suggestions; they pick 住建局
    # (物业) by hand, the kind of mis-dispatch the objection path exists for.
    recorded = post(
        wang,
        on_a_call,
        "work-order",
        kind="complaint",
        summary="楼下饭馆油烟直排，窗户都不敢开",
        district="城关区",
    )
    assert recorded.status_code == 201
    suggestions = recorded.json["recommendations"]["items"]
    assert len(suggestions) == 3
    assert suggestions[0]["department_code"] == CGJ
    assert "C02-001" in [s["item_code"] for s in suggestions]  # 餐饮油烟扰民
    dispatched = wang.post(
        recorded.json["dispatch_url"], data={"item_code": "C01-001", "department_code": ZJJ}
    )
    assert dispatched.status_code == 200
    order = order_of(db, on_a_call)
    assert order.state is WorkOrderState.DISPATCHED and order.department_code == ZJJ

    # 2. The worker's sweep texts the citizen the order's number at once.
    run_sweep(app, now_fn=lambda: order.dispatched_at + timedelta(seconds=5))
    assert [(text.to, order.number in text.body) for text in sms.sent] == [(CALLER, True)]

    # 3. 住建局 signs off, then objects: not their duty. The alternatives go with it.
    ok(zjj.post(f"/portal/orders/{order.id}/accept", data={}))
    ok(
        zjj.post(
            f"/portal/orders/{order.id}/objection",
            data={"reason_code": "not_our_duty", "objection_text": "餐饮油烟归城管部门"},
        )
    )
    assert order_of(db, on_a_call).state is WorkOrderState.OBJECTED
    assert cgj.get(f"/portal/orders/{order.id}").status_code == 404  # not theirs yet

    # 4. The reviewer sees it with the suggestions and upholds it: re-dispatch to 城管局.
    queue = reviewer.get("/review/objections").get_data(as_text=True)
    assert order.number in queue and "餐饮油烟扰民" in queue
    objection = db.scalar(select(Objection).where(Objection.work_order_id == order.id))
    assert objection is not None
    assert any(s["department_code"] == CGJ for s in objection.suggested)
    ok(
        reviewer.post(
            f"/review/objections/{objection.id}/uphold",
            data={"target": "C02-001|", "reason": "餐饮油烟属城管执法职责"},
        )
    )
    order = order_of(db, on_a_call)
    assert order.state is WorkOrderState.DISPATCHED and order.department_code == CGJ
    assert zjj.get(f"/portal/orders/{order.id}").status_code == 404  # no longer theirs

    # 5. Before the new sign-off deadline the sweep reminds 城管局's contact, once.
    cgj_contact = order.department.sms_contact_number
    (before,) = [
        row
        for row in db.scalars(
            select(SmsMessage).where(
                SmsMessage.work_order_id == order.id,
                SmsMessage.purpose == SmsPurpose.REMINDER,
                SmsMessage.to_number == cgj_contact,
            )
        )
        if row.details["clock"] == "signoff"
    ]
    assert before.due_at < order.signoff_due_at
    run_sweep(app, now_fn=lambda: before.due_at - timedelta(seconds=1))
    assert [text.to for text in sms.sent] == [CALLER]  # not yet
    run_sweep(app, now_fn=lambda: before.due_at + timedelta(seconds=1))
    run_sweep(app, now_fn=lambda: before.due_at + timedelta(seconds=2))  # a second worker
    reminders = [text for text in sms.sent if text.to == cgj_contact]
    assert len(reminders) == 1 and order.number in reminders[0].body

    # 6. 城管局 signs off, contacts the citizen, answers. Their reminders stop.
    ok(cgj.post(f"/portal/orders/{order.id}/accept", data={}))
    ok(cgj.post(f"/portal/orders/{order.id}/contact", data={"contact_note": "已电话联系"}))
    ok(cgj.post(f"/portal/orders/{order.id}/answer", data={"outcome": "已责令饭馆安装净化器"}))
    order = order_of(db, on_a_call)
    assert order.state is WorkOrderState.ANSWERED
    db.expire_all()
    left = db.scalars(
        select(SmsMessage.status).where(
            SmsMessage.work_order_id == order.id, SmsMessage.status == SmsStatus.PENDING
        )
    ).all()
    assert left == []

    # 7. Every step is in the history, with who and in which role.
    steps = [(row.action, row.actor_role) for row in order.history]
    assert steps == [
        ("receive", "call_taker"),
        ("dispatch", "call_taker"),
        ("accept", "department_liaison"),
        ("object", "department_liaison"),
        ("uphold_objection", "reviewer"),
        ("accept", "department_liaison"),
        ("contact", "department_liaison"),
        ("answer", "department_liaison"),
    ]
    page = reviewer.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "餐饮油烟属城管执法职责" in page and "已责令饭馆安装净化器" in page
