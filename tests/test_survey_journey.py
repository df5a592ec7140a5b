"""Issue 5's "done when", through the parts people and Twilio use: a department answers an
order on its portal; the worker's sweep places the survey call inside calling hours (the
planning across evenings, weekends and holidays is tests/test_survey_scheduling.py); the
citizen (the call simulator) answers the three questions; the answers land on the order;
an unsatisfied citizen's order reaches a reviewer, who reopens it to the department."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.simulator import CallSimulator
from ivr.simulator_survey import survey_call
from ivr.survey_caller import ConsoleSurveyCaller
from tests.support.orders import CALLER, dispatched_order, import_demo_directory
from tests.support.staff import add_staff, log_in
from tickets.db import utcnow
from tickets.models import Role, Survey, SurveyAttempt, SurveyReview, SurveyStatus, WorkOrderState
from webapp.surveys import SURVEY_CALLER_KEY, run_survey_sweep

ZJJ = "D-CGQ-ZJJ"


def person(app: Flask, db: Session, username: str, *roles: Role, **details: str) -> FlaskClient:
    add_staff(db, username, *roles, phone_number=None, **details)
    browser = app.test_client()
    assert log_in(browser, username).status_code == 302
    return browser


def test_an_answered_order_is_surveyed_and_dissatisfaction_reaches_a_reviewer(
    app: Flask, db: Session, simulator: CallSimulator
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    import_demo_directory(db)
    caller = ConsoleSurveyCaller()
    app.extensions[SURVEY_CALLER_KEY] = caller
    order = dispatched_order(db, now=utcnow() - timedelta(hours=2))
    liaison = person(app, db, "liaison.zjj", Role.DEPARTMENT_LIAISON, department_code=ZJJ)
    reviewer = person(app, db, "reviewer", Role.REVIEWER)

    # The department signs off and answers on its portal.
    assert liaison.post(f"/portal/orders/{order.id}/accept", data={}).status_code == 302
    answered = liaison.post(
        f"/portal/orders/{order.id}/answer", data={"outcome": "已约谈物业公司，限期清运"}
    )
    assert answered.status_code == 302
    db.expire_all()
    survey = db.scalar(select(Survey).where(Survey.work_order_id == order.id))
    assert survey is not None and survey.status is SurveyStatus.SCHEDULED

    # The next sweep plans the call inside calling hours, after a settling delay, and
    # places nothing yet; the order is in its callback stage.
    answered_at = db.get_one(type(order), order.id).answered_at
    assert answered_at is not None
    run_survey_sweep(app, now_fn=lambda: answered_at + timedelta(seconds=1), sleep=lambda _: None)
    db.expire_all()
    survey = db.get_one(Survey, survey.id)
    due = survey.next_attempt_at
    assert due is not None and due >= answered_at + timedelta(minutes=10)
    assert 9 <= due.astimezone(app.config["HOTLINE_SETTINGS"].zone).hour < 20  # calling hours
    assert caller.placed == []
    assert db.get_one(type(order), order.id).state is WorkOrderState.CALLBACK

    # When it is due the sweep calls the citizen, once (a second sweep finds nothing).
    run_survey_sweep(app, now_fn=lambda: due + timedelta(seconds=1), sleep=lambda _: None)
    run_survey_sweep(app, now_fn=lambda: due + timedelta(seconds=2), sleep=lambda _: None)
    assert [call.to for call in caller.placed] == [CALLER]
    attempt_key = caller.placed[0].attempt_key

    # The citizen answers: the department responded, the problem is partly solved, and
    # they are dissatisfied (by key, by speech, by key).
    survey_call(
        simulator,
        attempt_key,
        to_number=CALLER,
        inputs=["1", "speech:解决了一部分", "3"],
        call_sid=caller.placed[0].call_sid,
    )
    db.expire_all()
    survey = db.get_one(Survey, survey.id)
    assert (survey.responded, survey.solved, survey.satisfied) == (
        "yes",
        "partly",
        "dissatisfied",
    )
    assert survey.status is SurveyStatus.COMPLETED
    assert survey.review is SurveyReview.PENDING
    (attempt,) = db.scalars(select(SurveyAttempt).where(SurveyAttempt.survey_id == survey.id))
    assert attempt.status == "completed"

    # The reviewer sees it and judges the dissatisfaction subjective: reopened (重办).
    queue = reviewer.get("/review/surveys").get_data(as_text=True)
    assert order.number in queue
    decided = reviewer.post(
        f"/review/surveys/{survey.id}",
        data={"decision": "subjective", "reason": "垃圾只清了一部分，需重办"},
    )
    assert decided.status_code in (200, 302), decided.get_data(as_text=True)[:300]
    db.expire_all()
    reopened = db.get_one(type(order), order.id)
    assert reopened.state is WorkOrderState.DISPATCHED and reopened.department_code == ZJJ
    assert reopened.reopen_count == 1
    assert [row.action for row in reopened.history][-3:] == ["answer", "start_callback", "reopen"]
