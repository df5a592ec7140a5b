"""The department portal (部门工作台) as a liaison's browser uses it, on the real database:
only the department's own orders, on every route; the moves through the pages; the
refusals of the lifecycle; confidential orders; CSRF."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from tests.support.orders import (
    FLOOR_MANAGER,
    REVIEWER,
    department,
    dispatched_order,
    import_demo_directory,
    liaison,
    received_order,
    shipped_clocks,
)
from tests.support.staff import PASSWORD, add_staff, csrf_token_of, log_in
from tickets import order_flow
from tickets.db import utcnow
from tickets.models import (
    ExtensionRequest,
    ExtensionStatus,
    Objection,
    ObjectionReason,
    ObjectionStatus,
    Role,
    Staff,
    WorkOrder,
    WorkOrderHistory,
    WorkOrderState,
)
from webapp.portal import views

MINE = "D-CGQ-ZJJ"  # 城关区住房和城乡建设局
THEIRS = "D-DZQ-ZJJ"  # 达孜区住房和城乡建设局
# Every field of every form, valid: a refusal is then about the order, never the form.
VALID = {
    "accept_note": "签收",
    "contact_note": "已电话联系市民，约定明天上门",
    "progress_note": "已联系物业公司",
    "outcome": "物业公司已清理垃圾",
    "working_days": "3",
    "extension_reason": "需要协调多个部门",
    "reason_code": ObjectionReason.NOT_OUR_DUTY.value,
    "objection_text": "属于街道办职责",
}
POSTS = ("accept", "contact", "progress", "answer", "extension", "objection")


def portal_requests(order_id: int) -> list[tuple[str, str]]:
    return [("GET", f"/portal/orders/{order_id}")] + [
        ("POST", f"/portal/orders/{order_id}/{name}") for name in POSTS
    ]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


@pytest.fixture
def directory(db: Session) -> None:
    import_demo_directory(db)


@pytest.fixture
def pema(db: Session, directory: None) -> Staff:
    """The liaison of 城关区住建局."""
    return add_staff(
        db,
        "pema",
        Role.DEPARTMENT_LIAISON,
        languages=(),
        phone_number=None,
        display_name="Pema 白玛",
        department_code=MINE,
    )


@pytest.fixture
def browser(client: FlaskClient, pema: Staff) -> FlaskClient:
    log_in(client, "pema")
    return client


def page(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, path
    return response.get_data(as_text=True)


def history_count(db: Session, order: WorkOrder) -> int:
    return db.scalar(
        select(func.count())
        .select_from(WorkOrderHistory)
        .where(WorkOrderHistory.work_order_id == order.id)
    )


def reloaded(db: Session, order: WorkOrder) -> WorkOrder:
    db.expire_all()
    return db.get_one(WorkOrder, order.id)


def post(client: FlaskClient, order: WorkOrder, action: str, **data: str):
    return client.post(f"/portal/orders/{order.id}/{action}", data=data)


# -- who sees what ---------------------------------------------------------------------------


def test_the_list_shows_the_departments_orders_only(browser: FlaskClient, db: Session) -> None:
    mine = dispatched_order(db, summary="小区垃圾堆了一个星期没人清")
    theirs = dispatched_order(db, department_code=THEIRS, summary="达孜区小区物业不管事")
    received = received_order(db, summary="还没派单的工单")

    listed = page(browser, "/portal/") + page(browser, "/portal")
    every_tab = "".join(page(browser, f"/portal/?tab={tab}") for tab in views.TABS)

    assert mine.number in listed
    assert "城关区住房和城乡建设局" in listed
    for other in (theirs, received):
        assert other.number not in listed + every_tab
        assert f"/portal/orders/{other.id}" not in listed + every_tab


def test_another_departments_order_is_404_on_every_route_and_nothing_is_written(
    browser: FlaskClient, db: Session
) -> None:
    theirs = dispatched_order(db, department_code=THEIRS)
    before = history_count(db, theirs)

    for method, path in portal_requests(theirs.id):
        response = browser.open(path, method=method, data=VALID)
        assert response.status_code == 404, (method, path)
        assert theirs.number not in response.get_data(as_text=True)

    assert history_count(db, theirs) == before
    assert reloaded(db, theirs).state is WorkOrderState.DISPATCHED


def test_an_order_never_dispatched_or_none_at_all_is_404_on_every_route(
    browser: FlaskClient, db: Session
) -> None:
    received = received_order(db)
    for order_id in (received.id, received.id + 1000):
        for method, path in portal_requests(order_id):
            assert browser.open(path, method=method, data=VALID).status_code == 404, path
    assert reloaded(db, received).state is WorkOrderState.RECEIVED


def test_an_order_objected_to_and_sent_elsewhere_leaves_the_list_and_is_404(
    browser: FlaskClient, db: Session
) -> None:
    order = dispatched_order(db)
    objection = order_flow.object_to(
        order,
        reason_code=ObjectionReason.WRONG_AREA,
        text="在达孜区",
        actor=liaison(MINE),
        session=db,
    )
    order_flow.uphold_objection(
        objection,
        item=None,
        department=department(db, THEIRS),
        reason="确属达孜区",
        actor=REVIEWER,
        session=db,
        clocks=shipped_clocks(),
    )
    db.commit()

    assert order.number not in page(browser, "/portal/?tab=objected")
    for method, path in portal_requests(order.id):
        assert browser.open(path, method=method, data=VALID).status_code == 404, path


@pytest.mark.parametrize("role", [Role.CALL_TAKER, Role.REVIEWER])
def test_other_roles_are_403_on_every_route(
    app: Flask, client: FlaskClient, db: Session, directory: None, role: Role
) -> None:
    order = dispatched_order(db)
    add_staff(db, "someone", role, phone_number="+8613900000009")
    log_in(client, "someone")

    assert client.get("/portal/").status_code == 403
    for method, path in portal_requests(order.id):
        assert client.open(path, method=method, data=VALID).status_code == 403, path
    assert reloaded(db, order).state is WorkOrderState.DISPATCHED
    # and no portal route was left out of the lists these tests go through
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("portal.")}
    assert rules == {
        "/portal/",
        "/portal/orders/<int:order_id>",
        *(f"/portal/orders/<int:order_id>/{name}" for name in POSTS),
    }


def test_the_anonymous_are_sent_to_the_login(
    client: FlaskClient, db: Session, directory: None
) -> None:
    order = dispatched_order(db)
    for method, path in [("GET", "/portal/"), *portal_requests(order.id)]:
        response = client.open(path, method=method, data=VALID)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"]


# -- the list ----------------------------------------------------------------------------------


def test_the_tabs_sort_the_orders_by_where_they_stand(browser: FlaskClient, db: Session) -> None:
    to_sign = dispatched_order(db, summary="待签收的工单")
    in_hand = dispatched_order(db, summary="办理中的工单")
    order_flow.accept(in_hand, actor=liaison(MINE), session=db, clocks=shipped_clocks())
    objected = dispatched_order(db, summary="退单的工单")
    order_flow.object_to(
        objected,
        reason_code=ObjectionReason.NOT_OUR_DUTY,
        text="不是我们的",
        actor=liaison(MINE),
        session=db,
    )
    answered = dispatched_order(db, summary="已反馈的工单")
    order_flow.accept(answered, actor=liaison(MINE), session=db, clocks=shipped_clocks())
    order_flow.answer(answered, outcome="已处理", actor=liaison(MINE), session=db)
    db.commit()

    tabs = {tab: page(browser, f"/portal/?tab={tab}") for tab in views.TABS}
    expected = {"to_sign": to_sign, "in_hand": in_hand, "objected": objected, "done": answered}
    for tab, order in expected.items():
        assert order.number in tabs[tab], tab
        others = [o for t, o in expected.items() if t != tab]
        assert not any(other.number in tabs[tab] for other in others), tab
    assert to_sign.number in page(browser, "/portal/")  # the first tab is the default
    assert re.search(r"In hand 办理中 <span class=\"count\">1</span>", tabs["done"])


def test_a_row_shows_kind_flags_summary_state_and_the_next_deadline(
    browser: FlaskClient, db: Session
) -> None:
    overdue = dispatched_order(db, summary="很久以前派的单" * 8, now=utcnow() - timedelta(days=30))
    order_flow.supervise(overdue, note="超期督办", actor=FLOOR_MANAGER, session=db)
    fresh = dispatched_order(db, summary="刚派的单", now=utcnow() - timedelta(minutes=5))
    db.commit()

    listed = page(browser, "/portal/")
    old_row = re.search(rf'<tr id="order-{overdue.id}".*?</tr>', listed, re.S).group(0)
    new_row = re.search(rf'<tr id="order-{fresh.id}".*?</tr>', listed, re.S).group(0)

    assert "Complaint or report 投诉举报" in old_row
    assert "督办" in old_row and "督办" not in new_row
    assert "overdue by" in old_row and 'class="overdue"' in old_row
    assert "签收" in new_row and "left" in new_row
    assert "很久以前派的单很久以前派的单" in old_row and "…" in old_row  # cut short
    assert "Dispatched, to sign off 待签收" in new_row
    assert listed.index(f"order-{fresh.id}") < listed.index(f"order-{overdue.id}")  # newest


def test_in_hand_puts_the_overdue_first_then_the_newest(browser: FlaskClient, db: Session) -> None:
    now = utcnow()
    orders = {
        "old_overdue": dispatched_order(db, summary="超期的", now=now - timedelta(days=40)),
        "newest": dispatched_order(db, summary="最新的", now=now - timedelta(minutes=10)),
        "yesterday": dispatched_order(db, summary="昨天的", now=now - timedelta(days=1)),
    }
    for order in orders.values():
        order_flow.accept(order, actor=liaison(MINE), session=db, clocks=shipped_clocks())
        order_flow.record_contact(
            order, note="已联系", actor=liaison(MINE), session=db, clocks=shipped_clocks()
        )
    db.commit()

    listed = page(browser, "/portal/?tab=in_hand")
    places = [listed.index(f'id="order-{orders[name].id}"') for name in orders]
    assert places == sorted(places)


def test_the_list_is_paginated(
    browser: FlaskClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    now = utcnow()
    orders = [
        dispatched_order(db, summary=f"第{n}单", now=now - timedelta(hours=n)) for n in range(3)
    ]

    first, second = page(browser, "/portal/"), page(browser, "/portal/?page=2")
    beyond = page(browser, "/portal/?page=99")

    assert orders[0].number in first and orders[1].number in first
    assert orders[2].number not in first and "Page 1 of 2" in first
    assert orders[2].number in second and orders[0].number not in second
    assert orders[2].number in beyond  # past the end: the last page


# -- the order and its moves ---------------------------------------------------------------------


def test_accept_contact_progress_answer_through_the_pages(
    browser: FlaskClient, db: Session, pema: Staff
) -> None:
    order = dispatched_order(db)
    shown = page(browser, f"/portal/orders/{order.id}")
    assert order.number in shown and "物业服务纠纷" in shown and "城关区住房和城乡建设局" in shown
    assert 'id="form-accept"' in shown and 'id="form-objection"' in shown
    assert 'id="form-answer"' not in shown and 'id="form-extension"' not in shown

    steps = [
        ("accept", {"accept_note": "收到"}, WorkOrderState.ACCEPTED, "Signed off 已签收."),
        ("contact", {"contact_note": VALID["contact_note"]}, WorkOrderState.IN_PROGRESS, "已响应"),
        ("progress", {"progress_note": VALID["progress_note"]}, WorkOrderState.IN_PROGRESS, ""),
        ("answer", {"outcome": VALID["outcome"]}, WorkOrderState.ANSWERED, "已反馈"),
    ]
    for action, data, state, said in steps:
        response = post(browser, order, action, **data)
        assert response.status_code == 302, (action, response.get_data(as_text=True))
        assert response.headers["Location"].endswith(f"/portal/orders/{order.id}")
        assert reloaded(db, order).state is state
        shown = page(browser, f"/portal/orders/{order.id}")
        assert said in shown

    done = reloaded(db, order)
    assert done.outcome == VALID["outcome"]
    assert done.accepted_at and done.contacted_at and done.answered_at
    rows = [row for row in done.history if row.actor_role == Role.DEPARTMENT_LIAISON.value]
    assert [row.action for row in rows] == ["accept", "contact", "progress", "answer"]
    assert {row.actor for row in rows} == {f"staff:{pema.id}"}
    history = re.search(r'<table class="list compact" id="history">.*?</table>', shown, re.S)
    assert history is not None
    for words in (
        "Pema 白玛",
        "Department liaison 部门联络员",
        "Signed off 签收",
        "Contacted the citizen 响应",
        VALID["contact_note"],
        VALID["progress_note"],
        VALID["outcome"],
        "Accepted 已签收 → In progress 办理中",
        "In progress 办理中 → Answered 已反馈",
    ):
        assert words in history.group(0), words
    assert 'id="form-' not in shown  # nothing left for the department to do
    assert "met on time" in shown  # the sign-off clock
    assert order.number in page(browser, "/portal/?tab=done")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("answer", "Cannot answer an order that is dispatched (only when accepted, in_progress)."),
        ("contact", "Cannot contact an order that is dispatched (only when accepted)."),
        ("progress", "Cannot progress an order that is dispatched (only when in_progress)."),
        (
            "extension",
            "Cannot request extension an order that is dispatched"
            " (only when accepted, in_progress).",
        ),
    ],
)
def test_an_illegal_move_is_409_with_the_machines_message_and_nothing_written(
    browser: FlaskClient, db: Session, action: str, message: str
) -> None:
    order = dispatched_order(db)
    before = history_count(db, order)

    response = post(browser, order, action, **VALID)

    assert response.status_code == 409
    assert message in response.get_data(as_text=True)
    assert history_count(db, order) == before
    assert reloaded(db, order).state is WorkOrderState.DISPATCHED
    assert db.scalar(select(func.count()).select_from(ExtensionRequest)) == 0


def test_signing_off_twice_is_409(browser: FlaskClient, db: Session) -> None:
    order = dispatched_order(db)
    assert post(browser, order, "accept").status_code == 302
    again = post(browser, order, "accept")
    assert again.status_code == 409
    assert "Cannot accept an order that is accepted" in again.get_data(as_text=True)
    assert history_count(db, order) == 3  # received, dispatched, accepted once
    assert [row.action for row in reloaded(db, order).history].count("accept") == 1


@pytest.mark.parametrize(
    ("action", "data", "message"),
    [
        ("contact", {"contact_note": "  "}, "Say how and when you reached the citizen."),
        ("progress", {}, "Write the progress note."),
        ("answer", {"outcome": ""}, "Write the outcome for the citizen."),
    ],
)
def test_a_move_without_its_text_is_400_naming_the_field(
    browser: FlaskClient, db: Session, action: str, data: dict[str, str], message: str
) -> None:
    order = dispatched_order(db)
    order_flow.accept(order, actor=liaison(MINE), session=db, clocks=shipped_clocks())
    if action != "contact":
        order_flow.record_contact(
            order, note="已联系", actor=liaison(MINE), session=db, clocks=shipped_clocks()
        )
    db.commit()
    before = history_count(db, order)

    response = post(browser, order, action, **data)

    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert history_count(db, order) == before


def test_an_extension_request(browser: FlaskClient, db: Session) -> None:
    order = dispatched_order(db)
    order_flow.accept(order, actor=liaison(MINE), session=db, clocks=shipped_clocks())
    db.commit()

    missing = post(browser, order, "extension", working_days="3", extension_reason="")
    too_long = post(browser, order, "extension", working_days="31", extension_reason="久")
    no_days = post(browser, order, "extension", extension_reason="需要协调")
    assert missing.status_code == too_long.status_code == no_days.status_code == 400
    missing_page = missing.get_data(as_text=True)
    assert "Give the reason for the extension." in missing_page
    assert "Reason 延期理由" in missing_page
    assert "1 to 30 working days." in too_long.get_data(as_text=True)
    assert "Say how many working days." in no_days.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(ExtensionRequest)) == 0

    asked = post(browser, order, "extension", working_days="5", extension_reason="需要协调多个部门")
    assert asked.status_code == 302
    request = db.scalars(select(ExtensionRequest)).one()
    assert (request.working_days, request.reason) == (5, "需要协调多个部门")
    assert request.status is ExtensionStatus.PENDING
    shown = page(browser, f"/portal/orders/{order.id}")
    assert "waiting for a reviewer's decision" in shown
    assert 'id="form-extension"' not in shown  # one at a time

    again = post(browser, order, "extension", working_days="2", extension_reason="再延")
    assert again.status_code == 409
    assert "already waiting for a decision" in again.get_data(as_text=True)


def test_an_objection(browser: FlaskClient, db: Session) -> None:
    order = dispatched_order(db)

    no_text = post(browser, order, "objection", reason_code="not_our_duty", objection_text="")
    bad_code = post(browser, order, "objection", reason_code="because", objection_text="不是")
    assert no_text.status_code == bad_code.status_code == 400
    assert "Explain the objection." in no_text.get_data(as_text=True)
    assert "Not a valid choice" in bad_code.get_data(as_text=True)
    assert reloaded(db, order).state is WorkOrderState.DISPATCHED

    form = page(browser, f"/portal/orders/{order.id}")
    assert "不属于本单位职责 Not our duty" in form and "信息不全，无法办理" in form

    sent = post(
        browser, order, "objection", reason_code="wrong_area", objection_text="在达孜区，不在城关区"
    )
    assert sent.status_code == 302
    objection = db.scalars(select(Objection)).one()
    assert objection.reason_code is ObjectionReason.WRONG_AREA
    assert objection.status is ObjectionStatus.PENDING
    assert reloaded(db, order).state is WorkOrderState.OBJECTED
    shown = page(browser, f"/portal/orders/{order.id}")
    assert "不在本辖区 Not in our area" in shown and "在达孜区，不在城关区" in shown
    assert 'id="form-' not in shown  # the reviewer decides now
    assert order.number in page(browser, "/portal/?tab=objected")


# -- confidential orders ---------------------------------------------------------------------


def test_a_confidential_orders_number_is_nowhere_on_the_pages(
    browser: FlaskClient, db: Session
) -> None:
    number = "+8613812345678"
    secret = dispatched_order(db, confidential=True, caller_number=number, summary="保密的投诉")
    open_one = dispatched_order(db, caller_number="+8613887654321", summary="普通的投诉")

    listed = page(browser, "/portal/")
    shown = page(browser, f"/portal/orders/{secret.id}")
    assert secret.number in listed and secret.number in shown
    for html in (listed, shown):
        assert number not in html
        assert "13812345678" not in html and "*5678" not in html
    assert "保密 confidential" in shown

    other = page(browser, f"/portal/orders/{open_one.id}")
    assert "+8613887654321" in other
    assert "+8613887654321" not in listed  # the list shows no numbers at all


# -- CSRF ------------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused(app: Flask, db: Session, pema: Staff) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    token = csrf_token_of(client, "/login")
    client.post("/login", data={"username": "pema", "password": PASSWORD, "csrf_token": token})
    order = dispatched_order(db)

    refused = post(client, order, "accept", accept_note="收到")
    assert refused.status_code == 400
    assert reloaded(db, order).state is WorkOrderState.DISPATCHED

    token = csrf_token_of(client, f"/portal/orders/{order.id}")
    accepted = post(client, order, "accept", accept_note="收到", csrf_token=token)
    assert accepted.status_code == 302
    assert reloaded(db, order).state is WorkOrderState.ACCEPTED


def test_someone_else_changing_the_order_first_is_409_and_nothing_is_written(
    browser: FlaskClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = dispatched_order(db)

    def lost_the_race(*_args: object, **_kwargs: object) -> None:
        raise StaleDataError("work_orders row_version")

    monkeypatch.setattr(order_flow, "accept", lost_the_race)
    response = post(browser, order, "accept", accept_note="收到")

    assert response.status_code == 409
    assert "Someone else changed this work order just now." in response.get_data(as_text=True)
    assert reloaded(db, order).state is WorkOrderState.DISPATCHED
