"""Callbacks to citizens when Twilio or its status callbacks fail (issue 5, point 5): a
create that timed out or answered 5xx although the call was placed, a create refused for
good, a status callback that never comes, and callbacks retried or out of order. Each
attempt rings its call-taker once and dials its citizen at most once, nobody is left
ringing or waiting alone, and the task is never left "being called"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.callback_calls import CITIZEN, room_name
from ivr.config import VoiceConfig, voice_config
from ivr.gateway import (
    CallNotFound,
    ConsoleGateway,
    GatewayError,
    GatewayUnavailable,
    PlacedCall,
)
from tests.support.webhooks import TwilioSender
from tests.test_callback_calls import (
    AT,
    CITIZEN_NUMBER,
    WANG_PHONE,
    available,
    free_again,
    open_task,
    report,
    run_sweep,
    taker_of,
    task_of,
)
from tickets import callback_calls as schedule
from tickets import staff as staff_store
from tickets.models import Call, CallbackStatus, CallEvent, CallTakerState, Staff
from tickets.surveys import SurveyPlan
from webapp.surveys import survey_plan

S = CallTakerState
TIMED_OUT = "join_conference failed: ReadTimeout: read timed out"


@dataclass(eq=False)
class LosesAnswers(ConsoleGateway):
    """The console gateway, whose next create can be placed and still fail: ``lose_next``
    is raised after the call was placed (a read timeout, a 5xx after Twilio acted)."""

    lose_next: GatewayError | None = None
    when_placed: Callable[[PlacedCall], object] | None = None  # once, before answering

    def join_conference(self, **kwargs: Any) -> str:
        sid = super().join_conference(**kwargs)
        error, self.lose_next = self.lose_next, None
        hook, self.when_placed = self.when_placed, None
        if hook is not None:
            hook(self.placed[-1])
        if error is not None:
            raise error
        return sid


@pytest.fixture
def gateway() -> LosesAnswers:
    return LosesAnswers()


@pytest.fixture
def config(app: Flask) -> VoiceConfig:
    with app.app_context():
        return voice_config()


@pytest.fixture
def plan(app: Flask) -> SurveyPlan:
    return survey_plan(app)


def maybe_placed(status: int | None) -> GatewayError:
    if status is None:
        return GatewayUnavailable(TIMED_OUT)
    return GatewayUnavailable(f"join_conference failed: HTTP {status}", status=status)


def refused(code: int, status: int = 400) -> GatewayError:
    kind = CallNotFound if code == 20404 else GatewayError
    return kind(f"join_conference failed: HTTP {status}, code {code}", code=code, status=status)


def events(db: Session, kind: str) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(CallEvent).where(CallEvent.kind == kind))


def wrap_up_over(db: Session, person: Staff) -> CallTakerState:
    """The worker's sweep once the call-taker's wrap-up time is over: where they are."""
    staff_store.end_expired_wrap_ups(session=db, now=datetime.now(UTC) + timedelta(hours=1))
    db.commit()
    return taker_of(db, person).state


def ringing_call_taker_is_answered(
    config: VoiceConfig, gateway: LosesAnswers, plan: SurveyPlan, twilio: TwilioSender
) -> PlacedCall:
    """The worker rings the call-taker, who answers: the citizen is dialled."""
    run_sweep(config, plan)
    host = gateway.placed[-1]
    report(twilio, host, "in-progress")
    return host


# -- 1. the call-taker's create timed out (or 5xx) but Twilio placed it -----------------------


@pytest.mark.parametrize("status", [None, 502], ids=["timeout", "http-502"])
def test_a_host_create_lost_in_transit_rings_once_and_its_callbacks_drive_the_attempt(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
    status: int | None,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    available(db, "li", phone_number="+8613900000009")
    gateway.lose_next = maybe_placed(status)

    counts = run_sweep(config, plan)

    (host,) = gateway.placed  # placed, though the create's answer was lost
    room = room_name(task_id, AT)
    assert counts.placed[0].result == "host-maybe-rung"
    ringing = taker_of(db, wang)
    assert (ringing.state, ringing.call_sid) == (S.RINGING, room)  # their phone may ring
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner, task.last_room) == (0, "w1", room)
    assert run_sweep(config, plan, now=AT + timedelta(seconds=40)).claimed == 0
    assert len(gateway.placed) == 1  # nobody rung a second time for this attempt

    report(twilio, host, "ringing")
    report(twilio, host, "in-progress")  # answered: the citizen is dialled, once
    report(twilio, host, "in-progress")
    assert [leg.label for leg in gateway.placed] == [host.label, CITIZEN]
    assert taker_of(db, wang).state is S.ON_CALL
    citizen = gateway.placed[1]
    assert citizen.to_number == CITIZEN_NUMBER
    assert task_of(db, task_id).attempts == 1
    # The leg first known by its callbacks is the room's: it is hung up when left alone.
    assert db.scalar(select(Call.parent_call_sid).where(Call.call_sid == host.sid)) == room

    report(twilio, citizen, "no-answer")
    assert gateway.hung_up == [host.sid]
    report(twilio, host, "completed")
    assert taker_of(db, wang).state is S.WRAP_UP
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner, task.reached_at) == (1, None, None)
    assert len(gateway.placed) == 2


def test_a_host_ring_that_never_reports_frees_the_call_taker_and_no_late_answer_dials(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    gateway.lose_next = maybe_placed(None)
    run_sweep(config, plan)
    (host,) = gateway.placed

    # No status callback at all (never placed, or every report lost): after the ring
    # timeout and a grace, the worker's sweep gives the ring up.
    run_sweep(config, plan, now=AT + timedelta(minutes=2))

    profile = taker_of(db, wang)
    assert (profile.state, profile.call_sid) == (S.AVAILABLE, None)
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner) == (0, None)
    assert task.next_attempt_at is not None
    assert task.next_attempt_at <= datetime.now(UTC) + schedule.RETRY_SOON
    assert len(gateway.placed) == 1

    report(twilio, host, "in-progress")  # it rang after all, very late: still nobody
    assert len(gateway.placed) == 1
    assert gateway.hung_up == [host.sid]  # not left alone in a room nobody will join
    assert taker_of(db, wang).state is S.AVAILABLE
    assert task_of(db, task_id).attempts == 0


# -- 2. the call-taker's create refused for good ----------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "state", "reason"),
    [
        (21211, 400, S.AWAY, "unreachable"),  # their phone number cannot be called
        (13224, 400, S.AWAY, "unreachable"),
        (20404, 404, S.AVAILABLE, None),  # the hotline's configuration, not their phone
        (20003, 401, S.AVAILABLE, None),
    ],
)
def test_a_host_create_refused_for_good_frees_the_call_taker_and_counts_nothing(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    code: int,
    status: int,
    state: CallTakerState,
    reason: str | None,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    gateway.fail_next = refused(code, status)

    counts = run_sweep(config, plan)

    assert counts.placed[0].result == "host-unreachable"
    assert gateway.placed == []
    profile = taker_of(db, wang)
    assert (profile.state, profile.away_reason, profile.call_sid) == (state, reason, None)
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner, task.lease_until) == (0, None, None)
    assert task.next_attempt_at is not None
    assert task.next_attempt_at <= datetime.now(UTC) + schedule.RETRY_SOON

    li = available(db, "li", phone_number="+8613900000009")
    run_sweep(config, plan, now=task.next_attempt_at)  # due again soon: another try
    (host,) = gateway.placed
    if state is S.AWAY:  # not rung again while away: another call-taker is
        assert host.label == f"staff-{li.id}"


# -- 3. the citizen's create timed out (or 5xx) but Twilio placed it --------------------------


@pytest.mark.parametrize("status", [None, 503], ids=["timeout", "http-503"])
@pytest.mark.parametrize("outcome", ["in-progress", "no-answer"])
def test_a_citizen_create_lost_in_transit_is_not_dialled_again_and_its_callbacks_settle_it(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
    status: int | None,
    outcome: str,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    host = gateway.placed[-1]
    gateway.lose_next = maybe_placed(status)
    report(twilio, host, "in-progress")

    assert len(gateway.placed) == 2  # placed once, though its create's answer was lost
    citizen = gateway.placed[1]
    assert citizen.label == CITIZEN
    task = task_of(db, task_id)
    assert task.lease_owner == "w1"  # the attempt is under way: its callbacks settle it
    report(twilio, host, "in-progress")  # a retry: the room's decision is taken
    assert run_sweep(config, plan, now=AT + timedelta(minutes=3)).claimed == 0
    assert len(gateway.placed) == 2
    assert gateway.hung_up == []

    report(twilio, citizen, "ringing")
    report(twilio, citizen, outcome)
    task = task_of(db, task_id)
    assert task.attempts == 1  # counted once, by its callbacks
    if outcome == "in-progress":
        assert task.reached_at is not None and task.lease_owner is None
        report(twilio, citizen, "completed")
        report(twilio, host, "completed")
        assert gateway.hung_up == []
    else:
        assert (task.reached_at, task.lease_owner, task.next_attempt_at) == (None, None, None)
        assert gateway.hung_up == [host.sid]  # not left alone in the room
        report(twilio, host, "completed")
        run_sweep(config, plan, now=AT + timedelta(minutes=5))  # planned like a survey
        assert task_of(db, task_id).next_attempt_at == AT + timedelta(hours=2)
    assert taker_of(db, wang).state is S.WRAP_UP
    assert len(gateway.placed) == 2


# -- 4. the citizen's create refused for good -------------------------------------------------


@pytest.mark.parametrize("code", [21211, 13224])
def test_a_citizen_number_that_cannot_be_called_gets_a_note_and_frees_the_call_taker(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
    code: int,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    host = gateway.placed[-1]
    gateway.fail_next = refused(code)
    report(twilio, host, "in-progress")

    assert len(gateway.placed) == 1  # the citizen's call was refused
    assert gateway.hung_up == [host.sid]  # the call-taker is not left waiting
    task = task_of(db, task_id)
    assert task.note == f"the number cannot be called (Twilio {code})"
    assert CITIZEN_NUMBER not in task.note
    assert (task.attempts, task.lease_owner, task.next_attempt_at, task.status) == (
        0,
        None,
        None,
        CallbackStatus.OPEN,  # for a person to decide
    )
    report(twilio, host, "completed")  # the hang-up's report
    assert taker_of(db, wang).state is S.WRAP_UP
    assert wrap_up_over(db, wang) is S.AVAILABLE

    for later in (timedelta(minutes=5), timedelta(hours=3), timedelta(days=1)):
        run_sweep(config, plan, now=AT + later)
    assert len(gateway.placed) == 1  # never retried by itself
    assert task_of(db, task_id).next_attempt_at is None


def test_a_citizen_create_refused_for_another_reason_is_tried_again_soon_uncounted(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    host = gateway.placed[-1]
    gateway.fail_next = GatewayUnavailable("join_conference failed: HTTP 429", status=429)
    report(twilio, host, "in-progress")

    assert len(gateway.placed) == 1
    assert gateway.hung_up == [host.sid]
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner, task.note) == (0, None, "")
    assert task.next_attempt_at is not None
    assert task.next_attempt_at <= datetime.now(UTC) + schedule.RETRY_SOON


# -- 5. a final status callback that never comes ----------------------------------------------


def test_a_citizen_leg_whose_final_report_is_lost_is_settled_after_the_watch(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    host = ringing_call_taker_is_answered(config, gateway, plan, twilio)
    citizen = gateway.placed[-1]
    report(twilio, citizen, "ringing")  # ... and nothing more

    run_sweep(config, plan, now=AT + timedelta(minutes=5))
    assert task_of(db, task_id).lease_owner == "w1"  # still watched
    run_sweep(config, plan, now=AT + schedule.CALL_WATCH + timedelta(minutes=1))

    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner, task.reached_at) == (1, None, None)
    assert task.next_attempt_at == AT + timedelta(hours=2)  # a failed attempt, as a survey's
    assert len(gateway.placed) == 2
    # The call-taker's own leg is live: they are on it until it ends, then wrap up.
    assert taker_of(db, wang).state is S.ON_CALL
    report(twilio, host, "completed")
    assert taker_of(db, wang).state is S.WRAP_UP
    assert wrap_up_over(db, wang) is S.AVAILABLE

    report(twilio, citizen, "no-answer")  # the lost report, very late: nothing more
    assert task_of(db, task_id).attempts == 1
    assert task_of(db, task_id).next_attempt_at == AT + timedelta(hours=2)


def test_a_claim_whose_worker_died_before_ringing_is_due_again_uncounted(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    host = ringing_call_taker_is_answered(config, gateway, plan, twilio)
    report(twilio, gateway.placed[-1], "busy")  # attempt 1: not answered
    report(twilio, host, "completed")
    free_again(db, wang)
    second = AT + timedelta(hours=2)
    run_sweep(config, plan, now=AT + timedelta(minutes=1))  # planned for 12:00 local
    with config.sessions.begin() as session:  # a worker claims it, then dies
        assert schedule.claim_due(session, now=second, owner="w2", limit=1, plan=plan) == [task_id]

    report(twilio, gateway.placed[-1], "in-progress")  # a stray report of the first room
    assert task_of(db, task_id).reached_at is None
    third = second + schedule.LEASE + timedelta(minutes=1)
    run_sweep(config, plan, now=third, owner="w3")

    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner) == (1, "w3")  # due again, nothing counted
    assert task.last_room == room_name(task_id, third)
    report(twilio, gateway.placed[-1], "in-progress")  # the new attempt's call-taker
    assert gateway.placed[-1].label == CITIZEN
    assert task_of(db, task_id).attempts == 2


# -- 6. status callbacks retried or out of order ----------------------------------------------


def test_citizen_reports_retried_or_out_of_order_count_the_attempt_once(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    host = ringing_call_taker_is_answered(config, gateway, plan, twilio)
    report(twilio, host, "in-progress", token="answered")
    report(twilio, host, "in-progress", token="answered")
    citizen = gateway.placed[-1]

    report(twilio, citizen, "completed", token="done")  # before its in-progress
    report(twilio, citizen, "completed", token="done")  # the same delivery again
    report(twilio, citizen, "completed")  # a retry with a new token
    report(twilio, citizen, "in-progress")

    assert len(gateway.placed) == 2
    task = task_of(db, task_id)
    assert task.attempts == 1 and task.reached_at is not None
    assert events(db, "callback:dialled") == 1
    assert events(db, "callback:reached") == 1
    assert gateway.hung_up == []
    report(twilio, host, "completed")
    assert taker_of(db, wang).state is S.WRAP_UP


def test_a_citizen_no_answer_retried_counts_once_and_hangs_up_once(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    host = ringing_call_taker_is_answered(config, gateway, plan, twilio)
    citizen = gateway.placed[-1]

    report(twilio, citizen, "no-answer", token="missed")
    report(twilio, citizen, "no-answer", token="missed")
    report(twilio, citizen, "no-answer")
    report(twilio, citizen, "in-progress")  # out of order, after the end: nothing

    task = task_of(db, task_id)
    assert (task.attempts, task.reached_at, task.lease_owner) == (1, None, None)
    assert events(db, "callback:not-answered") == 1
    assert gateway.hung_up == [host.sid]
    assert len(gateway.placed) == 2


def test_a_host_completed_before_in_progress_dials_nobody_and_counts_nothing(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    task_id = open_task(db)
    wang = available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    (host,) = gateway.placed

    report(twilio, host, "completed")  # the call is over by now: nobody to join
    report(twilio, host, "in-progress")

    assert len(gateway.placed) == 1
    assert taker_of(db, wang).state is S.AVAILABLE
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner) == (0, None)
    assert task.next_attempt_at is not None


def test_a_citizen_report_before_the_dial_is_recorded_counts_once(
    config: VoiceConfig,
    gateway: LosesAnswers,
    db: Session,
    plan: SurveyPlan,
    twilio: TwilioSender,
) -> None:
    """The citizen's leg fails so fast that its report arrives before the worker has
    recorded that it dialled them: the attempt is counted once all the same."""
    task_id = open_task(db)
    available(db, "wang", phone_number=WANG_PHONE)
    run_sweep(config, plan)
    host = gateway.placed[-1]
    gateway.when_placed = lambda leg: report(twilio, leg, "busy")

    report(twilio, host, "in-progress")

    assert len(gateway.placed) == 2
    task = task_of(db, task_id)
    assert (task.attempts, task.lease_owner, task.reached_at) == (1, None, None)
    assert events(db, "callback:dialled") == 1
    assert gateway.hung_up == [host.sid]
