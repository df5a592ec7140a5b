"""The survey call end to end through the local simulator, on the real database: an
answered order's survey attempt is called, the citizen answers by key or speech (Mandarin,
English; Tibetan by key only), the answers land on the survey, and the answers decide
(closed, or the reviewer queue, where a reviewer reopens or closes as explained). Also:
silence and bad input, a hang-up midway, an answering machine, do-not-call, a
confidential order, forged and replayed webhooks, an unknown attempt."""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ivr import survey_voice
from ivr.simulator import CallSimulator, CallTranscript
from ivr.simulator_survey import survey_call
from tests.support.orders import (
    CALLER,
    dispatched_order,
    import_demo_directory,
    liaison,
    shipped_clocks,
)
from tests.support.staff import add_staff, log_in
from tests.support.twiml_schema import assert_valid_twiml
from tests.support.webhooks import TwilioSender, new_call_sid
from tickets import order_flow, survey_results
from tickets.models import (
    CallEvent,
    ClosedHow,
    ContactPreference,
    Role,
    Survey,
    SurveyAttempt,
    SurveyReview,
    SurveyStatus,
    WorkOrder,
    WorkOrderState,
)

ZJJ = "D-CGQ-ZJJ"
CLOCKS = shipped_clocks()
SUMMARY = "物业公司啥也不管，小区垃圾堆了一个星期没人清"


@pytest.fixture(autouse=True)
def directory(db: Session) -> None:
    import_demo_directory(db)


@pytest.fixture
def statuses(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the status route hands the scheduler (``tickets.surveys``, which runs too)."""
    seen: list[dict[str, Any]] = []
    real = survey_voice.record_attempt_status

    def record(session: Session, key: str, **kwargs: Any) -> None:
        seen.append({"key": key, **kwargs})
        real(session, key, **kwargs)

    monkeypatch.setattr(survey_voice, "record_attempt_status", record)
    return seen


def survey_attempt(db: Session, *, language: str = "zh", **order: object) -> SurveyAttempt:
    """An order answered by 住建局, and its survey's first call being placed."""
    work_order = dispatched_order(db, **order)  # type: ignore[arg-type]
    order_flow.accept(work_order, actor=liaison(ZJJ), session=db, clocks=CLOCKS)
    order_flow.answer(work_order, outcome="已清运", actor=liaison(ZJJ), session=db)
    survey = db.scalars(select(Survey).where(Survey.work_order_id == work_order.id)).one()
    survey.status, survey.attempts, survey.language = SurveyStatus.CALLING, 1, language
    attempt = SurveyAttempt(survey_id=survey.id, number=1, attempt_key=f"att-{uuid.uuid4().hex}")
    db.add(attempt)
    db.commit()
    return attempt


def call(
    simulator: CallSimulator, attempt: SurveyAttempt, inputs: list[str], **options: Any
) -> CallTranscript:
    transcript = survey_call(
        simulator, attempt.attempt_key, to_number=CALLER, inputs=inputs, **options
    )
    assert transcript.ok, transcript.errors
    for request in transcript.requests:
        if request.kind != "status":
            assert_valid_twiml(request.body)
    return transcript


def survey_of(db: Session, attempt: SurveyAttempt) -> Survey:
    db.expire_all()
    return db.get_one(Survey, attempt.survey_id)


def order_of(db: Session, attempt: SurveyAttempt) -> WorkOrder:
    return db.get_one(WorkOrder, survey_of(db, attempt).work_order_id)


def answers(survey: Survey) -> tuple[str | None, str | None, str | None]:
    return survey.responded, survey.solved, survey.satisfied


# -- satisfied: closed -------------------------------------------------------------------


def test_satisfied_by_keys_closes_the_order(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db)

    transcript = call(simulator, attempt, ["1", "1", "1"])

    assert transcript.said("12345政务服务便民热线") and transcript.said("垃圾")  # the topic
    assert transcript.said("感谢您对我们工作的支持")
    assert transcript.ended_by == "hangup"
    survey = survey_of(db, attempt)
    assert answers(survey) == ("yes", "solved", "satisfied")
    assert survey.status is SurveyStatus.COMPLETED and survey.review is None
    assert survey.answered_call_sid == transcript.call_sid
    order = order_of(db, attempt)
    assert order.state is WorkOrderState.CLOSED
    assert order.closed_how is ClosedHow.AFTER_CALLBACK
    row = db.get_one(SurveyAttempt, attempt.id)  # kept by the scheduler (tickets.surveys)
    assert (row.call_sid, row.status, row.answered_by) == (
        transcript.call_sid,
        "completed",
        "human",
    )
    assert survey.lease_owner is None and survey.next_attempt_at is None
    assert statuses == [
        {
            "key": attempt.attempt_key,
            "call_sid": transcript.call_sid,
            "status": "completed",
            "answered_by": "human",
            "at": statuses[0]["at"],
        }
    ]


@pytest.mark.parametrize(
    ("language", "words", "heard"),
    [
        ("zh", ["联系过了", "解决了", "基本满意"], "感谢您对我们工作的支持"),
        ("en", ["yes", "it's fixed", "very satisfied"], "Thank you for your answers"),
    ],
)
def test_satisfied_by_speech_closes_the_order(
    simulator: CallSimulator,
    db: Session,
    statuses: list[dict[str, Any]],
    language: str,
    words: list[str],
    heard: str,
) -> None:
    attempt = survey_attempt(db, language=language)

    transcript = call(simulator, attempt, [f"speech:{w}" for w in words])

    assert transcript.said(heard)
    assert answers(survey_of(db, attempt))[:2] == ("yes", "solved")
    assert order_of(db, attempt).state is WorkOrderState.CLOSED


def test_an_english_survey_does_not_read_a_chinese_topic(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db, language="en")

    transcript = call(simulator, attempt, [])

    assert transcript.said("calling about your work order")
    assert SUMMARY[:4] not in transcript.text()


def test_a_tibetan_survey_listens_for_keys_only(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db, language="bo")

    transcript = call(simulator, attempt, ["1", "speech:解决了", "1", "1"])

    gathers = [r for r in transcript.requests if "<Gather" in r.body]
    assert gathers and all('input="dtmf"' in r.body for r in gathers)
    # The words were no answer (heard as silence): the question was asked again.
    assert answers(survey_of(db, attempt)) == ("yes", "solved", "satisfied")
    assert order_of(db, attempt).state is WorkOrderState.CLOSED


# -- dissatisfied: the reviewer --------------------------------------------------------------


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


@pytest.fixture
def reviewer(client: FlaskClient, db: Session) -> None:
    add_staff(db, "dawa", Role.REVIEWER, phone_number="+8613900000007")
    log_in(client, "dawa")


def test_dissatisfied_goes_to_the_reviewer_who_reopens_it(
    simulator: CallSimulator,
    db: Session,
    client: FlaskClient,
    reviewer: None,
    statuses: list[dict[str, Any]],
) -> None:
    attempt = survey_attempt(db)
    call(simulator, attempt, ["1", "speech:还没解决呢", "3"])
    survey = survey_of(db, attempt)
    assert answers(survey) == ("yes", "not_solved", "dissatisfied")
    assert survey.review is SurveyReview.PENDING
    order = order_of(db, attempt)
    assert order.state is WorkOrderState.ANSWERED

    page = client.get("/review/surveys").get_data(as_text=True)
    assert order.number in page and SUMMARY in page
    assert "未解决 not solved" in page and "不满意 dissatisfied" in page
    assert survey.answered_call_sid in page and "attempt 1" in page
    assert 'href="/review/surveys"' in page  # in the review sub-nav

    missing = client.post(f"/review/surveys/{survey.id}", data={"decision": "subjective"})
    assert missing.status_code == 400
    decided = client.post(
        f"/review/surveys/{survey.id}", data={"decision": "subjective", "reason": "敷衍了事"}
    )
    assert decided.status_code == 302
    order = order_of(db, attempt)
    assert order.state is WorkOrderState.DISPATCHED and order.department_code == ZJJ
    assert order.reopen_count == 1
    assert survey_of(db, attempt).review is SurveyReview.SUBJECTIVE

    again = client.post(
        f"/review/surveys/{survey.id}", data={"decision": "objective", "reason": "再看"}
    )
    assert again.status_code == 409
    assert "already reviewed" in again.get_data(as_text=True)
    assert order_of(db, attempt).state is WorkOrderState.DISPATCHED
    assert (
        order.number
        not in client.get("/review/surveys").get_data(as_text=True).split("Recently decided")[0]
    )


def test_the_reviewer_closes_an_objective_dissatisfaction_as_explained(
    simulator: CallSimulator,
    db: Session,
    client: FlaskClient,
    reviewer: None,
    statuses: list[dict[str, Any]],
) -> None:
    attempt = survey_attempt(db)
    call(simulator, attempt, ["1", "1", "3"])
    survey = survey_of(db, attempt)

    response = client.post(
        f"/review/surveys/{survey.id}", data={"decision": "objective", "reason": "超出法定范围"}
    )

    assert response.status_code == 302
    order = order_of(db, attempt)
    assert order.state is WorkOrderState.CLOSED and order.closed_how is ClosedHow.EXPLAINED
    assert survey_of(db, attempt).review is SurveyReview.OBJECTIVE


def test_the_survey_queue_is_for_reviewers(
    client: FlaskClient, db: Session, statuses: list[dict[str, Any]]
) -> None:
    add_staff(db, "manager", Role.CALL_TAKER, phone_number="+8613900000009")
    log_in(client, "manager")

    assert client.get("/review/surveys").status_code == 403
    assert client.post("/review/surveys/1", data={}).status_code == 403


# -- silence, bad input, hang-ups, machines ------------------------------------------------------


def test_silence_and_bad_input_are_asked_again_once_then_skipped_to_review(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db)

    transcript = call(simulator, attempt, ["", "1", "7", "speech:请问你是谁", "1"])

    assert transcript.said("是否已经解决")
    survey = survey_of(db, attempt)
    assert answers(survey) == ("yes", None, "satisfied")
    assert survey.status is SurveyStatus.COMPLETED
    assert survey.review is SurveyReview.PENDING  # a skipped answer goes to a reviewer
    assert order_of(db, attempt).state is WorkOrderState.ANSWERED


def test_a_hang_up_midway_keeps_the_partial_answers(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db)

    transcript = call(simulator, attempt, ["1", "1"])  # then hangs up at question 3

    assert transcript.ended_by == "caller"
    survey = survey_of(db, attempt)
    assert answers(survey) == ("yes", "solved", None)
    assert survey.status is SurveyStatus.COMPLETED  # the final status finished it
    assert survey.review is SurveyReview.PENDING
    assert [s["status"] for s in statuses] == ["completed"]


def test_a_hang_up_before_any_answer_leaves_the_survey_to_the_scheduler(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db)

    call(simulator, attempt, [])

    survey = survey_of(db, attempt)
    assert answers(survey) == (None, None, None)
    assert survey.status is SurveyStatus.CALLING and survey.review is None
    assert [s["status"] for s in statuses] == ["completed"]


@pytest.mark.parametrize("machine", ["machine_start", "machine_end_beep", "fax"])
def test_an_answering_machine_is_hung_up_on(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]], machine: str
) -> None:
    attempt = survey_attempt(db)

    transcript = call(simulator, attempt, ["1", "1", "1"], answered_by=machine)

    start = transcript.requests[0]
    assert "<Hangup" in start.body and "<Say" not in start.body
    survey = survey_of(db, attempt)
    assert answers(survey) == (None, None, None) and survey.status is SurveyStatus.CALLING
    assert statuses[0]["answered_by"] == machine
    row = db.get_one(SurveyAttempt, attempt.id)  # a failed attempt, for the scheduler
    assert (row.status, row.answered_by) == ("completed", machine)


def test_a_phone_not_answered_only_reports_its_status(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db)

    transcript = call(simulator, attempt, [], phone="no-answer")

    assert [r.kind for r in transcript.requests] == ["status"]
    assert statuses[0]["status"] == "no-answer" and statuses[0]["answered_by"] is None


@pytest.mark.parametrize("opt_out", ["9", "speech:以后别再给我打电话了"])
def test_do_not_call_puts_the_number_on_the_list(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]], opt_out: str
) -> None:
    attempt = survey_attempt(db)

    transcript = call(simulator, attempt, ["1", opt_out])

    assert transcript.said("今后我们不再给您拨打回访电话")
    survey = survey_of(db, attempt)
    assert survey.status is SurveyStatus.OPTED_OUT and survey.responded == "yes"
    assert db.get_one(ContactPreference, CALLER).no_calls
    assert order_of(db, attempt).state is WorkOrderState.ANSWERED


def test_a_confidential_orders_summary_is_never_spoken(
    simulator: CallSimulator, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db, confidential=True)

    transcript = call(simulator, attempt, ["", "1", "1", "1"])

    assert transcript.said("工单编号" + " ".join(order_of(db, attempt).number))  # digit by digit
    for request in transcript.requests:
        assert "垃圾" not in request.body and "物业" not in request.body


# -- the door: signatures, retries, strangers -------------------------------------------------


def test_forged_requests_are_refused(
    twilio: TwilioSender, db: Session, statuses: list[dict[str, Any]]
) -> None:
    attempt = survey_attempt(db)
    query = f"?attempt={attempt.attempt_key}"
    params = {"CallSid": new_call_sid(), "CallStatus": "completed", "Digits": "1"}
    for path in (
        f"/voice/survey/start{query}",
        f"/voice/survey-status{query}",
        f"/voice/step/survey?survey={attempt.attempt_key}&lang=zh&q=responded&try=1&status=asking",
    ):
        response = twilio.post(path, params, signature="forged")
        assert response.status_code == 403, path
    assert db.scalar(select(func.count()).select_from(CallEvent)) == 0
    assert statuses == []


def test_an_unknown_attempt_hears_an_apology(twilio: TwilioSender, db: Session) -> None:
    response = twilio.post(
        "/voice/survey/start?attempt=nope", {"CallSid": new_call_sid(), "AnsweredBy": "human"}
    )

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert_valid_twiml(body)
    assert "对不起" in body and "<Hangup" in body


def test_a_bad_state_in_a_signed_step_url_hears_an_apology(twilio: TwilioSender) -> None:
    response = twilio.post("/voice/step/survey?survey=x&q=nonsense", {"CallSid": new_call_sid()})

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert_valid_twiml(body)
    assert "对不起" in body and "<Hangup" in body


def test_each_webhook_is_recorded_once_and_a_replay_changes_nothing(
    twilio: TwilioSender,
    simulator: CallSimulator,
    db: Session,
    statuses: list[dict[str, Any]],
) -> None:
    attempt = survey_attempt(db)
    transcript = call(simulator, attempt, ["1", "1", "3"])
    events = db.scalar(select(func.count()).select_from(CallEvent))
    assert events == len(transcript.requests) == 5  # start, three answers, the status

    for request in transcript.requests:  # Twilio retries every delivery, same token
        token = request.headers["I-Twilio-Idempotency-Token"]
        response = twilio.post(request.path, dict(request.form), token=token)
        assert response.status_code == 200

    assert db.scalar(select(func.count()).select_from(CallEvent)) == events
    assert len(statuses) == 1  # the status went to the scheduler once
    survey = survey_of(db, attempt)
    assert answers(survey) == ("yes", "solved", "dissatisfied")
    assert survey.review is SurveyReview.PENDING


def test_a_failure_while_storing_still_answers_twiml(
    simulator: CallSimulator,
    db: Session,
    statuses: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempt = survey_attempt(db)
    real = survey_voice.survey_results.record_answers
    failures = iter([True])

    def flaky(*args: Any, **kwargs: Any) -> bool:
        if next(failures, False):
            raise RuntimeError("database hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(survey_voice.survey_results, "record_answers", flaky)

    call(simulator, attempt, ["1", "1", "1"])

    # The first answer's store failed; the next step's URL carried it all the same.
    assert answers(survey_of(db, attempt)) == ("yes", "solved", "satisfied")
    assert order_of(db, attempt).state is WorkOrderState.CLOSED


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgresql"),
    reason="row locks: PostgreSQL (SQLite runs one writer at a time anyway)",
)
def test_the_last_answer_and_the_final_status_at_once_finish_the_survey_once(
    twilio: TwilioSender, db: Session, engine: Engine, statuses: list[dict[str, Any]]
) -> None:
    """The citizen presses the last key and hangs up: Twilio sends the step and the final
    status together. Whichever holds the survey first finishes it; the other sees that."""
    attempt = survey_attempt(db)
    call_sid = new_call_sid()
    survey = survey_of(db, attempt)
    survey_results.record_answers(
        db, survey, {"responded": "yes", "solved": "solved"}, call_sid=call_sid
    )
    db.commit()
    answered: list[int] = []
    status_path = f"/voice/survey-status?attempt={attempt.attempt_key}"
    params = {"CallSid": call_sid, "CallStatus": "completed", "SequenceNumber": "3"}

    with Session(engine) as last_step:  # the last answer's step, holding the survey
        held = last_step.get_one(Survey, survey.id, with_for_update=True)
        thread = threading.Thread(
            target=lambda: answered.append(twilio.post(status_path, params).status_code)
        )
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # the final status waits for the step
        survey_results.record_answers(
            last_step, held, {"satisfied": "satisfied"}, call_sid=call_sid
        )
        survey_results.finish(last_step, held, opted_out=False)
        last_step.commit()
    thread.join(10)

    assert answered == [200]
    survey = survey_of(db, attempt)
    assert answers(survey) == ("yes", "solved", "satisfied")
    assert survey.status is SurveyStatus.COMPLETED and survey.review is None
    assert order_of(db, attempt).state is WorkOrderState.CLOSED
    assert len(statuses) == 1
