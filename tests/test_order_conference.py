"""``ivr.order_conference``: a multi-party call from a work order, placed through the
console gateway on the real database: the plan before any call, only the member of staff
(the host) rung at first, the others dialled once when the host's signed status callback
says they answered, and nobody else when they did not; the legs recorded as calls whose
status callbacks keep them current."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from ivr import order_conference
from ivr.config import VoiceConfig, voice_config
from ivr.gateway import ConsoleGateway, GatewayError, GatewayUnavailable, PlacedCall
from ivr.order_conference import (
    DIAL_OTHERS,
    HOST_MISSED,
    LEG,
    PLANNED,
    AlreadyStarted,
    Leg,
    OrderCall,
    Outcome,
    PartyKind,
    StaffUnreachable,
    calls_of_order,
    decision_key,
    dial_others,
    room_name,
    start_with,
)
from tests.conftest import AUTH_TOKEN, HOTLINE_NUMBER, PUBLIC_BASE_URL
from tests.support.orders import CALLER, dispatched_order, import_demo_directory
from tests.support.webhooks import TwilioSender, call_params
from tickets.models import Call, CallEvent, WorkOrder

NUMBER = "20261124000042"
STAFF_PHONE = "+8613900000007"
ZJJ_PHONE = "+868916706673"
CGJ_PHONE = "+868913925837"
STAFF = Leg("staff-7", PartyKind.STAFF, "Dawa", STAFF_PHONE)
CITIZEN = Leg("citizen", PartyKind.CITIZEN, "the citizen", CALLER)
ZJJ = Leg("dept-D-CGQ-ZJJ", PartyKind.DEPARTMENT, "城关区住建局", ZJJ_PHONE, "D-CGQ-ZJJ")
CGJ = Leg("dept-D-CGQ-CGJ", PartyKind.DEPARTMENT, "城关区城管局", CGJ_PHONE, "D-CGQ-CGJ")
AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
EVENT_KINDS = (PLANNED, LEG, DIAL_OTHERS, HOST_MISSED)
UNANSWERED = ["no-answer", "busy", "failed", "canceled"]


@pytest.fixture
def config(app: Flask) -> VoiceConfig:
    with app.app_context():
        return voice_config()


@pytest.fixture
def order(db: Session) -> WorkOrder:
    """A real order (its caller is the citizen) and the demo directory (ZJJ, CGJ)."""
    import_demo_directory(db)
    return dispatched_order(db, confidential=True)


def order_call(*legs: Leg, room: str | None = None, order: WorkOrder | None = None) -> OrderCall:
    number = order.number if order is not None else NUMBER
    return OrderCall(
        room=room or room_name(number, AT),
        work_order_id=order.id if order is not None else 42,
        order_number=number,
        started_by="staff:7",
        role="reviewer",
        is_confidential=True,
        legs=legs or (STAFF, CITIZEN, ZJJ),
    )


def report(
    twilio: TwilioSender,
    leg: PlacedCall,
    status: str,
    *,
    token: str | None = None,
    sequence: int = 1,
) -> TestResponse:
    """The leg's status callback, signed and shaped as Twilio sends it."""
    url = urlsplit(leg.status_callback_url)
    params = call_params(
        leg.sid,
        HOTLINE_NUMBER,
        CallStatus=status,
        Direction="outbound-api",
        To=leg.to_number,
        Called=leg.to_number,
        SequenceNumber=str(sequence),
    )
    response = twilio.post(f"{url.path}?{url.query}", params, token=token)
    assert response.status_code == 200
    assert response.content_type.startswith("text/xml")
    return response


def decisions(db: Session) -> list[CallEvent]:
    db.expire_all()
    return list(db.scalars(select(CallEvent).where(CallEvent.kind.in_((DIAL_OTHERS, HOST_MISSED)))))


def test_the_room_is_named_after_the_order_and_fits_a_call_sid_column() -> None:
    assert room_name(NUMBER, AT) == "order-20261124000042-1795485600"
    assert len(room_name(NUMBER + "9", AT)) <= 34
    assert len(decision_key(room_name(NUMBER + "9", AT))) <= 120
    with pytest.raises(ValueError, match="dialled first"):
        order_call(CITIZEN, STAFF)
    with pytest.raises(ValueError, match="at most 34"):
        order_call(room="order-" + "9" * 40)


def test_only_the_host_rings_at_start_and_the_others_wait_for_their_answer(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session
) -> None:
    result = start_with(config, order_call(STAFF, CITIZEN, ZJJ, CGJ))

    assert (result.label, result.kind) == (STAFF.label, PartyKind.STAFF) and result.call_sid
    (host,) = gateway.placed
    assert (host.to_number, host.from_number) == (STAFF_PHONE, config.hotline_number)
    assert (host.start_conference_on_enter, host.end_conference_on_exit) == (True, True)
    url = urlsplit(host.status_callback_url)
    assert url.path == "/voice/status"
    assert parse_qs(url.query) == {
        "leg": ["order-conference"],
        "room": [room_name(NUMBER, AT)],
        "label": [STAFF.label],
    }
    (past,) = calls_of_order(NUMBER, session=db)
    assert past.outcome is Outcome.WAITING
    assert [leg.status for leg in past.legs] == ["queued", None, None, None]
    assert [leg.note for leg in past.legs][1:] == ["called once the host answers"] * 3
    assert [leg.error for leg in past.legs] == [None] * 4
    assert past.started_by == "staff:7" and past.role == "reviewer"


def test_the_host_answering_dials_the_others_once_with_their_numbers_read_now(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
) -> None:
    start_with(config, order_call(STAFF, CITIZEN, ZJJ, CGJ, order=order))
    (host,) = gateway.placed

    report(twilio, host, "ringing", sequence=1)
    assert len(gateway.placed) == 1  # ringing decides nothing
    report(twilio, host, "in-progress", token="answered", sequence=2)

    host_, citizen, zjj, cgj = gateway.placed
    assert host_ == host
    assert [leg.to_number for leg in (citizen, zjj, cgj)] == [CALLER, ZJJ_PHONE, CGJ_PHONE]
    assert [leg.label for leg in (citizen, zjj, cgj)] == [CITIZEN.label, ZJJ.label, CGJ.label]
    for leg in (citizen, zjj, cgj):
        assert (leg.start_conference_on_enter, leg.end_conference_on_exit) == (False, False)
        assert leg.room == host.room and leg.from_number == HOTLINE_NUMBER
        assert parse_qs(urlsplit(leg.status_callback_url).query)["label"] == [leg.label]

    # Twilio retries the same delivery, sends it again under a new token, reorders.
    report(twilio, host, "in-progress", token="answered", sequence=2)
    report(twilio, host, "in-progress", sequence=2)
    report(twilio, host, "in-progress", sequence=3)
    report(twilio, host, "ringing", sequence=1)
    report(twilio, host, "completed", sequence=4)
    assert len(gateway.placed) == 4
    (decision,) = decisions(db)
    assert decision.kind == DIAL_OTHERS and decision.dedupe_key == decision_key(host.room)
    assert decision.params == {"host_call_sid": host.sid, "host_status": "in-progress"}

    (past,) = calls_of_order(order.number, session=db)
    assert past.outcome is Outcome.DIALLED
    assert [leg.status for leg in past.legs] == ["completed", "queued", "queued", "queued"]
    assert all(leg.call_sid and leg.error is None for leg in past.legs)
    room_calls = db.scalars(select(Call).where(Call.parent_call_sid == host.room)).all()
    assert len(room_calls) == 4


def test_two_answered_reports_at_the_same_moment_dial_the_others_once(
    app: Flask,
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    order: WorkOrder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_with(config, order_call(STAFF, CITIZEN, ZJJ, order=order))
    (host,) = gateway.placed
    real = order_conference.record_event
    deciding = threading.Event()

    def slow_decision(**kwargs: object) -> bool:
        """The first decision stays uncommitted a while: the second report arrives then."""
        inserted = real(**kwargs)  # type: ignore[arg-type]
        if kwargs["kind"] == DIAL_OTHERS and not deciding.is_set():
            deciding.set()
            time.sleep(0.5)
        return inserted

    monkeypatch.setattr(order_conference, "record_event", slow_decision)
    senders = [TwilioSender(app.test_client(), AUTH_TOKEN, PUBLIC_BASE_URL) for _ in range(2)]
    first = threading.Thread(target=report, args=(senders[0], host, "in-progress"))
    first.start()
    assert deciding.wait(10)
    report(senders[1], host, "in-progress", sequence=2)  # another delivery, mid-decision
    first.join(10)

    assert [leg.label for leg in gateway.placed] == [STAFF.label, CITIZEN.label, ZJJ.label]
    assert len(decisions(db)) == 1


@pytest.mark.parametrize("status", UNANSWERED)
def test_a_host_who_does_not_answer_means_nobody_else_is_called(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
    status: str,
) -> None:
    start_with(config, order_call(STAFF, CITIZEN, ZJJ, order=order))
    (host,) = gateway.placed

    report(twilio, host, "ringing", sequence=1)
    report(twilio, host, status, sequence=2)
    report(twilio, host, status, sequence=2)  # again, under a new token
    report(twilio, host, "in-progress", sequence=3)  # late or out of order: too late

    assert gateway.placed == [host]
    (decision,) = decisions(db)
    assert decision.kind == HOST_MISSED and decision.params["host_status"] == status
    (past,) = calls_of_order(order.number, session=db)
    assert past.outcome is Outcome.HOST_MISSED and past.host_status == status
    assert past.legs[0].note == f"host did not answer ({status}): nobody else was called"
    assert [leg.note for leg in past.legs][1:] == ["not called", "not called"]
    assert [leg.call_sid for leg in past.legs][1:] == [None, None]


def test_a_host_call_that_ends_before_its_answer_is_seen_dials_nobody(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
) -> None:
    start_with(config, order_call(STAFF, ZJJ, order=order))
    (host,) = gateway.placed

    report(twilio, host, "completed", sequence=3)  # the answered report comes after it
    report(twilio, host, "in-progress", sequence=2)

    assert gateway.placed == [host]
    (past,) = calls_of_order(order.number, session=db)
    assert past.outcome is Outcome.HOST_MISSED
    assert past.legs[0].note and "nobody else was called" in past.legs[0].note


def test_only_the_hosts_leg_decides(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
) -> None:
    start_with(config, order_call(STAFF, CITIZEN, ZJJ, order=order))
    (host,) = gateway.placed
    for label in (CITIZEN.label, ZJJ.label, "staff-8", ""):
        query = f"leg=order-conference&room={host.room}&label={label}"
        leg = replace(host, sid="CA" + "e" * 32, status_callback_url=f"/voice/status?{query}")
        report(twilio, leg, "in-progress")
        report(twilio, leg, "no-answer")
    query = f"leg=order-conference&room=order-9-1&label={STAFF.label}"
    other_room = replace(host, status_callback_url=f"/voice/status?{query}")
    report(twilio, other_room, "in-progress")  # a room that was never planned

    assert gateway.placed == [host]
    assert decisions(db) == []

    report(twilio, host, "in-progress")  # the host: now the others ring
    assert [leg.label for leg in gateway.placed] == [STAFF.label, CITIZEN.label, ZJJ.label]
    report(twilio, gateway.placed[2], "in-progress")  # a department answering: nothing more
    report(twilio, gateway.placed[1], "busy")  # the citizen busy: nothing more
    assert len(gateway.placed) == 3 and len(decisions(db)) == 1


def test_a_callback_that_failed_before_deciding_decides_when_twilio_retries_it(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_with(config, order_call(STAFF, ZJJ, order=order))
    (host,) = gateway.placed
    real = order_conference.on_leg_status

    def fails(*args: object) -> None:
        raise RuntimeError("database went away mid-request")

    monkeypatch.setattr(order_conference, "on_leg_status", fails)
    report(twilio, host, "in-progress", token="once")  # stored, then failed: safe TwiML
    assert gateway.placed == [host] and decisions(db) == []
    monkeypatch.setattr(order_conference, "on_leg_status", real)
    report(twilio, host, "in-progress", token="once")  # Twilio's retry: the same token

    assert [leg.label for leg in gateway.placed] == [STAFF.label, ZJJ.label]
    db.expire_all()
    stored = db.scalars(select(CallEvent).where(CallEvent.kind == "status")).all()
    assert len(stored) == 1  # the webhook itself recorded once


def test_no_phone_number_in_the_calls_events(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
) -> None:
    start_with(config, order_call(STAFF, CITIZEN, ZJJ, CGJ, order=order))
    report(twilio, gateway.placed[0], "in-progress")

    assert len(gateway.placed) == 4
    for department_leg in gateway.placed[2:]:
        assert CALLER not in repr(department_leg)  # from the hotline, the room, its label
    db.expire_all()
    events = db.scalars(select(CallEvent).where(CallEvent.kind.in_(EVENT_KINDS))).all()
    assert len(events) == 1 + 4 + 1
    numbers = (CALLER, STAFF_PHONE, ZJJ_PHONE, CGJ_PHONE, "8613800000001")
    assert not [n for n in numbers for event in events if n in repr(event.params)]
    assert events[0].params["confidential"] is True


def test_the_same_room_is_never_started_twice(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session
) -> None:
    start_with(config, order_call())
    with pytest.raises(AlreadyStarted):
        start_with(config, order_call())
    assert len(gateway.placed) == 1
    assert len(db.scalars(select(CallEvent).where(CallEvent.kind == PLANNED)).all()) == 1


def test_a_department_that_cannot_be_dialled_does_not_stop_the_others(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
) -> None:
    class FailsOnce(ConsoleGateway):
        def join_conference(self, **kwargs: object) -> str:  # type: ignore[override]
            if kwargs["label"] == ZJJ.label:
                raise GatewayError("join_conference failed: HTTP 400, code 21211: +868916706673")
            return super().join_conference(**kwargs)  # type: ignore[arg-type]

    gone = Leg("dept-D-GONE", PartyKind.DEPARTMENT, "撤销的部门", "+868910000000", "D-GONE")
    flaky = replace(config, gateway=FailsOnce())
    start_with(flaky, order_call(STAFF, ZJJ, gone, CGJ, order=order))

    results = dial_others(flaky, room_name(order.number, AT))

    assert [r.call_sid is not None for r in results] == [False, False, True]
    assert "+868916706673" not in (results[0].error or "")  # numbers masked in the record
    assert results[1].error == "there is no department D-GONE in the current directory"
    (past,) = calls_of_order(order.number, session=db)
    assert past.legs[1].error and "21211" in past.legs[1].error
    assert past.legs[2].error and "D-GONE" in past.legs[2].error
    assert past.legs[3].call_sid and past.legs[3].status == "queued"


def test_nobody_is_dialled_when_the_staff_leg_fails(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
) -> None:
    gateway.fail_next = GatewayUnavailable("join_conference failed: Timeout")
    with pytest.raises(StaffUnreachable):
        start_with(config, order_call(order=order))
    assert gateway.placed == []
    (past,) = calls_of_order(order.number, session=db)
    assert past.outcome is Outcome.HOST_UNREACHABLE
    assert [leg.error for leg in past.legs][1:] == ["not dialled", "not dialled"]
    assert len(db.scalars(select(CallEvent).where(CallEvent.kind == LEG)).all()) == 1

    # The timed-out request was placed all the same and the host answers: still nobody.
    query = f"leg=order-conference&room={past.room}&label={STAFF.label}"
    ghost = PlacedCall(
        sid="CA" + "f" * 32,
        to_number=STAFF_PHONE,
        from_number=HOTLINE_NUMBER,
        room=past.room,
        label=STAFF.label,
        status_callback_url=f"/voice/status?{query}",
        start_conference_on_enter=True,
        end_conference_on_exit=True,
        ring_timeout_seconds=30,
    )
    report(twilio, ghost, "in-progress")
    assert gateway.placed == []


def test_the_legs_status_callbacks_update_what_the_order_page_shows(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    twilio: TwilioSender,
    order: WorkOrder,
) -> None:
    start_with(config, order_call(order=order))
    host = gateway.placed[0]

    report(twilio, host, "in-progress")
    report(twilio, gateway.placed[2], "ringing")

    (past,) = calls_of_order(order.number, session=db)
    assert [leg.status for leg in past.legs] == ["in-progress", "queued", "ringing"]
    assert calls_of_order("20261124000043", session=db) == []
