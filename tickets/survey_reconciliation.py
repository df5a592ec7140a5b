"""Asking the provider about a call we never heard back from, before anything is placed
again, so the citizen is called once.

- An attempt still ``placing`` / ``unknown`` (the worker died during the create, or it
  timed out) is reconciled by number and time (``find_placed``): the call found is
  recorded and counts; none found: the survey is due again.
- A live call whose final status callback never came is looked up by its SID; once final,
  it is settled (``tickets.survey_settling``).

A lookup the provider cannot answer is asked again later (with backoff), never placed
blindly; one it refuses for our account pauses the sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import survey_schedule
from tickets.models import Survey, SurveyAttempt
from tickets.phones import mask_number
from tickets.survey_attempts import CallContext
from tickets.survey_calls import FINAL_STATUSES, CallFailure, CallFailureKind, PlacedCall
from tickets.survey_rows import (
    NOT_PLACED,
    UNSETTLED,
    Outcome,
    change_attempt,
    change_survey,
    due_again,
    mark_placed,
)
from tickets.survey_settling import settle

log = logging.getLogger(__name__)


def _known_sids(session: Session, calls: Sequence[PlacedCall]) -> set[str]:
    sids = [call.call_sid for call in calls]
    if not sids:
        return set()
    return set(
        session.scalars(select(SurveyAttempt.call_sid).where(SurveyAttempt.call_sid.in_(sids)))
    )


def reconcile(survey_id: int, attempt_id: int, ctx: CallContext) -> Outcome:
    """Was the attempt whose create we never heard back from placed? Ask the provider."""
    with ctx.sessions() as session:
        survey = session.get_one(Survey, survey_id)
        attempt = session.get_one(SurveyAttempt, attempt_id)
        to, since = survey.to_number or "", attempt.placed_at - ctx.policy.clock_skew
        failures = _consecutive_unanswered(attempt)
    try:
        calls = ctx.caller.find_placed(to=to, since=since)
    except CallFailure as failure:
        return _lookup_failed(survey_id, attempt_id, failure, failures, ctx)
    now = ctx.now_fn()
    with ctx.sessions.begin() as session:
        known = _known_sids(session, calls)
        found = next((call for call in calls if call.call_sid not in known), None)
        if found is not None:
            mark_placed(session, attempt_id, survey_id, found.call_sid, found.status)
            if found.answered_by:
                change_attempt(session, attempt_id, [], {"answered_by": found.answered_by[:24]})
            log.info(
                "survey %s: the unconfirmed call to %s had been placed: %s (%s)",
                survey_id,
                mask_number(to),
                found.call_sid,
                found.status,
            )
            if found.status in FINAL_STATUSES:
                change_attempt(
                    session, attempt_id, [SurveyAttempt.ended_at.is_(None)], {"ended_at": now}
                )
                settle(session, survey_id, attempt_id, ctx.plan, now, ctx.owner)
            else:
                change_survey(
                    session, survey_id, ctx.ours(), {"lease_until": now + ctx.policy.call_watch}
                )
            return Outcome.RECONCILED
        change_attempt(
            session,
            attempt_id,
            [SurveyAttempt.status.in_(UNSETTLED)],
            {"status": NOT_PLACED, "error": "reconciled: the provider has no such call"},
        )
        again = survey_schedule.next_calling_moment(now, ctx.plan.rules, ctx.plan.calendar)
        values = due_again(again, now)
        if not change_survey(session, survey_id, ctx.ours(), values):
            return Outcome.SKIPPED
    log.info("survey %s: the unconfirmed call was not placed; due again", survey_id)
    return Outcome.RETRY


def _consecutive_unanswered(attempt: SurveyAttempt) -> int:
    """How often the provider could not say (kept in the attempt's error text)."""
    return attempt.error.count("find_placed failed") if attempt.error else 0


def _lookup_failed(
    survey_id: int, attempt_id: int, failure: CallFailure, failures: int, ctx: CallContext
) -> Outcome:
    """The provider could not answer a lookup: ask again later, never place blindly."""
    now = ctx.now_fn()
    with ctx.sessions.begin() as session:
        if failure.kind is CallFailureKind.AUTH:
            change_survey(
                session, survey_id, ctx.ours(), {"lease_owner": None, "lease_until": None}
            )
            log.error(
                "SURVEY CALLS PAUSED: the provider refused a call lookup (code %s): %s",
                failure.code,
                failure,
            )
            return Outcome.PAUSED
        attempt = session.get_one(SurveyAttempt, attempt_id)
        if attempt.status in UNSETTLED:
            note = f"find_placed failed: {failure}"[:500]
            attempt.error = f"{attempt.error}\n{note}".strip()[-2000:]
        delay = ctx.policy.retry_delay(failures + 1, failure.retry_after)
        change_survey(session, survey_id, ctx.ours(), {"lease_until": now + delay})
    log.warning(
        "survey %s: could not look the call up (%s); asking again later", survey_id, failure
    )
    return Outcome.UNCERTAIN


def watch(survey_id: int, attempt_id: int, ctx: CallContext) -> Outcome:
    """A placed call whose final status never came: ask the provider how it is."""
    with ctx.sessions() as session:
        survey = session.get_one(Survey, survey_id)
        attempt = session.get_one(SurveyAttempt, attempt_id)
        to, since, sid = (
            survey.to_number or "",
            attempt.placed_at - ctx.policy.clock_skew,
            attempt.call_sid,
        )
    try:
        calls = ctx.caller.find_placed(to=to, since=since)
    except CallFailure as failure:
        return _lookup_failed(survey_id, attempt_id, failure, 0, ctx)
    found = next((call for call in calls if call.call_sid == sid), None)
    now = ctx.now_fn()
    with ctx.sessions.begin() as session:
        if found is None or found.status not in FINAL_STATUSES:
            if found is None:
                log.warning("survey %s: the provider does not list call %s", survey_id, sid)
            change_survey(
                session, survey_id, ctx.ours(), {"lease_until": now + ctx.policy.call_watch}
            )
            return Outcome.WATCHING
        values: dict[str, Any] = {"status": found.status, "ended_at": now}
        if found.answered_by:
            values["answered_by"] = found.answered_by[:24]
        change_attempt(session, attempt_id, [SurveyAttempt.ended_at.is_(None)], values)
        return settle(session, survey_id, attempt_id, ctx.plan, now, ctx.owner)
