"""Acting on an ended survey call: completed, the next call, or the SMS fallback.

A person who answered leaves the survey to the conversation (``tickets.survey_results``
marks it completed; a conversation whose own end was lost is finished here on its
answers). A machine, no answer, busy, failed, canceled, or a completed call without any
answer is a failed attempt: the next one at least ``min_gap`` later inside calling hours,
or, when the attempts are spent (or the provider refuses the call for good), an SMS with
the questions and reply codes; without the SMS the survey is cancelled.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tickets import sms_outbox, survey_results, survey_schedule
from tickets.models import SmsPurpose, Survey, SurveyAttempt, SurveyStatus, WorkOrder
from tickets.survey_policy import SurveyPlan
from tickets.survey_rows import Outcome, cancelled, change_survey, due_again, latest_attempt

log = logging.getLogger(__name__)

# The SMS fallback: the three questions with reply codes, the order's number only (never
# its content: a confidential order's SMS says no more than the call does).
SMS_TEXTS = {
    "zh": (
        "【12345热线】回访：您反映的工单{number}已办理。请回复三位数字作答："
        "第1位 部门是否联系您（1是 2否）；第2位 问题是否解决（1已解决 2部分解决 3未解决）；"
        "第3位 是否满意（1满意 2基本满意 3不满意）。例如回复111。回复0不再回访。"
    ),
    "en": (
        "12345 hotline: your case {number} has been answered. Reply with 3 digits: "
        "1st, did the department respond? 1 yes 2 no; 2nd, is it solved? 1 solved 2 partly "
        "3 not solved; 3rd, are you satisfied? 1 satisfied 2 basically 3 dissatisfied. "
        "E.g. reply 111. Reply 0 for no more survey calls."
    ),
}


def survey_sms_text(language: str, order_number: str) -> str:
    """The fallback SMS in the citizen's language (Chinese for Tibetan: no Tibetan SMS)."""
    return SMS_TEXTS.get(language, SMS_TEXTS["zh"]).format(number=order_number)


def _has_answers(survey: Survey) -> bool:
    return any(value is not None for value in (survey.responded, survey.solved, survey.satisfied))


def _is_machine(answered_by: str | None) -> bool:
    return bool(answered_by) and (
        answered_by.startswith("machine") or answered_by == "fax"  # type: ignore[union-attr]
    )


def maybe_a_person(attempt: SurveyAttempt) -> bool:
    """A completed call that a person (or nobody could tell what) answered."""
    return attempt.status == "completed" and not _is_machine(attempt.answered_by)


def settle(
    session: Session,
    survey_id: int,
    attempt_id: int,
    plan: SurveyPlan,
    now: datetime,
    owner: str | None = None,
) -> Outcome:
    """Act on the final status of the survey's latest attempt: a conversation with
    answers is completed (if ``tickets.survey_results`` has not said so yet), anything
    else is a failed attempt. Idempotent: the attempts were counted when placed."""
    # Locked like the voice edge locks it, so a conversation finishing at this moment
    # and this settling cannot both decide.
    survey = session.get(Survey, survey_id, populate_existing=True, with_for_update=True)
    attempt = session.get(SurveyAttempt, attempt_id, populate_existing=True)
    if survey is None or attempt is None or survey.status is not SurveyStatus.CALLING:
        return Outcome.SKIPPED
    latest = latest_attempt(session, survey_id)
    if latest is None or latest.id != attempt_id:
        return Outcome.SKIPPED
    if owner is not None and survey.lease_owner != owner:
        return Outcome.SKIPPED
    conditions = [Survey.status == SurveyStatus.CALLING]
    if owner is not None:
        conditions.append(Survey.lease_owner == owner)
    if maybe_a_person(attempt) and _has_answers(survey):
        # The conversation's own end was lost (its final status never finished it): the
        # same decision on the answers as if it had (closed, or to a reviewer).
        survey.answered_call_sid = survey.answered_call_sid or attempt.call_sid
        survey_results.finish(
            session, survey, opted_out=False, at=survey.answered_at or attempt.ended_at or now
        )
        return Outcome.SETTLED
    return settle_failed(session, survey, attempt, plan, now, conditions)


def settle_failed(
    session: Session,
    survey: Survey,
    attempt: SurveyAttempt,
    plan: SurveyPlan,
    now: datetime,
    conditions: list[Any],
) -> Outcome:
    """A failed attempt: the next call inside calling hours, or when the attempts are
    spent, ``give_up``."""
    again = survey_schedule.next_attempt_at(
        attempt.placed_at, max(survey.attempts, 1), plan.rules, plan.calendar
    )
    if again is not None:
        values = due_again(again, now)
        if not change_survey(session, survey.id, conditions, values):
            return Outcome.SKIPPED
        log.info(
            "survey %s attempt %d failed (%s%s): next call at %s",
            survey.id,
            attempt.number,
            attempt.status,
            f", {attempt.answered_by}" if attempt.answered_by else "",
            again.isoformat(),
        )
        return Outcome.SETTLED
    why = f"{survey.attempts} attempt(s) without an answer"
    return give_up(session, survey.id, now, plan, conditions, why=why)


def give_up(
    session: Session,
    survey_id: int,
    now: datetime,
    plan: SurveyPlan,
    conditions: list[Any],
    *,
    why: str,
) -> Outcome:
    """No more calls: the SMS with the questions, when configured and possible; else the
    survey is cancelled."""
    survey = session.get_one(Survey, survey_id)
    message = None
    if plan.rules.sms_fallback and survey.to_number:
        order = session.get_one(WorkOrder, survey.work_order_id)
        message = sms_outbox.schedule(
            session=session,
            dedupe_key=f"survey:{survey_id}",
            purpose=SmsPurpose.SURVEY,
            to_number=survey.to_number,
            body=survey_sms_text(survey.language, order.number),
            due_at=survey_schedule.next_calling_moment(now, plan.rules, plan.calendar),
            work_order_id=order.id,
            details={"survey_id": str(survey_id)},
        )
    values: dict[str, Any] = cancelled(now)
    if message is not None:
        values |= {"status": SurveyStatus.SMS_SENT, "sms_message_id": message.id}
    if not change_survey(session, survey_id, conditions, values):
        return Outcome.SKIPPED
    log.info(
        "survey %s: no more calls (%s): %s",
        survey_id,
        why,
        "the questions go by SMS" if message is not None else "cancelled",
    )
    return Outcome.GAVE_UP
