"""Calling back the citizens of the callback list (issue 5, point 5), on the real database
through the console gateway: planning inside calling hours, one callback however many
workers race, the call-taker rung first and the citizen dialled once when they answer
(signed status callbacks, retried and duplicated), a missed ring, a citizen who does not
answer (retried like a survey, then left open with a note), and the console's button."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from ivr import callback_calls
from ivr.callback_calls import CITIZEN, room_name, sweep
from ivr.config import VoiceConfig, voice_config
from ivr.gateway import ConsoleGateway, PlacedCall
from tests.conftest import HOTLINE_NUMBER
from tests.support.staff import PASSWORD, TEST_ACTOR, add_staff, csrf_token_of, log_in
from tests.support.webhooks import TwilioSender, call_params, new_call_sid
from tickets import callback_calls as schedule
from tickets import callbacks
from tickets import staff as staff_store
from tickets.models import (
    CallbackOutcome,
    CallbackSource,
    CallbackStatus,
    CallbackTask,
    CallTaker,
    CallTakerState,
    Role,
    Staff,
)
from tickets.surveys import SurveyPlan
from webapp.surveys import survey_plan

CITIZEN_NUMBER = "+8613800000001"
WANG_PHONE = "+8613900000007"
AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Lhasa's (Beijing) time
EVENING = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # 21:00 local: outside calling hours


@pytest.fixture
def config(app: Flask) -> VoiceConfig:
    with app.app_context():
        return voice_config()


@pytest.fixture
def plan(app: Flask) -> SurveyPlan:
    return survey_plan(app)


def open_task(db: Session, *, number: str | None = CITIZEN_NUMBER, language: str = "zh") -> int:
    task = CallbackTask(
        call_sid=new_call_sid(),
        caller_kind="number" if number else "anonymous",
        caller_number=number,
        language=language,
        intent="help",
        queued_at=AT - timedelta(minutes=5),
        requested_at=AT - timedelta(minutes=1),
        source=CallbackSource.ABANDONED,
        status=CallbackStatus.OPEN,
        note="",
        created_at=AT,
    )
    db.add(task)
    db.commit()
    return task.id


def available(db: Session, username: str, **kwargs: object) -> Staff:
    person = add_staff(db, username, Role.CALL_TAKER, **kwargs)  # type: ignore[arg-type]
    staff_store.change_state(person, CallTakerState.AVAILABLE, session=db, actor=TEST_ACTOR)
    db.commit()
    return person


def task_of(db: Session, task_id: int) -> CallbackTask:
    db.expire_all()
    task = db.get(CallbackTask, task_id)
    assert task is not None
    return task


def taker_of(db: Session, person: Staff) -> CallTaker:
    db.expire_all()
    profile = db.get(CallTaker, person.id)
    assert profile is not None
    return profile


def report(twilio: TwilioSender, leg: PlacedCall, status: str, *, token: str | None = None):
    """The leg's status callback, signed and shaped as Twilio sends it."""
    url = urlsplit(leg.status_callback_url)
    params = call_params(
        leg.sid,
        HOTLINE_NUMBER,
        CallStatus=status,
        Direction="outbound-api",
        To=leg.to_number,
        Called=leg.to_number,
    )
    response: TestResponse = twilio.post(f"{url.path}?{url.query}", params, token=token)
    assert response.status_code == 200
    return response


def run_sweep(config: VoiceConfig, plan: SurveyPlan, now: datetime = AT, owner: str = "w1"):
    return sweep(config, plan, owner=owner, now=now)


def free_again(db: Session, person: Staff) -> None:
    """The call-taker's wrap-up is over: available for the next callback."""
    for state in (CallTakerState.WRAP_UP, CallTakerState.AVAILABLE):
        staff_store.change_state(person, state, session=db, actor=TEST_ACTOR)
    db.commit()


# -- planning --------------------------------------------------------------------------------


def test_a_new_task_is_due_now_inside_calling_hours_and_at_the_opening_outside(
    db: Session, plan: SurveyPlan
) -> None:
    task_id = open_task(db)
    anonymous = open_task(db, number=None)
    assert schedule.plan_open_tasks(db, now=EVENING, plan=plan) == 1
    db.commit()
    # 21:00 local: the next morning at 09:00 local (01:00 UTC)
    assert task_of(db, task_id).next_attempt_at == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert task_of(db, anonymous).next_attempt_at is None  # no number: a person's work

    later = open_task(db)
    schedule.plan_open_tasks(db, now=AT, plan=plan)
    db.commit()
    assert task_of(db, later).next_attempt_at == AT
    assert schedule.plan_open_tasks(db, now=AT, plan=plan) == 0  # planned once


def test_due_tasks_found_outside_calling_hours_move_to_the_opening_unclaimed(
    db: Session, plan: SurveyPlan
) -> None:
    task_id = open_task(db)
    schedule.plan_open_tasks(db, now=AT, plan=plan)
    assert schedule.claim_due(db, now=EVENING, owner="w1", limit=5, plan=plan) == []
    db.commit()
    task = task_of(db, task_id)
    assert task.lease_owner is None
    assert task.next_attempt_at == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


# -- placing --------------------------------------------------------------------------------


def test_the_call_taker_rings_first_in_a_new_room_and_is_taken_off_the_queue(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session, plan: SurveyPlan
) -> None:
    task_id = open_task(db, language="bo")
    longest_idle = available(db, "wang", phone_number=WANG_PHONE)
    speaker = available(db, "dawa", languages=("zh", "bo"), phone_number="+8613900000008")
    available(db, "li", phone_number="+8613900000009")

    counts = run_sweep(config, plan)

    assert counts.as_dict() == {"planned": 1, "claimed": 1, "rung": 1}
    (host,) = gateway.placed  # the citizen waits for the call-taker's answer
    room = room_name(task_id, AT)
    assert (host.to_number, host.room, host.label) == (
        "+8613900000008",
        room,
        f"staff-{speaker.id}",
    )
    assert (host.start_conference_on_enter, host.end_conference_on_exit) == (True, True)
    assert host.ring_timeout_seconds == config.ring_timeout_seconds
    query = parse_qs(urlsplit(host.status_callback_url).query)
    assert query == {"leg": ["callback"], "room": [room], "label": [f"staff-{speaker.id}"]}
    ringing = taker_of(db, speaker)
    assert (ringing.state, ringing.call_sid) == (CallTakerState.RINGING, room)
    assert taker_of(db, longest_idle).state is CallTakerState.AVAILABLE
    task = task_of(db, task_id)
    assert (task.last_room, task.attempts, task.lease_owner) == (room, 0, "w1")
    assert task.lease_until == AT + schedule.CALL_WATCH
    reason = db.scalars(
        select(staff_store.CallTakerStateChange.reason).where(
            staff_store.CallTakerStateChange.staff_id == speaker.id
        )
    ).all()[-1]
    assert "138****0001" in reason or "0001" in reason
    assert CITIZEN_NUMBER not in reason


def test_nobody_free_means_nothing_claimed_and_nothing_counted(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session, plan: SurveyPlan
) -> None:
    task_id = open_task(db)
    counts = run_sweep(config, plan)
    assert counts.as_dict() == {"planned": 1, "claimed": 0, "rung": 0}
    assert gateway.placed == []
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner, task.next_attempt_at) == (0, None, AT)


def test_two_workers_racing_place_one_callback(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session, plan: SurveyPlan
) -> None:
    task_id = open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    available(db, "li", phone_number="+8613900000009")
    with config.sessions.begin() as session:
        schedule.plan_open_tasks(session, now=AT, plan=plan)
    start = threading.Barrier(2)
    results: list[object] = []

    def worker(owner: str) -> None:
        start.wait(10)
        results.append(run_sweep(config, plan, owner=owner))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(results) == 2
    assert len(gateway.placed) == 1  # one call-taker rung, once
    assert sum(r.claimed for r in results) == 1  # type: ignore[attr-defined]
    assert task_of(db, task_id).last_room == room_name(task_id, AT)


# -- the legs -------------------------------------------------------------------------------


def citizen_digits_hidden(text: str) -> bool:
    return CITIZEN_NUMBER[3:-4] not in text.replace(" ", "")


def test_the_citizen_is_dialled_once_when_the_call_taker_answers(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    (host,) = gateway.placed
    # The call-taker hears whom they call back before joining; never the whole number.
    assert host.announcement is not None
    assert (
        f"任务{task_id}" in host.announcement and " ".join(CITIZEN_NUMBER[-4:]) in host.announcement
    )
    assert CITIZEN_NUMBER not in host.announcement and citizen_digits_hidden(host.announcement)

    report(twilio, host, "ringing")
    assert len(gateway.placed) == 1
    report(twilio, host, "in-progress", token="answered-1")
    report(twilio, host, "in-progress", token="answered-1")  # a duplicate delivery
    report(twilio, host, "in-progress")  # a retry with a new token

    assert len(gateway.placed) == 2
    citizen = gateway.placed[1]
    assert (citizen.to_number, citizen.from_number) == (CITIZEN_NUMBER, HOTLINE_NUMBER)
    assert (citizen.room, citizen.label) == (host.room, CITIZEN)
    assert (citizen.start_conference_on_enter, citizen.end_conference_on_exit) == (False, False)
    assert taker_of(db, wang).state is CallTakerState.ON_CALL
    assert task_of(db, task_id).attempts == 1

    report(twilio, citizen, "in-progress")
    task = task_of(db, task_id)
    assert task.reached_at is not None and task.lease_owner is None
    assert (task.next_attempt_at, task.status) == (
        None,
        CallbackStatus.OPEN,  # the outcome is the call-taker's to record
    )
    report(twilio, citizen, "completed")
    report(twilio, host, "completed")
    assert taker_of(db, wang).state is CallTakerState.WRAP_UP
    assert len(gateway.placed) == 2

    free_again(db, wang)
    later = AT + timedelta(hours=3)
    assert run_sweep(config, plan, now=later).claimed == 0  # reached: never called again
    assert len(gateway.placed) == 2


def test_a_call_taker_who_does_not_answer_is_away_and_the_task_is_due_again_soon(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    (host,) = gateway.placed

    before = datetime.now(UTC)
    report(twilio, host, "no-answer")
    report(twilio, host, "in-progress")  # a late, out-of-order report changes nothing

    assert len(gateway.placed) == 1  # nobody else dialled
    profile = taker_of(db, wang)
    assert (profile.state, profile.away_reason) == (CallTakerState.AWAY, "no_answer")
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner, task.lease_until) == (0, None, None)
    assert task.next_attempt_at is not None
    assert before < task.next_attempt_at <= datetime.now(UTC) + schedule.RETRY_SOON


def test_a_citizen_who_does_not_answer_is_tried_again_two_hours_later_then_left_with_a_note(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    now = AT
    for attempt, outcome in enumerate(("no-answer", "busy", "failed"), start=1):
        counts = run_sweep(config, plan, now=now)
        assert counts.claimed == 1, attempt
        host = gateway.placed[-1]
        report(twilio, host, "in-progress")
        citizen = gateway.placed[-1]
        assert citizen.label == CITIZEN
        report(twilio, citizen, outcome)
        report(twilio, citizen, outcome)  # retried: counted once
        assert gateway.hung_up[-1] == host.sid  # the call-taker is not left alone in the room
        report(twilio, host, "completed")
        free_again(db, wang)
        task = task_of(db, task_id)
        assert (task.attempts, task.lease_owner, task.status) == (
            attempt,
            None,
            CallbackStatus.OPEN,
        )
        if attempt < 3:
            run_sweep(config, plan, now=now + timedelta(minutes=1))  # plans, places nothing
            next_at = task_of(db, task_id).next_attempt_at
            assert next_at == now + timedelta(hours=2)  # 12:00, then 14:00 local
            now = next_at
    assert len(gateway.placed) == 6  # 3 x (call-taker, citizen)

    run_sweep(config, plan, now=now + timedelta(hours=3))
    task = task_of(db, task_id)
    assert task.note == "not reached after 3 attempts"
    assert (task.status, task.next_attempt_at) == (CallbackStatus.OPEN, None)
    run_sweep(config, plan, now=now + timedelta(days=1))
    assert len(gateway.placed) == 6  # no more calls, no SMS: a person decides


def test_a_call_taker_who_leaves_stops_the_citizens_phone_ringing(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    host = gateway.placed[-1]
    report(twilio, host, "in-progress")
    citizen = gateway.placed[-1]
    report(twilio, citizen, "ringing")

    report(twilio, host, "completed")  # hung up before the citizen answered

    assert gateway.hung_up == [citizen.sid]


def test_a_citizen_no_answer_late_in_the_day_is_tried_the_next_morning(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    late = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)  # 19:00 local
    run_sweep(config, plan, now=late)
    report(twilio, gateway.placed[-1], "in-progress")
    report(twilio, gateway.placed[-1], "no-answer")
    with config.sessions.begin() as session:
        schedule.plan_open_tasks(session, now=late, plan=plan)
    # 21:00 is outside calling hours: 09:00 local the next day
    assert task_of(db, task_id).next_attempt_at == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def test_a_task_marked_done_is_never_called(
    config: VoiceConfig, gateway: ConsoleGateway, db: Session, plan: SurveyPlan
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    callbacks.complete_task(
        session=db,
        task_id=task_id,
        outcome=CallbackOutcome.NOT_NEEDED,
        note="called again",
        actor=TEST_ACTOR,
        at=AT,
    )
    db.commit()

    assert run_sweep(config, plan).as_dict() == {"planned": 0, "claimed": 0, "rung": 0}
    with pytest.raises(callback_calls.CannotCall, match="done"):
        callback_calls.call_now(config, task_id, staff_id=wang.id, now=AT)
    assert gateway.placed == []
    assert taker_of(db, wang).state is CallTakerState.AVAILABLE


def test_a_task_marked_done_while_its_call_taker_rings_does_not_dial_the_citizen(
    config: VoiceConfig,
    gateway: ConsoleGateway,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    callbacks.complete_task(
        session=db,
        task_id=task_id,
        outcome=CallbackOutcome.NOT_NEEDED,
        note="",
        actor=TEST_ACTOR,
        at=AT,
    )
    db.commit()
    report(twilio, gateway.placed[0], "in-progress")
    assert len(gateway.placed) == 1
    assert task_of(db, task_id).attempts == 0


# -- the console's button -------------------------------------------------------------------


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


def test_call_back_now_rings_the_logged_in_call_taker_first(
    client: FlaskClient, gateway: ConsoleGateway, db: Session
) -> None:
    task_id = open_task(db)
    available(db, "li", phone_number="+8613900000009")  # idle longer: not the one rung
    wang = available(db, "wang", phone_number=WANG_PHONE)
    log_in(client, "wang")
    page = client.get("/console/callbacks").get_data(as_text=True)
    assert f"/console/callbacks/{task_id}/call" in page and "Call back now" in page

    response = client.post(f"/console/callbacks/{task_id}/call")

    assert response.status_code == 302
    (host,) = gateway.placed
    assert (host.to_number, host.label) == (WANG_PHONE, f"staff-{wang.id}")
    assert taker_of(db, wang).state is CallTakerState.RINGING
    page = client.get("/console/callbacks").get_data(as_text=True)
    assert "Being called now by Wang" in page

    again = client.post(f"/console/callbacks/{task_id}/call")  # ringing: not available
    assert again.status_code == 409
    assert len(gateway.placed) == 1


def test_call_back_now_needs_an_available_call_taker(
    client: FlaskClient, gateway: ConsoleGateway, db: Session
) -> None:
    task_id = open_task(db)
    add_staff(db, "wang", phone_number=WANG_PHONE)  # offline
    log_in(client, "wang")
    response = client.post(f"/console/callbacks/{task_id}/call")
    assert response.status_code == 409
    assert "set yourself available" in response.get_data(as_text=True)
    assert gateway.placed == []
    assert task_of(db, task_id).lease_owner is None


@pytest.mark.parametrize("role", [Role.FLOOR_MANAGER, Role.REVIEWER])
def test_only_call_takers_may_call_back_from_the_console(
    client: FlaskClient, gateway: ConsoleGateway, db: Session, role: Role
) -> None:
    task_id = open_task(db)
    add_staff(db, "mei", role)
    log_in(client, "mei")
    assert client.post(f"/console/callbacks/{task_id}/call").status_code == 403
    assert gateway.placed == []


def test_call_back_now_needs_the_csrf_token(
    app: Flask, gateway: ConsoleGateway, db: Session
) -> None:
    task_id = open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    app.config["WTF_CSRF_ENABLED"] = True
    browser = app.test_client()
    token = csrf_token_of(browser, "/login")
    browser.post("/login", data={"username": "wang", "password": PASSWORD, "csrf_token": token})

    assert browser.post(f"/console/callbacks/{task_id}/call").status_code == 400
    assert gateway.placed == []
    token = csrf_token_of(browser, "/console/callbacks")
    accepted = browser.post(f"/console/callbacks/{task_id}/call", data={"csrf_token": token})
    assert accepted.status_code == 302
    assert len(gateway.placed) == 1


def test_the_worker_task_runs_a_sweep(app: Flask, db: Session, gateway: ConsoleGateway) -> None:
    from webapp import worker

    open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    worker._app = app
    try:
        result = worker.call_back_citizens.call_local()
    finally:
        worker._app = None
    assert result["claimed"] in (0, 1)  # 1 inside calling hours (real time), else moved
