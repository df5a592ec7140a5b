"""Calls in the queue and call-takers on duty, for the dispatch and conference tests.

Twilio's part is played by hand: the caller's webhooks through the front door, then the
callbacks Twilio would send for the legs the hotline adds (participant call progress) and
for the room (join, leave, hold, end), all signed like the real ones.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from ivr.gateway_conference import AddedParticipant
from tests.support.staff import TEST_ACTOR, add_staff
from tests.support.webhooks import TwilioSender, call_params, new_call_sid
from tickets import staff as staff_store
from tickets.models import CallEvent, CallTaker, CallTakerState, Staff

PUBLIC = "https://hotline.example.org"
LANGUAGE_KEYS = {"zh": "1", "bo": "2", "en": "3"}


def new_conference_sid() -> str:
    return "CF" + uuid.uuid4().hex


def on_duty(
    db: Session,
    username: str,
    *,
    languages: tuple[str, ...] = ("zh",),
    skills: tuple[str, ...] = (),
    phone_number: str | None = "+8613900000001",
    client_identity: str | None = None,
) -> Staff:
    """A call-taker who has just gone available."""
    person = add_staff(
        db,
        username,
        languages=languages,
        skills=skills,
        phone_number=phone_number,
        client_identity=client_identity,
    )
    staff_store.change_state(person, CallTakerState.AVAILABLE, session=db, actor=TEST_ACTOR)
    db.commit()
    return person


def state_of(db: Session, person: Staff) -> CallTakerState:
    db.expire_all()
    profile = db.get(CallTaker, person.id)
    assert profile is not None
    return profile.state


def profile_of(db: Session, person: Staff) -> CallTaker:
    db.expire_all()
    profile = db.get(CallTaker, person.id)
    assert profile is not None
    return profile


def queue_caller(
    twilio: TwilioSender, *, lang: str = "zh", menu_key: str = "1", from_number: str = ""
) -> str:
    """A caller through the greeting and the menu into the queue; their CallSid."""
    sid = new_call_sid()
    number = from_number or f"+86138{uuid.uuid4().int % 10**8:08d}"
    ok(twilio.post("/voice/incoming", call_params(sid, number, CallStatus="ringing")))
    key = LANGUAGE_KEYS[lang]
    ok(twilio.post("/voice/step/language?lang=zh&try=1", call_params(sid, number, Digits=key)))
    path = f"/voice/step/menu?lang={lang}&try=1"
    ok(twilio.post(path, call_params(sid, number, Digits=menu_key)))
    return sid


def ok(response: TestResponse) -> TestResponse:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.content_type.startswith("text/xml")
    return response


def leg_status(
    twilio: TwilioSender, leg: AddedParticipant, status: str, *, token: str | None = None
) -> TestResponse:
    """Twilio's participant call-progress callback for a leg the hotline added."""
    path = leg.status_callback.removeprefix(PUBLIC)
    params = {"CallSid": leg.call_sid, "CallStatus": status, "AccountSid": "AC" + "1" * 32}
    return ok(twilio.post(path, params, token=token))


def room_event(
    twilio: TwilioSender,
    room: str,
    event: str,
    *,
    conference_sid: str,
    label: str = "",
    call_sid: str = "",
    token: str | None = None,
) -> TestResponse:
    """Twilio's conference status callback for the citizen's room ``room``."""
    params = {
        "AccountSid": "AC" + "1" * 32,
        "ConferenceSid": conference_sid,
        "FriendlyName": room,
        "StatusCallbackEvent": event,
    }
    if label:
        params["ParticipantLabel"] = label
    if call_sid:
        params["CallSid"] = call_sid
    return ok(twilio.post("/voice/conference-status", params, token=token))


def citizen_joins(twilio: TwilioSender, room: str, conference_sid: str) -> None:
    room_event(
        twilio,
        room,
        "participant-join",
        conference_sid=conference_sid,
        label="citizen",
        call_sid=room,
    )


def answers(twilio: TwilioSender, leg: AddedParticipant, conference_sid: str) -> None:
    """The leg's phone is picked up and it joins the room."""
    leg_status(twilio, leg, "ringing")
    leg_status(twilio, leg, "in-progress")
    room_event(
        twilio,
        leg.conference,
        "participant-join",
        conference_sid=conference_sid,
        label=leg.label,
        call_sid=leg.call_sid,
    )


def history(db: Session, call_sid: str, prefix: str = "conference:") -> list[tuple[str, dict]]:
    """The call's conference steps in order: (kind, params)."""
    db.expire_all()
    rows = db.scalars(
        select(CallEvent)
        .where(CallEvent.call_sid == call_sid, CallEvent.kind.startswith(prefix))
        .order_by(CallEvent.id)
    )
    return [(row.kind, row.params) for row in rows]
