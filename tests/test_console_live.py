"""The call-taker's live screen: the event stream, the call's buttons and the work-order
form, through the app's test client on the real database (and the real conference edge
with the console gateway)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callflows.conference_messages import ParticipantJoined, RingTaker, Target
from ivr.gateway import ConsoleGateway, GatewayUnavailable
from tests.support.staff import PASSWORD, add_staff, csrf_token_of, log_in
from tests.support.webhooks import new_call_sid
from tickets import calls
from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import (
    CallEvent,
    CallStatus,
    CallTakerState,
    CallTakerStateChange,
    Role,
    Staff,
    WorkOrder,
    WorkOrderKind,
    WorkOrderState,
)
from tickets.phones import parse_caller
from webapp.staff.live_snapshot import ScreenPopCache, Viewer, build_snapshot

CALLER = "+8613800000001"
S = CallTakerState


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    app.config.update(CONSOLE_POLL_SECONDS=0.01, CONSOLE_STREAM_SECONDS=5)
    return app.test_client()


@pytest.fixture
def taker(db: Session) -> Staff:
    return add_staff(db, "wang", phone_number="+8613900000003")


@pytest.fixture
def wang(client: FlaskClient, taker: Staff) -> FlaskClient:
    log_in(client, "wang")
    return client


def place_call(db: Session, *, from_number: str = CALLER, intent: str = "complaint") -> str:
    """A citizen's call that went through the front door into the queue."""
    call_sid = new_call_sid()
    calls.register_call(
        session=db,
        call_sid=call_sid,
        caller=parse_caller(from_number),
        to_number="+868916312345",
        status=CallStatus.IN_PROGRESS,
    )
    for step, language in (("greeting", None), ("language:zh", "zh")):
        calls.note_front_door(session=db, call_sid=call_sid, step=step, language=language)
    calls.note_front_door(session=db, call_sid=call_sid, step=f"menu:{intent}", intent=intent)
    db.commit()
    return call_sid


def ring(db: Session, staff: Staff, call_sid: str) -> None:
    """What routing does: the call-taker goes available, then ringing for the call."""
    db.expire_all()
    staff = db.get(Staff, staff.id)
    for state in (CallTakerState.AVAILABLE, CallTakerState.RINGING):
        staff_store.change_state(staff, state, session=db, actor="system:test", call_sid=call_sid)
    db.commit()


def answer(app: Flask, staff: Staff, call_sid: str) -> None:
    """Routing rings the call-taker into the room and they answer (Twilio's join callback)."""
    from ivr.conference_edge import handle_event, run_command

    target = Target("+8613900000003", name=staff.display_name, staff_id=str(staff.id))
    with app.app_context():
        run_command(call_sid, RingTaker("routing", target))
        joined = ParticipantJoined(
            f"taker-{staff.id}", call_sid="CA" + "7" * 32, conference_sid="CF" + "8" * 32
        )
        handle_event(call_sid, joined)


def first_snapshot(client: FlaskClient) -> dict:
    """Read the stream up to its first snapshot event, then let it go."""
    response = client.get("/console/events")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    buffer = ""
    try:
        for chunk in response.response:
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            if "event: snapshot" in buffer and buffer.endswith("\n\n"):
                break
    finally:
        response.close()
    assert buffer.startswith("retry: ")
    block = buffer[buffer.index("event: snapshot") :]
    data = next(line for line in block.splitlines() if line.startswith("data: "))
    return json.loads(data.removeprefix("data: "))


def post(client: FlaskClient, call_sid: str, operation: str, **fields: str):
    return client.post(
        f"/console/calls/{call_sid}/{operation}",
        data=fields,
        headers={"Accept": "application/json"},
    )


# -- the event stream -----------------------------------------------------------------------


def test_the_stream_shows_a_ringing_call_with_the_callers_number_and_screen_pop(
    wang: FlaskClient, taker: Staff, db: Session
) -> None:
    earlier = place_call(db, intent="help")
    db.add(
        WorkOrder(
            number="20261101000001",
            kind=WorkOrderKind.COMPLAINT,
            state=WorkOrderState.IN_PROGRESS,
            caller_number=CALLER,
            summary="楼道灯坏了",
            call_sid=earlier,
        )
    )
    db.commit()
    call_sid = place_call(db)
    ring(db, taker, call_sid)

    snapshot = first_snapshot(wang)

    assert snapshot["me"]["state"] == "ringing"
    call = snapshot["call"]
    assert call["call_sid"] == call_sid
    assert call["caller"] == CALLER  # a call-taker sees the number in full
    assert call["language"] == "zh"
    assert call["intent"] == "complaint"
    assert call["path"] == ["greeting", "language:zh", "menu:complaint"]
    assert [c["call_sid"] for c in call["history"]["calls"]] == [earlier]
    assert [o["number"] for o in call["history"]["orders"]] == ["20261101000001"]


def test_the_stream_of_a_free_call_taker_has_no_call_and_says_how_to_reconnect(
    wang: FlaskClient, taker: Staff, db: Session
) -> None:
    snapshot = first_snapshot(wang)

    assert snapshot["me"]["state"] == "offline"
    assert snapshot["me"]["choices"] == ["available", "away"]
    assert snapshot["call"] is None
    assert "server_time" in snapshot


def test_the_stream_sends_a_new_snapshot_only_when_something_changed(
    app: Flask, wang: FlaskClient, taker: Staff, db: Session
) -> None:
    app.config.update(CONSOLE_STREAM_SECONDS=0.3, CONSOLE_HEARTBEAT_SECONDS=0.1)

    body = wang.get("/console/events").get_data(as_text=True)

    assert body.count("event: snapshot") == 1
    assert ": keep-alive" in body


def test_the_stream_ends_a_login_that_is_no_longer_valid(
    wang: FlaskClient, taker: Staff, db: Session
) -> None:
    response = wang.get("/console/events")
    staff_store.set_password(db.get(Staff, taker.id), "another-password-1", session=db, actor="t")
    db.commit()

    assert "event: logout" in response.get_data(as_text=True)


def test_numbers_are_masked_for_a_role_that_may_not_see_them(db: Session, taker: Staff) -> None:
    call_sid = place_call(db)
    ring(db, taker, call_sid)
    db.expire_all()
    staff = db.get(Staff, taker.id)

    for roles, shown in (
        ({Role.CALL_TAKER}, CALLER),
        ({Role.FLOOR_MANAGER}, CALLER),
        ({Role.QUALITY_INSPECTOR}, "+86*******0001"),
    ):
        viewer = Viewer(staff.id, staff.session_token, frozenset(roles))
        snapshot = build_snapshot(viewer, session=db, cache=ScreenPopCache())
        assert snapshot is not None
        assert snapshot["call"]["caller"] == shown


# -- who may press the buttons --------------------------------------------------------------


def test_the_live_routes_are_for_call_takers_and_floor_managers(
    client: FlaskClient, db: Session, taker: Staff
) -> None:
    add_staff(db, "rita", Role.REVIEWER, languages=(), phone_number=None)
    call_sid = place_call(db)
    ring(db, taker, call_sid)

    assert client.get("/console/events").status_code == 302  # to the login form
    log_in(client, "rita")
    assert client.get("/console/events").status_code == 403
    assert post(client, call_sid, "hold").status_code == 403
    assert post(client, call_sid, "work-order", kind="help", summary="x").status_code == 403


def test_a_call_that_is_not_yours_is_refused(
    client: FlaskClient, db: Session, taker: Staff
) -> None:
    add_staff(db, "li", phone_number="+8613900000004")
    add_staff(db, "boss", Role.FLOOR_MANAGER, languages=(), phone_number=None)
    call_sid = place_call(db)
    ring(db, taker, call_sid)

    for username in ("li", "boss"):
        log_in(client, username)
        response = post(client, call_sid, "end-call")
        assert response.status_code == 403
        assert response.json == {"error": "This call is not yours."}
        client.post("/logout")


def test_an_unknown_operation_is_404(wang: FlaskClient, taker: Staff, db: Session) -> None:
    call_sid = place_call(db)
    ring(db, taker, call_sid)

    assert post(wang, call_sid, "teleport").status_code == 404


def test_the_buttons_need_the_csrf_token_in_the_header(
    app: Flask, taker: Staff, db: Session
) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    browser = app.test_client()
    call_sid = place_call(db)
    ring(db, taker, call_sid)
    login_token = csrf_token_of(browser, "/login")
    browser.post(
        "/login", data={"username": "wang", "password": PASSWORD, "csrf_token": login_token}
    )
    token = csrf_token_of(browser, "/console")

    assert post(browser, call_sid, "hold").status_code == 400
    assert post(browser, call_sid, "work-order", kind="help", summary="x").status_code == 400
    with_token = browser.post(
        f"/console/calls/{call_sid}/hold",
        headers={"X-CSRFToken": token, "Accept": "application/json"},
    )
    assert with_token.status_code == 409  # past the CSRF check: the machine answers


# -- the operations ---------------------------------------------------------------------


def test_a_refused_command_is_409_with_the_machines_message(
    wang: FlaskClient, taker: Staff, db: Session
) -> None:
    call_sid = place_call(db)
    ring(db, taker, call_sid)  # rung, not answered yet

    response = post(wang, call_sid, "complete-transfer")

    assert response.status_code == 409
    assert response.json["error"] == "cannot complete a transfer: nobody is being consulted"


def test_warm_transfer_to_a_typed_number_calls_it_in_e164(
    app: Flask, wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway
) -> None:
    call_sid = place_call(db)
    ring(db, taker, call_sid)
    answer(app, taker, call_sid)

    response = post(wang, call_sid, "warm-transfer", number="0891-6320000")

    assert response.status_code == 204
    consult = gateway.added[-1]
    assert consult.to == "+868916320000"
    assert consult.label == "consult-1"
    assert [h.label for h in gateway.held] == ["citizen"]
    snapshot = first_snapshot(wang)
    room = snapshot["call"]["conference"]
    assert room["phase"] == "consulting"
    assert {p["label"]: p["state"] for p in room["parties"]}["consult-1"] == "dialing"
    db.expire_all()
    history = db.scalars(select(CallEvent.kind).where(CallEvent.call_sid == call_sid)).all()
    assert "conference:warm-transfer" in history


@pytest.mark.parametrize("typed", ["12", "not a number", "+86 123", ""])
def test_a_number_that_is_not_one_is_400_with_a_message(
    app: Flask, wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway, typed: str
) -> None:
    call_sid = place_call(db)
    ring(db, taker, call_sid)

    for operation in ("warm-transfer", "cold-transfer", "add-party"):
        response = post(wang, call_sid, operation, number=typed)
        assert response.status_code == 400
        assert response.json["error"]
    assert gateway.added == []


def test_a_colleague_must_be_available_to_be_consulted(
    app: Flask, wang: FlaskClient, taker: Staff, db: Session
) -> None:
    add_staff(db, "li", phone_number="+8613900000004", display_name="Li Na")
    call_sid = place_call(db)
    ring(db, taker, call_sid)

    response = post(wang, call_sid, "warm-transfer", colleague="li")

    assert response.status_code == 400
    assert response.json["error"] == "Li Na is not available now"


def test_the_emergency_button_rings_the_configured_line(
    app: Flask, wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway
) -> None:
    call_sid = place_call(db)
    ring(db, taker, call_sid)
    answer(app, taker, call_sid)

    assert post(wang, call_sid, "emergency-transfer", line="nowhere").status_code == 400
    assert post(wang, call_sid, "emergency-transfer", line="fire").status_code == 204

    line = gateway.added[-1]
    assert line.label == "emergency-fire"
    assert line.to == app.config["HOTLINE_SETTINGS"].emergency_numbers["fire"]
    receipt = post(wang, call_sid, "confirm-handoff", taken_by="")
    assert receipt.status_code == 400
    assert "taken by" in receipt.json["error"]


def test_a_provider_failure_is_502_with_a_clear_message(
    wang: FlaskClient, taker: Staff, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ivr import conference_edge

    call_sid = place_call(db)
    ring(db, taker, call_sid)

    def failing(call_sid: str, command: object) -> None:
        raise GatewayUnavailable("Twilio timed out")

    monkeypatch.setattr(conference_edge, "run_command", failing)
    response = post(wang, call_sid, "end-call")

    assert response.status_code == 502
    assert "phone service did not carry this out (end the call)" in response.json["error"]


# -- going available ------------------------------------------------------------------------


def waiting_caller(db: Session) -> str:
    from tickets.conferences import load_room

    call_sid = place_call(db)
    calls.find_call(session=db, call_sid=call_sid).queued_at = utcnow()
    load_room(
        session=db,
        call_sid=call_sid,
        initial=lambda: {
            "version": 1,
            "call_sid": call_sid,
            "phase": "waiting",
            "roster": [{"label": "citizen", "role": "citizen", "state": "joined"}],
        },
    )
    db.commit()
    return call_sid


def test_going_available_rings_the_caller_who_was_waiting(
    wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway
) -> None:
    call_sid = waiting_caller(db)

    wang.post("/console/state", data={"state": "available"})

    db.expire_all()
    profile = db.get(Staff, taker.id).call_taker
    assert profile.state is CallTakerState.RINGING
    assert profile.call_sid == call_sid
    assert [p.label for p in gateway.added] == [f"taker-{taker.id}"]
    changes = db.scalars(
        select(CallTakerStateChange)
        .where(CallTakerStateChange.staff_id == taker.id)
        .order_by(CallTakerStateChange.id.desc())
        .limit(2)
    ).all()
    ringing, available = changes
    assert (available.to_state, ringing.to_state) == (S.AVAILABLE, S.RINGING)
    assert available.actor == f"staff:{taker.id}" and ringing.call_sid == call_sid


def test_one_who_has_just_become_free_is_idle_for_the_shortest_time(
    wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway
) -> None:
    """Wang ends a wrap-up while Li has long been free: the waiting caller goes to Li
    (the longest idle); Wang is available, rung for nobody."""
    ring(db, taker, place_call(db))
    for state in (S.ON_CALL, S.WRAP_UP):
        staff_store.change_state(db.get_one(Staff, taker.id), state, session=db, actor="test")
    li = add_staff(db, "li", phone_number="+8613900000004")
    staff_store.change_state(li, S.AVAILABLE, session=db, actor="test", now=utcnow())
    db.commit()
    call_sid = waiting_caller(db)

    wang.post("/console/state", data={"state": "available"})

    db.expire_all()
    assert db.get_one(Staff, taker.id).call_taker.state is S.AVAILABLE
    theirs = db.get_one(Staff, li.id).call_taker
    assert (theirs.state, theirs.call_sid) == (S.RINGING, call_sid)
    assert [p.label for p in gateway.added] == [f"taker-{li.id}"]


def test_going_available_with_nobody_waiting_is_recorded_alone(
    wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway
) -> None:
    response = wang.post("/console/state", data={"state": "available"})

    assert response.status_code == 302
    db.expire_all()
    assert db.get(Staff, taker.id).call_taker.state is S.AVAILABLE
    assert gateway.added == []


def test_a_caller_taken_meanwhile_leaves_the_call_taker_available(
    wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway, monkeypatch
) -> None:
    """The caller chosen for them was rung by another pass between the decision and the
    claim: the state change is committed on its own, nothing is rung twice."""
    from ivr import dispatch

    waiting_caller(db)
    monkeypatch.setattr(dispatch, "ring", lambda *args, **kwargs: False)

    wang.post("/console/state", data={"state": "available"})

    db.expire_all()
    assert db.get(Staff, taker.id).call_taker.state is S.AVAILABLE
    assert gateway.added == []


def test_a_failing_ring_never_loses_the_state_change(
    wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway, monkeypatch
) -> None:
    from ivr import dispatch

    waiting_caller(db)

    def broken(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("the database went away mid-claim")

    monkeypatch.setattr(dispatch, "ring", broken)

    response = wang.post("/console/state", data={"state": "available"})

    assert response.status_code == 302
    db.expire_all()
    assert db.get(Staff, taker.id).call_taker.state is S.AVAILABLE


def test_a_move_the_console_may_not_make_writes_nothing(
    wang: FlaskClient, taker: Staff, db: Session, gateway: ConsoleGateway
) -> None:
    """On a call, "available" is refused (the hotline ends a call, not the button)."""
    ring(db, taker, place_call(db))
    staff_store.change_state(
        db.get_one(Staff, taker.id), S.ON_CALL, session=db, actor="system:test"
    )
    db.commit()
    waiting_caller(db)
    before = db.scalar(select(func.count(CallTakerStateChange.id)))

    response = wang.post("/console/state", data={"state": "available"}, follow_redirects=True)

    assert "cannot go from on_call to available" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(Staff, taker.id).call_taker.state is S.ON_CALL
    assert db.scalar(select(func.count(CallTakerStateChange.id))) == before
    assert gateway.added == []


# -- the work-order form ------------------------------------------------------------------


@pytest.fixture
def on_a_call(wang: FlaskClient, taker: Staff, db: Session) -> Iterator[str]:
    call_sid = place_call(db)
    ring(db, taker, call_sid)
    yield call_sid


def test_the_work_order_form_records_the_call_with_its_history(
    wang: FlaskClient, taker: Staff, db: Session, on_a_call: str
) -> None:
    response = post(
        wang,
        on_a_call,
        "work-order",
        kind="suggestion",
        summary="  公交站牌需要双语  ",
        district="城关区",
        street="八廓街道",
        caller_words="能不能加上藏文和英文？",
        is_confidential="y",
    )

    assert response.status_code == 201
    db.expire_all()
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == on_a_call))
    assert order is not None
    assert response.json["number"] == order.number
    assert response.json["message"].startswith(f"Work order {order.number} recorded.")
    assert order.number.isdigit() and len(order.number) == 14
    assert order.kind is WorkOrderKind.SUGGESTION
    assert order.state is WorkOrderState.RECEIVED
    assert order.caller_number == CALLER
    assert order.language == "zh"
    assert (order.summary, order.district, order.street) == (
        "公交站牌需要双语",
        "城关区",
        "八廓街道",
    )
    assert order.caller_words == "能不能加上藏文和英文？"
    assert order.is_confidential is True
    [first] = order.history
    assert first.actor == f"staff:{taker.id}"
    assert first.to_state == "received" and first.from_state is None
    assert "call_taker" in first.reason
    assert first.at is not None
    snapshot = first_snapshot(wang)
    assert [o["number"] for o in snapshot["call"]["recorded_orders"]] == [order.number]


def test_a_call_is_recorded_once(wang: FlaskClient, db: Session, on_a_call: str) -> None:
    assert post(wang, on_a_call, "work-order", kind="help", summary="水管爆了").status_code == 201

    again = post(wang, on_a_call, "work-order", kind="help", summary="水管爆了")

    assert again.status_code == 409
    assert "already recorded as work order" in again.json["error"]


def test_an_incomplete_work_order_is_400_naming_the_fields(
    wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    response = post(wang, on_a_call, "work-order", kind="emergency", summary="")

    assert response.status_code == 400
    assert set(response.json["fields"]) == {"kind", "summary"}
    assert db.scalar(select(WorkOrder).where(WorkOrder.call_sid == on_a_call)) is None


def test_without_javascript_the_form_posts_and_the_console_says_what_happened(
    wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    response = wang.post(
        f"/console/calls/{on_a_call}/work-order",
        data={"kind": "consultation", "summary": "社保卡补办"},
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert "recorded." in response.get_data(as_text=True)


def test_the_console_page_carries_the_live_screen(
    wang: FlaskClient, db: Session, on_a_call: str
) -> None:
    page = wang.get("/console").get_data(as_text=True)

    assert 'src="/static/console.js"' in page
    assert 'data-events-url="/console/events"' in page
    assert f'action="/console/calls/{on_a_call}/work-order"' in page
    assert on_a_call in page  # the first snapshot, before the stream's
    for line in ("police", "fire", "medical", "traffic", "utility"):
        assert f'data-line="{line}"' in page


def test_the_call_screen_tells_the_call_taker_when_the_caller_hangs_up(
    app: Flask, wang: FlaskClient, taker: Staff, db: Session
) -> None:
    from callflows.conference_messages import ParticipantLeft
    from ivr.conference_edge import handle_event

    call_sid = place_call(db)
    ring(db, taker, call_sid)
    answer(app, taker, call_sid)
    with app.app_context():
        handle_event(call_sid, ParticipantLeft("citizen", call_sid=call_sid))

    call = first_snapshot(wang)["call"]

    assert call["call_sid"] == call_sid
    assert [notice["message"] for notice in call["notices"]] == ["the caller hung up"]
