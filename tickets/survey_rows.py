"""The survey and attempt rows as the survey worker moves them: the attempt statuses, what
one step did with a claimed survey (``Outcome``), and the conditional UPDATEs every step
makes (a row someone else moved since is left alone: the UPDATE matches nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tickets.db import utcnow
from tickets.models import (
    ContactPreference,
    Survey,
    SurveyAttempt,
    SurveyStatus,
    WorkOrder,
    WorkOrderState,
)

# SurveyAttempt.status: ours before the provider's, then Twilio's call statuses.
PLACING = "placing"  # committed before the create; a crash leaves it for reconciliation
UNKNOWN = "unknown"  # the create failed in a way that may have placed the call
NOT_PLACED = "not_placed"  # definitely not placed: not counted
INVALID = "invalid"  # the number cannot be called
REJECTED = "rejected"  # the provider refused this call for good
UNSETTLED = frozenset({PLACING, UNKNOWN})
CALLABLE_ORDER_STATES = frozenset({WorkOrderState.ANSWERED, WorkOrderState.CALLBACK})


class Outcome(StrEnum):
    """What ``advance`` did with one claimed survey."""

    PLACED = "placed"  # the provider took the call
    RECONCILED = "reconciled"  # an unconfirmed create had placed it: recorded, not placed again
    RETRY = "retry"  # not placed: due again later (a reconciliation that found nothing too)
    UNCERTAIN = "uncertain"  # may have been placed: the next sweep asks the provider first
    THROTTLED = "throttled"  # 20429: due again after the backoff, the sweep stops
    INVALID = "invalid"  # the number cannot be called
    GAVE_UP = "gave_up"  # the provider refuses this call: the SMS fallback
    CANCELLED = "cancelled"  # no longer wanted (do-not-call, order closed ...)
    MOVED = "moved"  # outside calling hours: moved to their next opening
    SETTLED = "settled"  # a final status nobody had acted on was acted on
    WATCHING = "watching"  # the call is still live at the provider
    SKIPPED = "skipped"  # not ours (any more)
    PAUSED = "paused"  # the provider refused our account: the sweep stops


def why_not_call(session: Session, survey: Survey) -> str | None:
    """Why this survey must not be called (it is then cancelled), or None."""
    if not survey.to_number:
        return "no number to call"
    preference = session.get(ContactPreference, survey.to_number)
    if preference is not None and preference.no_calls:
        return "the number is on the do-not-call list"
    if preference is not None and preference.invalid:
        return "the number is invalid"
    order = session.get(WorkOrder, survey.work_order_id)
    if order is None or order.state not in CALLABLE_ORDER_STATES:
        return f"the order is {order.state.value if order else 'gone'}, not awaiting its callback"
    return None


def unclaimed(status: SurveyStatus, now: datetime, **values: Any) -> dict[str, Any]:
    """The values of a survey left ``status`` with its lease ended (and ``values``)."""
    return {"status": status, "lease_owner": None, "lease_until": None, "updated_at": now, **values}


def cancelled(now: datetime) -> dict[str, Any]:
    """The values of a survey no longer called."""
    return unclaimed(SurveyStatus.CANCELLED, now)


def due_again(at: datetime, now: datetime) -> dict[str, Any]:
    """The values of a survey to be called (again) at ``at``."""
    return unclaimed(SurveyStatus.SCHEDULED, now, next_attempt_at=at)


def _update_one(
    session: Session,
    model: type[Survey] | type[SurveyAttempt],
    row_id: int,
    conditions: Sequence[Any],
    values: dict[str, Any],
) -> bool:
    result = session.execute(
        update(model)
        .where(model.id == row_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def change_survey(
    session: Session, survey_id: int, conditions: Sequence[Any], values: dict[str, Any]
) -> bool:
    """One conditional UPDATE of the survey; whether it matched."""
    return _update_one(session, Survey, survey_id, conditions, values)


def change_attempt(
    session: Session, attempt_id: int, conditions: Sequence[Any], values: dict[str, Any]
) -> bool:
    """One conditional UPDATE of the attempt; whether it matched."""
    return _update_one(session, SurveyAttempt, attempt_id, conditions, values)


def latest_attempt(session: Session, survey_id: int) -> SurveyAttempt | None:
    """The survey's last attempt, or None."""
    return session.scalar(
        select(SurveyAttempt)
        .where(SurveyAttempt.survey_id == survey_id)
        .order_by(SurveyAttempt.number.desc())
        .limit(1)
    )


def mark_placed(
    session: Session, attempt_id: int, survey_id: int, call_sid: str, status: str | None
) -> bool:
    """Record the call's SID on the attempt, once; the attempt then counts. Whether this
    call did it (a status callback may have come first)."""
    values: dict[str, Any] = {"call_sid": call_sid[:34]}
    marked = change_attempt(session, attempt_id, [SurveyAttempt.call_sid.is_(None)], values)
    if not marked:
        return False
    if status:
        change_attempt(
            session, attempt_id, [SurveyAttempt.status.in_(UNSETTLED)], {"status": status[:20]}
        )
    session.execute(
        update(Survey)
        .where(Survey.id == survey_id)
        .values(attempts=Survey.attempts + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return True
