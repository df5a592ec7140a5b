"""Recording what the provider reports about a survey call (the status callback from the
voice edge, ``ivr.survey_voice``): the attempt found by the key its URLs carry, its
status moved forward only, and its final status handed to ``tickets.survey_settling``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.models import Survey, SurveyAttempt, SurveyStatus
from tickets.survey_calls import FINAL_STATUSES, NOT_FINAL_STATUSES
from tickets.survey_policy import DEFAULT_POLICY, SurveyPlan
from tickets.survey_rows import (
    UNSETTLED,
    change_attempt,
    change_survey,
    latest_attempt,
    mark_placed,
)
from tickets.survey_settling import maybe_a_person, settle_failed

log = logging.getLogger(__name__)

_STATUS_RANK = {"queued": 1, "initiated": 2, "ringing": 3, "in-progress": 4}


def find_attempt(session: Session, attempt_key: str) -> SurveyAttempt | None:
    """The attempt whose key a call's URL carries, or None."""
    if not attempt_key or len(attempt_key) > 40:
        return None
    return session.scalar(select(SurveyAttempt).where(SurveyAttempt.attempt_key == attempt_key))


def record_attempt_status(
    session: Session,
    attempt_key: str,
    *,
    call_sid: str | None,
    status: str,
    answered_by: str | None,
    at: datetime,
    plan: SurveyPlan | None = None,
) -> SurveyAttempt | None:
    """The provider reports on the call of attempt ``attempt_key`` (the status webhook).

    Idempotent and safe out of order: a status never moves an attempt backwards, and
    once the attempt has a final status nothing changes any more. On the final status:

    - completed, and a person (or nobody could tell) answered: the survey is left to the
      conversation for ``conversation_grace``; the worker then completes it if answers were
      stored, else counts a failed attempt;
    - machine, no-answer, busy, failed, canceled: a failed attempt. With ``plan`` the
      next call (or the SMS fallback) is planned here; without, the survey's lease is
      ended and the worker's next sweep plans it.

    In the caller's transaction (never commits). None for an unknown key.
    """
    attempt = find_attempt(session, attempt_key)
    if attempt is None:
        return None
    status = (status or "").strip().lower()[:20]
    if call_sid:
        if attempt.call_sid is None:
            mark_placed(session, attempt.id, attempt.survey_id, call_sid, None)
        elif attempt.call_sid != call_sid:
            log.warning(
                "survey attempt %s: a report for call %s, the attempt records %s: ignored",
                attempt_key,
                call_sid,
                attempt.call_sid,
            )
            return attempt
    if answered_by:
        change_attempt(
            session,
            attempt.id,
            [SurveyAttempt.answered_by.is_(None)],
            {"answered_by": answered_by.strip()[:24]},
        )
    final_before = [SurveyAttempt.ended_at.is_(None), SurveyAttempt.status.not_in(FINAL_STATUSES)]
    if status in NOT_FINAL_STATUSES:
        earlier = [s for s, rank in _STATUS_RANK.items() if rank < _STATUS_RANK[status]]
        change_attempt(
            session,
            attempt.id,
            [*final_before, SurveyAttempt.status.in_([*earlier, *UNSETTLED])],
            {"status": status},
        )
    elif status in FINAL_STATUSES and change_attempt(
        session, attempt.id, final_before, {"status": status, "ended_at": at}
    ):
        session.refresh(attempt)
        _attempt_ended(session, attempt, at, plan)
    session.refresh(attempt)
    return attempt


def _attempt_ended(
    session: Session, attempt: SurveyAttempt, at: datetime, plan: SurveyPlan | None
) -> None:
    survey = session.get(Survey, attempt.survey_id, populate_existing=True)
    if survey is None or survey.status is not SurveyStatus.CALLING:
        return  # completed, opted out ... meanwhile: nothing to plan
    latest = latest_attempt(session, survey.id)
    if latest is None or latest.id != attempt.id:
        return  # a late report of an older attempt
    calling = [Survey.status == SurveyStatus.CALLING]
    if maybe_a_person(attempt):
        grace = DEFAULT_POLICY.conversation_grace
        change_survey(session, survey.id, calling, {"lease_until": at + grace, "updated_at": at})
        return
    if plan is not None:
        settle_failed(session, survey, attempt, plan, at, calling)
    else:  # the worker's next sweep plans it (RECOVER: a final status to settle)
        change_survey(session, survey.id, calling, {"lease_until": at, "updated_at": at})
