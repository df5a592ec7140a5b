"""``ivr.order_conference``: a multi-party call from a work order, placed through the
console gateway on the real database: the plan before any call, the member of staff
first, the legs recorded as calls whose status callbacks keep them current."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.config import VoiceConfig, voice_config
from ivr.gateway import ConsoleGateway, GatewayError
from ivr.order_conference import (
    LEG,
    PLANNED,
    AlreadyStarted,
    Leg,
    OrderCall,
    PartyKind,
    StaffUnreachable,
    calls_of_order,
    room_name,
    start_with,
)
from tests.support.webhooks import TwilioSender, call_params
from tickets.models import CallEvent

NUMBER = "20261124000042"
STAFF = Leg("staff-7", PartyKind.STAFF, "Dawa", "+8613900000007")
CITIZEN = Leg("citizen", PartyKind.CITIZEN, "the citizen", "+8613800000001")
ZJJ = Leg("dept-D-CGQ-ZJJ", PartyKind.DEPARTMENT, "城关区住建局", "+868916706673", "D-CGQ-ZJJ")
CGJ = Leg("dept-D-CGQ-CGJ", PartyKind.DEPARTMENT, "城关区城管局", "+868913925837", "D-CGQ-CGJ")
AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@pytest.fixture
def config(app: Flask) -> VoiceConfig:
    with app.app_context():
        return voice_config()


def order_call(*legs: Leg, room: str | None = None) -> OrderCall:
    return OrderCall(
        room=room or room_name(NUMBER, AT),
        work_order_id=42,
        order_number=NUMBER,
        started_by="staff:7",
        role="reviewer",
        is_confidential=True,
        legs=legs or (STAFF, CITIZEN, ZJJ),
    )


def test_the_room_is_named_after_the_order_and_fits_a_call_sid_column() -> None:
    assert room_name(NUMBER, AT) == "order-20261124000042-1795485600"
    assert len(room_name(NUMBER + "9", AT)) <= 34
    with pytest.raises(ValueError, match="dialled first"):
        order_call(CITIZEN, STAFF)
    with pytest.raises(ValueError, match="at most 34"):
        order_call(room="order-" + "9" * 40)


def test_the_staff_leg_starts_the_room_and_the_others_wait_for_it(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session
) -> None:
    results = start_with(config, order_call(STAFF, CITIZEN, ZJJ, CGJ))

    assert [r.label for r in results] == [STAFF.label, CITIZEN.label, ZJJ.label, CGJ.label]
    assert all(r.call_sid for r in results)
    host, *others = gateway.placed
    assert (host.start_conference_on_enter, host.end_conference_on_exit) == (True, True)
    assert all(
        (o.start_conference_on_enter, o.end_conference_on_exit) == (False, False) for o in others
    )
    assert {p.from_number for p in gateway.placed} == {config.hotline_number}
    query = urlsplit(host.status_callback_url).query
    assert "leg=order-conference" in query and f"room=order-{NUMBER}-" in query
    (past,) = calls_of_order(NUMBER, session=db)
    assert [leg.status for leg in past.legs] == ["queued"] * 4
    assert past.started_by == "staff:7" and past.role == "reviewer"


def test_the_same_room_is_never_started_twice(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session
) -> None:
    start_with(config, order_call())
    with pytest.raises(AlreadyStarted):
        start_with(config, order_call())
    assert len(gateway.placed) == 3
    assert len(db.scalars(select(CallEvent).where(CallEvent.kind == PLANNED)).all()) == 1


def test_a_department_that_cannot_be_dialled_does_not_stop_the_others(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session
) -> None:
    class FailsOnce(ConsoleGateway):
        def join_conference(self, **kwargs: object) -> str:  # type: ignore[override]
            if kwargs["label"] == ZJJ.label:
                raise GatewayError("join_conference failed: HTTP 400, code 21211: +868916706673")
            return super().join_conference(**kwargs)  # type: ignore[arg-type]

    flaky = FailsOnce()
    results = start_with(replace(config, gateway=flaky), order_call(STAFF, ZJJ, CGJ))

    assert [r.call_sid is not None for r in results] == [True, False, True]
    assert "+868916706673" not in (results[1].error or "")  # numbers masked in the record
    (past,) = calls_of_order(NUMBER, session=db)
    assert past.legs[1].error and "21211" in past.legs[1].error


def test_nobody_is_dialled_when_the_staff_leg_fails(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session
) -> None:
    gateway.fail_next = GatewayError("join_conference failed: HTTP 400")
    with pytest.raises(StaffUnreachable):
        start_with(config, order_call())
    assert gateway.placed == []
    (past,) = calls_of_order(NUMBER, session=db)
    assert [leg.error for leg in past.legs][1:] == ["not dialled", "not dialled"]
    assert len(db.scalars(select(CallEvent).where(CallEvent.kind == LEG)).all()) == 1


def test_the_legs_status_callbacks_update_what_the_order_page_shows(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session, twilio: TwilioSender
) -> None:
    start_with(config, order_call())
    host = gateway.placed[0]
    path = urlsplit(host.status_callback_url)

    response = twilio.post(
        f"{path.path}?{path.query}",
        call_params(host.sid, CallStatus="in-progress", Direction="outbound-api"),
    )

    assert response.status_code == 200
    (past,) = calls_of_order(NUMBER, session=db)
    assert [leg.status for leg in past.legs] == ["in-progress", "queued", "queued"]
    assert calls_of_order("20261124000043", session=db) == []
