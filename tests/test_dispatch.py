"""Routing for real: callers in the queue rung through to the right call-taker.

Each test puts callers in the queue through the signed webhooks, with call-takers on duty
in the database, and reads what the console gateway was asked to do (the participants it
added), what became of the call-takers, and the call's history.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows.conference_messages import ParticipantJoined, ParticipantLeft
from ivr import dispatch
from ivr.conference_edge import handle_event
from ivr.config import EXTENSION_KEY, voice_config
from ivr.gateway import ConsoleGateway
from routing.assignment import Assignment, Reason
from tests.support.conference_calls import (
    PUBLIC,
    citizen_joins,
    history,
    leg_status,
    new_conference_sid,
    ok,
    on_duty,
    profile_of,
    queue_caller,
    room_event,
    state_of,
)
from tests.support.webhooks import TwilioSender, call_params
from tickets.db import utcnow
from tickets.models import Call, CallTakerState, CallTakerStateChange, ConferenceRoom

S = CallTakerState


def call_row(db: Session, sid: str) -> Call:
    db.expire_all()
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call is not None
    return call


def test_a_tibetan_caller_rings_the_tibetan_call_taker(twilio, db, gateway):
    on_duty(db, "wang", languages=("zh",), phone_number="+8613900000003")
    tenzin = on_duty(db, "tenzin", languages=("bo", "zh"), phone_number="+8613900000001")

    sid = queue_caller(twilio, lang="bo")

    [leg] = gateway.added
    assert leg.conference == sid
    assert leg.label == f"taker-{tenzin.id}"
    assert leg.to == "+8613900000001"
    assert leg.from_number == "+868916312345"
    assert leg.timeout_seconds == 20
    assert leg.start_conference_on_enter and not leg.end_conference_on_exit
    assert leg.status_callback == (
        f"{PUBLIC}/voice/participant-status?room={sid}&label=taker-{tenzin.id}"
    )
    assert set(leg.status_callback_events) == {"initiated", "ringing", "answered", "completed"}
    assert leg.conference_status_callback == f"{PUBLIC}/voice/conference-status"
    profile = profile_of(db, tenzin)
    assert profile.state is S.RINGING and profile.call_sid == sid
    kinds = [kind for kind, _ in history(db, sid, "routing:")]
    assert kinds == ["routing:assigned"]
    [(_, ring)] = history(db, sid)
    assert ring == {"who": "routing", "outcome": f"ringing taker-{tenzin.id}"}


def test_a_browser_softphone_is_rung_as_a_client(twilio, db, gateway):
    on_duty(db, "emma", languages=("en",), phone_number=None, client_identity="emma")
    queue_caller(twilio, lang="en")
    assert [leg.to for leg in gateway.added] == ["client:emma"]


def test_nobody_free_leaves_the_caller_waiting_then_going_available_rings(twilio, db, gateway, app):
    sid = queue_caller(twilio)
    assert gateway.added == []
    assert db.scalar(select(ConferenceRoom).where(ConferenceRoom.call_sid == sid)) is None

    wang = on_duty(db, "wang")
    with app.app_context():
        rung = dispatch.dispatch_waiting_calls()

    assert [(a.call_sid, a.staff_id) for a in rung] == [(sid, wang.id)]
    assert [leg.label for leg in gateway.added] == [f"taker-{wang.id}"]


def test_a_language_fallback_is_logged(twilio, db, gateway):
    on_duty(db, "wang", languages=("zh",))
    sid = queue_caller(twilio, lang="bo")  # no Tibetan speaker on duty: anyone, logged
    [(kind, params)] = history(db, sid, "routing:")
    assert kind == "routing:language-fallback"
    assert "language_fallback" in params["reasons"]
    assert len(gateway.added) == 1


def test_the_caller_waits_for_a_busy_speaker_of_their_language(twilio, db, gateway, app):
    tenzin = on_duty(db, "tenzin", languages=("bo",))
    queue_caller(twilio, lang="zh", from_number="+8613800000011")  # takes tenzin (fallback)
    assert state_of(db, tenzin) is S.RINGING
    on_duty(db, "wang", languages=("zh",))
    sid = queue_caller(twilio, lang="bo")  # tenzin is busy: wait for them, not for wang
    assert len(gateway.added) == 1
    with app.app_context():  # a minute later the wait is over: anyone free
        later = utcnow() + timedelta(seconds=61)
        rung = dispatch.dispatch_waiting_calls(now=later)
    assert [a.call_sid for a in rung] == [sid]
    assert rung[0].is_language_fallback


def test_no_answer_marks_the_taker_away_and_rings_the_next(twilio, db, gateway):
    first = on_duty(db, "tenzin", languages=("bo",), phone_number="+8613900000001")
    second = on_duty(db, "dolma", languages=("bo",), phone_number="+8613900000002")
    sid = queue_caller(twilio, lang="bo")
    [leg] = gateway.added
    assert leg.label == f"taker-{first.id}"

    leg_status(twilio, leg, "ringing")
    leg_status(twilio, leg, "no-answer")

    profile = profile_of(db, first)
    assert profile.state is S.AWAY and profile.away_reason == "no_answer"
    assert [each.label for each in gateway.added] == [f"taker-{first.id}", f"taker-{second.id}"]
    assert gateway.added[1].to == "+8613900000002"
    assert state_of(db, second) is S.RINGING
    room = db.scalar(select(ConferenceRoom).where(ConferenceRoom.call_sid == sid))
    assert [ring["staff_id"] for ring in room.failed_rings] == [first.id]
    kinds = [kind for kind, _ in history(db, sid)]
    assert kinds == [
        "conference:ring-call-taker",
        "conference:participant-ringing",
        "conference:participant-failed",
        "conference:ring-call-taker",
    ]


def test_a_busy_line_marks_the_taker_away_and_the_caller_waits(twilio, db, gateway):
    tenzin = on_duty(db, "tenzin")
    sid = queue_caller(twilio)
    [leg] = gateway.added

    leg_status(twilio, leg, "busy")

    profile = profile_of(db, tenzin)
    assert profile.state is S.AWAY and profile.away_reason == "line_busy"
    assert len(gateway.added) == 1  # nobody else: the caller waits
    assert call_row(db, sid).queue_left_at is None


def test_a_failed_create_marks_the_taker_unreachable(twilio, db, gateway):
    from ivr.gateway import GatewayError

    tenzin = on_duty(db, "tenzin")
    gateway.fail_next = GatewayError("21217: not a valid phone number")
    sid = queue_caller(twilio)
    assert gateway.added == []
    profile = profile_of(db, tenzin)
    assert profile.state is S.AWAY and profile.away_reason == "unreachable"
    assert "conference:operation-failed" in [kind for kind, _ in history(db, sid)]


def test_twilio_down_is_not_the_takers_fault(twilio, db, gateway):
    from ivr.gateway import GatewayUnavailable

    tenzin = on_duty(db, "tenzin")
    on_duty(db, "dolma", phone_number="+8613900000002")
    gateway.fail_next = GatewayUnavailable("Twilio timed out")
    sid = queue_caller(twilio)
    assert gateway.added == []  # nobody else rung into the outage; the sweep tries again
    assert state_of(db, tenzin) is S.AVAILABLE
    assert call_row(db, sid).queue_left_at is None


def test_an_answer_puts_the_taker_on_the_call_and_ends_the_wait(twilio, db, gateway):
    tenzin = on_duty(db, "tenzin")
    sid = queue_caller(twilio)
    conference = new_conference_sid()
    citizen_joins(twilio, sid, conference)
    [leg] = gateway.added

    leg_status(twilio, leg, "ringing")
    room_event(
        twilio,
        sid,
        "participant-join",
        conference_sid=conference,
        label=leg.label,
        call_sid=leg.call_sid,
    )

    profile = profile_of(db, tenzin)
    assert profile.state is S.ON_CALL and profile.call_sid == sid
    call = call_row(db, sid)
    assert call.queue_left_at is not None and call.abandoned_at is None
    room = db.scalar(select(ConferenceRoom).where(ConferenceRoom.call_sid == sid))
    assert room.phase == "talking" and room.conference_sid == conference


def test_the_wait_room_announces_the_position_in_routing_order(twilio, db):
    first = queue_caller(twilio, from_number="+8613800000001")
    second = queue_caller(twilio, from_number="+8613800000002")
    body = ok(twilio.post("/voice/wait/queue?lang=zh", call_params(second))).get_data(True)
    assert "您前面还有1位来电" in body
    body = ok(twilio.post("/voice/wait/queue?lang=en", call_params(first))).get_data(True)
    assert "next in line" in body


def test_two_dispatchers_never_ring_one_taker_twice(twilio, db, gateway, app):
    first = queue_caller(twilio, from_number="+8613800000001")
    second = queue_caller(twilio, from_number="+8613800000002")
    wang = on_duty(db, "wang")
    # Both decided on the same snapshot: wang for each caller.
    stale = [Assignment(sid, wang.id, (Reason.LANGUAGE,)) for sid in (first, second)]
    with app.app_context():
        config = voice_config()
        results = [dispatch.ring(config, assignment) for assignment in stale]
    assert results == [True, False]
    assert len(gateway.added) == 1
    changes = db.scalars(
        select(CallTakerStateChange).where(
            CallTakerStateChange.staff_id == wang.id, CallTakerStateChange.to_state == S.RINGING
        )
    ).all()
    assert len(changes) == 1


def test_two_dispatch_passes_in_parallel_ring_each_taker_once(twilio, db, gateway, app):
    for n in range(4):
        queue_caller(twilio, from_number=f"+861380000002{n}")
    takers = [on_duty(db, f"taker{n}", phone_number=f"+861390000002{n}") for n in range(3)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context():
                start.wait()
                dispatch.dispatch_waiting_calls()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    labels = [leg.label for leg in gateway.added]
    assert sorted(labels) == sorted(f"taker-{t.id}" for t in takers)
    assert len({leg.conference for leg in gateway.added}) == 3
    assert all(state_of(db, t) is S.RINGING for t in takers)


def test_queue_entries_in_a_journal_batch_are_dispatched_after_it_is_stored(
    database_url, engine, db
):
    from ivr.persist import drain_journal
    from tests.conftest import AUTH_TOKEN, make_settings
    from tests.support.webhooks import TwilioSender
    from webapp import create_app

    gateway = ConsoleGateway()
    settings = make_settings(database_url, JOURNAL_DRAIN="background")
    app: Flask = create_app(settings, gateway=gateway)
    try:
        sender = TwilioSender(app.test_client(), AUTH_TOKEN, PUBLIC)
        on_duty(db, "wang")
        sid = queue_caller(sender)
        assert gateway.added == []  # the webhook only went to the journal
        assert db.scalar(select(Call).where(Call.call_sid == sid)) is None
        with app.app_context():
            drain_journal(voice_config())
        assert [leg.conference for leg in gateway.added] == [sid]
    finally:
        app.extensions["hotline.engine"].dispose()


def test_the_wrap_up_job_frees_the_taker_and_dispatches(twilio, db, gateway, app, monkeypatch):
    from webapp import worker

    tenzin = on_duty(db, "tenzin")
    profile = profile_of(db, tenzin)
    profile.state, profile.call_sid = S.WRAP_UP, "CA-earlier"
    profile.wrap_up_until = utcnow() + timedelta(seconds=30)
    db.commit()
    sid = queue_caller(twilio)
    assert gateway.added == []  # the only call-taker is wrapping up
    profile = profile_of(db, tenzin)
    profile.wrap_up_until = utcnow() - timedelta(seconds=1)
    db.commit()
    monkeypatch.setattr(worker, "worker_app", lambda: app)

    assert worker.dispatch_queue.call_local() == 1

    assert [leg.conference for leg in gateway.added] == [sid]
    assert state_of(db, tenzin) is S.RINGING


def test_the_sweep_takes_a_lost_callback_as_no_answer(twilio, db, gateway, app):
    tenzin = on_duty(db, "tenzin")
    queue_caller(twilio)
    with app.app_context():
        later = utcnow() + timedelta(minutes=5)
        dispatch.sweep(voice_config(), now=later)
    profile = profile_of(db, tenzin)
    assert profile.state is S.AWAY and profile.away_reason == "no_answer"


def test_settings_give_the_ring_timeout(database_url, engine, db):
    from tests.conftest import AUTH_TOKEN, make_settings
    from webapp import create_app

    gateway = ConsoleGateway()
    app = create_app(make_settings(database_url, RING_TIMEOUT_SECONDS="12"), gateway=gateway)
    try:
        sender = TwilioSender(app.test_client(), AUTH_TOKEN, PUBLIC)
        on_duty(db, "wang")
        queue_caller(sender)
        assert [leg.timeout_seconds for leg in gateway.added] == [12]
    finally:
        app.extensions["hotline.engine"].dispose()


def test_the_worker_is_asked_to_decide_when_a_language_wait_is_over(twilio, db, gateway, app):
    asked: list = []
    config = app.extensions[EXTENSION_KEY]
    app.extensions[EXTENSION_KEY] = dataclasses.replace(config, schedule_dispatch=asked.append)
    on_duty(db, "tenzin", languages=("bo",))
    queue_caller(twilio, lang="zh", from_number="+8613800000011")  # takes tenzin (fallback)
    on_duty(db, "wang", languages=("zh",))
    sid = queue_caller(twilio, lang="bo")  # waits for tenzin while wang stays free

    queued_at = call_row(db, sid).queued_at
    assert len(asked) == 1
    assert timedelta(seconds=60) <= asked[0] - queued_at < timedelta(seconds=61)


def test_the_end_of_a_wrap_up_is_a_decision_asked_of_the_worker(twilio, db, gateway, app):
    import dataclasses

    from ivr.config import EXTENSION_KEY

    asked: list = []
    config = app.extensions[EXTENSION_KEY]
    app.extensions[EXTENSION_KEY] = dataclasses.replace(config, schedule_dispatch=asked.append)
    tenzin = on_duty(db, "tenzin", languages=("zh",))
    sid = queue_caller(twilio)
    leg = gateway.added[0]
    with app.app_context():
        handle_event(sid, ParticipantJoined(leg.label, call_sid=leg.call_sid))
        handle_event(sid, ParticipantLeft("citizen", call_sid=sid))

    assert state_of(db, tenzin) is S.WRAP_UP
    until = profile_of(db, tenzin).wrap_up_until
    assert len(asked) == 1 and timedelta(0) <= asked[0] - until < timedelta(seconds=1)


def test_the_call_taker_who_became_free_is_rung_first(twilio, db, gateway, app):
    first = queue_caller(twilio)
    second = queue_caller(twilio)  # nobody on duty yet: both wait
    # Both go available straight in the database, as if their own triggers were lost.
    wang = on_duty(db, "wang", languages=("zh",), phone_number="+8613900000003")
    tenzin = on_duty(db, "tenzin", languages=("zh",), phone_number="+8613900000001")

    with app.app_context():
        rung = dispatch.dispatch_waiting_calls(freed_staff_id=tenzin.id)

    assert rung[0].staff_id == tenzin.id
    assert gateway.added[0].to == "+8613900000001"
    assert {a.call_sid for a in rung} == {first, second}
    assert state_of(db, wang) is S.RINGING  # rung after tenzin: nobody is left idle
