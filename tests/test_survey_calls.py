"""Survey calls placed by the worker on a real database (SQLite, or PostgreSQL when
DATABASE_URL says so): each call placed once with two workers racing, a create that timed
out reconciled before any retry, every Twilio failure (20429, 21211/13224, 20003, other
4xx), the status callback idempotent and safe out of order, a machine as a failed attempt,
a lost final callback looked up; then TwilioSurveyCaller's requests and error mapping
(HTTP mocked with ``responses``) and the Huey task."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from ivr.survey_caller import (
    TWILIO_CALL_ERROR_KINDS,
    ConsoleSurveyCaller,
    TwilioSurveyCaller,
    twilio_call_failure_kind,
)
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, make_settings
from tests.support.orders import (
    ZONE,
    dispatched_order,
    import_demo_directory,
    liaison,
    shipped_clocks,
)
from tickets import order_flow, surveys
from tickets.calendar import WorkingCalendar
from tickets.db import make_engine
from tickets.models import (
    ContactPreference,
    SmsMessage,
    SmsPurpose,
    Survey,
    SurveyAttempt,
    SurveyReview,
    SurveyStatus,
    WorkOrder,
    WorkOrderState,
)
from tickets.survey_calls import CallFailure, CallFailureKind, PlacedCall
from tickets.survey_pacing import claimable, lock_lane, reserve_slots
from tickets.survey_schedule import SurveyRules
from tickets.surveys import CallPolicy, SurveyPlan, record_attempt_status
from webapp import create_app, worker
from webapp.surveys import SURVEY_CALLER_KEY

CITIZEN = "+8613800000001"
OTHER = "+8613900000002"
HOTLINE = "+868916312345"
# Tuesday 24 November 2026, 10:00 Beijing time: inside calling hours, far from holidays.
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
Kind = CallFailureKind


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


class PacingClock:
    """The pacing lane's wall clock (Unix seconds): it moves only when a sweep sleeps."""

    def __init__(self) -> None:
        self.at = 1_800_000_000.0

    def now(self) -> float:
        return self.at

    def sleep(self, into: list[float] | None = None) -> Callable[[float], None]:
        def slept(seconds: float) -> None:
            self.at += seconds
            if into is not None:
                into.append(seconds)

        return slept


pacing = PacingClock()


@dataclass
class _Planned:
    failure: CallFailure
    taken: bool  # the provider placed the call before the failure reached us


@dataclass(eq=False)
class FakeCaller:
    """A provider: ``placed`` are the calls it made (so the citizen's phone rang),
    ``creates`` every create request. Failures queue up in order."""

    clock: Callable[[], datetime]
    placed: list[dict[str, Any]] = field(default_factory=list)
    creates: list[str] = field(default_factory=list)
    lookups: int = 0
    delay: float = 0.0
    _planned: deque[_Planned] = field(default_factory=deque)
    _lookup_failures: deque[CallFailure] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self,
        kind: CallFailureKind,
        *,
        code: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_placed: bool = False,
        taken: bool = False,
    ) -> None:
        failure = CallFailure(
            f"planned {kind.value} {code}",
            kind=kind,
            code=code,
            status=status,
            retry_after=retry_after,
            maybe_placed=maybe_placed,
        )
        self._planned.append(_Planned(failure, taken))

    def fail_lookup(self, kind: CallFailureKind, code: int | None = None) -> None:
        self._lookup_failures.append(CallFailure("lookup", kind=kind, code=code))

    def _record(self, to: str, attempt_key: str, status_url: str) -> str:
        sid = f"CA{len(self.placed) + 1:032x}"
        self.placed.append(
            {"sid": sid, "to": to, "key": attempt_key, "url": status_url, "at": self.clock()}
        )
        return sid

    def place(
        self,
        *,
        to: str,
        from_: str,
        attempt_key: str,
        answer_url: str,
        status_url: str,
        machine_detection: bool,
    ) -> str:
        if self.delay:
            threading.Event().wait(self.delay)
        with self._lock:
            self.creates.append(attempt_key)
            planned = self._planned.popleft() if self._planned else None
            if planned is None or planned.taken:
                sid = self._record(to, attempt_key, status_url)
            if planned is not None:
                raise planned.failure
            return sid

    def find_placed(self, *, to: str, since: datetime) -> list[PlacedCall]:
        self.lookups += 1
        if self._lookup_failures:
            raise self._lookup_failures.popleft()
        return [
            PlacedCall(call["sid"], call.get("status", "queued"), None, call.get("answered_by"))
            for call in self.placed
            if call["to"] == to and call["at"] >= since
        ]

    def sids(self) -> list[str]:
        return [call["sid"] for call in self.placed]


# -- fixtures and helpers ----------------------------------------------------------------------


def default_plan(**rules: Any) -> SurveyPlan:
    return SurveyPlan(rules=SurveyRules(**rules), calendar=WorkingCalendar(zone=ZONE))


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def caller(clock: Clock) -> FakeCaller:
    return FakeCaller(clock=clock)


@pytest.fixture
def directory(db: Session) -> None:
    import_demo_directory(db)


def answered_order(
    db: Session,
    *,
    at: datetime = T0 - timedelta(hours=1),
    caller_number: str | None = CITIZEN,
    language: str = "zh",
    confidential: bool = False,
    tag: str = "",
) -> WorkOrder:
    """An order dispatched the day before and answered by the department at ``at``."""
    order = dispatched_order(
        db,
        now=at - timedelta(days=1),
        caller_number=caller_number,
        confidential=confidential,
        call_sid=f"CA{abs(hash((tag, caller_number, at))):032x}"[:34],
    )
    order.language = language
    zjj = liaison("D-CGQ-ZJJ")
    clocks = shipped_clocks()
    order_flow.accept(order, actor=zjj, session=db, clocks=clocks, now=at - timedelta(hours=20))
    order_flow.answer(order, outcome="已处理", actor=zjj, session=db, now=at)
    db.commit()
    return order


def survey_of(db: Session, order: WorkOrder) -> Survey:
    db.expire_all()
    found = db.scalar(select(Survey).where(Survey.work_order_id == order.id))
    assert found is not None
    return found


def attempts_of(db: Session, survey: Survey) -> list[SurveyAttempt]:
    db.expire_all()
    return list(
        db.scalars(
            select(SurveyAttempt)
            .where(SurveyAttempt.survey_id == survey.id)
            .order_by(SurveyAttempt.number)
        )
    )


def run(
    sessions: sessionmaker[Session],
    caller: object,
    clock: Clock,
    *,
    plan: SurveyPlan | None = None,
    policy: CallPolicy | None = None,
    sleeps: list[float] | None = None,
    owner: str | None = None,
) -> surveys.SweepCounts:
    return surveys.sweep(
        sessions=sessions,
        caller=caller,  # type: ignore[arg-type]
        plan=plan or default_plan(),
        public_base_url=PUBLIC_BASE_URL,
        from_number=HOTLINE,
        policy=policy or CallPolicy(calls_per_second=10),
        owner=owner,
        now_fn=clock,
        sleep=pacing.sleep(sleeps),
        clock=pacing.now,
    )


def report(
    db: Session, attempt: SurveyAttempt, status: str, *, answered_by: str | None = None, at=None
) -> SurveyAttempt | None:
    result = record_attempt_status(
        db,
        attempt.attempt_key,
        call_sid=attempt.call_sid,
        status=status,
        answered_by=answered_by,
        at=at or T0,
    )
    db.commit()
    return result


# -- placing once ------------------------------------------------------------------------------


def test_a_due_survey_is_called_once_with_its_attempt_key_in_the_urls(
    db, sessions, caller, clock, directory
) -> None:
    order = answered_order(db)

    counts = run(sessions, caller, clock)

    assert (counts.planned, counts.claimed, counts["placed"]) == (1, 1, 1)
    survey = survey_of(db, order)
    (attempt,) = attempts_of(db, survey)
    assert (survey.status, survey.attempts, survey.lease_owner is not None) == (
        SurveyStatus.CALLING,
        1,
        True,
    )
    assert attempt.call_sid == caller.sids()[0] and attempt.status == "queued"
    url = urlsplit(caller.placed[0]["url"])
    assert url.path == "/voice/survey-status"
    assert parse_qs(url.query) == {"attempt": [attempt.attempt_key]}
    assert db.get_one(WorkOrder, order.id).state is WorkOrderState.CALLBACK

    assert run(sessions, caller, clock).claimed == 0  # a live call is not claimed again
    assert len(caller.placed) == 1


def test_the_urls_point_at_the_voice_edge() -> None:
    answer, status = surveys.call_urls("https://hotline.example.org/base/", "k1")
    assert answer == "https://hotline.example.org/base/voice/survey/start?attempt=k1"
    assert status == "https://hotline.example.org/base/voice/survey-status?attempt=k1"


def race(database_url: str, work: Callable[[sessionmaker[Session]], object], workers: int = 2):
    engines = [make_engine(database_url) for _ in range(workers)]
    start = threading.Barrier(workers)
    results: list[object] = [None] * workers
    errors: list[BaseException] = []

    def worker_thread(index: int) -> None:
        try:
            with engines[index].connect():
                pass
            start.wait(timeout=10)
            results[index] = work(sessionmaker(engines[index], expire_on_commit=False))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker_thread, args=(i,)) for i in range(workers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for each in engines:
            each.dispose()
    assert not errors, errors
    return results


def test_two_workers_racing_place_one_call_per_survey(db, database_url, clock, directory) -> None:
    orders = [
        answered_order(db, tag=f"race-{n}", caller_number=f"+86138000001{n:02d}") for n in range(12)
    ]
    caller = FakeCaller(clock=clock, delay=0.002)
    policy = CallPolicy(calls_per_second=100, max_batch=3)

    def work(sessions: sessionmaker[Session]) -> int:
        placed = 0
        while (counts := run(sessions, caller, clock, policy=policy)).claimed or counts.planned:
            assert counts.errors == 0
            placed += counts["placed"]
        return placed

    first, second = race(database_url, work)

    assert first + second == len(orders) == len(caller.placed) == len(caller.creates)
    assert sorted(call["to"] for call in caller.placed) == sorted(
        order.caller_number for order in orders
    )
    for order in orders:
        survey = survey_of(db, order)
        assert survey.attempts == 1 and len(attempts_of(db, survey)) == 1
        history = [h.action for h in db.get_one(WorkOrder, order.id).history]
        assert history.count("start_callback") == 1


def test_postgresql_skips_a_survey_another_worker_is_claiming(
    db, engine, sessions, caller, clock, directory
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite has one writer at a time")
    locked, free = answered_order(db, tag="a"), answered_order(db, tag="b", caller_number=OTHER)
    run(sessions, caller, clock, plan=default_plan())  # planned and placed ...
    for order in (locked, free):  # ... then due again
        db.get_one(Survey, survey_of(db, order).id).status = SurveyStatus.SCHEDULED
    db.commit()
    locked_id = survey_of(db, locked).id
    with engine.connect() as other_worker:
        other_worker.execute(
            select(Survey.id).where(Survey.id == locked_id).with_for_update()
        ).all()
        with sessions() as session:
            claims = surveys.claim_due(
                session,
                now=T0,
                owner="me",
                limit=5,
                lease=timedelta(minutes=1),
                plan=default_plan(),
            )
        other_worker.rollback()

    assert [claim.survey_id for claim in claims] == [survey_of(db, free).id]


# -- the create's outcome unknown --------------------------------------------------------------


def test_a_create_timeout_after_twilio_placed_it_is_reconciled_not_placed_again(
    db, sessions, caller, clock, directory
) -> None:
    order = answered_order(db)
    caller.fail_next(Kind.RETRY, status=None, maybe_placed=True, taken=True)

    assert run(sessions, caller, clock)["uncertain"] == 1
    survey = survey_of(db, order)
    assert survey.status is SurveyStatus.CALLING and survey.attempts == 0
    assert attempts_of(db, survey)[0].status == surveys.UNKNOWN

    assert run(sessions, caller, clock).claimed == 0  # the short lease has not run out
    clock.advance(minutes=2)
    counts = run(sessions, caller, clock)

    assert counts["reconciled"] == 1 and caller.lookups == 1
    assert len(caller.creates) == 1  # the citizen was called once
    (attempt,) = attempts_of(db, survey_of(db, order))
    assert attempt.call_sid == caller.sids()[0]
    assert survey_of(db, order).attempts == 1


def test_a_create_timeout_before_twilio_placed_it_is_retried_once(
    db, sessions, caller, clock, directory
) -> None:
    order = answered_order(db)
    caller.fail_next(Kind.RETRY, status=500, maybe_placed=True, taken=False)

    run(sessions, caller, clock)
    clock.advance(minutes=2)
    counts = run(sessions, caller, clock)

    assert counts["retry"] == 1 and caller.placed == []
    (first,) = attempts_of(db, survey_of(db, order))
    assert first.status == surveys.NOT_PLACED and first.call_sid is None

    counts = run(sessions, caller, clock)  # due again: placed now, and only now

    assert counts["placed"] == 1 and len(caller.placed) == 1 and len(caller.creates) == 2
    survey = survey_of(db, order)
    assert survey.attempts == 1
    assert [a.status for a in attempts_of(db, survey)] == [surveys.NOT_PLACED, "queued"]


def test_a_worker_that_died_during_the_create_is_reconciled_after_its_lease(
    db, sessions, clock, directory
) -> None:
    order = answered_order(db)

    class Dies(FakeCaller):
        def place(self, **kwargs: Any) -> str:
            super().place(**kwargs)  # Twilio placed it ...
            raise KeyboardInterrupt  # ... and the worker process died

    dying = Dies(clock=clock)
    with pytest.raises(KeyboardInterrupt):
        run(sessions, dying, clock)
    assert attempts_of(db, survey_of(db, order))[0].status == surveys.PLACING

    clock.advance(minutes=6)  # the lease runs out
    survivor = FakeCaller(clock=clock, placed=dying.placed)
    counts = run(sessions, survivor, clock)

    assert counts["reconciled"] == 1 and survivor.creates == []
    assert survey_of(db, order).attempts == 1


def test_when_twilio_cannot_say_whether_it_placed_the_call_nothing_is_placed(
    db, sessions, caller, clock, directory
) -> None:
    order = answered_order(db)
    caller.fail_next(Kind.RETRY, maybe_placed=True, taken=True)
    run(sessions, caller, clock)
    caller.fail_lookup(Kind.RETRY)

    clock.advance(minutes=2)
    assert run(sessions, caller, clock)["uncertain"] == 1
    clock.advance(minutes=3)
    assert run(sessions, caller, clock)["reconciled"] == 1

    assert len(caller.creates) == 1 and survey_of(db, order).attempts == 1


# -- Twilio's refusals ------------------------------------------------------------------------


def test_20429_backs_off_and_stops_the_sweep(db, sessions, caller, clock, directory) -> None:
    orders = [answered_order(db, tag=f"t{n}", caller_number=f"+861380000010{n}") for n in range(3)]
    caller.fail_next(Kind.RETRY, code=20429, status=429, retry_after=120)

    counts = run(sessions, caller, clock)

    assert counts.throttled and counts["throttled"] == 1 and counts.released == 2
    assert len(caller.creates) == 1 and caller.placed == []
    statuses = {survey_of(db, o).status for o in orders}
    assert statuses == {SurveyStatus.SCHEDULED}
    throttled = [s for s in (survey_of(db, o) for o in orders) if attempts_of(db, s)]
    (survey,) = throttled
    assert survey.next_attempt_at == T0 + timedelta(seconds=120)  # Retry-After honoured
    assert survey.attempts == 0  # not counted

    counts = run(sessions, caller, clock)  # the two given back go now
    assert counts["placed"] == 2
    clock.advance(minutes=2)
    assert run(sessions, caller, clock)["placed"] == 1
    assert len(caller.placed) == 3


def test_placers_in_parallel_place_each_survey_once_and_stop_together_on_20429(
    db, sessions, clock, directory
) -> None:
    """At 100 calls a second a sweep places with 5 placers; a 20429 stops them all: every
    survey is placed once or given back, none left claimed without a call."""
    orders = [
        answered_order(db, tag=f"par{n}", caller_number=f"+86138000005{n:02d}") for n in range(30)
    ]
    caller = FakeCaller(clock=clock, delay=0.002)
    policy = CallPolicy(calls_per_second=100)
    assert policy.placers == 5
    counts = run(sessions, caller, clock, policy=policy)
    assert counts["placed"] == 30 and counts.errors == 0
    assert sorted(caller.creates) == sorted(set(caller.creates))  # each attempt key once

    more = [
        answered_order(db, tag=f"thr{n}", caller_number=f"+86138000006{n:02d}") for n in range(30)
    ]
    caller.fail_next(Kind.RETRY, code=20429, status=429, retry_after=60)
    clock.advance(seconds=1)
    counts = run(sessions, caller, clock, policy=policy)
    assert counts.throttled
    db.expire_all()
    for order in more:
        survey = survey_of(db, order)
        placed = [a for a in attempts_of(db, survey) if a.call_sid]
        if survey.status is SurveyStatus.CALLING:
            assert len(placed) == 1  # claimed means placed: nothing left hanging
        else:
            assert survey.status is SurveyStatus.SCHEDULED and not placed
    assert counts["placed"] + counts.released + 1 == 30  # the throttled one waits its turn
    assert all(survey_of(db, order).status is SurveyStatus.CALLING for order in orders)


@pytest.mark.parametrize("code", [21211, 13224, 21214])
def test_an_invalid_number_cancels_its_surveys_and_is_marked(
    db, sessions, caller, clock, directory, code
) -> None:
    first = answered_order(db, tag="one")
    second = answered_order(db, tag="two", at=T0 + timedelta(hours=5))
    caller.fail_next(Kind.INVALID_NUMBER, code=code, status=400)

    counts = run(sessions, caller, clock)

    assert counts["invalid"] == 1
    assert survey_of(db, first).status is SurveyStatus.CANCELLED
    assert survey_of(db, second).status is SurveyStatus.CANCELLED  # same number, not called
    assert attempts_of(db, survey_of(db, first))[0].error_code == code
    preference = db.get_one(ContactPreference, CITIZEN)
    assert preference.invalid and preference.updated_by == surveys.ACTOR
    clock.advance(days=1)
    assert run(sessions, caller, clock).claimed == 0 and caller.placed == []


def test_20003_pauses_all_survey_calls_and_loses_nothing(
    db, sessions, caller, clock, directory, caplog
) -> None:
    orders = [answered_order(db, tag=f"a{n}", caller_number=f"+861380000020{n}") for n in range(3)]
    caller.fail_next(Kind.AUTH, code=20003, status=401)

    counts = run(sessions, caller, clock)

    assert counts.paused and counts.released == 2 and len(caller.creates) == 1
    assert "SURVEY CALLS PAUSED" in caplog.text
    for order in orders:
        survey = survey_of(db, order)
        assert (survey.status, survey.attempts, survey.next_attempt_at) == (
            SurveyStatus.SCHEDULED,
            0,
            T0 - timedelta(minutes=50),  # due as before
        )

    caller.fail_next(Kind.AUTH, code=20003, status=401)
    assert run(sessions, caller, clock).paused  # one probe a sweep while refused
    assert len(caller.creates) == 2

    assert run(sessions, caller, clock)["placed"] == 3  # the account works again


def test_a_call_twilio_refuses_for_good_falls_back_to_the_sms(
    db, sessions, caller, clock, directory
) -> None:
    order = answered_order(db)
    caller.fail_next(Kind.REJECTED, code=21215, status=400)

    assert run(sessions, caller, clock)["gave_up"] == 1

    survey = survey_of(db, order)
    assert survey.status is SurveyStatus.SMS_SENT
    sms = db.get_one(SmsMessage, survey.sms_message_id)
    assert sms.purpose is SmsPurpose.SURVEY and sms.dedupe_key == f"survey:{survey.id}"


def test_a_number_put_on_the_do_not_call_list_after_planning_is_not_called(
    db, sessions, caller, clock, directory
) -> None:
    order = answered_order(db)
    with sessions() as session:  # commits each survey it plans
        surveys.plan_new(session, now=T0, rules=SurveyRules(), calendar=WorkingCalendar(zone=ZONE))
    db.add(ContactPreference(number=CITIZEN, no_calls=True, updated_by="staff:1"))
    db.commit()

    assert run(sessions, caller, clock)["cancelled"] == 1
    assert caller.creates == [] and survey_of(db, order).status is SurveyStatus.CANCELLED


# -- the status callback ----------------------------------------------------------------------


def placed_attempt(db, sessions, caller, clock) -> tuple[WorkOrder, SurveyAttempt]:
    order = answered_order(db)
    run(sessions, caller, clock)
    (attempt,) = attempts_of(db, survey_of(db, order))
    return order, attempt


def test_the_status_callback_is_idempotent_and_never_goes_backwards(
    db, sessions, caller, clock, directory
) -> None:
    order, attempt = placed_attempt(db, sessions, caller, clock)

    assert report(db, attempt, "ringing").status == "ringing"
    assert report(db, attempt, "initiated").status == "ringing"  # late: ignored
    ended = report(db, attempt, "no-answer", at=T0 + timedelta(seconds=40))
    assert (ended.status, ended.ended_at) == ("no-answer", T0 + timedelta(seconds=40))
    survey = survey_of(db, order)
    assert survey.status is SurveyStatus.CALLING and survey.lease_until == T0 + timedelta(
        seconds=40
    )  # the worker plans the next call

    for late in ("ringing", "in-progress", "completed", "no-answer"):
        again = report(db, attempt, late, answered_by="human", at=T0 + timedelta(minutes=5))
        assert (again.status, again.ended_at) == ("no-answer", T0 + timedelta(seconds=40))
    assert survey_of(db, order).attempts == 1

    clock.advance(minutes=1)
    assert run(sessions, caller, clock)["settled"] == 1
    survey = survey_of(db, order)
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.next_attempt_at == T0 + timedelta(hours=2)
    assert (
        record_attempt_status(
            db, "no-such-key", call_sid=None, status="completed", answered_by=None, at=T0
        )
        is None
    )


def test_a_machine_is_a_failed_attempt_planned_at_once_with_the_plan(
    db, sessions, caller, clock, directory
) -> None:
    order, attempt = placed_attempt(db, sessions, caller, clock)

    record_attempt_status(
        db,
        attempt.attempt_key,
        call_sid=attempt.call_sid,
        status="completed",
        answered_by="machine_end_beep",
        at=T0 + timedelta(seconds=30),
        plan=default_plan(),
    )
    db.commit()

    survey = survey_of(db, order)
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.next_attempt_at == T0 + timedelta(hours=2)


def test_a_status_callback_before_the_create_returned_still_counts_once(
    db, sessions, clock, directory, engine
) -> None:
    order = answered_order(db)

    class Fast(FakeCaller):
        def place(self, **kwargs: Any) -> str:
            sid = super().place(**kwargs)
            with Session(engine) as other:  # the webhook, in its own transaction
                record_attempt_status(
                    other,
                    kwargs["attempt_key"],
                    call_sid=sid,
                    status="busy",
                    answered_by=None,
                    at=T0,
                    plan=default_plan(),
                )
                other.commit()
            return sid

    run(sessions, Fast(clock=clock), clock)

    survey = survey_of(db, order)
    assert survey.attempts == 1 and survey.status is SurveyStatus.SCHEDULED
    assert attempts_of(db, survey)[0].status == "busy"


def test_a_person_who_answered_leaves_the_survey_to_the_conversation(
    db, sessions, caller, clock, directory
) -> None:
    order, attempt = placed_attempt(db, sessions, caller, clock)
    survey = db.get_one(Survey, survey_of(db, order).id)
    survey.responded = "yes"  # stored by the conversation (tickets.survey_results)
    db.commit()

    report(db, attempt, "completed", answered_by="human")
    assert survey_of(db, order).status is SurveyStatus.CALLING  # not ours to decide yet
    clock.advance(minutes=5)
    assert run(sessions, caller, clock).claimed == 0

    clock.advance(minutes=10)  # nobody marked it completed: the worker does
    assert run(sessions, caller, clock)["settled"] == 1
    survey = survey_of(db, order)
    assert survey.status is SurveyStatus.COMPLETED
    assert survey.answered_call_sid == attempt.call_sid
    # The same decision as a finished conversation: two questions unanswered → a reviewer.
    assert survey.review is SurveyReview.PENDING


def test_a_completed_call_without_any_answer_is_a_failed_attempt(
    db, sessions, caller, clock, directory
) -> None:
    order, attempt = placed_attempt(db, sessions, caller, clock)

    report(db, attempt, "completed", answered_by="human")
    clock.advance(minutes=11)
    run(sessions, caller, clock)

    survey = survey_of(db, order)
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.next_attempt_at == T0 + timedelta(hours=2)


def test_a_lost_final_callback_is_looked_up_at_twilio(
    db, sessions, caller, clock, directory
) -> None:
    order, _ = placed_attempt(db, sessions, caller, clock)
    caller.placed[0] |= {"status": "no-answer"}

    clock.advance(minutes=31)
    assert run(sessions, caller, clock)["settled"] == 1

    assert attempts_of(db, survey_of(db, order))[0].status == "no-answer"
    assert survey_of(db, order).status is SurveyStatus.SCHEDULED
    assert len(caller.creates) == 1


# -- pacing -----------------------------------------------------------------------------------


def test_sweeps_keep_the_lane_busy_and_every_create_at_its_own_slot(
    db, sessions, caller, clock, directory
) -> None:
    for n in range(8):
        answered_order(db, tag=f"p{n}", caller_number=f"+861380000030{n}")
    policy = CallPolicy(calls_per_second=0.05, claim_ahead=75)  # a call every 20 s
    created: list[float] = []
    place = caller.place

    def timed(**call: Any) -> str:
        created.append(pacing.now())
        return place(**call)

    caller.place = timed  # type: ignore[method-assign]

    assert run(sessions, caller, clock, policy=policy)["placed"] == 3  # 75 s ahead: 3 calls
    # Right after it, the lane is reserved 20 s ahead: two more keep it busy.
    assert run(sessions, caller, clock, policy=policy)["placed"] == 2
    assert [later - earlier for earlier, later in itertools.pairwise(created)] == [20.0] * 4


def test_two_workers_share_one_pace_whoever_sends(engine: Engine) -> None:
    """Twilio's rate is per account: slots reserved by two workers at once (threads with
    sessions of their own, each reserving as fast as it can) are all ``spacing`` apart."""
    spacing, per_worker = 0.5, 15
    slots: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def worker() -> None:
        mine = sessionmaker(engine, expire_on_commit=False)
        start.wait()
        for _ in range(per_worker):
            slot = reserve_slots(mine, "test-lane", spacing, time.time())
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    slots.sort()
    assert len(slots) == 2 * per_worker
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert min(gaps) >= spacing - 1e-6


def test_a_lane_left_idle_starts_again_at_once(sessions: sessionmaker[Session]) -> None:
    """A slot is never in the past: after a quiet spell the next create goes at once."""
    assert reserve_slots(sessions, "idle", 0.5, 100.0) == 100.0
    assert reserve_slots(sessions, "idle", 0.5, 100.0) == 100.5
    assert reserve_slots(sessions, "idle", 0.5, 1000.0) == 1000.0
    assert reserve_slots(sessions, "other", 0.5, 100.0) == 100.0  # lanes are apart


def test_a_block_of_slots_is_reserved_at_once(sessions: sessionmaker[Session]) -> None:
    assert reserve_slots(sessions, "block", 0.5, 100.0, count=4) == 100.0  # 100.0 to 101.5
    assert reserve_slots(sessions, "block", 0.5, 100.0) == 102.0
    with sessions.begin() as session:
        assert lock_lane(session, "block", 100.0) == 2.5  # reserved up to 102.5
        assert lock_lane(session, "block", 200.0) == 0.0
    assert claimable(reserved_ahead=2.5, unplaced=0, rate=2.0, ahead=5.0) == 5
    assert claimable(reserved_ahead=2.5, unplaced=3, rate=2.0, ahead=5.0) == 2
    assert claimable(reserved_ahead=9.0, unplaced=0, rate=2.0, ahead=5.0) == 0


def test_claims_not_placed_yet_count_against_the_next_sweep(
    db, sessions, caller, clock, directory
) -> None:
    """Claims another worker has not placed yet count: a sweep meanwhile claims only
    what is left of the lane's 75 s (here nothing)."""
    for n in range(6):
        answered_order(db, tag=f"u{n}", caller_number=f"+861380000040{n}")
    policy = CallPolicy(calls_per_second=0.04, claim_ahead=75)  # 3 in 75 s
    run(sessions, caller, clock, policy=policy, owner="w1")
    placed = len(caller.placed)
    with sessions() as session:
        assert surveys.claimed_unplaced(session, now=clock(), lease=policy.lease) == 0
        claims = surveys.claim_due(
            session, now=clock(), owner="w2", limit=2, lease=policy.lease, plan=default_plan()
        )
        assert len(claims) == 2
        assert surveys.claimed_unplaced(session, now=clock(), lease=policy.lease) == 2
    assert run(sessions, caller, clock, policy=policy, owner="w3").claimed == 0
    assert len(caller.placed) == placed


# -- TwilioSurveyCaller ------------------------------------------------------------------------

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
CALLS_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
SID = "CA" + "a1b2c3d4" * 4


@pytest.fixture
def http_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[responses.RequestsMock]:
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def twilio_caller() -> TwilioSurveyCaller:
    return TwilioSurveyCaller.from_settings(account_sid=ACCOUNT_SID, auth_token="f" * 32)


def _call_json(sid: str = SID, *, status: str = "queued", created: str | None = None) -> dict:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": CITIZEN,
        "from": HOTLINE,
        "status": status,
        "direction": "outbound-api",
        "date_created": created or "Tue, 24 Nov 2026 02:00:05 +0000",
        "start_time": None,
        "answered_by": None,
    }


def place(caller: TwilioSurveyCaller) -> str:
    answer, status = surveys.call_urls(PUBLIC_BASE_URL, "k" * 32)
    return caller.place(
        to=CITIZEN,
        from_=HOTLINE,
        attempt_key="k" * 32,
        answer_url=answer,
        status_url=status,
        machine_detection=True,
    )


def test_twilio_place_sends_the_urls_events_and_machine_detection(http_mock) -> None:
    http_mock.post(CALLS_URL, json=_call_json(), status=201)

    assert place(twilio_caller()) == SID

    form = parse_qs(http_mock.calls[0].request.body)
    assert form["To"] == [CITIZEN] and form["From"] == [HOTLINE]
    assert form["Url"] == [f"{PUBLIC_BASE_URL}/voice/survey/start?attempt={'k' * 32}"]
    assert form["StatusCallback"] == [f"{PUBLIC_BASE_URL}/voice/survey-status?attempt={'k' * 32}"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["MachineDetection"] == ["Enable"] and form["Timeout"] == ["30"]


@pytest.mark.parametrize(
    ("code", "status", "kind", "maybe_placed"),
    [
        (20429, 429, Kind.RETRY, False),
        (21211, 400, Kind.INVALID_NUMBER, False),
        (13224, 400, Kind.INVALID_NUMBER, False),
        (21214, 400, Kind.INVALID_NUMBER, False),
        (20003, 401, Kind.AUTH, False),
        (21212, 400, Kind.AUTH, False),
        (21215, 400, Kind.REJECTED, False),
        (None, 422, Kind.REJECTED, False),
        (None, 500, Kind.RETRY, True),
        (None, 503, Kind.RETRY, True),
    ],
)
def test_twilio_errors_become_call_failures(http_mock, code, status, kind, maybe_placed) -> None:
    body = {"code": code or status, "message": f"refused {CITIZEN}", "status": status}
    headers = {"Retry-After": "30"} if status == 429 else {}
    http_mock.post(CALLS_URL, json=body, status=status, headers=headers)

    with pytest.raises(CallFailure) as caught:
        place(twilio_caller())

    failure = caught.value
    assert (failure.kind, failure.code, failure.status, failure.maybe_placed) == (
        kind,
        code,
        status,
        maybe_placed,
    )
    assert CITIZEN not in str(failure)
    if status == 429:
        assert failure.retry_after == 30 and failure.is_throttled


@pytest.mark.parametrize(
    ("error", "maybe_placed"),
    [(requests.ReadTimeout("slow"), True), (requests.ConnectTimeout("no route"), False)],
)
def test_twilio_timeouts_say_whether_the_call_may_have_been_placed(
    http_mock, error, maybe_placed
) -> None:
    http_mock.post(CALLS_URL, body=error)

    with pytest.raises(CallFailure) as caught:
        place(twilio_caller())

    assert (caught.value.kind, caught.value.maybe_placed) == (Kind.RETRY, maybe_placed)


def test_every_listed_code_has_a_kind() -> None:
    assert twilio_call_failure_kind(20003, 401) is Kind.AUTH
    assert twilio_call_failure_kind(None, 404) is Kind.AUTH
    assert all(isinstance(kind, CallFailureKind) for kind in TWILIO_CALL_ERROR_KINDS.values())


def test_twilio_find_placed_lists_the_numbers_calls_since_the_attempt(http_mock) -> None:
    older = _call_json(
        "CA" + "0" * 32, status="completed", created="Tue, 24 Nov 2026 01:00:00 +0000"
    )
    newer = _call_json("CA" + "1" * 32, status="in-progress")
    queued = _call_json("CA" + "2" * 32, status="queued", created="Tue, 24 Nov 2026 02:00:09 +0000")
    http_mock.get(
        CALLS_URL,
        json={"calls": [queued, newer, older], "next_page_uri": None, "page": 0, "page_size": 50},
    )

    found = twilio_caller().find_placed(to=CITIZEN, since=T0)

    assert [(c.call_sid, c.status) for c in found] == [
        ("CA" + "1" * 32, "in-progress"),
        ("CA" + "2" * 32, "queued"),
    ]
    query = parse_qs(urlsplit(http_mock.calls[0].request.url).query)
    assert query["To"] == [CITIZEN] and "StartTime>" not in query


def test_twilio_find_placed_failure_is_a_call_failure(http_mock) -> None:
    http_mock.get(CALLS_URL, json={"code": 20003, "message": "no", "status": 401}, status=401)

    with pytest.raises(CallFailure) as caught:
        twilio_caller().find_placed(to=CITIZEN, since=T0)

    assert (caught.value.kind, caught.value.maybe_placed) == (Kind.AUTH, False)


def test_the_console_caller_records_and_finds_its_calls() -> None:
    console = ConsoleSurveyCaller(clock=lambda: T0)
    sid = place(console)  # type: ignore[arg-type]
    assert sid.startswith("CA") and len(sid) == 34
    assert console.find_placed(to=CITIZEN, since=T0 - timedelta(minutes=1))[0].call_sid == sid
    assert console.find_placed(to=OTHER, since=T0) == []


# -- the worker ---------------------------------------------------------------------------------


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, engine):
    env = {
        "DATABASE_URL": database_url,
        "JOURNAL_DIR": str(tmp_path / "journal"),
        "HUEY_SQLITE_PATH": str(tmp_path / "huey.db"),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "LOG_LEVEL": "warning",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    if worker._app is not None:
        worker._app.extensions["hotline.engine"].dispose()
        worker._app = None


def test_the_huey_task_plans_and_places(worker_env, db, directory) -> None:
    settings = make_settings(
        worker_env["DATABASE_URL"],
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        HUEY_SQLITE_PATH=worker_env["HUEY_SQLITE_PATH"],
        SURVEY_CALLS_PER_SECOND="5",
    )
    worker._app = create_app(settings)
    assert isinstance(worker._app.extensions[SURVEY_CALLER_KEY], ConsoleSurveyCaller)
    provider = ConsoleSurveyCaller()
    worker._app.extensions[SURVEY_CALLER_KEY] = provider
    order = answered_order(db, at=datetime.now(UTC) - timedelta(days=3))
    huey = worker.make_huey(settings)
    huey.flush()
    task = huey.task()(worker.place_survey_calls.func)
    task()  # enqueued in the real storage (Redis in CI's second run, SQLite otherwise)
    queued = huey.dequeue()
    assert queued is not None
    result = huey.execute(queued)

    assert result["planned"] == 1
    survey = survey_of(db, order)
    from tickets.survey_schedule import is_inside

    if is_inside(datetime.now(UTC), SurveyRules(), WorkingCalendar(zone=ZONE)):
        assert result["placed"] == 1 and len(provider.placed) == 1
        assert survey.status is SurveyStatus.CALLING
    else:  # run outside calling hours: moved to their opening, nobody called
        assert provider.placed == [] and survey.status is SurveyStatus.SCHEDULED
