"""The queue's callback offer and the callback list (issue 3, point 2; PRODUCT.md "The
inbound call" point 5): after a wait the caller may press 1 to be called back in their place
in line; a caller who hangs up in the queue is on the same list, as abandoned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from callflows.front_door import (
    CallerInput,
    FlowState,
    FrontDoor,
    callback_offer_due,
)
from callflows.steps import Gather, Hangup, JoinConference, Language, Say, Stage, WaitRoom
from ivr import callback_offer
from ivr.gateway import GatewayUnavailable, RedirectedCall
from ivr.simulator import CallSimulator, WsgiTransport
from ivr.simulator_phones import SimulatedPhones
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, make_settings
from tests.support.conference_calls import (
    citizen_joins,
    new_conference_sid,
    ok,
    on_duty,
    queue_caller,
    room_event,
)
from tests.support.staff import PASSWORD, add_staff, csrf_token_of, log_in
from tests.support.twiml_schema import assert_valid_twiml
from tests.support.webhooks import call_params
from tickets import calls
from tickets.models import (
    Call,
    CallbackOutcome,
    CallbackSource,
    CallbackStatus,
    CallbackTask,
    CallEvent,
    ConferenceRoom,
    Role,
)
from webapp import create_app
from webapp.settings import SettingsError

PUBLIC = PUBLIC_BASE_URL
T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
OFFER_URL = f"{PUBLIC}/voice/callback-offer?lang=zh"


# -- the pure front door -------------------------------------------------------------------


def test_the_offer_gathers_one_key_and_comes_back_to_its_own_stage():
    turn = FrontDoor().callback_offer(FlowState("CA1", Language.ENGLISH))
    (gather,) = turn.steps
    assert isinstance(gather, Gather)
    assert gather.action.stage is Stage.CALLBACK_OFFER
    assert gather.num_digits == 1
    assert gather.prompts == (Say("callback_offer", Language.ENGLISH),)
    assert turn.path == "callback-offer" and not turn.queue


@pytest.mark.parametrize(
    ("digits", "speech"), [("1", ""), ("", "请给我回电"), ("", "Please call me back")]
)
def test_pressing_1_or_asking_for_a_callback_is_a_callback_request(digits, speech):
    given = CallerInput.parse(digits, speech)
    turn = FrontDoor().handle(Stage.CALLBACK_OFFER, FlowState("CA1"), given, lambda _n: None)
    assert turn.callback_request and not turn.queue
    assert turn.steps == (Say("callback_confirmed", Language.MANDARIN), Hangup())
    assert turn.path == "callback-offer:1"


@pytest.mark.parametrize(("digits", "speech"), [("", ""), ("2", ""), ("0", ""), ("#*x", "")])
def test_any_other_key_or_silence_keeps_the_place_in_the_queue(digits, speech):
    given = CallerInput.parse(digits, speech)
    turn = FrontDoor().handle(Stage.CALLBACK_OFFER, FlowState("CA1"), given, lambda _n: None)
    assert turn.queue and not turn.callback_request
    say, join = turn.steps
    assert say == Say("callback_keep_place", Language.MANDARIN)
    assert isinstance(join, JoinConference)
    assert (join.room, join.wait) == ("CA1", WaitRoom.QUEUE)
    assert turn.intent is None  # the caller's intent from the menu is kept


@pytest.mark.parametrize(
    ("waited", "after", "offered", "waiting", "due"),
    [
        (119, 120, False, True, False),  # not before
        (120, 120, False, True, True),
        (600, 120, True, True, False),  # at most once
        (600, 120, False, False, False),  # a call-taker is rung or on the call
        (600, 0, False, True, False),  # 0: never offered
    ],
)
def test_when_the_offer_is_due(waited, after, offered, waiting, due):
    now = T0 + timedelta(seconds=waited)
    assert callback_offer_due(T0, now, after, already_offered=offered, is_waiting=waiting) is due


# -- the webhooks --------------------------------------------------------------------------


def _waiting(twilio, db, *, waited: int = 200, joined: bool = True) -> tuple[str, str, datetime]:
    """A caller in the queue for ``waited`` seconds, in their room; (sid, conference, queued)."""
    sid = queue_caller(twilio, menu_key="2", from_number="+8613800000001")
    conference = new_conference_sid()
    if joined:
        citizen_joins(twilio, sid, conference)
    queued_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=waited)
    db.execute(update(Call).where(Call.call_sid == sid).values(queued_at=queued_at))
    db.commit()
    return sid, conference, queued_at


def _wait_round(twilio, sid: str, lang: str = "zh"):
    response = ok(twilio.post(f"/voice/wait/queue?lang={lang}", call_params(sid)))
    assert_valid_twiml(response.get_data(as_text=True))
    return response


def _answer(twilio, sid: str, digits: str, lang: str = "zh") -> str:
    path = f"/voice/step/callback-offer?lang={lang}&try=1"
    xml = ok(twilio.post(path, call_params(sid, Digits=digits))).get_data(as_text=True)
    assert_valid_twiml(xml)
    return xml


def _call(db, sid: str) -> Call:
    db.expire_all()
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call is not None
    return call


def _tasks(db) -> list[CallbackTask]:
    db.expire_all()
    return list(db.scalars(select(CallbackTask).order_by(CallbackTask.id)))


def _room_phase(db, sid: str) -> str:
    db.expire_all()
    room = db.scalar(select(ConferenceRoom).where(ConferenceRoom.call_sid == sid))
    assert room is not None
    return room.phase


def _leaves_for_the_offer(twilio, sid: str, conference: str) -> None:
    """What Twilio sends when the redirect takes the caller out of their room."""
    room_event(
        twilio, sid, "participant-leave", conference_sid=conference, label="citizen", call_sid=sid
    )
    room_event(twilio, sid, "conference-end", conference_sid=conference)


def _hangs_up(twilio, sid: str, conference: str | None) -> None:
    if conference:
        _leaves_for_the_offer(twilio, sid, conference)  # the same callbacks as a hang-up
    params = call_params(sid, CallStatus="completed", CallDuration="300", SequenceNumber="3")
    ok(twilio.post("/voice/status", params))


def test_the_caller_is_redirected_to_the_offer_once_after_the_wait(twilio, db, gateway):
    sid, _conference, _ = _waiting(twilio, db)

    _wait_round(twilio, sid)
    _wait_round(twilio, sid)

    assert gateway.redirected == [RedirectedCall(sid, OFFER_URL)]
    call = _call(db, sid)
    assert call.callback_offered_at is not None and call.callback_offer_outcome is None
    assert call.queue_left_at is not None and call.abandoned_at is None
    db.expire_all()
    assert calls.list_waiting_callers(session=db) == []  # nobody is rung for them meanwhile


def test_no_offer_before_the_wait(twilio, db, gateway):
    sid, _, _ = _waiting(twilio, db, waited=30)
    _wait_round(twilio, sid)
    assert gateway.redirected == []


def test_no_offer_while_a_call_taker_rings_for_the_caller(twilio, db, gateway):
    on_duty(db, "wang")
    sid, _, _ = _waiting(twilio, db)
    assert [added.conference for added in gateway.added] == [sid]  # rung at once

    _wait_round(twilio, sid)

    assert gateway.redirected == []
    assert _call(db, sid).callback_offered_at is None


def test_no_offer_before_the_rooms_conference_is_known(twilio, db, gateway):
    sid, _, _ = _waiting(twilio, db, joined=False)
    _wait_round(twilio, sid)
    assert gateway.redirected == []
    assert _call(db, sid).callback_offered_at is None


def test_no_offer_when_it_is_switched_off(database_url, gateway, db):
    app = create_app(make_settings(database_url, CALLBACK_OFFER_AFTER_SECONDS="0"), gateway=gateway)
    from tests.support.webhooks import TwilioSender

    twilio = TwilioSender(app.test_client(), AUTH_TOKEN, PUBLIC_BASE_URL)
    sid, _, _ = _waiting(twilio, db, waited=3000)
    _wait_round(twilio, sid)
    assert gateway.redirected == []
    app.extensions["hotline.engine"].dispose()


def test_a_failed_redirect_leaves_the_caller_waiting_in_their_room(twilio, db, gateway):
    sid, conference, queued_at = _waiting(twilio, db)
    gateway.fail_next = GatewayUnavailable("Twilio is down")

    _wait_round(twilio, sid)

    call = _call(db, sid)
    assert call.callback_offer_outcome == "not-made" and call.queue_left_at is None
    assert call.queued_at == queued_at
    db.expire_all()
    assert [c.call_sid for c in calls.list_waiting_callers(session=db)] == [sid]
    _hangs_up(twilio, sid, conference)  # the room was given back its conference
    assert _call(db, sid).abandoned_at is not None


def test_the_offer_document_gathers_in_the_callers_language(twilio, db):
    sid, _, _ = _waiting(twilio, db)
    for lang, voice in (("en", "Polly.Joanna"), ("bo", "Polly.Zhiyu"), ("zh", "Polly.Zhiyu")):
        response = ok(twilio.post(f"/voice/callback-offer?lang={lang}", call_params(sid)))
        xml = response.get_data(as_text=True)
        assert_valid_twiml(xml)
        assert "<Gather" in xml and 'numDigits="1"' in xml
        assert "/voice/step/callback-offer?lang=" + lang in xml
        assert voice in xml  # Tibetan: no recording here, so Mandarin text-to-speech
        assert "<Conference" not in xml


def test_pressing_1_leaves_a_callback_task_in_the_callers_place(twilio, db, gateway):
    sid, conference, queued_at = _waiting(twilio, db)
    _wait_round(twilio, sid)
    _leaves_for_the_offer(twilio, sid, conference)  # the redirect's leave: no abandonment

    xml = _answer(twilio, sid, "1")

    assert "<Hangup" in xml and "回电请求已登记" in xml
    (task,) = _tasks(db)
    assert (task.call_sid, task.source, task.status) == (
        sid,
        CallbackSource.QUEUE_REQUEST,
        CallbackStatus.OPEN,
    )
    assert task.queued_at == queued_at  # the place in line
    assert (task.language, task.intent, task.caller_kind) == ("zh", "complaint", "number")
    assert task.caller_number == "+8613800000001"
    _hangs_up(twilio, sid, None)
    call = _call(db, sid)
    assert call.abandoned_at is None and call.callback_offer_outcome == "requested"
    assert call.queue_left_at is not None
    db.expire_all()
    assert calls.list_waiting_callers(session=db) == []
    assert len(_tasks(db)) == 1
    assert _room_phase(db, sid) == "waiting"  # never read as "the caller hung up"


def test_a_retried_answer_opens_one_task(twilio, db):
    sid, _, _ = _waiting(twilio, db)
    _wait_round(twilio, sid)
    _answer(twilio, sid, "1")
    _answer(twilio, sid, "1")
    assert len(_tasks(db)) == 1


@pytest.mark.parametrize("digits", ["", "2"])
def test_silence_or_another_key_puts_the_caller_back_in_the_queue_in_their_place(
    twilio, db, gateway, digits
):
    sid, conference, queued_at = _waiting(twilio, db)
    other, _, _ = _waiting(twilio, db, waited=100)  # came after: stays behind
    _wait_round(twilio, sid)
    _leaves_for_the_offer(twilio, sid, conference)

    xml = _answer(twilio, sid, digits)

    assert "<Conference" in xml and f">{sid}</Conference>" in xml
    call = _call(db, sid)
    assert call.queued_at == queued_at and call.queue_left_at is None
    assert call.abandoned_at is None and call.callback_offer_outcome == "stayed"
    assert call.intent == "complaint"
    db.expire_all()
    assert [c.call_sid for c in calls.list_waiting_callers(session=db)] == [sid, other]
    assert calls.place_in_line(session=db, call_sid=sid).position == 1
    assert _tasks(db) == []
    # Back in the room: a new conference starts it again, and its leave is a hang-up.
    new_conference = new_conference_sid()
    citizen_joins(twilio, sid, new_conference)
    _wait_round(twilio, sid)
    assert len(gateway.redirected) == 1  # at most once per call
    _hangs_up(twilio, sid, new_conference)
    call = _call(db, sid)
    assert call.abandoned_at is not None
    (task,) = _tasks(db)
    assert (task.source, task.queued_at) == (CallbackSource.ABANDONED, queued_at)


def test_a_caller_who_stays_is_rung_through_when_a_call_taker_is_free(twilio, db, gateway):
    sid, _, _ = _waiting(twilio, db)
    _wait_round(twilio, sid)
    on_duty(db, "wang")  # goes available while the caller hears the offer: not rung for them
    from ivr.dispatch import dispatch_waiting_calls

    with twilio.client.application.app_context():
        assert dispatch_waiting_calls() == []
    _answer(twilio, sid, "")
    assert [added.conference for added in gateway.added] == [sid]


def test_a_real_hang_up_while_waiting_is_an_abandoned_callback_task(twilio, db):
    sid, conference, queued_at = _waiting(twilio, db, waited=30)
    _hangs_up(twilio, sid, conference)
    call = _call(db, sid)
    assert call.abandoned_at is not None
    (task,) = _tasks(db)
    assert (task.call_sid, task.source, task.queued_at) == (
        sid,
        CallbackSource.ABANDONED,
        queued_at,
    )


def test_a_caller_who_hangs_up_while_hearing_the_offer_is_abandoned(twilio, db):
    sid, conference, queued_at = _waiting(twilio, db)
    _wait_round(twilio, sid)
    _hangs_up(twilio, sid, conference)  # the redirect's leave, then the call ends
    call = _call(db, sid)
    assert call.abandoned_at is not None and call.callback_offer_outcome == "hung-up"
    (task,) = _tasks(db)
    assert (task.source, task.queued_at) == (CallbackSource.ABANDONED, queued_at)


def test_the_offer_and_its_answer_are_on_the_calls_history(twilio, db):
    sid, _, _ = _waiting(twilio, db)
    _wait_round(twilio, sid)
    ok(twilio.post("/voice/callback-offer?lang=zh", call_params(sid)))
    _answer(twilio, sid, "1")
    db.expire_all()
    kinds = list(db.scalars(select(CallEvent.kind).where(CallEvent.call_sid == sid)))
    assert "conference:callback-offer" in kinds
    assert kinds[-2:] == ["callback-offer", "step:callback-offer"]
    assert _call(db, sid).front_door_path.endswith(">callback-offer>callback-offer:1")


# -- through the simulator -----------------------------------------------------------------


def test_a_simulated_caller_waits_hears_the_offer_and_presses_1(app, gateway, db, monkeypatch):
    later = datetime.now(UTC) + timedelta(minutes=10)
    monkeypatch.setattr(callback_offer, "utcnow", lambda: later)
    simulator = CallSimulator(
        WsgiTransport(app),
        auth_token=AUTH_TOKEN,
        public_base_url=PUBLIC_BASE_URL,
        phones=SimulatedPhones(gateway, {}),
        max_steps=80,
    )

    transcript = simulator.call("+8613800000001", "+868916312345", ["1", "3", "1"])

    assert transcript.ok, transcript.errors
    heard = "\n".join(transcript.heard)
    assert "the hotline moves the call on" in heard
    assert "如需留下回电请求" in heard and "回电请求已登记" in heard
    assert [r.call_sid for r in gateway.redirected] == [transcript.call_sid]
    call = _call(db, transcript.call_sid)
    assert call.abandoned_at is None and call.callback_offer_outcome == "requested"
    (task,) = _tasks(db)
    assert (task.call_sid, task.source, task.intent) == (
        transcript.call_sid,
        CallbackSource.QUEUE_REQUEST,
        "help",
    )
    assert task.queued_at == call.queued_at


# -- the console page ----------------------------------------------------------------------


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


def _two_tasks(twilio, db) -> tuple[str, str]:
    """An abandoned caller (first in line) and a callback request (second)."""
    first, conference, _ = _waiting(twilio, db, waited=500)
    _hangs_up(twilio, first, conference)
    second, _, _ = _waiting(twilio, db, waited=300)
    _wait_round(twilio, second)
    _answer(twilio, second, "1")
    return first, second


def test_call_takers_and_floor_managers_see_the_open_callbacks_in_place_in_line(twilio, db, client):
    _two_tasks(twilio, db)
    add_staff(db, "wang")
    log_in(client, "wang")

    page = client.get("/console/callbacks").get_data(as_text=True)

    assert "Hung up while waiting" in page and "Asked in the queue" in page
    assert page.index("Hung up while waiting") < page.index("Asked in the queue")
    assert "+8613800000001" in page  # in full: they call back
    assert "issue 5" in page
    client.post("/logout")
    add_staff(db, "mei", Role.FLOOR_MANAGER)
    log_in(client, "mei")
    assert client.get("/console/callbacks").status_code == 200


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.DEPARTMENT_LIAISON, Role.ADMINISTRATOR])
def test_other_roles_may_not_see_or_work_the_list(twilio, db, client, role):
    _two_tasks(twilio, db)
    add_staff(db, "rita", role)
    log_in(client, "rita")
    assert client.get("/console/callbacks").status_code == 403
    task = _tasks(db)[0]
    assert (
        client.post(f"/console/callbacks/{task.id}/done", data={"outcome": "reached"}).status_code
        == 403
    )
    assert _tasks(db)[0].status is CallbackStatus.OPEN


def test_the_anonymous_are_sent_to_the_login(client):
    response = client.get("/console/callbacks")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_marking_a_callback_done_records_who_when_and_what(twilio, db, client):
    _two_tasks(twilio, db)
    wang = add_staff(db, "wang")
    log_in(client, "wang")
    task = _tasks(db)[0]

    response = client.post(
        f"/console/callbacks/{task.id}/done", data={"outcome": "reached", "note": "answered"}
    )

    assert response.status_code == 302
    done = next(t for t in _tasks(db) if t.id == task.id)
    assert (done.status, done.outcome, done.note) == (
        CallbackStatus.DONE,
        CallbackOutcome.REACHED,
        "answered",
    )
    assert done.handled_by == f"staff:{wang.id}" and done.handled_at is not None
    event = db.scalar(
        select(CallEvent).where(
            CallEvent.call_sid == task.call_sid, CallEvent.kind == "callback:done"
        )
    )
    assert event is not None and event.params["who"] == f"staff:{wang.id}"
    page = client.get("/console/callbacks").get_data(as_text=True)
    assert "(1 open)" in page and "Reached the caller" in page
    again = client.post(f"/console/callbacks/{task.id}/done", data={"outcome": "no-answer"})
    assert again.status_code == 302
    assert next(t for t in _tasks(db) if t.id == task.id).outcome is CallbackOutcome.REACHED


def test_marking_done_needs_the_csrf_token(app, twilio, db):
    _two_tasks(twilio, db)
    add_staff(db, "wang")
    app.config["WTF_CSRF_ENABLED"] = True
    browser = app.test_client()
    token = csrf_token_of(browser, "/login")
    browser.post("/login", data={"username": "wang", "password": PASSWORD, "csrf_token": token})
    task = _tasks(db)[0]

    refused = browser.post(f"/console/callbacks/{task.id}/done", data={"outcome": "reached"})
    assert refused.status_code == 400
    assert _tasks(db)[0].status is CallbackStatus.OPEN

    token = csrf_token_of(browser, "/console/callbacks")
    accepted = browser.post(
        f"/console/callbacks/{task.id}/done", data={"outcome": "reached", "csrf_token": token}
    )
    assert accepted.status_code == 302
    assert _tasks(db)[0].status is CallbackStatus.DONE


def test_the_offers_wait_is_a_checked_setting(database_url):
    assert make_settings(database_url).callback_offer_after_seconds == 120
    never = make_settings(database_url, CALLBACK_OFFER_AFTER_SECONDS="0")
    assert never.callback_offer_after_seconds == 0
    with pytest.raises(SettingsError, match="CALLBACK_OFFER_AFTER_SECONDS"):
        make_settings(database_url, CALLBACK_OFFER_AFTER_SECONDS="soon")


def test_an_answer_without_an_open_offer_promises_no_callback(twilio, db):
    sid, _, _ = _waiting(twilio, db, waited=10)
    xml = _answer(twilio, sid, "1")
    assert "<Conference" in xml and "<Hangup" not in xml
    assert _tasks(db) == []
