"""Placing one survey call attempt, and what each failure of the create does.

The attempt row, with its ``attempt_key`` in the call's URLs, is committed before the REST
create: a create whose answer is lost is always found again (``tickets.survey_reconciliation``).

What each failure of the create does (``CallFailure.kind``):

- ``retry`` with ``maybe_placed`` (read timeout, 5xx): the attempt is ``unknown``, the
  survey stays ``calling`` with a short lease, and the next sweep reconciles it.
- ``retry`` without (20429, connect timeout): the attempt is ``not_placed`` (not counted),
  the survey is due again after a backoff. 20429 also stops the sweep early and gives its
  other claims back.
- ``invalid_number`` (21211, 13224, 21214 ...): the number's ``ContactPreference`` is
  marked invalid; this survey and the number's other scheduled surveys are cancelled.
- ``auth`` (20003 ...): nothing was placed; the survey is due as before, the sweep stops,
  gives its claims back and logs an ERROR. Every following sweep makes at most one request
  until an operator fixes the account.
- ``rejected`` (another 4xx): calls to this survey are given up: the SMS fallback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from tickets import sms_outbox, survey_schedule
from tickets.db import utcnow
from tickets.models import Survey, SurveyAttempt, SurveyStatus
from tickets.phones import mask_number
from tickets.survey_calls import FINAL_STATUSES, CallFailure, CallFailureKind, SurveyCaller
from tickets.survey_policy import DEFAULT_POLICY, CallPolicy, SurveyPlan
from tickets.survey_rows import (
    INVALID,
    NOT_PLACED,
    PLACING,
    REJECTED,
    UNKNOWN,
    Outcome,
    cancelled,
    change_attempt,
    change_survey,
    due_again,
    mark_placed,
    unclaimed,
    why_not_call,
)
from tickets.survey_settling import give_up, settle

log = logging.getLogger(__name__)

ACTOR = "system:survey"  # who marks a number invalid (ContactPreference.updated_by)
START_PATH = "/voice/survey/start"  # the call's TwiML, ``?attempt=<attempt_key>``
STATUS_PATH = "/voice/survey-status"  # its status callback, ``?attempt=<attempt_key>``


def call_urls(public_base_url: str, attempt_key: str) -> tuple[str, str]:
    """The answer URL and the status callback URL of an attempt."""
    base, query = public_base_url.rstrip("/"), urlencode({"attempt": attempt_key})
    return f"{base}{START_PATH}?{query}", f"{base}{STATUS_PATH}?{query}"


@dataclass
class CallContext:
    """What placing a call needs besides the row."""

    sessions: sessionmaker[Session]
    caller: SurveyCaller
    plan: SurveyPlan
    owner: str
    public_base_url: str
    from_number: str
    policy: CallPolicy = DEFAULT_POLICY
    now_fn: Callable[[], datetime] = utcnow
    pace: Callable[[], None] = lambda: None  # called right before each create

    def ours(self) -> list[Any]:
        return [Survey.status == SurveyStatus.CALLING, Survey.lease_owner == self.owner]


def place_attempt(survey_id: int, ctx: CallContext) -> Outcome:
    """A new attempt: the row (with a new ``attempt_key``) committed, then the create."""
    now = ctx.now_fn()
    with ctx.sessions.begin() as session:
        survey = session.get(Survey, survey_id)
        if survey is None or survey.status is not SurveyStatus.CALLING:
            return Outcome.SKIPPED
        if survey.lease_owner != ctx.owner:
            return Outcome.SKIPPED
        why = why_not_call(session, survey)
        if why is not None:
            if not change_survey(session, survey_id, ctx.ours(), cancelled(now)):
                return Outcome.SKIPPED
            log.info("survey %s cancelled: %s", survey_id, why)
            return Outcome.CANCELLED
        if not survey_schedule.is_inside(now, ctx.plan.rules, ctx.plan.calendar):
            return _move_to_calling_hours(session, survey_id, now, ctx)
        to = survey.to_number or ""
        number = (
            session.scalar(
                select(func.max(SurveyAttempt.number)).where(SurveyAttempt.survey_id == survey_id)
            )
            or 0
        ) + 1
        if not change_survey(
            session, survey_id, ctx.ours(), {"lease_until": now + ctx.policy.lease}
        ):
            return Outcome.SKIPPED
        attempt = SurveyAttempt(
            survey_id=survey_id,
            number=number,
            attempt_key=uuid.uuid4().hex,
            status=PLACING,
            placed_at=now,
            error="",
        )
        session.add(attempt)
        session.flush()
        attempt_id, key = attempt.id, attempt.attempt_key
    answer_url, status_url = call_urls(ctx.public_base_url, key)
    ctx.pace()
    try:
        call_sid = ctx.caller.place(
            to=to,
            from_=ctx.from_number,
            attempt_key=key,
            answer_url=answer_url,
            status_url=status_url,
            machine_detection=True,
        )
    except CallFailure as failure:
        return _place_failed(survey_id, attempt_id, to, failure, ctx)
    with ctx.sessions.begin() as session:
        mark_placed(session, attempt_id, survey_id, call_sid, "queued")
        status = session.scalar(select(SurveyAttempt.status).where(SurveyAttempt.id == attempt_id))
        if status in FINAL_STATUSES:  # its final status callback came before our commit
            settle(session, survey_id, attempt_id, ctx.plan, ctx.now_fn(), ctx.owner)
        else:
            change_survey(
                session,
                survey_id,
                ctx.ours(),
                {"lease_until": ctx.now_fn() + ctx.policy.call_watch},
            )
    log.info("survey %s attempt %d placed to %s: %s", survey_id, number, mask_number(to), call_sid)
    return Outcome.PLACED


def _move_to_calling_hours(
    session: Session, survey_id: int, now: datetime, ctx: CallContext
) -> Outcome:
    opening = survey_schedule.next_calling_moment(now, ctx.plan.rules, ctx.plan.calendar)
    values = due_again(opening, now)
    return (
        Outcome.MOVED if change_survey(session, survey_id, ctx.ours(), values) else Outcome.SKIPPED
    )


def _consecutive_not_placed(session: Session, survey_id: int) -> int:
    statuses = session.scalars(
        select(SurveyAttempt.status)
        .where(SurveyAttempt.survey_id == survey_id)
        .order_by(SurveyAttempt.number.desc())
        .limit(20)
    ).all()
    count = 0
    for status in statuses:
        if status != NOT_PLACED:
            break
        count += 1
    return count


def _place_failed(
    survey_id: int, attempt_id: int, to: str, failure: CallFailure, ctx: CallContext
) -> Outcome:
    now = ctx.now_fn()
    kind = failure.kind
    error = {"error": str(failure)[:2000], "error_code": failure.code}
    with ctx.sessions.begin() as session:
        if kind is CallFailureKind.RETRY and failure.maybe_placed:
            change_attempt(session, attempt_id, [], {"status": UNKNOWN, **error})
            delay = max(ctx.policy.reconcile_after, ctx.policy.retry_delay(1, failure.retry_after))
            change_survey(session, survey_id, ctx.ours(), {"lease_until": now + delay})
            log.warning(
                "survey %s: the call to %s may have been placed (%s): reconciling in %ss",
                survey_id,
                mask_number(to),
                failure,
                int(delay.total_seconds()),
            )
            return Outcome.UNCERTAIN
        if kind in (CallFailureKind.RETRY, CallFailureKind.AUTH):
            change_attempt(session, attempt_id, [], {"status": NOT_PLACED, **error})
            values = unclaimed(SurveyStatus.SCHEDULED, now)
            if kind is CallFailureKind.AUTH:  # due as before: nothing is wrong with the survey
                change_survey(session, survey_id, ctx.ours(), values)
                log.error(
                    "SURVEY CALLS PAUSED: the provider refused the account or the call's "
                    "configuration (code %s, HTTP %s): %s. No survey call is placed until an "
                    "operator fixes the voice settings; the surveys wait.",
                    failure.code,
                    failure.status,
                    failure,
                )
                return Outcome.PAUSED
            delay = ctx.policy.retry_delay(
                _consecutive_not_placed(session, survey_id), failure.retry_after
            )
            values["next_attempt_at"] = survey_schedule.next_calling_moment(
                now + delay, ctx.plan.rules, ctx.plan.calendar
            )
            change_survey(session, survey_id, ctx.ours(), values)
            log.warning(
                "survey %s: call not placed (%s), due again at %s",
                survey_id,
                failure,
                values["next_attempt_at"].isoformat(),
            )
            return Outcome.THROTTLED if failure.is_throttled else Outcome.RETRY
        if kind is CallFailureKind.INVALID_NUMBER:
            change_attempt(session, attempt_id, [], {"status": INVALID, **error})
            if not change_survey(session, survey_id, ctx.ours(), cancelled(now)):
                return Outcome.SKIPPED
            others = mark_number_invalid(
                session, to, reason=f"survey {survey_id}: {failure.code or kind.value}", now=now
            )
            log.warning(
                "survey %s cancelled: %s is invalid (code %s); %d other survey(s) cancelled",
                survey_id,
                mask_number(to),
                failure.code,
                others,
            )
            return Outcome.INVALID
        change_attempt(session, attempt_id, [], {"status": REJECTED, **error})
        give_up(session, survey_id, now, ctx.plan, [*ctx.ours()], why=f"rejected: {failure}")
        return Outcome.GAVE_UP


def mark_number_invalid(session: Session, number: str, *, reason: str, now: datetime) -> int:
    """The provider says ``number`` cannot be called: note it on its preference and cancel
    its other scheduled surveys; how many were cancelled."""
    sms_outbox.set_preference(number, session=session, actor=ACTOR, reason=reason, invalid=True)
    result = session.execute(
        update(Survey)
        .where(Survey.to_number == number, Survey.status == SurveyStatus.SCHEDULED)
        .values(status=SurveyStatus.CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
