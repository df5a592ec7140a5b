"""What a survey call leaves on the order (``tickets.survey_results``), on the real database:
answers stored after every step and never erased, the decision (closed, or the reviewer
queue), do-not-call, a hang-up midway, and the reviewer's subjective/objective reading."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows.survey import (
    Question,
    Resolution,
    Responded,
    Satisfaction,
    SurveyAnswers,
    SurveyState,
)
from tests.support.orders import (
    REVIEWER,
    dispatched_order,
    import_demo_directory,
    liaison,
    shipped_clocks,
)
from tickets import order_flow, survey_results
from tickets.lifecycle import IllegalMove
from tickets.models import (
    ClosedHow,
    ContactPreference,
    Survey,
    SurveyAttempt,
    SurveyReview,
    SurveyStatus,
    WorkOrder,
    WorkOrderDispatch,
    WorkOrderHistory,
    WorkOrderState,
)
from tickets.survey_results import Outcome, ReviewAlreadyDecided

ZJJ = "D-CGQ-ZJJ"
CLOCKS = shipped_clocks()
CALL = "CA" + "5" * 32
OTHER_CALL = "CA" + "6" * 32
GOOD = SurveyAnswers(Responded.YES, Resolution.SOLVED, Satisfaction.SATISFIED)


@pytest.fixture(autouse=True)
def directory(db: Session) -> None:
    import_demo_directory(db)


def answered_survey(db: Session, **order: object) -> Survey:
    """An order dispatched to 住建局 and answered by it: its survey, being called."""
    work_order = dispatched_order(db, **order)  # type: ignore[arg-type]
    order_flow.accept(work_order, actor=liaison(ZJJ), session=db, clocks=CLOCKS)
    order_flow.answer(work_order, outcome="已清运", actor=liaison(ZJJ), session=db)
    survey = db.scalars(select(Survey).where(Survey.work_order_id == work_order.id)).one()
    survey.status = SurveyStatus.CALLING
    survey.attempts = 1
    db.add(SurveyAttempt(survey_id=survey.id, number=1, attempt_key=f"att-{uuid.uuid4().hex}"))
    db.commit()
    return survey


def order_of(db: Session, survey: Survey) -> WorkOrder:
    return db.get_one(WorkOrder, survey.work_order_id)


def test_the_vocabulary_agrees_with_the_survey_flow() -> None:
    assert tuple(question.value for question in Question) == survey_results.QUESTIONS
    for question, kind in (
        ("responded", Responded),
        ("solved", Resolution),
        ("satisfied", Satisfaction),
    ):
        assert set(survey_results.ANSWERS[question]) == {answer.value for answer in kind}


def test_answers_are_stored_after_each_step_and_never_erased(db: Session) -> None:
    survey = answered_survey(db)
    first = SurveyState("att", answers=SurveyAnswers(responded=Responded.YES))

    assert survey_results.record_answers(db, survey, first, call_sid=CALL)
    # A replayed earlier step (fewer answers) and a later one (more) after it:
    assert not survey_results.record_answers(db, survey, SurveyAnswers(), call_sid=CALL)
    later = SurveyAnswers(Responded.NO, Resolution.PARTLY, None)
    assert survey_results.record_answers(db, survey, later, call_sid=OTHER_CALL)
    db.commit()

    assert (survey.responded, survey.solved, survey.satisfied) == ("yes", "partly", None)
    assert survey.answered_call_sid == CALL  # the call the answers came from
    assert survey.answered_at is not None
    assert survey.status is SurveyStatus.CALLING  # not finished: the call goes on


def test_a_mapping_of_answers_is_accepted_and_an_unknown_answer_ignored(db: Session) -> None:
    survey = answered_survey(db)

    survey_results.record_answers(
        db, survey, {"responded": "yes", "solved": "maybe", "satisfied": ""}, call_sid=CALL
    )

    assert (survey.responded, survey.solved, survey.satisfied) == ("yes", None, None)


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        (GOOD, Outcome.CLOSED),
        (
            SurveyAnswers(Responded.YES, Resolution.SOLVED, Satisfaction.BASICALLY_SATISFIED),
            Outcome.CLOSED,
        ),
        (SurveyAnswers(Responded.NO, Resolution.SOLVED, Satisfaction.SATISFIED), Outcome.REVIEW),
        (SurveyAnswers(Responded.YES, Resolution.PARTLY, Satisfaction.SATISFIED), Outcome.REVIEW),
        (
            SurveyAnswers(Responded.YES, Resolution.NOT_SOLVED, Satisfaction.SATISFIED),
            Outcome.REVIEW,
        ),
        (
            SurveyAnswers(Responded.YES, Resolution.SOLVED, Satisfaction.DISSATISFIED),
            Outcome.REVIEW,
        ),
        (SurveyAnswers(Responded.YES, None, Satisfaction.SATISFIED), Outcome.REVIEW),
        (SurveyAnswers(None, Resolution.SOLVED, Satisfaction.SATISFIED), Outcome.REVIEW),
        (SurveyAnswers(), Outcome.REVIEW),
    ],
)
def test_the_decision_rule(db: Session, answers: SurveyAnswers, outcome: Outcome) -> None:
    survey = answered_survey(db)
    survey_results.record_answers(db, survey, answers, call_sid=CALL)

    assert survey_results.finish(db, survey, opted_out=False) is outcome
    db.commit()

    order = order_of(db, survey)
    assert survey.status is SurveyStatus.COMPLETED
    if outcome is Outcome.CLOSED:
        assert survey.review is None
        assert order.state is WorkOrderState.CLOSED
        assert order.closed_how is ClosedHow.AFTER_CALLBACK
        last = order.history[-1]
        assert (last.action, last.actor) == ("close", "system:worker")
        assert "已解决 solved" in last.reason and CALL in last.reason
    else:
        assert survey.review is SurveyReview.PENDING
        assert order.state is WorkOrderState.ANSWERED


def test_finishing_twice_changes_nothing_and_a_later_step_is_ignored(db: Session) -> None:
    survey = answered_survey(db)
    survey_results.record_answers(db, survey, GOOD, call_sid=CALL)
    assert survey_results.finish(db, survey, opted_out=False) is Outcome.CLOSED

    assert survey_results.finish(db, survey, opted_out=False) is Outcome.UNCHANGED
    assert survey_results.finish(db, survey, opted_out=True) is Outcome.UNCHANGED
    assert not survey_results.record_answers(db, survey, {"responded": "no"}, call_sid=CALL)
    db.commit()
    assert survey.status is SurveyStatus.COMPLETED
    assert db.get(ContactPreference, survey.to_number) is None


def test_do_not_call_puts_the_number_on_the_list(db: Session) -> None:
    survey = answered_survey(db)
    survey_results.record_answers(db, survey, {"responded": "yes"}, call_sid=CALL)

    assert survey_results.finish(db, survey, opted_out=True) is Outcome.OPTED_OUT
    db.commit()

    preference = db.get_one(ContactPreference, survey.to_number)
    assert preference.no_calls and not preference.no_sms
    assert preference.updated_by == "system:survey"
    assert survey.status is SurveyStatus.OPTED_OUT
    assert survey.responded == "yes"  # what was said before is kept
    assert survey.review is None
    assert order_of(db, survey).state is WorkOrderState.ANSWERED


def test_a_hang_up_midway_completes_with_what_was_said(db: Session) -> None:
    survey = answered_survey(db)
    survey_results.record_answers(db, survey, {"responded": "yes"}, call_sid=CALL)

    # Another call's end (a stale attempt) changes nothing; this call's end completes it.
    assert survey_results.end_of_call(db, survey, call_sid=OTHER_CALL) is Outcome.UNCHANGED
    assert survey_results.end_of_call(db, survey, call_sid=CALL) is Outcome.REVIEW
    assert survey_results.end_of_call(db, survey, call_sid=CALL) is Outcome.UNCHANGED
    db.commit()

    assert survey.status is SurveyStatus.COMPLETED
    assert survey.review is SurveyReview.PENDING


def test_a_call_that_ends_without_answers_leaves_the_survey_to_the_scheduler(
    db: Session,
) -> None:
    survey = answered_survey(db)

    assert survey_results.end_of_call(db, survey, call_sid=CALL) is Outcome.UNCHANGED
    assert survey.status is SurveyStatus.CALLING


def test_an_order_closed_meanwhile_is_left_alone(db: Session) -> None:
    survey = answered_survey(db)
    order = order_of(db, survey)
    order_flow.close(
        order, how=ClosedHow.AFTER_CALLBACK, reason="已电话回访", actor=REVIEWER, session=db
    )
    survey_results.record_answers(db, survey, GOOD, call_sid=CALL)

    assert survey_results.finish(db, survey, opted_out=False) is Outcome.ORDER_MOVED
    assert survey.status is SurveyStatus.COMPLETED


# -- the reviewer --------------------------------------------------------------------------


def dissatisfied(db: Session) -> Survey:
    survey = answered_survey(db)
    answers = SurveyAnswers(Responded.YES, Resolution.NOT_SOLVED, Satisfaction.DISSATISFIED)
    survey_results.record_answers(db, survey, answers, call_sid=CALL)
    survey_results.finish(db, survey, opted_out=False)
    db.commit()
    return survey


def test_subjective_reopens_the_order_to_the_same_department(db: Session) -> None:
    survey = dissatisfied(db)
    order = order_of(db, survey)
    department_before = (order.department_id, order.department_code)

    verdict = survey_results.decide_review(
        db, survey, subjective=True, reason="承办单位敷衍", actor=REVIEWER, clocks=CLOCKS
    )
    db.commit()

    assert verdict is SurveyReview.SUBJECTIVE
    assert (survey.review, survey.reviewed_by, survey.review_reason) == (
        SurveyReview.SUBJECTIVE,
        REVIEWER.actor,
        "承办单位敷衍",
    )
    assert order.state is WorkOrderState.DISPATCHED
    assert (order.department_id, order.department_code) == department_before
    assert order.reopen_count == 1 and order.signoff_due_at is not None
    dispatches = db.scalars(
        select(WorkOrderDispatch).where(WorkOrderDispatch.work_order_id == order.id)
    ).all()
    assert [d.department_code for d in dispatches] == [ZJJ, ZJJ]
    last = db.scalars(
        select(WorkOrderHistory)
        .where(WorkOrderHistory.work_order_id == order.id)
        .order_by(WorkOrderHistory.id.desc())
    ).first()
    assert last is not None and last.action == "reopen" and "承办单位敷衍" in last.reason


def test_objective_closes_the_order_as_explained(db: Session) -> None:
    survey = dissatisfied(db)

    survey_results.decide_review(
        db, survey, subjective=False, reason="诉求超出法定范围", actor=REVIEWER, clocks=CLOCKS
    )
    db.commit()

    order = order_of(db, survey)
    assert survey.review is SurveyReview.OBJECTIVE
    assert order.state is WorkOrderState.CLOSED and order.closed_how is ClosedHow.EXPLAINED


def test_a_review_is_decided_once_with_a_reason(db: Session) -> None:
    survey = dissatisfied(db)
    with pytest.raises(IllegalMove, match="reason"):
        survey_results.decide_review(
            db, survey, subjective=True, reason="  ", actor=REVIEWER, clocks=CLOCKS
        )
    survey_results.decide_review(
        db, survey, subjective=False, reason="依法解释", actor=REVIEWER, clocks=CLOCKS
    )
    db.commit()

    with pytest.raises(ReviewAlreadyDecided, match="already reviewed"):
        survey_results.decide_review(
            db, survey, subjective=True, reason="再办", actor=REVIEWER, clocks=CLOCKS
        )
    db.rollback()
    assert survey.review is SurveyReview.OBJECTIVE
    assert order_of(db, survey).state is WorkOrderState.CLOSED


def test_a_satisfied_survey_cannot_be_reviewed(db: Session) -> None:
    survey = answered_survey(db)
    survey_results.record_answers(db, survey, GOOD, call_sid=CALL)
    survey_results.finish(db, survey, opted_out=False)

    with pytest.raises(ReviewAlreadyDecided, match="never sent to review"):
        survey_results.decide_review(
            db, survey, subjective=True, reason="x", actor=REVIEWER, clocks=CLOCKS
        )
