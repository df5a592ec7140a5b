"""The hotline staff's order pages, as a browser uses them on the real database: who may
see them, the search, an order with everything about it, the side paths (remind,
supervise, close, reopen, the extension decision), refusals that write nothing, and the
multi-party call placed through the gateway (the others rung once the member of staff
answers, as their signed status callback says)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.gateway import ConsoleGateway, GatewayUnavailable, PlacedCall, TwilioGateway
from ivr.order_conference import DIAL_OTHERS, HOST_MISSED, LEG, LEG_ROLE, PLANNED
from tests.conftest import AUTH_TOKEN, HOTLINE_NUMBER, PUBLIC_BASE_URL, make_settings
from tests.support.orders import (
    CALLER,
    TUESDAY_10AM,
    department,
    dispatched_order,
    import_demo_directory,
    item,
    liaison,
    received_order,
    shipped_clocks,
)
from tests.support.staff import PASSWORD, add_staff, csrf_token_of, log_in
from tests.support.webhooks import TwilioSender, call_params
from tickets import order_flow
from tickets import staff as staff_store
from tickets.models import (
    Call,
    CallDirection,
    CallEvent,
    CallTakerState,
    ClosedHow,
    ExtensionRequest,
    ExtensionStatus,
    Role,
    Staff,
    WorkOrder,
    WorkOrderHistory,
    WorkOrderState,
)
from tickets.order_flow import Recommended
from webapp import create_app
from webapp.settings import Settings

ZJJ = "D-CGQ-ZJJ"  # 城关区住房和城乡建设局
CGJ = "D-CGQ-CGJ"  # 城关区城市管理和综合执法局
ZJJ_PHONE = "+868916706673"
CGJ_PHONE = "+868913925837"
CLOCKS = shipped_clocks()


@pytest.fixture(autouse=True)
def directory(db: Session) -> None:
    import_demo_directory(db)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


def logged_in(client: FlaskClient, db: Session, username: str, *roles: Role, **kw) -> Staff:
    staff = add_staff(db, username, *roles, **kw)
    log_in(client, username)
    return staff


def history(db: Session, order: WorkOrder) -> list[tuple[str, str, str | None, str]]:
    db.expire_all()
    rows = db.scalars(
        select(WorkOrderHistory)
        .where(WorkOrderHistory.work_order_id == order.id)
        .order_by(WorkOrderHistory.id)
    )
    return [(row.action, row.actor_role, row.from_state, row.to_state) for row in rows]


def fresh(db: Session, order: WorkOrder) -> WorkOrder:
    db.expire_all()
    return db.get_one(WorkOrder, order.id)


def answered_order(db: Session) -> WorkOrder:
    order = dispatched_order(db)
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    order_flow.answer(order, outcome="物业已清理垃圾", actor=zjj, session=db)
    order_flow.start_callback(order, actor=order_flow.SYSTEM_WORKER, session=db)
    db.commit()
    return order


# -- who may ---------------------------------------------------------------------------------


def order_requests(order_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", "/orders"),
        ("GET", f"/orders/{order_id}"),
        ("POST", f"/orders/{order_id}/remind"),
        ("POST", f"/orders/{order_id}/supervise"),
        ("POST", f"/orders/{order_id}/close"),
        ("POST", f"/orders/{order_id}/reopen"),
        ("POST", f"/orders/{order_id}/conference"),
    ]


def test_order_pages_are_for_hotline_staff_only(
    app: Flask, client: FlaskClient, db: Session
) -> None:
    order = dispatched_order(db)
    for method, path in order_requests(order.id):
        response = client.open(path, method=method)
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"].startswith("/login")

    outsiders = [
        ("lhamo", Role.DEPARTMENT_LIAISON, {"department_code": ZJJ}),
        ("editor", Role.KNOWLEDGE_EDITOR, {}),
        ("admin", Role.ADMINISTRATOR, {}),
    ]
    for username, role, extra in outsiders:
        logged_in(client, db, username, role, phone_number=None, **extra)
        for method, path in order_requests(order.id):
            assert client.open(path, method=method).status_code == 403, (username, method, path)
        client.post("/logout")
    assert history(db, order) == [
        ("receive", "call_taker", None, "received"),
        ("dispatch", "call_taker", "received", "dispatched"),
    ]
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("orders.")}
    assert rules == {  # and no order route was left out of the list above
        "/orders",
        "/orders/<int:order_id>",
        "/orders/<int:order_id>/<any(remind, supervise, close, reopen):move>",
        "/orders/<int:order_id>/conference",
    }


def test_every_hotline_role_reads_the_orders(client: FlaskClient, db: Session) -> None:
    order = dispatched_order(db)
    roles = [
        Role.CALL_TAKER,
        Role.REVIEWER,
        Role.FLOOR_MANAGER,
        Role.CALLBACK_AGENT,
        Role.QUALITY_INSPECTOR,
    ]
    for position, role in enumerate(roles):
        logged_in(client, db, f"person{position}", role, phone_number=f"+861390000010{position}")
        assert order.number in client.get("/orders").get_data(as_text=True)
        assert client.get(f"/orders/{order.id}").status_code == 200
        assert client.get("/orders/999999").status_code == 404
        client.post("/logout")


# -- the search ------------------------------------------------------------------------------


def test_the_search_filters_by_number_state_department_and_caller(
    client: FlaskClient, db: Session
) -> None:
    first = dispatched_order(db)
    second = received_order(db, summary="路灯不亮", caller_number="+8613800000002")
    logged_in(client, db, "wang", Role.CALL_TAKER)

    def found(**query: str) -> set[str]:
        page = client.get("/orders", query_string=query).get_data(as_text=True)
        return {number for number in (first.number, second.number) if number in page}

    assert found() == {first.number, second.number}
    assert found(number=second.number[-6:]) == {second.number}
    assert found(state="received") == {second.number}
    assert found(department=ZJJ) == {first.number}
    assert found(department="住房和城乡") == {first.number}
    assert found(caller="+8613800000002") == {second.number}
    assert found(caller="13800000001") == {first.number}  # national form, as typed
    page = client.get("/orders").get_data(as_text=True)
    assert CALLER in page  # a call-taker sees numbers in full


def test_a_quality_inspector_sees_masked_numbers_and_cannot_search_by_them(
    client: FlaskClient, db: Session
) -> None:
    first = dispatched_order(db)
    second = received_order(db, summary="路灯不亮", caller_number="+8613800000002")
    logged_in(client, db, "zhuoma", Role.QUALITY_INSPECTOR)

    page = client.get("/orders", query_string={"caller": "+8613800000002"}).get_data(as_text=True)
    assert first.number in page and second.number in page  # the filter is not applied
    assert CALLER not in page and "+86*******0001" in page
    assert 'name="caller"' not in page
    assert CALLER not in client.get(f"/orders/{first.id}").get_data(as_text=True)


# -- one order -------------------------------------------------------------------------------


def test_the_order_page_shows_history_dispatches_extensions_clocks_and_sms(
    client: FlaskClient, db: Session
) -> None:
    staff = logged_in(client, db, "wang", Role.CALL_TAKER)
    order = received_order(db)
    suggestions = [
        Recommended("C01-001", "物业服务纠纷", ZJJ, "城关区住房和城乡建设局", ("物业",)),
        Recommended("C01-074", "生活垃圾清运不及时", CGJ, "城关区城市管理和综合执法局", ("垃圾",)),
    ]
    order_flow.dispatch(
        order,
        item=item(db, "C01-001"),
        department=department(db, ZJJ),
        actor=order_flow.Actor(staff_store.staff_actor(staff.id), Role.CALL_TAKER.value),
        session=db,
        clocks=CLOCKS,
        recommended=suggestions,
        now=TUESDAY_10AM,
    )
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS, now=TUESDAY_10AM)
    order_flow.request_extension(
        order, working_days=3, reason="需要协调多个部门", actor=zjj, session=db
    )
    db.commit()

    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert f"Work order {order.number}" in page
    assert f"Wang (staff:{staff.id})" in page  # the person, by name
    for action in ("Dispatched 派单", "Accepted 签收", "Asked for more time 延期申请"):
        assert action in page
    assert "2026-11-24 10:00" in page  # local time (Beijing), not UTC
    assert "Received 受理 → Dispatched 派单" in page
    assert "#1 of the suggestions" in page
    assert "C01-074 生活垃圾清运不及时 → 城关区城市管理和综合执法局" in page
    assert "需要协调多个部门" in page and "Waiting for a decision" in page
    assert "2026-11-24 10:30" in page and "2026-12-03 10:00" in page  # sign-off, resolution
    assert "Order number to the citizen" in page and "Reminder 催办" in page
    assert "+86*******0001" in page  # the SMS recipient, masked even for a call-taker
    assert "+8619993518493" not in page  # the department's SMS contact, masked too
    assert CALLER in page  # the caller's number: a call-taker sees it
    # A call-taker may remind, not supervise, close, reopen or decide extensions.
    assert 'id="move-remind"' in page
    for other in ("supervise", "close", "reopen"):
        assert f'id="move-{other}"' not in page
    assert 'action="/review/extensions/' not in page


def test_a_reviewer_sees_the_extension_forms_and_approving_moves_the_due_date(
    client: FlaskClient, db: Session
) -> None:
    order = dispatched_order(db)
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    request = order_flow.request_extension(
        order, working_days=3, reason="需要协调", actor=zjj, session=db
    )
    db.commit()
    logged_in(client, db, "dawa", Role.REVIEWER)

    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert f'id="extension-{request.id}-approve"' in page
    response = client.post(
        f"/review/extensions/{request.id}",
        data={"decision": "approve", "reason": "同意", "back": "order"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/orders/{order.id}"
    order = fresh(db, order)
    assert CLOCKS.local(order.due_at).strftime("%Y-%m-%d %H:%M") == "2026-12-08 10:00"
    assert history(db, order)[-1] == ("approve_extension", "reviewer", "accepted", "accepted")
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "Extension approved: order" in page and "2026-12-08 10:00" in page

    again = client.post(
        f"/review/extensions/{request.id}",
        data={"decision": "refuse", "reason": "再想想", "back": "order"},
    )
    assert again.status_code == 409
    assert "This extension request was already approved." in again.get_data(as_text=True)
    assert len(history(db, order)) == 5


def test_the_order_forms_carry_their_csrf_token(app: Flask, db: Session) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    order = dispatched_order(db)
    add_staff(db, "wang", Role.CALL_TAKER)
    token = csrf_token_of(client, "/login")
    client.post("/login", data={"username": "wang", "password": PASSWORD, "csrf_token": token})

    refused = client.post(f"/orders/{order.id}/remind", data={"reason": "催"})
    assert refused.status_code == 400
    token = csrf_token_of(client, f"/orders/{order.id}")
    accepted = client.post(f"/orders/{order.id}/remind", data={"reason": "催", "csrf_token": token})
    assert accepted.status_code == 302
    assert history(db, order)[-1][0] == "remind"


def test_remind_and_supervise_through_the_page(client: FlaskClient, db: Session) -> None:
    order = dispatched_order(db)
    logged_in(client, db, "wang", Role.CALL_TAKER)
    seen = str(order.row_version)
    response = client.post(
        f"/orders/{order.id}/remind", data={"reason": "市民再次来电催促", "seen_version": seen}
    )
    assert response.status_code == 302
    assert history(db, order)[-1] == ("remind", "call_taker", "dispatched", "dispatched")
    assert client.post(f"/orders/{order.id}/supervise", data={"reason": "x"}).status_code == 403
    client.post("/logout")

    logged_in(client, db, "manager", Role.FLOOR_MANAGER, phone_number="+8613900000009")
    response = client.post(f"/orders/{order.id}/supervise", data={"reason": "超时未签收"})
    assert response.status_code == 302
    order = fresh(db, order)
    assert order.is_supervised and order.escalation_due_at is None
    assert history(db, order)[-1] == ("supervise", "floor_manager", "dispatched", "dispatched")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The order is supervised now" in page and "supervised 督办" in page


def test_close_and_reopen_through_the_page(client: FlaskClient, db: Session) -> None:
    order = answered_order(db)
    logged_in(client, db, "dawa", Role.REVIEWER)

    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert 'id="move-close"' in page and 'id="move-reopen"' in page
    response = client.post(
        f"/orders/{order.id}/close", data={"how": "explained", "reason": "属政策范围外，已解释"}
    )
    assert response.status_code == 302
    order = fresh(db, order)
    assert order.state is WorkOrderState.CLOSED and order.closed_how is ClosedHow.EXPLAINED

    response = client.post(f"/orders/{order.id}/reopen", data={"reason": "市民不满意，重办"})
    assert response.status_code == 302
    order = fresh(db, order)
    assert order.state is WorkOrderState.DISPATCHED and order.reopen_count == 1
    assert order.department_code == ZJJ and order.dispatch_count == 2
    assert [row[0] for row in history(db, order)][-2:] == ["close", "reopen"]


def test_an_illegal_move_is_409_and_writes_nothing(client: FlaskClient, db: Session) -> None:
    order = dispatched_order(db)
    logged_in(client, db, "dawa", Role.REVIEWER)
    before = history(db, order)

    reopened = client.post(f"/orders/{order.id}/reopen", data={"reason": "重办"})
    assert reopened.status_code == 409
    assert "Cannot reopen an order that is dispatched" in reopened.get_data(as_text=True)
    closed = client.post(f"/orders/{order.id}/close", data={"how": "after_callback", "reason": "x"})
    assert closed.status_code == 409
    no_reason = client.post(f"/orders/{order.id}/remind", data={"reason": ""})
    assert no_reason.status_code == 400
    assert "Why: required" in no_reason.get_data(as_text=True)
    version = order.row_version
    stale = client.post(
        f"/orders/{order.id}/remind", data={"reason": "催", "seen_version": str(version - 1)}
    )
    assert stale.status_code == 409
    assert "Someone else changed this work order" in stale.get_data(as_text=True)
    assert history(db, order) == before
    assert fresh(db, order).row_version == version


# -- the multi-party call ------------------------------------------------------------------


def host_reports(twilio: TwilioSender, url: str, sid: str, status: str) -> None:
    """The member of staff's leg reports ``status``, signed as Twilio does."""
    parts = urlsplit(url)
    params = call_params(sid, HOTLINE_NUMBER, CallStatus=status, Direction="outbound-api")
    assert twilio.post(f"{parts.path}?{parts.query}", params).status_code == 200


def answers(twilio: TwilioSender, leg: PlacedCall, status: str = "in-progress") -> None:
    host_reports(twilio, leg.status_callback_url, leg.sid, status)


def test_a_reviewer_calls_the_citizen_and_two_departments_into_one_room(
    client: FlaskClient, db: Session, gateway: ConsoleGateway, twilio: TwilioSender
) -> None:
    order = dispatched_order(db)
    reviewer = logged_in(client, db, "dawa", Role.REVIEWER, phone_number="+8613900000007")

    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert f'name="department" value="{ZJJ}"' in page  # the handling department, offered
    response = client.post(
        f"/orders/{order.id}/conference",
        data={"with_citizen": "y", "department": ZJJ, "other_departments": "d-cgq-cgj"},
    )

    assert response.status_code == 302
    (staff,) = gateway.placed  # nobody else rings before the reviewer answers
    assert (staff.to_number, staff.label) == ("+8613900000007", f"staff-{reviewer.id}")
    assert (staff.start_conference_on_enter, staff.end_conference_on_exit) == (True, True)
    room = staff.room
    assert room.startswith(f"order-{order.number}-") and len(room) <= 34
    assert staff.status_callback_url.startswith(
        "https://hotline.example.org/voice/status?leg=order-conference&room="
    )
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert (
        "Ringing you first. Once you answer, we call: the citizen, 城关区住房和城乡建设局, "
        "城关区城市管理和综合执法局. If you do not answer, nobody else is called." in page
    )
    assert "called once the host answers" in page

    answers(twilio, staff)

    _, citizen, zjj, cgj = gateway.placed
    assert (citizen.to_number, citizen.label) == (CALLER, "citizen")
    assert (zjj.to_number, cgj.to_number) == (ZJJ_PHONE, CGJ_PHONE)
    for other in (citizen, zjj, cgj):
        assert (other.start_conference_on_enter, other.end_conference_on_exit) == (False, False)
    assert {leg.from_number for leg in gateway.placed} == {HOTLINE_NUMBER}
    assert len({leg.room for leg in gateway.placed}) == 1
    assert gateway.added == []  # no citizen conference machine involved

    legs = db.scalars(select(Call).where(Call.parent_call_sid == room).order_by(Call.id)).all()
    assert [leg.to_number for leg in legs] == ["+8613900000007", CALLER, ZJJ_PHONE, CGJ_PHONE]
    assert {(leg.direction, leg.leg_role) for leg in legs} == {(CallDirection.OUTBOUND, LEG_ROLE)}
    kinds = db.scalars(select(CallEvent.kind).where(CallEvent.call_sid == room)).all()
    assert sorted(kinds) == sorted([PLANNED, DIAL_OTHERS] + [LEG] * 4)
    assert history(db, order)[-1][0] == "dispatch"  # not a lifecycle move

    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "Multi-party calls" in page and "in-progress" in page and "queued" in page
    assert "called once the host answers" not in page


def test_when_the_host_does_not_answer_nobody_else_is_called_and_the_page_says_so(
    client: FlaskClient, db: Session, gateway: ConsoleGateway, twilio: TwilioSender
) -> None:
    order = dispatched_order(db)
    logged_in(client, db, "wang", Role.CALL_TAKER)
    client.post(f"/orders/{order.id}/conference", data={"with_citizen": "y", "department": ZJJ})
    (staff,) = gateway.placed

    answers(twilio, staff, "ringing")
    answers(twilio, staff, "no-answer")
    answers(twilio, staff, "in-progress")  # late, or out of order: too late

    assert gateway.placed == [staff]
    assert db.scalars(select(CallEvent.kind).where(CallEvent.call_sid == staff.room)).all() == [
        PLANNED,
        LEG,
        HOST_MISSED,
    ]
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "host did not answer (no-answer): nobody else was called" in page
    assert page.count("not called") == 2  # the citizen and the department


def test_a_confidential_orders_number_never_reaches_a_department(
    client: FlaskClient, db: Session, gateway: ConsoleGateway, twilio: TwilioSender
) -> None:
    order = dispatched_order(db, confidential=True)
    logged_in(client, db, "wang", Role.CALL_TAKER)

    client.post(f"/orders/{order.id}/conference", data={"with_citizen": "y", "department": ZJJ})
    answers(twilio, gateway.placed[0])

    department_leg = gateway.placed[-1]
    assert department_leg.to_number == ZJJ_PHONE
    assert department_leg.from_number == HOTLINE_NUMBER
    assert CALLER not in repr(department_leg)
    kinds = (PLANNED, LEG, DIAL_OTHERS, HOST_MISSED)
    events = db.scalars(select(CallEvent).where(CallEvent.kind.in_(kinds))).all()
    assert len(events) == 5
    assert all(CALLER not in repr(event.params) for event in events)
    assert events[0].params["confidential"] is True


def test_a_free_call_taker_is_set_away_during_the_call(
    client: FlaskClient, db: Session, gateway: ConsoleGateway, twilio: TwilioSender
) -> None:
    order = dispatched_order(db)
    taker = logged_in(client, db, "wang", Role.CALL_TAKER)
    staff_store.change_state(taker, CallTakerState.AVAILABLE, session=db, actor="system:test")
    db.commit()

    client.post(f"/orders/{order.id}/conference", data={"department": ZJJ})

    assert [leg.label for leg in gateway.placed] == [f"staff-{taker.id}"]
    db.expire_all()
    profile = db.get_one(Staff, taker.id).call_taker
    assert profile is not None and profile.state is CallTakerState.AWAY
    assert profile.away_reason == f"multi-party call for order {order.number}"
    answers(twilio, gateway.placed[0])
    assert [leg.label for leg in gateway.placed] == [f"staff-{taker.id}", f"dept-{ZJJ}"]


def test_the_multi_party_call_is_refused_before_anything_is_dialled(
    client: FlaskClient, db: Session, gateway: ConsoleGateway
) -> None:
    order = dispatched_order(db)
    no_number = received_order(db, summary="匿名来电", caller_number=None)
    logged_in(client, db, "dawa", Role.REVIEWER, phone_number=None, languages=())

    refused = client.post(f"/orders/{order.id}/conference", data={"department": ZJJ})
    assert refused.status_code == 400
    assert "You have no phone to ring" in refused.get_data(as_text=True)
    client.post("/logout")
    logged_in(client, db, "wang", Role.CALL_TAKER)
    cases = [
        (order, {"with_citizen": "y"}, "Choose at least one department"),
        (order, {"department": "D-NOPE"}, "There is no department D-NOPE"),
        (no_number, {"with_citizen": "y", "department": ZJJ}, "no number to call the citizen"),
        (order, {"other_departments": "A1 B1 C1 D1 E1 F1"}, "At most 5 departments"),
    ]
    for target, data, message in cases:
        response = client.post(f"/orders/{target.id}/conference", data=data)
        assert response.status_code == 400, message
        assert message in response.get_data(as_text=True)
    assert gateway.placed == []
    assert db.scalars(select(CallEvent)).all() == []


def test_when_the_staff_phone_cannot_be_rung_nobody_else_is(
    client: FlaskClient, db: Session, gateway: ConsoleGateway
) -> None:
    order = dispatched_order(db)
    logged_in(client, db, "wang", Role.CALL_TAKER)
    gateway.fail_next = GatewayUnavailable("join_conference failed: HTTP 503")

    response = client.post(
        f"/orders/{order.id}/conference", data={"with_citizen": "y", "department": ZJJ}
    )

    assert response.status_code == 502
    assert "nobody else was dialled" in response.get_data(as_text=True)
    assert gateway.placed == []
    (leg,) = db.scalars(select(CallEvent).where(CallEvent.kind == LEG)).all()
    assert leg.params["call_sid"] is None and "503" in leg.params["error"]
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "not dialled" in page


ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
CALLS_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"


def test_with_twilio_each_party_is_one_call_whose_twiml_joins_the_room(
    settings: Settings, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token="f" * 32)
    app = create_app(make_settings(settings.database_url), gateway=gateway)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    order = dispatched_order(db, confidential=True)
    logged_in(client, db, "wang", Role.CALL_TAKER)
    sids = iter(["CA" + f"{n:032x}" for n in (1, 2, 3)])

    twilio = TwilioSender(app.test_client(), AUTH_TOKEN, PUBLIC_BASE_URL)

    with responses.RequestsMock() as http:
        http.add_callback(
            responses.POST,
            CALLS_URL,
            callback=lambda _request: (201, {}, f'{{"sid": "{next(sids)}", "status": "queued"}}'),
        )
        response = client.post(
            f"/orders/{order.id}/conference", data={"with_citizen": "y", "department": ZJJ}
        )
        assert len(http.calls) == 1  # the member of staff only, until they answer
        host = dict(_form(http.calls[0].request.body))
        events = {v for k, v in _form(http.calls[0].request.body) if k == "StatusCallbackEvent"}
        assert {"answered", "completed"} <= events  # it reports its answer and its end
        host_reports(twilio, host["StatusCallback"], "CA" + f"{1:032x}", "in-progress")
        sent = [dict(_form(call.request.body)) for call in http.calls]

    assert response.status_code == 302
    assert [form["To"] for form in sent] == ["+8613900000001", CALLER, ZJJ_PHONE]
    assert {form["From"] for form in sent} == {HOTLINE_NUMBER}
    room = f"order-{order.number}-"
    assert all(f">{room}" in form["Twiml"] for form in sent)
    assert 'startConferenceOnEnter="true"' in sent[0]["Twiml"]
    assert 'startConferenceOnEnter="false"' in sent[2]["Twiml"]
    assert CALLER not in sent[2]["Twiml"] + sent[2]["StatusCallback"]
    app.extensions["hotline.engine"].dispose()


def _form(body: str | bytes | None) -> list[tuple[str, str]]:
    text = body.decode() if isinstance(body, bytes) else (body or "")
    return parse_qsl(text)


def test_the_extension_decision_is_for_reviewers_and_floor_managers(
    client: FlaskClient, db: Session
) -> None:
    order = dispatched_order(db)
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    request = order_flow.request_extension(order, working_days=2, reason="x", actor=zjj, session=db)
    db.commit()
    logged_in(client, db, "wang", Role.CALL_TAKER)
    assert (
        client.post(
            f"/review/extensions/{request.id}", data={"decision": "approve", "reason": "ok"}
        ).status_code
        == 403
    )
    client.post("/logout")
    logged_in(client, db, "manager", Role.FLOOR_MANAGER, phone_number="+8613900000009")
    due = order.due_at
    refused = client.post(
        f"/review/extensions/{request.id}", data={"decision": "refuse", "reason": "不同意"}
    )
    assert refused.status_code == 302 and refused.headers["Location"] == "/review/extensions"
    db.expire_all()
    assert db.get_one(ExtensionRequest, request.id).status is ExtensionStatus.REFUSED
    assert fresh(db, order).due_at == due
    assert history(db, order)[-1] == ("refuse_extension", "floor_manager", "accepted", "accepted")
