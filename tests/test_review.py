"""The reviewers' queues on the real database: the objections (退单) with their suggested
alternatives and the dispatch accuracy KPI, upholding (re-dispatch, resolved for the
order's place) and rejecting them, and the extension requests (延期)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.orders import (
    dispatched_order,
    import_demo_directory,
    liaison,
    shipped_clocks,
)
from tests.support.staff import add_staff, log_in
from tickets import order_flow
from tickets.models import (
    ExtensionRequest,
    ExtensionStatus,
    Objection,
    ObjectionReason,
    ObjectionStatus,
    Role,
    WorkOrder,
    WorkOrderDispatch,
    WorkOrderHistory,
    WorkOrderState,
)
from tickets.order_flow import Recommended

ZJJ = "D-CGQ-ZJJ"  # 城关区住房和城乡建设局: where the order went first
CGJ = "D-CGQ-CGJ"  # 城关区城市管理和综合执法局: where it belongs
ZFB = "D-CGQ-ZFB"  # 城关区人民政府办公室: takes township items when the street is unknown
CLOCKS = shipped_clocks()
SUGGESTED = (
    Recommended(
        "C01-074", "生活垃圾清运不及时", CGJ, "城关区城市管理和综合执法局", ("垃圾", "清运")
    ),
    Recommended("C01-021", "装修垃圾乱堆放", "D-CGQ-BKJD", "城关区八廓街道办事处", ("垃圾",)),
)


@pytest.fixture(autouse=True)
def directory(db: Session) -> None:
    import_demo_directory(db)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


@pytest.fixture
def reviewer(client: FlaskClient, db: Session) -> None:
    add_staff(db, "dawa", Role.REVIEWER, phone_number="+8613900000007")
    log_in(client, "dawa")


def objected_order(
    db: Session, *, accepted: bool = False, **order: object
) -> tuple[WorkOrder, Objection]:
    """An order dispatched to 住建局, which says collecting rubbish is not its duty."""
    work_order = dispatched_order(db, **order)  # type: ignore[arg-type]
    if accepted:
        order_flow.accept(work_order, actor=liaison(ZJJ), session=db, clocks=CLOCKS)
    objection = order_flow.object_to(
        work_order,
        reason_code=ObjectionReason.NOT_OUR_DUTY,
        text="垃圾清运归城管局",
        actor=liaison(ZJJ),
        session=db,
        suggested=SUGGESTED,
    )
    db.commit()
    return work_order, objection


def history(db: Session, order: WorkOrder) -> list[tuple[str, str, str | None, str, str]]:
    db.expire_all()
    rows = db.scalars(
        select(WorkOrderHistory)
        .where(WorkOrderHistory.work_order_id == order.id)
        .order_by(WorkOrderHistory.id)
    )
    return [(r.action, r.actor_role, r.from_state, r.to_state, r.reason) for r in rows]


def fresh(db: Session, row: object) -> object:
    db.expire_all()
    return db.get_one(type(row), row.id)  # type: ignore[attr-defined]


# -- who may ---------------------------------------------------------------------------------


def test_the_queues_are_for_reviewers_and_extensions_for_floor_managers_too(
    app: Flask, client: FlaskClient, db: Session
) -> None:
    order, objection = objected_order(db)
    objection_requests = [
        ("GET", "/review/objections"),
        ("GET", f"/review/objections/{objection.id}"),
        ("POST", f"/review/objections/{objection.id}/uphold"),
        ("POST", f"/review/objections/{objection.id}/reject"),
    ]
    extension_requests = [("GET", "/review/extensions"), ("POST", "/review/extensions/1")]
    for method, path in objection_requests + extension_requests:
        response = client.open(path, method=method)
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"].startswith("/login")

    people = [
        ("wang", Role.CALL_TAKER, {}),
        ("lhamo", Role.DEPARTMENT_LIAISON, {"department_code": ZJJ, "phone_number": None}),
        ("zhuoma", Role.QUALITY_INSPECTOR, {"phone_number": "+8613900000003"}),
        ("tsering", Role.CALLBACK_AGENT, {"phone_number": "+8613900000004"}),
    ]
    for username, role, extra in people:
        add_staff(db, username, role, **extra)
        log_in(client, username)
        for method, path in objection_requests + extension_requests:
            assert client.open(path, method=method).status_code == 403, (username, path)
        client.post("/logout")

    add_staff(db, "manager", Role.FLOOR_MANAGER, phone_number="+8613900000009")
    log_in(client, "manager")
    for method, path in objection_requests:
        assert client.open(path, method=method).status_code == 403, path
    assert client.get("/review/extensions").status_code == 200
    assert objection.status is ObjectionStatus.PENDING
    assert fresh(db, order).state is WorkOrderState.OBJECTED  # type: ignore[attr-defined]
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("review.")}
    assert rules == {
        "/review/objections",
        "/review/objections/<int:objection_id>",
        "/review/objections/<int:objection_id>/uphold",
        "/review/objections/<int:objection_id>/reject",
        "/review/extensions",
        "/review/extensions/<int:request_id>",
        "/review/surveys",
        "/review/surveys/<int:survey_id>",
    }


# -- the queue -------------------------------------------------------------------------------


def test_the_queue_shows_the_objection_with_its_suggestions_and_the_kpi(
    client: FlaskClient, db: Session, reviewer: None
) -> None:
    order, objection = objected_order(db)

    page = client.get("/review/objections").get_data(as_text=True)

    assert "(1 waiting)" in page
    assert order.number in page and order.summary in page
    assert "C01-001 物业服务纠纷 → 城关区住房和城乡建设局 (D-CGQ-ZJJ)" in page
    assert "Not our duty 不属于本单位职责" in page and "垃圾清运归城管局" in page
    assert "Sign-off 签收: overdue by" in page  # dispatched on 24 November 2026 10:00
    assert "C01-074 生活垃圾清运不及时 → 城关区城市管理和综合执法局" in page
    assert "matched: 垃圾 · 清运" in page
    assert "100.0%" in page and "1 of 1 dispatched orders" in page
    assert f'href="/review/objections/{objection.id}"' in page


def test_the_objection_page_resolves_suggestions_for_the_orders_district(
    client: FlaskClient, db: Session, reviewer: None
) -> None:
    _order, objection = objected_order(db)

    page = client.get(f"/review/objections/{objection.id}").get_data(as_text=True)
    assert 'value="C01-074|D-CGQ-CGJ"' in page  # a county item: 城关区's 城管局
    assert f'value="C01-021|{ZFB}"' in page  # a township item, street unknown: 政府办
    assert "政府办: street or township unknown" in page

    searched = client.get(
        f"/review/objections/{objection.id}", query_string={"q": "垃圾桶", "dq": "城管"}
    ).get_data(as_text=True)
    assert 'value="C01-075|D-CGQ-CGJ"' in searched  # 垃圾桶破损缺失
    assert 'value="|D-CITY-CGJ"' in searched and 'value="|D-CGQ-CGJ"' in searched


# -- uphold ----------------------------------------------------------------------------------


def test_upholding_a_suggestion_redispatches_and_moves_the_kpi(
    client: FlaskClient, db: Session, reviewer: None
) -> None:
    order, objection = objected_order(db)

    response = client.post(
        f"/review/objections/{objection.id}/uphold",
        data={"target": "C01-074|", "reason": "确属城管职责"},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/review/objections"
    order = fresh(db, order)  # type: ignore[assignment]
    assert order.state is WorkOrderState.DISPATCHED
    assert order.department_code == CGJ and order.dispatch_count == 2
    assert order.handling_department == "城关区城市管理和综合执法局"
    assert history(db, order)[-1] == (
        "uphold_objection",
        "reviewer",
        "objected",
        "dispatched",
        "确属城管职责",
    )
    second = db.scalars(select(WorkOrderDispatch).where(WorkOrderDispatch.sequence == 2)).one()
    assert (second.item_code, second.department_code) == ("C01-074", CGJ)
    assert second.recommended_rank == 1  # the first of the objection's suggestions
    assert fresh(db, objection).status is ObjectionStatus.UPHELD  # type: ignore[attr-defined]
    page = client.get("/review/objections").get_data(as_text=True)
    assert "re-dispatched to 城关区城市管理和综合执法局" in page
    assert "(0 waiting)" in page and "0.0%" in page and "0 of 1 dispatched orders" in page
    assert "Upheld: re-dispatched" in page  # recently decided


def test_upholding_to_a_department_picked_directly(
    client: FlaskClient, db: Session, reviewer: None
) -> None:
    order, objection = objected_order(db)

    response = client.post(
        f"/review/objections/{objection.id}/uphold",
        data={"target": f"|{CGJ}", "reason": "城管局负责"},
    )

    assert response.status_code == 302
    order = fresh(db, order)  # type: ignore[assignment]
    assert order.department_code == CGJ and order.directory_item_id is None


def test_upholding_to_the_same_department_is_refused_and_writes_nothing(
    client: FlaskClient, db: Session, reviewer: None
) -> None:
    order, objection = objected_order(db)
    before = history(db, order)

    same = client.post(
        f"/review/objections/{objection.id}/uphold",
        data={"target": "C01-001|", "reason": "就是住建局"},
    )

    assert same.status_code == 409
    assert "An upheld objection re-dispatches to another department." in same.get_data(as_text=True)
    assert history(db, order) == before
    assert fresh(db, objection).status is ObjectionStatus.PENDING  # type: ignore[attr-defined]
    assert fresh(db, order).dispatch_count == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("target", "reason", "message"),
    [
        ("C01-074|", "", "Why it is not theirs: required"),
        ("", "x", "Re-dispatch to: required"),
        ("C99-999|", "x", "There is no item C99-999 in the current directory."),
        ("|D-NOPE", "x", "There is no department D-NOPE in the current directory."),
    ],
)
def test_an_unusable_uphold_form_is_400(
    client: FlaskClient, db: Session, reviewer: None, target: str, reason: str, message: str
) -> None:
    order, objection = objected_order(db)
    response = client.post(
        f"/review/objections/{objection.id}/uphold", data={"target": target, "reason": reason}
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert fresh(db, order).state is WorkOrderState.OBJECTED  # type: ignore[attr-defined]


def test_an_item_that_does_not_resolve_for_an_unknown_county_is_400(
    client: FlaskClient, db: Session, reviewer: None
) -> None:
    order, objection = objected_order(db)
    order.district = None
    db.commit()

    page = client.get(f"/review/objections/{objection.id}").get_data(as_text=True)
    assert "does not resolve for an unknown county: pick a department" in page
    response = client.post(
        f"/review/objections/{objection.id}/uphold", data={"target": "C01-074|", "reason": "x"}
    )
    assert response.status_code == 400
    assert "Item C01-074 does not resolve for an unknown county" in response.get_data(as_text=True)


# -- reject ----------------------------------------------------------------------------------


def test_rejecting_sends_the_order_back_with_its_clock_running(
    client: FlaskClient, db: Session, reviewer: None
) -> None:
    order, objection = objected_order(db, accepted=True)
    due = order.due_at

    assert client.post(f"/review/objections/{objection.id}/reject", data={}).status_code == 400
    response = client.post(
        f"/review/objections/{objection.id}/reject", data={"reason": "小区物业归住建局管"}
    )

    assert response.status_code == 302
    order = fresh(db, order)  # type: ignore[assignment]
    assert order.state is WorkOrderState.ACCEPTED and order.department_code == ZJJ
    assert order.due_at == due
    assert history(db, order)[-1][:4] == ("reject_objection", "reviewer", "objected", "accepted")
    page = client.get("/review/objections").get_data(as_text=True)
    assert "its clocks still running" in page and "100.0%" in page


def test_deciding_twice_is_409(client: FlaskClient, db: Session, reviewer: None) -> None:
    order, objection = objected_order(db)
    client.post(f"/review/objections/{objection.id}/reject", data={"reason": "属住建局"})
    before = history(db, order)

    again = client.post(f"/review/objections/{objection.id}/reject", data={"reason": "再次"})
    assert again.status_code == 409
    assert "This objection was already rejected." in again.get_data(as_text=True)
    upheld = client.post(
        f"/review/objections/{objection.id}/uphold", data={"target": f"|{CGJ}", "reason": "x"}
    )
    assert upheld.status_code == 409
    assert history(db, order) == before
    page = client.get(f"/review/objections/{objection.id}").get_data(as_text=True)
    assert 'id="uphold"' not in page and "Rejected: back to the department" in page


def test_a_missing_objection_is_404(client: FlaskClient, reviewer: None) -> None:
    assert client.get("/review/objections/999999").status_code == 404
    assert client.post("/review/objections/999999/reject", data={"reason": "x"}).status_code == 404


# -- extensions ------------------------------------------------------------------------------


def test_the_extension_queue_shows_the_new_due_date_and_approving_moves_it(
    client: FlaskClient, db: Session, reviewer: None
) -> None:
    order = dispatched_order(db)
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    request = order_flow.request_extension(
        order, working_days=3, reason="需要协调多个部门", actor=zjj, session=db
    )
    db.commit()

    page = client.get("/review/extensions").get_data(as_text=True)
    assert "(1 waiting)" in page and order.number in page and "需要协调多个部门" in page
    assert "2026-12-03 10:00" in page and "2026-12-08 10:00" in page  # now, if approved

    response = client.post(
        f"/review/extensions/{request.id}", data={"decision": "approve", "reason": "同意"}
    )
    assert response.status_code == 302
    order = fresh(db, order)  # type: ignore[assignment]
    assert CLOCKS.local(order.due_at).strftime("%Y-%m-%d %H:%M") == "2026-12-08 10:00"
    extension = fresh(db, request)
    assert extension.status is ExtensionStatus.APPROVED  # type: ignore[attr-defined]

    again = client.post(
        f"/review/extensions/{request.id}", data={"decision": "approve", "reason": "同意"}
    )
    assert again.status_code == 409
    assert "already approved" in again.get_data(as_text=True)
    assert [row[0] for row in history(db, order)].count("approve_extension") == 1
    bad = client.post(f"/review/extensions/{request.id}", data={"decision": "maybe", "reason": "x"})
    assert bad.status_code == 400
    assert client.post("/review/extensions/999999", data={}).status_code == 404
    assert db.scalars(select(ExtensionRequest)).one().due_after is not None
