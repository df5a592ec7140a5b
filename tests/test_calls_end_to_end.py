"""Whole calls through the front door (PRODUCT.md, "The inbound call", points 1-5).

Each test places a call with the local call simulator (in process, over WSGI), walks one
branch of the front door and then checks two things: what the caller heard (the prompt
texts of ``callflows.prompts``, in the voice of the caller's language) and what the ticket
store holds afterwards (the call, one event per webhook, the urgent work order and the
emergency leg). What the simulator cannot send (keys a phone does not have, a retried
delivery) is posted by hand with the ``twilio`` fixture, along the same signed action URLs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callflows.prompts import LINE_NAMES, prompt_text
from ivr.gateway import ConsoleGateway, GatewayUnavailable
from ivr.simulator import CallSimulator, CallTranscript, RequestRecord, make_simulator
from tests.conftest import AUTH_TOKEN, HOTLINE_NUMBER, PUBLIC_BASE_URL, make_settings
from tests.support.twiml_schema import assert_valid_twiml
from tests.support.webhooks import TwilioSender, call_params, new_call_sid
from tickets.models import (
    Call,
    CallDirection,
    CallEvent,
    CallStatus,
    WorkOrder,
    WorkOrderKind,
    WorkOrderState,
)
from webapp import create_app
from webapp.demo import DEMO_CALLER, seed_demo_data

OWNER = DEMO_CALLER  # the number that opened the demo orders
STRANGER = "+8613900000009"
DEMO_ORDER = "20261120000001"  # in progress, 城关区住房和城乡建设局
DEMO_DEPARTMENT = "城关区住房和城乡建设局"
LINE_NUMBERS = {
    "fire": "+868910000119",
    "medical": "+868910000120",
    "police": "+868910000110",
    "traffic": "+868910000122",
    "utility": "+868910012345",
}
EMERGENCY_KEYS = {"1": "fire", "2": "medical", "3": "police", "4": "traffic", "5": "utility"}
VOICES = {  # Tibetan has no Twilio voice: its prompts fall back to Mandarin TTS
    "zh": "(cmn-CN, Polly.Zhiyu)",
    "bo": "(cmn-CN, Polly.Zhiyu)",
    "en": "(en-US, Polly.Joanna)",
}
LANGUAGE_KEYS = {"zh": "1", "bo": "2", "en": "3"}
TOKEN = "I-Twilio-Idempotency-Token"
INTERNAL_EVENTS = {"emergency-dialed", "emergency-dial-failed"}  # the app's own notes
# The conference's and routing's history of a call (tests/test_conference_edge.py).
CONFERENCE_NOTES = ("conference:", "routing:")
TEN_KB_OF_SPEECH = "speech:" + "啊" * 10_000


# -- what the caller hears ---------------------------------------------------------------


def line(key: str, lang: str = "zh", **args: str) -> str:
    """The transcript line of prompt ``key`` spoken to a caller of language ``lang``."""
    return f"🔊 {VOICES[lang]} {prompt_text(key, lang, args or None)}"


def line_name(line_key: str, lang: str) -> str:
    return LINE_NAMES[line_key].get(lang) or LINE_NAMES[line_key]["zh"]


def times(transcript: CallTranscript, key: str, lang: str = "zh", **args: str) -> int:
    """How often the caller heard prompt ``key`` (exactly, in the right voice)."""
    return transcript.heard.count(line(key, lang, **args))


def greeting_heard(transcript: CallTranscript) -> int:
    return times(transcript, "welcome")


def heard_hold_music(transcript: CallTranscript) -> bool:
    """Music played in the wait room (the configured clip or the app's own)."""
    return any(
        said.startswith("♪ http") and said.endswith((".mp3", ".wav")) for said in transcript.heard
    )


def assert_waited_in_the_queue(transcript: CallTranscript, lang: str) -> None:
    assert times(transcript, "to_call_taker", lang) == 1
    assert times(transcript, "queue_next", lang) >= 1  # alone in the queue: "you are next"
    assert heard_hold_music(transcript)
    assert transcript.ended_by == "conference"


# -- the simulator and the ticket store ----------------------------------------------------


def walk(simulator: CallSimulator, inputs: list[str], from_number: str = OWNER) -> CallTranscript:
    """Place a call; every answer of the app must be valid TwiML, never an error."""
    transcript = simulator.call(from_number, HOTLINE_NUMBER, inputs=inputs)
    assert transcript.ok, transcript.errors
    for record in transcript.requests:
        assert record.status == 200, (record.path, record.body[:300])
        assert_valid_twiml(record.body)
    assert not any(said.startswith("✖") for said in transcript.heard)
    return transcript


def stored_call(db: Session, call_sid: str) -> Call:
    db.expire_all()
    call = db.scalar(select(Call).where(Call.call_sid == call_sid))
    assert call is not None, f"no stored call {call_sid}"
    return call


def events_of(db: Session, call_sid: str) -> list[CallEvent]:
    db.expire_all()
    query = select(CallEvent).where(CallEvent.call_sid == call_sid).order_by(CallEvent.id)
    return list(db.scalars(query))


def event_kind(record: RequestRecord) -> str:
    """The ``CallEvent.kind`` a webhook is stored as: incoming, step:menu, wait:queue…"""
    path = urlsplit(record.path).path
    fixed = {"/voice/incoming": "incoming", "/voice/status": "status"}
    if path in fixed:
        return fixed[path]
    if path == "/voice/conference-status":
        return "conference"
    _, _voice, group, name = path.split("/")
    return f"{group}:{name}"


def assert_one_event_per_request(
    db: Session, transcript: CallTranscript, internal: tuple[str, ...] = ()
) -> None:
    """Exactly one stored event per webhook, in order; nothing else but ``internal``."""
    events = [
        e for e in events_of(db, transcript.call_sid) if not e.kind.startswith(CONFERENCE_NOTES)
    ]
    webhooks = [e for e in events if e.kind not in INTERNAL_EVENTS]
    assert [e.kind for e in webhooks] == [event_kind(r) for r in transcript.requests]
    assert [e.dedupe_key for e in webhooks] == [r.headers[TOKEN] for r in transcript.requests]
    assert sorted(e.kind for e in events if e.kind in INTERNAL_EVENTS) == sorted(internal)


def assert_call_completed(
    db: Session,
    transcript: CallTranscript,
    *,
    path: str,
    language: str | None,
    intent: str | None,
) -> Call:
    call = stored_call(db, transcript.call_sid)
    assert call.front_door_path == path
    assert call.language == language
    assert call.intent == intent
    assert call.status is CallStatus.COMPLETED and call.ended_at is not None
    assert call.direction is CallDirection.INBOUND
    return call


def assert_queued(call: Call) -> None:
    assert call.queued_at is not None
    assert call.queue_left_at is not None  # the caller hung up in the queue
    assert call.queue_wait_seconds is not None and call.queue_wait_seconds >= 0
    assert call.emergency_line is None


def assert_not_queued(call: Call) -> None:
    assert call.queued_at is None and call.queue_left_at is None
    assert call.queue_wait_seconds is None


def assert_no_work_order(db: Session, call_sid: str) -> None:
    count = select(func.count()).select_from(WorkOrder).where(WorkOrder.call_sid == call_sid)
    assert db.scalar(count) == 0


def assert_joined_with_the_line(
    db: Session,
    gateway: ConsoleGateway,
    transcript: CallTranscript,
    *,
    emergency_line: str,
    lang: str,
    caller_number: str | None = OWNER,
) -> None:
    """What the caller heard, the urgent order and the outbound leg of the emergency lane."""
    sid = transcript.call_sid
    name = line_name(emergency_line, lang)
    assert times(transcript, "emergency_connecting", lang, line=name) == 1
    assert times(transcript, "emergency_hold", lang) >= 1
    assert times(transcript, "queue_next", lang) == 0  # never waits in the queue
    assert times(transcript, "to_call_taker", lang) == 0

    [placed] = gateway.placed
    assert placed.to_number == LINE_NUMBERS[emergency_line]
    assert placed.from_number == HOTLINE_NUMBER
    assert placed.room == sid and placed.label == f"emergency-{emergency_line}"

    db.expire_all()
    [order] = db.scalars(select(WorkOrder).where(WorkOrder.call_sid == sid)).all()
    assert order.kind is WorkOrderKind.EMERGENCY and order.is_urgent
    assert order.state is WorkOrderState.RECEIVED
    assert order.emergency_line == emergency_line
    assert order.emergency_number == LINE_NUMBERS[emergency_line]
    assert order.caller_number == caller_number and order.language == lang
    assert order.emergency_requested_at is not None and order.emergency_dialed_at is not None
    assert order.emergency_requested_at <= order.emergency_dialed_at
    assert order.emergency_leg_sid == placed.sid
    assert order.number.isdigit()  # a caller can key it to hear the progress later
    assert [h.to_state for h in order.history] == ["received"]

    leg = stored_call(db, placed.sid)
    assert leg.parent_call_sid == sid and leg.direction is CallDirection.OUTBOUND
    assert leg.to_number == LINE_NUMBERS[emergency_line]
    assert leg.leg_role == "emergency-line"

    call = stored_call(db, sid)
    assert call.intent == "emergency" and call.emergency_line == emergency_line
    assert_not_queued(call)  # an emergency caller never waits in the queue
    assert_one_event_per_request(db, transcript, internal=("emergency-dialed",))


@pytest.fixture
def demo_orders(app: Flask, engine: object) -> list[str]:
    return list(seed_demo_data(app.extensions["hotline.engine"], app.config["HOTLINE_SETTINGS"]))


def demo_due_date(db: Session, app: Flask) -> str:
    order = db.scalar(select(WorkOrder).where(WorkOrder.number == DEMO_ORDER))
    assert order is not None and order.due_at is not None
    return order.due_at.astimezone(app.config["HOTLINE_SETTINGS"].zone).strftime("%Y-%m-%d")


# -- 1. greeting and language ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "lang"),
    [
        ("1", "zh"),
        ("2", "bo"),  # no Tibetan recordings configured: Mandarin TTS is heard
        ("3", "en"),
        ("speech:普通话", "zh"),
        ("speech:English", "en"),
        ("speech:藏语", "bo"),
    ],
)
def test_caller_hears_the_menu_and_the_queue_in_the_language_they_chose(
    simulator, db, choice, lang
):
    transcript = walk(simulator, [choice, "0"])

    assert greeting_heard(transcript) == 1
    assert times(transcript, "choose_tibetan", "bo") == 1
    assert times(transcript, "choose_english", "en") == 1
    assert times(transcript, "main_menu", lang) == 1
    assert times(transcript, "invalid_input", lang) == 0
    assert_waited_in_the_queue(transcript, lang)
    call = assert_call_completed(
        db,
        transcript,
        path=f">greeting>language:{lang}>menu:0>ended",
        language=lang,
        intent="operator",
    )
    assert_queued(call)
    assert_one_event_per_request(db, transcript)


def test_tibetan_caller_hears_mandarin_speech_not_english_nor_silence(simulator):
    transcript = walk(simulator, ["2", "1"])

    after_choice = transcript.heard[transcript.heard.index("👤 presses 2") + 1 :]
    spoken = [said for said in after_choice if said.startswith("🔊")]
    assert spoken and all(said.startswith(f"🔊 {VOICES['zh']} ") for said in spoken)


def test_caller_silent_twice_at_the_language_choice_gets_the_mandarin_menu(simulator, db, app):
    transcript = walk(simulator, ["", "", "1"])

    assert greeting_heard(transcript) == 2
    assert times(transcript, "invalid_input") == 1
    assert times(transcript, "main_menu") == 1
    assert_waited_in_the_queue(transcript, "zh")
    call = assert_call_completed(
        db,
        transcript,
        path=">greeting>language:retry1>language:default>menu:1>ended",
        language="zh",
        intent="consultation",
    )
    assert_queued(call)
    assert_one_event_per_request(db, transcript)


@pytest.mark.parametrize(
    ("first", "second", "lang"),
    [("7", "3", "en"), ("speech:天气怎么样", "2", "bo"), ("0", "speech:中文", "zh")],
)
def test_caller_with_an_invalid_language_choice_is_asked_once_more_and_the_next_counts(
    simulator, db, first, second, lang
):
    transcript = walk(simulator, [first, second, "2"])

    assert greeting_heard(transcript) == 2
    assert times(transcript, "invalid_input") == 1  # still in Mandarin: nothing chosen yet
    assert times(transcript, "main_menu", lang) == 1
    assert_waited_in_the_queue(transcript, lang)
    call = assert_call_completed(
        db,
        transcript,
        path=f">greeting>language:retry1>language:{lang}>menu:2>ended",
        language=lang,
        intent="complaint",
    )
    assert_queued(call)
    assert_one_event_per_request(db, transcript)


def test_caller_who_hangs_up_at_the_greeting_leaves_a_completed_call(simulator, db):
    transcript = walk(simulator, [])

    assert transcript.ended_by == "caller"
    call = assert_call_completed(db, transcript, path=">greeting", language=None, intent=None)
    assert_not_queued(call)
    assert_one_event_per_request(db, transcript)


# -- 2. main menu --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "choice", "intent", "step"),
    [
        ("zh", "1", "consultation", "menu:1"),
        ("zh", "2", "complaint", "menu:2"),
        ("zh", "3", "help", "menu:3"),
        ("zh", "0", "operator", "menu:0"),
        ("zh", "speech:我要投诉", "complaint", "menu:2"),
        ("zh", "speech:转人工", "operator", "menu:0"),
        ("en", "1", "consultation", "menu:1"),
        ("en", "speech:I want to make a complaint", "complaint", "menu:2"),
        ("bo", "3", "help", "menu:3"),
    ],
)
def test_main_menu_choice_puts_the_caller_in_the_queue_with_its_intent(
    simulator, db, lang, choice, intent, step
):
    transcript = walk(simulator, [LANGUAGE_KEYS[lang], choice])

    assert times(transcript, "main_menu", lang) == 1
    assert_waited_in_the_queue(transcript, lang)
    call = assert_call_completed(
        db,
        transcript,
        path=f">greeting>language:{lang}>{step}>ended",
        language=lang,
        intent=intent,
    )
    assert_queued(call)
    assert_no_work_order(db, transcript.call_sid)
    assert_one_event_per_request(db, transcript)


def test_star_repeats_the_main_menu_without_counting_as_a_wrong_try(simulator, db, app):
    transcript = walk(simulator, ["1", "*", "*", "3"])

    assert times(transcript, "main_menu") == 3
    assert times(transcript, "invalid_input") == 0
    assert_waited_in_the_queue(transcript, "zh")
    call = assert_call_completed(
        db,
        transcript,
        path=">greeting>language:zh>menu:repeat>menu:repeat>menu:3>ended",
        language="zh",
        intent="help",
    )
    assert_queued(call)
    assert_one_event_per_request(db, transcript)


@pytest.mark.parametrize(
    ("inputs", "path"),
    [
        (["7", "", "speech:天气怎么样"], "menu:retry1>menu:retry2>menu:gave-up"),
        (["", "", ""], "menu:retry1>menu:retry2>menu:gave-up"),
        (["*", "5", "6", "8"], "menu:repeat>menu:retry1>menu:retry2>menu:gave-up"),
    ],
)
def test_three_wrong_tries_at_the_main_menu_reach_a_call_taker(simulator, db, inputs, path):
    transcript = walk(simulator, ["1", *inputs])

    assert times(transcript, "main_menu") == len(inputs)
    assert times(transcript, "invalid_input") == 2
    assert_waited_in_the_queue(transcript, "zh")
    call = assert_call_completed(
        db,
        transcript,
        path=f">greeting>language:zh>{path}>ended",
        language="zh",
        intent="operator",
    )
    assert_queued(call)
    assert_one_event_per_request(db, transcript)


def test_queue_announces_the_place_of_a_caller_behind_another(simulator, twilio, db, app):
    ahead = new_call_sid()  # someone already waiting, who has not hung up
    twilio.post("/voice/incoming", call_params(ahead, STRANGER, CallStatus="ringing"))
    twilio.post("/voice/step/menu?lang=zh&try=1", call_params(ahead, STRANGER, Digits="1"))

    transcript = walk(simulator, ["1", "2"])

    assert times(transcript, "queue_position", position="1") >= 1
    assert times(transcript, "queue_next") == 0
    assert heard_hold_music(transcript)
    assert_queued(stored_call(db, transcript.call_sid))
    assert stored_call(db, ahead).queue_left_at is None  # still waiting


# -- 3. work-order progress ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "state"),
    [
        ("zh", "办理中"),
        ("en", "in progress"),
        ("bo", "办理中"),  # no Tibetan state names: the Mandarin one, never the raw value
    ],
)
def test_owner_hears_the_progress_hears_it_again_then_reaches_a_call_taker(
    simulator, db, app, demo_orders, lang, state
):
    due = demo_due_date(db, app)
    transcript = walk(simulator, [LANGUAGE_KEYS[lang], "4", f"{DEMO_ORDER}#", "1", "0"])

    status = {
        "number": " ".join(DEMO_ORDER),
        "state": state,
        "department": DEMO_DEPARTMENT,
        "due": due,
    }
    assert times(transcript, "progress_enter_number", lang) == 1
    assert times(transcript, "progress_status", lang, **status) == 2
    assert times(transcript, "progress_options", lang) == 2
    assert_waited_in_the_queue(transcript, lang)
    call = assert_call_completed(
        db,
        transcript,
        path=f">greeting>language:{lang}>menu:4>progress:number:read>progress:again:read"
        ">progress:0>ended",
        language=lang,
        intent="progress",
    )
    assert_queued(call)
    assert_no_work_order(db, transcript.call_sid)
    assert_one_event_per_request(db, transcript)


def test_owner_who_keys_the_number_without_hash_still_hears_the_progress(simulator, demo_orders):
    transcript = walk(simulator, ["1", "4", DEMO_ORDER])  # Twilio sends it after the timeout

    assert any("办理中" in said and DEMO_DEPARTMENT in said for said in transcript.heard)


@pytest.mark.parametrize(
    ("from_number", "kind"),
    [
        (STRANGER, "number"),
        ("client:alice", "client"),
        ("anonymous", "anonymous"),
        ("", "unknown"),
    ],
)
def test_progress_is_never_read_to_anyone_but_the_owner_who_is_put_through_instead(
    simulator, db, demo_orders, from_number, kind
):
    transcript = walk(simulator, ["1", "4", f"{DEMO_ORDER}#"], from_number=from_number)

    assert not any("办理中" in said or DEMO_DEPARTMENT in said for said in transcript.heard)
    assert times(transcript, "progress_not_found") == 1
    assert times(transcript, "progress_options") == 0
    assert times(transcript, "queue_next") >= 1
    assert heard_hold_music(transcript)
    call = assert_call_completed(
        db,
        transcript,
        path=">greeting>language:zh>menu:4>progress:number:not-found>ended",
        language="zh",
        intent="progress",
    )
    assert call.caller_kind == kind
    assert call.from_number == (from_number if kind == "number" else None)
    assert_queued(call)
    assert_one_event_per_request(db, transcript)


def test_owner_keying_an_unknown_order_is_put_through_to_a_call_taker(simulator, db, demo_orders):
    transcript = walk(simulator, ["1", "4", "99999999#"])

    assert times(transcript, "progress_not_found") == 1
    call = assert_call_completed(
        db,
        transcript,
        path=">greeting>language:zh>menu:4>progress:number:not-found>ended",
        language="zh",
        intent="progress",
    )
    assert_queued(call)


@pytest.mark.parametrize(
    ("inputs", "path", "wrong"),
    [
        (["12#", "", ""], "progress:retry1>progress:retry2>progress:gave-up", 2),
        (
            ["12#", "", f"{DEMO_ORDER}#", "0"],
            "progress:retry1>progress:retry2>progress:number:read>progress:0",
            2,
        ),
        (["0"], "progress:0", 0),
        (["*#", "0"], "progress:retry1>progress:0", 1),
    ],
)
def test_bad_order_numbers_and_silence_end_with_a_call_taker(
    simulator, db, demo_orders, inputs, path, wrong
):
    transcript = walk(simulator, ["1", "4", *inputs])

    assert times(transcript, "invalid_input") == wrong
    assert times(transcript, "progress_enter_number") == 1 + wrong
    assert_waited_in_the_queue(transcript, "zh")
    call = assert_call_completed(
        db,
        transcript,
        path=f">greeting>language:zh>menu:4>{path}>ended",
        language="zh",
        intent="progress",
    )
    assert_queued(call)
    assert_one_event_per_request(db, transcript)


def test_caller_who_chooses_nothing_after_the_progress_is_said_goodbye(simulator, db, demo_orders):
    transcript = walk(simulator, ["1", "4", f"{DEMO_ORDER}#", "", "7"])

    assert times(transcript, "progress_options") == 2
    assert times(transcript, "invalid_input") == 1
    assert times(transcript, "goodbye") == 1
    assert transcript.ended_by == "hangup"
    call = assert_call_completed(
        db,
        transcript,
        path=">greeting>language:zh>menu:4>progress:number:read>progress:options-retry1"
        ">progress:goodbye",
        language="zh",
        intent="progress",
    )
    assert_not_queued(call)
    assert_one_event_per_request(db, transcript)


@pytest.mark.parametrize(
    ("before", "step"),
    [
        (["1", "4"], "menu:4>progress:9"),  # 9 instead of an order number
        (["1", "4", f"{DEMO_ORDER}#"], "menu:4>progress:number:read>progress:9"),
    ],
)
def test_caller_who_presses_9_in_the_progress_menus_gets_the_emergency_lane(
    simulator, db, gateway, demo_orders, before, step
):
    transcript = walk(simulator, [*before, "9", "1"])

    assert times(transcript, "invalid_input") == 0
    assert times(transcript, "emergency_menu") == 1
    assert_joined_with_the_line(db, gateway, transcript, emergency_line="fire", lang="zh")
    call = stored_call(db, transcript.call_sid)
    assert call.front_door_path == f">greeting>language:zh>{step}>emergency:fire>ended"


@pytest.mark.parametrize(
    ("words", "outcome"),
    [("着火了", "fire line"), ("救命", "emergency menu"), ("转人工", "call-taker")],
)
def test_caller_who_speaks_at_the_progress_options_is_understood(
    simulator, db, gateway, demo_orders, words, outcome
):
    transcript = walk(simulator, ["1", "4", f"{DEMO_ORDER}#", f"speech:{words}", "1"])

    assert times(transcript, "invalid_input") == 0
    if outcome == "fire line":
        assert_joined_with_the_line(db, gateway, transcript, emergency_line="fire", lang="zh")
    elif outcome == "emergency menu":
        assert_joined_with_the_line(db, gateway, transcript, emergency_line="fire", lang="zh")
        assert times(transcript, "emergency_menu") == 1
    else:
        assert_waited_in_the_queue(transcript, "zh")


# -- 4. emergency fast lane -----------------------------------------------------------------

EMERGENCY_ENTRIES = {  # where 9 is pressed: the inputs before it, the path, the language
    "language-menu": ([], ">greeting>language:9", "zh"),
    "main-menu": (["1"], ">greeting>language:zh>menu:9", "zh"),
    "english-main-menu": (["3"], ">greeting>language:en>menu:9", "en"),
    "tibetan-main-menu": (["2"], ">greeting>language:bo>menu:9", "bo"),
}


@pytest.mark.parametrize("key", sorted(EMERGENCY_KEYS))
@pytest.mark.parametrize("entry", sorted(EMERGENCY_ENTRIES))
def test_caller_who_presses_9_then_a_line_key_is_joined_with_that_line(
    simulator, db, gateway, entry, key
):
    before, path, lang = EMERGENCY_ENTRIES[entry]
    emergency_line = EMERGENCY_KEYS[key]
    transcript = walk(simulator, [*before, "9", key])

    assert times(transcript, "emergency_menu", lang) == 1
    assert transcript.ended_by == "conference"
    assert_joined_with_the_line(db, gateway, transcript, emergency_line=emergency_line, lang=lang)
    call = stored_call(db, transcript.call_sid)
    assert call.front_door_path == f"{path}>emergency:{emergency_line}>ended"
    assert call.status is CallStatus.COMPLETED
    # 9 at the greeting skips the language choice: the call keeps none, or Mandarin
    assert call.language in ((None, "zh") if entry == "language-menu" else (lang,))


def test_caller_who_presses_9_then_1_is_joined_with_119(simulator, db, gateway):
    transcript = walk(simulator, ["9", "1"])

    assert times(transcript, "emergency_connecting", line="119火警") == 1
    assert [p.to_number for p in gateway.placed] == ["+868910000119"]
    assert_joined_with_the_line(db, gateway, transcript, emergency_line="fire", lang="zh")


@pytest.mark.parametrize(
    ("before", "words", "emergency_line", "step", "lang"),
    [
        (["1"], "着火了", "fire", "menu:speech-fire", "zh"),
        (["1"], "楼下起火了", "fire", "menu:speech-fire", "zh"),
        (["1"], "有人受伤了", "medical", "menu:speech-medical", "zh"),
        (["1"], "我爸晕倒了", "medical", "menu:speech-medical", "zh"),
        (["1"], "有人打架", "police", "menu:speech-police", "zh"),
        (["1"], "我的车被偷了", "police", "menu:speech-police", "zh"),
        (["1"], "撞车了", "traffic", "menu:speech-traffic", "zh"),
        (["1"], "我们小区停水了", "utility", "menu:speech-utility", "zh"),
        (["1"], "楼道里有燃气味", "utility", "menu:speech-utility", "zh"),
        (["3"], "There is a fire in my kitchen", "fire", "menu:speech-fire", "en"),
        (["2"], "停电了", "utility", "menu:speech-utility", "bo"),
        ([], "着火了", "fire", "language:speech-fire", "zh"),
    ],
)
def test_caller_who_says_what_happened_goes_straight_to_the_line(
    simulator, db, gateway, before, words, emergency_line, step, lang
):
    transcript = walk(simulator, [*before, f"speech:{words}"])

    assert times(transcript, "emergency_menu", lang) == 0  # no menu in between
    assert_joined_with_the_line(db, gateway, transcript, emergency_line=emergency_line, lang=lang)
    prefix = ">greeting" + (f">language:{lang}" if before else "")
    assert stored_call(db, transcript.call_sid).front_door_path == f"{prefix}>{step}>ended"


@pytest.mark.parametrize(
    ("inputs", "emergency_line", "path"),
    [
        (["有人受伤了"], "medical", "emergency:medical"),
        (["7", "", "嗯"], "police", "emergency:retry1>emergency:retry2>emergency:default"),
        (["", "", ""], "police", "emergency:retry1>emergency:retry2>emergency:default"),
        (["*", "4"], "traffic", "emergency:repeat>emergency:traffic"),
    ],
)
def test_emergency_menu_understands_words_repeats_and_after_three_wrong_tries_calls_110(
    simulator, db, gateway, inputs, emergency_line, path
):
    said = [
        value if value in ("", "*") or value.isdigit() else f"speech:{value}" for value in inputs
    ]
    transcript = walk(simulator, ["1", "9", *said])

    assert times(transcript, "emergency_menu") == len(inputs)
    assert times(transcript, "invalid_input") == (2 if "default" in path else 0)
    assert_joined_with_the_line(db, gateway, transcript, emergency_line=emergency_line, lang="zh")
    call = stored_call(db, transcript.call_sid)
    assert call.front_door_path == f">greeting>language:zh>menu:9>{path}>ended"


def test_caller_who_presses_0_in_the_emergency_menu_reaches_a_call_taker(simulator, db, gateway):
    transcript = walk(simulator, ["1", "9", "0"])

    assert_waited_in_the_queue(transcript, "zh")
    call = assert_call_completed(
        db,
        transcript,
        path=">greeting>language:zh>menu:9>emergency:0>ended",
        language="zh",
        intent="operator",
    )
    assert_queued(call)
    assert gateway.placed == []
    assert_no_work_order(db, transcript.call_sid)
    assert_one_event_per_request(db, transcript)


@pytest.mark.parametrize("from_number", ["anonymous", "client:alice", ""])
def test_emergency_caller_without_a_number_gets_the_line_and_an_order_without_one(
    simulator, db, gateway, from_number
):
    transcript = walk(simulator, ["9", "3"], from_number=from_number)

    assert_joined_with_the_line(
        db, gateway, transcript, emergency_line="police", lang="zh", caller_number=None
    )


def test_emergency_caller_keeps_waiting_for_the_line_when_dialling_it_fails(simulator, db, gateway):
    gateway.fail_next = GatewayUnavailable("Twilio timed out")
    transcript = walk(simulator, ["9", "2"])

    assert times(transcript, "emergency_connecting", line="120急救") == 1
    assert times(transcript, "emergency_hold") >= 1  # the wait room will dial again
    assert times(transcript, "apology") == 0 and times(transcript, "queue_next") == 0
    assert gateway.placed == []
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == transcript.call_sid))
    assert order is not None and order.is_urgent and order.emergency_line == "medical"
    assert order.emergency_requested_at is not None and order.emergency_dialed_at is None
    assert_one_event_per_request(db, transcript, internal=("emergency-dial-failed",))
    call = assert_call_completed(
        db,
        transcript,
        path=">greeting>language:9>emergency:medical>ended",
        language="zh",  # 9 at the greeting: Mandarin, the greeting's language
        intent="emergency",
    )
    assert_not_queued(call)


def test_caller_can_later_hear_the_progress_of_their_emergency_order(simulator, db, gateway):
    first = walk(simulator, ["9", "1"])
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == first.call_sid))
    assert order is not None

    later = walk(simulator, ["1", "4", f"{order.number}#"])

    assert any(" ".join(order.number) in said and "已受理" in said for said in later.heard), (
        later.heard
    )
    assert stored_call(db, later.call_sid).front_door_path.endswith(">progress:number:read")


@pytest.mark.parametrize(
    ("before", "words", "path"),
    [
        ([], "救命", ">greeting>language:9"),
        ([], "emergency", ">greeting>language:9"),
        (["1"], "救命", ">greeting>language:zh>menu:9"),
        (["1"], "紧急情况", ">greeting>language:zh>menu:9"),
    ],
)
def test_caller_who_cries_for_help_gets_the_emergency_menu(
    simulator, db, gateway, before, words, path
):
    transcript = walk(simulator, [*before, f"speech:{words}", "2"])

    assert times(transcript, "emergency_menu") == 1
    assert times(transcript, "invalid_input") == 0
    assert_joined_with_the_line(db, gateway, transcript, emergency_line="medical", lang="zh")
    assert stored_call(db, transcript.call_sid).front_door_path == f"{path}>emergency:medical>ended"


# -- front door in direct mode ---------------------------------------------------------------


@pytest.fixture
def direct_gateway() -> ConsoleGateway:
    return ConsoleGateway()


@pytest.fixture
def direct_app(
    database_url: str, engine: object, direct_gateway: ConsoleGateway
) -> Iterator[Flask]:
    app = create_app(make_settings(database_url, FRONT_DOOR_MODE="direct"), gateway=direct_gateway)
    app.config["TESTING"] = True
    yield app
    app.extensions["hotline.engine"].dispose()


@pytest.fixture
def direct_simulator(direct_app: Flask) -> CallSimulator:
    return make_simulator(auth_token=AUTH_TOKEN, public_base_url=PUBLIC_BASE_URL, app=direct_app)


@pytest.mark.parametrize(
    ("inputs", "lang", "steps"),
    [
        (["1"], "zh", "language:zh"),
        (["2"], "bo", "language:bo"),
        (["3"], "en", "language:en"),
        (["speech:English"], "en", "language:en"),
        (["", ""], "zh", "language:retry1>language:default"),
        (["7", "3"], "en", "language:retry1>language:en"),
    ],
)
def test_direct_mode_takes_the_caller_from_the_language_choice_straight_to_the_queue(
    direct_simulator, direct_app, db, direct_gateway, inputs, lang, steps
):
    transcript = walk(direct_simulator, inputs)

    assert greeting_heard(transcript) == len(inputs)
    assert not any(prompt_text("main_menu", "zh") in said for said in transcript.heard)
    assert not any(prompt_text("main_menu", "en") in said for said in transcript.heard)
    assert_waited_in_the_queue(transcript, lang)
    call = assert_call_completed(
        db, transcript, path=f">greeting>{steps}>ended", language=lang, intent="operator"
    )
    assert_queued(call)
    assert direct_gateway.placed == []
    assert_one_event_per_request(db, transcript)


@pytest.mark.parametrize(
    ("inputs", "emergency_line", "path"),
    [
        (["9", "1"], "fire", ">greeting>language:9>emergency:fire>ended"),
        (["9", "5"], "utility", ">greeting>language:9>emergency:utility>ended"),
        (["", "9", "2"], "medical", ">greeting>language:retry1>language:9>emergency:medical>ended"),
        (["speech:着火了"], "fire", ">greeting>language:speech-fire>ended"),
    ],
)
def test_direct_mode_still_opens_the_emergency_lane(
    direct_simulator, db, direct_gateway, inputs, emergency_line, path
):
    transcript = walk(direct_simulator, inputs)

    assert_joined_with_the_line(
        db, direct_gateway, transcript, emergency_line=emergency_line, lang="zh"
    )
    assert stored_call(db, transcript.call_sid).front_door_path == path


# -- bad input at every menu -------------------------------------------------------------------

MENUS = {  # inputs to reach it, its prompt, the path so far, a good answer and where it leads
    "language": ([], "welcome", "", "1", ">language:zh"),
    "main-menu": (["1"], "main_menu", ">language:zh", "2", ">menu:2>ended"),
    "order-number": (
        ["1", "4"],
        "progress_enter_number",
        ">language:zh>menu:4",
        f"{DEMO_ORDER}#",
        ">progress:number:read",
    ),
    "progress-options": (
        ["1", "4", f"{DEMO_ORDER}#"],
        "progress_options",
        ">language:zh>menu:4>progress:number:read",
        "0",
        ">progress:0>ended",
    ),
    "emergency-menu": (
        ["1", "9"],
        "emergency_menu",
        ">language:zh>menu:9",
        "1",
        ">emergency:fire>ended",
    ),
}
RETRY_STEP = {
    "language": "language:retry1",
    "main-menu": "menu:retry1",
    "order-number": "progress:retry1",
    "progress-options": "progress:options-retry1",
    "emergency-menu": "emergency:retry1",
}
REPEAT_STEP = {"main-menu": "menu:repeat", "emergency-menu": "emergency:repeat"}  # after "*"


@pytest.mark.parametrize(
    "bad",
    ["", "*#", "6" * 50, TEN_KB_OF_SPEECH],
    ids=["silence", "star-hash", "50-digits", "10kB-speech"],
)
@pytest.mark.parametrize("menu", list(MENUS))
def test_bad_input_at_every_menu_gets_the_menu_again_and_a_good_answer_still_works(
    simulator, db, demo_orders, menu, bad
):
    before, prompt, path_before, good, path_after = MENUS[menu]
    transcript = walk(simulator, [*before, bad, good])

    repeated = bad == "*#" and menu in REPEAT_STEP  # the first key, *, repeats the menu
    step = REPEAT_STEP[menu] if repeated else RETRY_STEP[menu]
    assert times(transcript, prompt) == 2
    assert times(transcript, "invalid_input") == (0 if repeated else 1)
    call = stored_call(db, transcript.call_sid)
    assert call.front_door_path == f">greeting{path_before}>{step}{path_after}"
    assert call.status is CallStatus.COMPLETED
    assert_one_event_per_request(
        db, transcript, internal=("emergency-dialed",) if "emergency" in path_after else ()
    )
    for event in events_of(db, transcript.call_sid):  # 10 kB of speech is stored cut
        assert all(len(str(value)) <= 2_000 for value in event.params.values())


def test_the_simulator_refuses_keys_a_phone_does_not_have_and_sends_nothing(simulator, db):
    with pytest.raises(ValueError, match="not a phone key"):
        simulator.call(OWNER, HOTLINE_NUMBER, inputs=["1", "12a"])

    assert db.scalar(select(func.count()).select_from(Call)) == 0
    assert db.scalar(select(func.count()).select_from(CallEvent)) == 0


class HandMadeCall:
    """A call walked with signed webhooks posted by hand, along the app's action URLs."""

    def __init__(self, twilio: TwilioSender, from_number: str = OWNER) -> None:
        self.twilio = twilio
        self.from_number = from_number
        self.call_sid = new_call_sid()
        self.next_path = "/voice/incoming"
        self.posts = 0
        self.body = ""

    def post(self, path: str, token: str | None = None, **form: str) -> ET.Element:
        params = call_params(self.call_sid, self.from_number, **form)
        response = self.twilio.post(path, params, token=token)
        self.posts += 1
        assert response.status_code == 200, response.data[:300]
        assert response.content_type.startswith("text/xml")
        self.body = response.get_data(as_text=True)
        assert_valid_twiml(self.body)
        root = ET.fromstring(self.body)
        follow = root.find("Gather")
        if follow is None:
            follow = root.find("Dial")
        if follow is not None:
            self.next_path = follow.get("action", "").removeprefix(PUBLIC_BASE_URL)
        return root

    def start(self, token: str | None = None) -> ET.Element:
        return self.post("/voice/incoming", token=token, CallStatus="ringing")

    def answer(self, raw: str, token: str | None = None, path: str | None = None) -> ET.Element:
        """``"1"``, ``"12a"``, ``""`` (nothing) or ``"speech:…"``, to the last action URL.

        Keys are sent as Twilio sends them: a final ``#`` (the finishOnKey) is left out.
        """
        digits = raw[:-1] if raw.endswith("#") and raw[:-1].isdigit() else raw
        form = {"Digits": digits} if digits else {}
        if raw.startswith("speech:"):
            form = {"SpeechResult": raw.removeprefix("speech:"), "Confidence": "0.9"}
        return self.post(path or self.next_path, token=token, **form)

    def walk(self, inputs: list[str]) -> None:
        self.start()
        for raw in inputs:
            self.answer(raw)


def spoken(root: ET.Element) -> list[str]:
    return [say.text or "" for say in root.iter("Say")]


@pytest.mark.parametrize("digits", ["12a", "6" * 50, "9" * 50, "<script>", "１", "0x1", "1 2"])
@pytest.mark.parametrize("menu", list(MENUS))
def test_keys_no_phone_has_posted_at_every_menu_get_the_menu_again(
    twilio, db, gateway, demo_orders, menu, digits
):
    before, prompt, path_before, _good, _after = MENUS[menu]
    call = HandMadeCall(twilio)
    call.walk(before)
    stage_path = call.next_path

    root = call.answer(digits)

    assert spoken(root)[0] == prompt_text("invalid_input", "zh")
    assert prompt_text(prompt, "zh") in spoken(root)
    retry_url = urlsplit(root.find("Gather").get("action", ""))
    assert retry_url.path == urlsplit(stage_path).path  # the same menu…
    assert parse_qs(retry_url.query)["try"] == ["2"]  # …its second try
    stored = stored_call(db, call.call_sid)
    assert stored.front_door_path == f">greeting{path_before}>{RETRY_STEP[menu]}"
    assert len(events_of(db, call.call_sid)) == call.posts
    assert gateway.placed == []


# -- a webhook Twilio delivers twice ---------------------------------------------------------

RETRIED_STEPS = {  # the inputs before the retried step, its input, and the step it stores
    "incoming": (None, "", "greeting"),
    "language": ([], "1", "language:zh"),
    "language-silence": ([], "", "language:retry1"),
    "menu-queue": (["1"], "2", "menu:2"),
    "menu-progress": (["1"], "4", "menu:4"),
    "menu-wrong": (["1"], "7", "menu:retry1"),
    "progress-read": (["1", "4"], DEMO_ORDER, "progress:number:read"),
    "progress-again": (["1", "4", DEMO_ORDER], "1", "progress:again:read"),
    "progress-call-taker": (["1", "4", DEMO_ORDER], "0", "progress:0"),
    "emergency-menu": (["1"], "9", "menu:9"),
    "emergency-line": (["1", "9"], "5", "emergency:utility"),
    "emergency-words": (["1"], "speech:着火了", "menu:speech-fire"),
    "after-conference": (["1", "2"], "", "ended"),
}


def ticket_store(db: Session, call_sid: str, gateway: ConsoleGateway) -> dict[str, object]:
    call = stored_call(db, call_sid)
    orders = db.scalars(select(WorkOrder).where(WorkOrder.call_sid == call_sid)).all()
    return {
        "call": (
            call.front_door_path,
            call.language,
            call.intent,
            call.status,
            call.queued_at,
            call.queue_left_at,
            call.emergency_line,
        ),
        "events": [(e.id, e.kind, e.dedupe_key) for e in events_of(db, call_sid)],
        "orders": [
            (
                o.id,
                o.number,
                o.emergency_requested_at,
                o.emergency_dialed_at,
                o.emergency_leg_sid,
                len(o.history),
            )
            for o in orders
        ],
        "placed": list(gateway.placed),
        "calls": db.scalar(select(func.count()).select_from(Call)),
    }


@pytest.mark.parametrize("step", list(RETRIED_STEPS))
def test_a_retried_webhook_is_answered_the_same_and_changes_nothing(
    twilio, db, gateway, demo_orders, step
):
    before, raw, stored_step = RETRIED_STEPS[step]
    call = HandMadeCall(twilio)
    if before is not None:
        call.walk(before)
    step_path = call.next_path

    def deliver() -> None:
        if before is None:
            call.start(token="delivery-1")
        else:
            call.answer(raw, token="delivery-1", path=step_path)

    deliver()
    first_answer = call.body
    first = ticket_store(db, call.call_sid, gateway)

    deliver()  # Twilio's retry: same token, same step

    assert call.body == first_answer
    assert ticket_store(db, call.call_sid, gateway) == first
    events = events_of(db, call.call_sid)
    assert [e.dedupe_key for e in events].count("delivery-1") == 1
    path = stored_call(db, call.call_sid).front_door_path
    assert path.endswith(f">{stored_step}") and path.count(f">{stored_step}") == 1


# -- the queue's clock ------------------------------------------------------------------------


def test_a_caller_never_leaves_the_queue_before_joining_it(twilio, db):
    call = HandMadeCall(twilio)
    call.walk(["1", "2"])
    queued_at = stored_call(db, call.call_sid).queued_at
    assert queued_at is not None

    leave = {
        "ConferenceSid": "CF" + "b" * 32,
        "FriendlyName": call.call_sid,
        "CallSid": call.call_sid,
        "StatusCallbackEvent": "participant-leave",
        "SequenceNumber": "2",
        "Timestamp": format_datetime(queued_at),  # as Twilio sends it: the same second
    }
    twilio.post("/voice/conference-status", leave)

    # (passes by chance only if queued_at fell on a whole second: one in a million)
    stored = stored_call(db, call.call_sid)
    assert stored.queue_left_at is not None
    assert stored.queue_left_at >= stored.queued_at
