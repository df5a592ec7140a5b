"""The voice webhooks as Twilio sees them: signed posts in, TwiML out, events stored."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.gateway import GatewayUnavailable
from tests.support.twiml_schema import assert_valid_twiml
from tests.support.webhooks import TwilioSender, call_params, new_call_sid
from tickets.models import Call, CallEvent, CallStatus, WorkOrder

PUBLIC = "https://hotline.example.org"
VOICE_ROUTES = [
    "/voice/incoming",
    "/voice/step/language?lang=zh&try=1",
    "/voice/step/menu?lang=zh&try=1",
    "/voice/step/progress?lang=zh&try=1",
    "/voice/step/emergency?lang=zh&try=1",
    "/voice/wait/queue?lang=zh",
    "/voice/wait/emergency?lang=zh&line=fire",
    "/voice/status",
    "/voice/conference-status",
    "/voice/fallback",
]


def twiml(response) -> ET.Element:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.data[:300]
    assert response.content_type.startswith("text/xml")
    body = response.get_data(as_text=True)
    assert_valid_twiml(body)
    assert len(body.encode()) < 64_000
    return ET.fromstring(body)


def count(db: Session, model, *where) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(func.count()).select_from(model).where(*where)) or 0


def start_call(twilio: TwilioSender, from_number: str = "+8613800000001") -> str:
    sid = new_call_sid()
    twiml(twilio.post("/voice/incoming", call_params(sid, from_number, CallStatus="ringing")))
    return sid


@pytest.mark.parametrize("path", VOICE_ROUTES)
def test_unsigned_request_is_refused_and_writes_nothing(twilio, db, path):
    response = twilio.client.post(path, data=call_params(new_call_sid()))
    assert response.status_code == 403
    assert count(db, CallEvent) == 0 and count(db, Call) == 0


@pytest.mark.parametrize("path", VOICE_ROUTES)
def test_forged_signature_is_refused_and_writes_nothing(twilio, db, path):
    params = call_params(new_call_sid(), Digits="1")
    forged = twilio.signature(path, {**params, "Digits": "9"})
    response = twilio.post(path, params, signature=forged)
    assert response.status_code == 403
    assert count(db, CallEvent) == 0


def test_signature_for_another_host_is_refused(twilio):
    params = call_params(new_call_sid())
    signature = twilio.validator.compute_signature("https://evil.example/voice/incoming", params)
    assert twilio.post("/voice/incoming", params, signature=signature).status_code == 403


def test_signature_on_a_url_with_chinese_text_validates(twilio):
    sid = start_call(twilio)
    path = "/voice/step/menu?lang=zh&try=1&note=%E6%8B%89%E8%90%A8"
    assert twilio.post(path, call_params(sid, Digits="1")).status_code == 200


def test_trailing_slash_is_served_without_a_redirect(twilio):
    response = twilio.post("/voice/incoming/", call_params(new_call_sid()))
    assert response.status_code == 200


def test_incoming_call_is_greeted_with_the_language_choice_and_stored(twilio, db):
    sid = new_call_sid()
    root = twiml(twilio.post("/voice/incoming", call_params(sid, CallStatus="ringing")))
    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("action") == f"{PUBLIC}/voice/step/language?lang=zh&try=1"
    assert gather.get("input") == "dtmf speech" and gather.get("numDigits") == "1"
    spoken = " ".join(say.text or "" for say in gather.iter("Say"))
    assert "请按9" in spoken and "藏语服务请按2" in spoken and "For English, press 3" in spoken
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call is not None and call.from_number == "+8613800000001"
    assert call.status is CallStatus.RINGING and call.front_door_path == ">greeting"


@pytest.mark.parametrize(
    ("raw_from", "kind", "number"),
    [
        ("anonymous", "anonymous", None),
        ("+266696687", "anonymous", None),
        ("client:alice", "client", None),
        ("", "unknown", None),
        ("08916312345", "number", "+868916312345"),
    ],
)
def test_unusual_callers_are_kept_as_marked_callers(twilio, db, raw_from, kind, number):
    sid = new_call_sid()
    twiml(twilio.post("/voice/incoming", call_params(sid, raw_from)))
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call is not None and call.caller_kind == kind and call.from_number == number


def test_every_gather_and_dial_has_an_absolute_action(twilio):
    sid = start_call(twilio)
    for path, digits in [
        ("/voice/step/language?lang=zh&try=1", "1"),
        ("/voice/step/menu?lang=zh&try=1", "2"),
    ]:
        root = twiml(twilio.post(path, call_params(sid, Digits=digits)))
        for verb in [*root.iter("Gather"), *root.iter("Dial")]:
            assert verb.get("action", "").startswith(PUBLIC + "/voice/")


def test_menu_choice_joins_the_callers_own_conference_and_keeps_the_intent(twilio, db):
    sid = start_call(twilio)
    twiml(twilio.post("/voice/step/language?lang=zh&try=1", call_params(sid, Digits="1")))
    root = twiml(twilio.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits="2")))
    conference = root.find("Dial/Conference")
    assert conference is not None and conference.text == sid
    assert conference.get("waitUrl") == f"{PUBLIC}/voice/wait/queue?lang=zh"
    assert conference.get("startConferenceOnEnter") == "false"
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.language == "zh" and call.intent == "complaint"
    assert call.front_door_path == ">greeting>language:zh>menu:2"
    assert call.queued_at is not None


def test_wait_room_announces_the_position_and_loops(twilio):
    first, second = start_call(twilio), start_call(twilio, "+8613800000002")
    for sid in (first, second):
        twilio.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits="1"))
    root = twiml(twilio.post("/voice/wait/queue?lang=zh", call_params(second)))
    assert "您前面还有1位来电" in (root.find("Say").text or "")
    assert root.find("Play") is not None
    assert root.find("Redirect").text == f"{PUBLIC}/voice/wait/queue?lang=zh"
    head = twiml(twilio.post("/voice/wait/queue?lang=en", call_params(first)))
    assert "next in line" in (head.find("Say").text or "")


def test_emergency_choice_opens_an_urgent_order_and_dials_the_line(twilio, db, gateway):
    sid = start_call(twilio)
    twiml(twilio.post("/voice/step/language?lang=zh&try=1", call_params(sid, Digits="9")))
    root = twiml(twilio.post("/voice/step/emergency?lang=zh&try=1", call_params(sid, Digits="1")))
    assert "119" in (root.find("Say").text or "")
    assert root.find("Dial/Conference").text == sid
    [placed] = gateway.placed
    assert placed.to_number == "+868910000119" and placed.room == sid
    assert placed.status_callback_url.startswith(f"{PUBLIC}/voice/status?leg=emergency")
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == sid))
    assert order.is_urgent and order.emergency_line == "fire"
    assert order.emergency_requested_at and order.emergency_dialed_at
    assert order.emergency_leg_sid == placed.sid
    assert [h.to_state for h in order.history] == ["received"]


def test_a_retried_emergency_webhook_opens_one_order_and_dials_once(twilio, db, gateway):
    sid = start_call(twilio)
    params = call_params(sid, Digits="2")
    for _ in range(3):
        twiml(twilio.post("/voice/step/emergency?lang=zh&try=1", params, token="same-token"))
    assert count(db, WorkOrder, WorkOrder.call_sid == sid) == 1
    assert len(gateway.placed) == 1
    assert count(db, CallEvent, CallEvent.kind == "step:emergency") == 1


def test_emergency_leg_answer_is_time_stamped(twilio, db, gateway):
    sid = start_call(twilio)
    twilio.post("/voice/step/emergency?lang=zh&try=1", call_params(sid, Digits="3"))
    leg = gateway.placed[0]
    path = leg.status_callback_url.removeprefix(PUBLIC)
    twilio.post(path, {"CallSid": leg.sid, "CallStatus": "in-progress", "SequenceNumber": "2"})
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == sid))
    assert order.emergency_connected_at is not None


def test_failed_emergency_leg_is_dialled_again_then_the_caller_is_told(twilio, gateway):
    sid = start_call(twilio)
    twilio.post("/voice/step/emergency?lang=en&try=1", call_params(sid, Digits="2"))
    for attempt in range(3):
        leg = gateway.placed[attempt]
        path = leg.status_callback_url.removeprefix(PUBLIC)
        twilio.post(path, {"CallSid": leg.sid, "CallStatus": "busy", "SequenceNumber": "3"})
    assert len(gateway.placed) == 3
    [redirect] = gateway.redirected
    assert redirect.call_sid == sid and "/voice/step/emergency-unreachable" in redirect.url
    root = twiml(twilio.post(redirect.url.removeprefix(PUBLIC), call_params(sid)))
    assert "dial 120 directly" in (root.find("Say").text or "")
    assert root.find("Dial/Conference") is not None


def test_gateway_failure_is_retried_from_the_wait_room(twilio, gateway, db):
    sid = start_call(twilio)
    gateway.fail_next = GatewayUnavailable("Twilio timed out")
    twiml(twilio.post("/voice/step/emergency?lang=zh&try=1", call_params(sid, Digits="1")))
    assert gateway.placed == []
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == sid))
    order.emergency_requested_at = order.emergency_requested_at.replace(year=2020)
    db.commit()
    root = twiml(twilio.post("/voice/wait/emergency?lang=zh&line=fire", call_params(sid)))
    assert root.find("Redirect") is not None
    assert len(gateway.placed) == 1


def test_progress_is_read_only_to_the_number_that_opened_the_order(twilio, db, app):
    from webapp.demo import seed_demo_data

    list(seed_demo_data(app.extensions["hotline.engine"], app.config["HOTLINE_SETTINGS"]))
    owner = start_call(twilio, "+8613800000001")
    root = twiml(
        twilio.post(
            "/voice/step/progress?lang=zh&try=1",
            call_params(owner, "+8613800000001", Digits="20261120000001"),
        )
    )
    assert "办理中" in (root.find("Say").text or "")
    stranger = start_call(twilio, "+8613900000009")
    root = twiml(
        twilio.post(
            "/voice/step/progress?lang=zh&try=1",
            call_params(stranger, "+8613900000009", Digits="20261120000001"),
        )
    )
    assert "办理中" not in (root.find("Say").text or "")
    assert root.find("Dial/Conference") is not None


@pytest.mark.parametrize("digits", ["", "*#", "12a", "9" * 50, "<script>", "１", "0x1"])
def test_garbage_digits_get_a_sensible_answer(twilio, digits):
    sid = start_call(twilio)
    root = twiml(twilio.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits=digits)))
    assert root.find("Gather") is not None or root.find("Dial") is not None


def test_ten_kilobytes_of_speech_are_understood_and_stored_cut(twilio, db):
    sid = start_call(twilio)
    speech = "我要投诉" + "啊" * 10_000
    root = twiml(
        twilio.post(
            "/voice/step/menu?lang=zh&try=1",
            call_params(sid, SpeechResult=speech, Confidence="0.8"),
        )
    )
    assert root.find("Dial/Conference") is not None
    event = db.scalar(select(CallEvent).where(CallEvent.kind == "step:menu"))
    assert len(event.params["SpeechResult"]) <= 2_000


@pytest.mark.parametrize("path", ["/voice/step/nowhere?lang=xx&try=zz", "/voice/step/menu?try=-5"])
def test_unknown_stages_and_bad_state_still_answer_twiml(twilio, path):
    sid = start_call(twilio)
    twiml(twilio.post(path, call_params(sid, Digits="1")))


def test_wrong_method_is_refused_cleanly(twilio):
    response = twilio.client.put("/voice/incoming")
    assert response.status_code == 405


def test_an_error_inside_a_route_becomes_the_apology(twilio, app, monkeypatch):
    from tickets import calls

    def broken(**_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database on fire")

    monkeypatch.setattr(calls, "note_front_door_steps", broken)
    sid = start_call(twilio)
    root = twiml(twilio.post("/voice/step/menu?lang=en&try=1", call_params(sid, Digits="1")))
    assert "Sorry, something went wrong" in (root.find("Say").text or "")
    assert root.find("Dial/Conference") is not None


def test_an_error_in_the_emergency_lane_still_reaches_the_emergency_line(
    twilio, gateway, monkeypatch
):
    from tickets import work_orders

    def broken(**_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database on fire")

    monkeypatch.setattr(work_orders, "open_emergency_work_order", broken)
    sid = start_call(twilio)
    root = twiml(twilio.post("/voice/step/emergency?lang=zh&try=1", call_params(sid, Digits="2")))
    assert "120" in (root.find("Say").text or "")
    assert [p.to_number for p in gateway.placed] == ["+868910000120"]


def test_fallback_url_apologises_and_queues(twilio, db):
    sid = new_call_sid()
    params = call_params(sid, ErrorCode="11200", ErrorUrl=f"{PUBLIC}/voice/step/menu")
    root = twiml(twilio.post("/voice/fallback", params))
    assert "对不起" in (root.find("Say").text or "")
    assert root.find("Dial/Conference") is not None
    assert count(db, CallEvent, CallEvent.kind == "fallback") == 1


def test_status_callbacks_are_stored_once_and_never_move_back(twilio, db):
    sid = start_call(twilio)
    completed = {
        "CallSid": sid,
        "CallStatus": "completed",
        "CallDuration": "42",
        "SequenceNumber": "3",
    }
    in_progress = {"CallSid": sid, "CallStatus": "in-progress", "SequenceNumber": "2"}
    twiml(twilio.post("/voice/status", completed, token="t-3"))
    twiml(twilio.post("/voice/status", completed, token="t-3"))  # Twilio's retry
    twiml(twilio.post("/voice/status", in_progress, token="t-2"))  # late, out of order
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.status is CallStatus.COMPLETED and call.duration_seconds == 42
    assert count(db, CallEvent, CallEvent.kind == "status") == 2


def test_status_callbacks_without_token_are_deduplicated_by_sequence(twilio, db):
    sid = start_call(twilio)
    params = {"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "1"}
    for _ in range(2):
        twilio.client.post(
            "/voice/status",
            data=params,
            headers={"X-Twilio-Signature": twilio.signature("/voice/status", params)},
        )
    assert count(db, CallEvent, CallEvent.kind == "status") == 1


def test_callback_for_an_unknown_call_is_kept(twilio, db):
    sid = new_call_sid()
    twiml(twilio.post("/voice/status", {"CallSid": sid, "CallStatus": "completed"}))
    assert count(db, CallEvent, CallEvent.call_sid == sid) == 1
    assert count(db, Call, Call.call_sid == sid) == 0


def test_caller_who_hangs_up_in_the_queue_has_a_queue_wait(twilio, db):
    sid = start_call(twilio)
    twilio.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits="0"))
    leave = {
        "ConferenceSid": "CF" + "a" * 32,
        "FriendlyName": sid,
        "CallSid": sid,
        "StatusCallbackEvent": "participant-leave",
        "SequenceNumber": "2",
    }
    twiml(twilio.post("/voice/conference-status", leave))
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.queue_left_at is not None and call.queue_wait_seconds is not None


def test_call_history_is_complete_and_ordered(twilio, db):
    sid = start_call(twilio)
    twilio.post("/voice/step/language?lang=zh&try=1", call_params(sid, Digits="1"))
    twilio.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits="1"))
    twilio.post("/voice/status", {"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "1"})
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert [e.kind for e in call.events] == ["incoming", "step:language", "step:menu", "status"]


def test_wait_room_plays_the_apps_own_thirty_second_hold_music(twilio):
    sid = start_call(twilio)
    twilio.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits="1"))
    root = twiml(twilio.post("/voice/wait/queue?lang=zh", call_params(sid)))
    assert root.find("Play").text == f"{PUBLIC}/voice/audio/hold-music.mp3"
    with twilio.client.get("/voice/audio/hold-music.mp3") as music:
        assert music.status_code == 200 and music.mimetype == "audio/mpeg"
        assert len(music.data) > 100_000


def test_tibetan_caller_hears_the_recording_where_one_exists(database_url, recordings):
    from ivr.gateway import ConsoleGateway
    from tests.conftest import AUTH_TOKEN, make_settings
    from webapp import create_app

    (recordings / "bo").mkdir()
    (recordings / "bo" / "main_menu.mp3").write_bytes(b"ID3 recorded by the hotline")
    app = create_app(
        make_settings(database_url, RECORDINGS_DIR=str(recordings)), gateway=ConsoleGateway()
    )
    try:
        sender = TwilioSender(app.test_client(), AUTH_TOKEN, PUBLIC)
        sid = start_call(sender)
        root = twiml(
            sender.post("/voice/step/language?lang=zh&try=1", call_params(sid, Digits="2"))
        )
        gather = root.find("Gather")
        assert gather.find("Play").text == f"{PUBLIC}/voice/audio/bo/main_menu.mp3"
        with sender.client.get("/voice/audio/bo/main_menu.mp3") as recording:
            assert recording.status_code == 200 and recording.mimetype == "audio/mpeg"
        assert sender.client.get("/voice/audio/bo/../../secret.mp3").status_code == 404
        menu = twiml(sender.post("/voice/step/menu?lang=bo&try=1", call_params(sid, Digits="x")))
        spoken = [say.get("language") for say in menu.iter("Say")]
        assert spoken and set(spoken) == {"cmn-CN"}  # no recording: Mandarin, not silence
    finally:
        app.extensions["hotline.engine"].dispose()


def test_each_caller_waits_in_a_room_of_their_own_even_when_the_twiml_is_cached(twilio):
    rooms = []
    for number in ("+8613800000001", "+8613800000002", "+8613800000003"):
        sid = start_call(twilio, number)
        root = twiml(
            twilio.post("/voice/step/menu?lang=zh&try=1", call_params(sid, number, Digits="1"))
        )
        rooms.append((sid, root.find("Dial/Conference").text))
    assert all(sid == room for sid, room in rooms)
    assert len({room for _, room in rooms}) == 3


def test_fallback_from_the_emergency_lane_reaches_the_line_once(twilio, db, gateway):
    sid = new_call_sid()
    params = call_params(sid, ErrorCode="11200", ErrorUrl=f"{PUBLIC}/voice/step/emergency")
    for _ in range(2):  # Twilio's retry of the same delivery
        root = twiml(twilio.post("/voice/fallback", params, token="fallback-1"))
    assert "110" in (root.find("Say").text or "")
    assert [p.to_number for p in gateway.placed] == ["+868910000110"]
    assert count(db, WorkOrder, WorkOrder.call_sid == sid) == 1


def test_fallback_caller_is_put_in_the_queue(twilio, db):
    sid = start_call(twilio)
    params = call_params(sid, ErrorCode="11200", ErrorUrl=f"{PUBLIC}/voice/step/menu")
    twiml(twilio.post("/voice/fallback", params))
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.queued_at is not None and call.front_door_path.endswith(">fallback")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/voice/status", {"CallStatus": "completed", "SequenceNumber": "9" * 30}),
        ("/voice/status", {"CallStatus": "no-such-status", "CallDuration": "-5"}),
        ("/voice/conference-status", {"StatusCallbackEvent": "x" * 500, "SequenceNumber": "-1"}),
    ],
)
def test_absurd_callback_values_are_stored_not_refused(twilio, db, path, params):
    sid = start_call(twilio)
    twiml(twilio.post(path, {"CallSid": sid, **params}))
    assert count(db, CallEvent, CallEvent.call_sid == sid) == 2


def test_an_unknown_wait_room_is_not_found(twilio):
    response = twilio.post("/voice/wait/" + "x" * 300, call_params(new_call_sid()))
    assert response.status_code == 404
