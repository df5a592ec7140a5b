"""What a satisfaction survey call leaves on the order (PRODUCT.md, "Satisfaction
callbacks"; issue 5 points 3 and 4).

- ``record_answers``: after every step of the call, the answers so far land on the
  ``Survey`` row, with the call they came from. An answer once stored is never erased or
  changed by a later step (a replayed or reordered webhook carries fewer or the same
  answers), so a citizen who hangs up midway leaves what they said behind.
- ``finish``: the call's conversation ended. "Do not call me again" puts the number on
  the do-not-call list (``ContactPreference.no_calls``) and the survey is OPTED_OUT;
  otherwise the survey is COMPLETED and the answers decide (``decision``):

  * responded, solved, and satisfied or basically satisfied → the order is closed
    (``ClosedHow.AFTER_CALLBACK``, by the survey robot, the answers in the reason);
  * anything else (not responded, partly or not solved, dissatisfied, or a question left
    without an answer) → the reviewer queue (``Survey.review = PENDING``).

- ``end_of_call``: the call's final status arrived and the conversation never finished
  (the citizen hung up midway): with at least one answer from that call, the survey is
  COMPLETED with what was said, and the same rule decides (a missing answer → review).
- ``decide_review``: the reviewer's reading of a pending survey: subjective (about the
  handling: 重办, the order goes back to the same department with fresh clocks) or
  objective (about what the law allows: closed as EXPLAINED). Deciding twice is refused.

No Flask here; the caller owns the transaction (nothing is committed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from tickets import order_flow, sms_outbox
from tickets.db import utcnow
from tickets.lifecycle import IllegalMove
from tickets.models import (
    ClosedHow,
    Survey,
    SurveyReview,
    SurveyStatus,
    WorkOrder,
    WorkOrderState,
)
from tickets.order_clocks import ConfiguredClocks
from tickets.order_flow import SYSTEM_WORKER, Actor

log = logging.getLogger(__name__)

SURVEY_ACTOR = "system:survey"  # who puts a number on the do-not-call list
FINISHED = frozenset({SurveyStatus.COMPLETED, SurveyStatus.OPTED_OUT})
CLOSABLE = frozenset({WorkOrderState.ANSWERED, WorkOrderState.CALLBACK})

# The answers as ``callflows.survey`` names them (``tickets`` does not import the flows;
# tests/test_survey_results.py checks that the two agree), with their words for the
# order's history and the reviewer's queue.
QUESTIONS = ("responded", "solved", "satisfied")  # callflows.survey.Question, in order
ANSWERS: Mapping[str, Mapping[str, str]] = {
    "responded": {"yes": "已响应 responded", "no": "未响应 not responded"},
    "solved": {
        "solved": "已解决 solved",
        "partly": "部分解决 partly solved",
        "not_solved": "未解决 not solved",
    },
    "satisfied": {
        "satisfied": "满意 satisfied",
        "basically_satisfied": "基本满意 basically satisfied",
        "dissatisfied": "不满意 dissatisfied",
    },
}
QUESTION_WORDS: Mapping[str, str] = {
    "responded": "响应 Responded",
    "solved": "解决 Solved",
    "satisfied": "满意 Satisfied",
}
NO_ANSWER_WORDS = "未回答 no answer"
# The decision rule: every one of these, else the reviewer.
GOOD = {
    "responded": {"yes"},
    "solved": {"solved"},
    "satisfied": {"satisfied", "basically_satisfied"},
}


class Outcome(StrEnum):
    """What ``finish`` or ``end_of_call`` did."""

    CLOSED = "closed"  # satisfied and solved: the order is closed
    REVIEW = "review"  # the order waits for a reviewer
    OPTED_OUT = "opted_out"  # the number is on the do-not-call list
    ORDER_MOVED = "order_moved"  # completed, but the order is no longer answered: untouched
    UNCHANGED = "unchanged"  # already finished, or nothing to finish


class ReviewAlreadyDecided(IllegalMove):
    """The survey's review was decided before (or never sent to review)."""


def given_answers(answers: Any) -> dict[str, str | None]:
    """``{"responded": "yes", "solved": None, ...}`` from a mapping, a
    ``callflows.survey.SurveyAnswers`` or anything with ``answers`` (``SurveyState``,
    ``SurveyTurn``). A value that answers no question is dropped (ValueError would lose
    the others)."""
    if not isinstance(answers, Mapping) and hasattr(answers, "answers"):
        answers = answers.answers
    found: dict[str, str | None] = {}
    for question in QUESTIONS:
        raw = answers.get(question) if isinstance(answers, Mapping) else getattr(answers, question)
        value = str(getattr(raw, "value", raw)) if raw not in (None, "") else None
        if value is not None and value not in ANSWERS[question]:
            log.warning("survey answer %r to %s is not one we know: ignored", value, question)
            value = None
        found[question] = value
    return found


def answers_of(survey: Survey) -> dict[str, str | None]:
    """The stored answers (an unknown stored value reads as none)."""
    return given_answers({question: getattr(survey, question) for question in QUESTIONS})


def answer_words(survey: Survey) -> dict[str, str]:
    """``{"响应 Responded": "已响应 responded", ...}``: the three answers in words."""
    return {
        QUESTION_WORDS[question]: ANSWERS[question][answer] if answer else NO_ANSWER_WORDS
        for question, answer in answers_of(survey).items()
    }


def is_satisfied(answers: Mapping[str, str | None]) -> bool:
    """The decision rule: responded, solved, and satisfied or basically satisfied."""
    return all(answers.get(question) in GOOD[question] for question in QUESTIONS)


def record_answers(
    session: Session,
    survey: Survey,
    answers: Any,
    *,
    call_sid: str,
    at: datetime | None = None,
) -> bool:
    """Store the answers given so far (a ``SurveyState``, ``SurveyTurn``, ``SurveyAnswers``
    or a mapping). Only empty columns are filled: an answer once stored stays. Returns
    True when something new was stored. A finished survey is left as it is (a replayed
    step after the decision changes nothing)."""
    if survey.status in FINISHED:
        return False
    changed = False
    for question, answer in given_answers(answers).items():
        if answer is not None and getattr(survey, question) is None:
            setattr(survey, question, answer)
            changed = True
    if changed:
        survey.answered_call_sid = survey.answered_call_sid or (call_sid[:34] or None)
        survey.answered_at = survey.answered_at or at or utcnow()
        session.flush()
    return changed


def finish(
    session: Session,
    survey: Survey,
    *,
    opted_out: bool,
    at: datetime | None = None,
) -> Outcome:
    """The conversation ended (the flow's ``turn.is_finished``): do-not-call, or the
    decision on the answers. Idempotent: a finished survey is left as it is."""
    if survey.status in FINISHED:
        return Outcome.UNCHANGED
    at = at or utcnow()
    order = session.get_one(WorkOrder, survey.work_order_id)
    # Nothing more to call for: no next attempt, and the worker's lease is over.
    survey.next_attempt_at = survey.lease_owner = survey.lease_until = None
    if opted_out:
        survey.status = SurveyStatus.OPTED_OUT
        if survey.to_number:
            sms_outbox.set_preference(
                survey.to_number,
                session=session,
                actor=SURVEY_ACTOR,
                reason=f"asked not to be called again (survey of order {order.number})",
                no_calls=True,
            )
        session.flush()
        log.info("survey %s: the citizen asked not to be called again", survey.id)
        return Outcome.OPTED_OUT
    survey.status = SurveyStatus.COMPLETED
    return _decide(session, survey, order, at)


def end_of_call(
    session: Session, survey: Survey, *, call_sid: str, at: datetime | None = None
) -> Outcome:
    """The call ``call_sid`` ended (its final status). If the conversation never finished
    and the citizen gave at least one answer on this call, the survey is COMPLETED with
    what was said (the same decision: a missing answer goes to review). A call without
    answers changes nothing here (the attempt failed: the scheduler's business)."""
    if survey.status in FINISHED or not call_sid:
        return Outcome.UNCHANGED
    if survey.answered_call_sid != call_sid or not any(answers_of(survey).values()):
        return Outcome.UNCHANGED
    log.info("survey %s: the citizen hung up midway; keeping the answers given", survey.id)
    return finish(session, survey, opted_out=False, at=at)


def _decide(session: Session, survey: Survey, order: WorkOrder, at: datetime) -> Outcome:
    answers = answers_of(survey)
    if not is_satisfied(answers):
        survey.review = SurveyReview.PENDING
        session.flush()
        log.info("survey %s: order %s goes to the reviewer queue", survey.id, order.number)
        return Outcome.REVIEW
    if order.state not in CLOSABLE:  # closed by hand, or reopened, meanwhile
        session.flush()
        log.info("survey %s: order %s is %s, not closed", survey.id, order.number, order.state)
        return Outcome.ORDER_MOVED
    order_flow.close(
        order,
        how=ClosedHow.AFTER_CALLBACK,
        reason=_answers_reason(survey),
        actor=SYSTEM_WORKER,
        session=session,
        now=at,
    )
    log.info("survey %s: order %s closed after the survey", survey.id, order.number)
    return Outcome.CLOSED


def _answers_reason(survey: Survey) -> str:
    words = "；".join(f"{q}：{a}" for q, a in answer_words(survey).items())
    call = f" (call {survey.answered_call_sid})" if survey.answered_call_sid else ""
    return f"回访 satisfaction survey{call}: {words}"


def decide_review(
    session: Session,
    survey: Survey,
    *,
    subjective: bool,
    reason: str,
    actor: Actor,
    clocks: ConfiguredClocks,
    now: datetime | None = None,
) -> SurveyReview:
    """The reviewer's reading of a pending survey.

    Subjective (about the handling): 重办, the order goes back to the same department
    with fresh clocks. Objective (about what the law allows): closed as EXPLAINED.
    ``ReviewAlreadyDecided`` when the survey is not pending (decided twice, even by two
    reviewers at the same moment: the survey row is claimed with a conditional UPDATE);
    ``IllegalMove`` when the lifecycle refuses the move (nothing should be committed).
    """
    reason = reason.strip()
    if not reason:
        raise IllegalMove("a reason is required")
    now = now or utcnow()
    verdict = SurveyReview.SUBJECTIVE if subjective else SurveyReview.OBJECTIVE
    claimed = session.execute(
        update(Survey)
        .where(Survey.id == survey.id, Survey.review == SurveyReview.PENDING)
        .values(review=verdict, reviewed_by=actor.actor, reviewed_at=now, review_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:
        session.refresh(survey)
        if survey.review is None:
            raise ReviewAlreadyDecided("this survey was never sent to review")
        raise ReviewAlreadyDecided(
            f"this survey was already reviewed ({survey.review.value}, by {survey.reviewed_by})"
        )
    session.refresh(survey)
    order = session.get_one(WorkOrder, survey.work_order_id)
    if subjective:
        order_flow.reopen(
            order,
            reason=f"回访不满意，主观（重办） dissatisfied with the handling: {reason}",
            actor=actor,
            session=session,
            clocks=clocks,
            now=now,
        )
    else:
        order_flow.close(
            order,
            how=ClosedHow.EXPLAINED,
            reason=f"回访不满意，客观（已解释） dissatisfied with what the law allows: {reason}",
            actor=actor,
            session=session,
            now=now,
        )
    return verdict
