"""Planning new surveys: the first call of each survey not planned yet.

A survey ``order_flow.answer`` opened (``next_attempt_at`` None) gets its first call time
(``survey_schedule.first_attempt_at``) and its order moves to CALLBACK (回访). No callable
number, or a number on the do-not-call list or known invalid: the survey is ``cancelled``
and the order stays ANSWERED, for a callback agent or a reviewer to close by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from tickets import survey_schedule
from tickets.calendar import WorkingCalendar
from tickets.lifecycle import IllegalMove
from tickets.models import Survey, SurveyStatus, WorkOrder, WorkOrderState
from tickets.order_flow import SYSTEM_WORKER, start_callback
from tickets.survey_rows import cancelled, change_survey, why_not_call
from tickets.survey_schedule import SurveyRules

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Planned:
    """The surveys ``plan_new`` planned, and those it cancelled."""

    planned: list[int]
    cancelled: list[int]
    looked_at: int = 0  # surveys read as not planned yet (some may be another worker's)


def plan_new(
    session: Session,
    *,
    now: datetime,
    rules: SurveyRules,
    calendar: WorkingCalendar,
    limit: int = 500,
) -> Planned:
    """Plan the first call of the surveys not planned yet, one transaction each (committed
    here). An order ANSWERED moves to CALLBACK (system actor), once: two workers planning
    the same survey race on a conditional UPDATE and the order's ``row_version``."""
    ids = list(
        session.scalars(
            select(Survey.id)
            .where(Survey.status == SurveyStatus.SCHEDULED, Survey.next_attempt_at.is_(None))
            .order_by(Survey.id)
            .limit(limit)
        )
    )
    session.rollback()
    done = Planned([], [], len(ids))
    for survey_id in ids:
        try:
            result = _plan_one(session, survey_id, now, rules, calendar)
            session.commit()
        except (StaleDataError, IntegrityError):
            session.rollback()
            log.info("survey %s was planned by another worker", survey_id)
            continue
        if result is True:
            done.planned.append(survey_id)
        elif result is False:
            done.cancelled.append(survey_id)
    return done


def plan_waiting(
    sessions: sessionmaker[Session],
    *,
    now_fn: Callable[[], datetime],
    rules: SurveyRules,
    calendar: WorkingCalendar,
    batch: int,
    budget: float,
    clock: Callable[[], float] = time.monotonic,
) -> Planned:
    """``plan_new`` in batches of ``batch`` until none are left or ``budget`` seconds have
    gone, so a sweep plans ahead of the calls it can place (10,000 answered at once at 50
    calls a second is 3,000 a minute) and still gets on to placing them."""
    started = clock()
    done = Planned([], [])
    while True:
        with sessions() as session:
            got = plan_new(session, now=now_fn(), rules=rules, calendar=calendar, limit=batch)
        done.planned.extend(got.planned)
        done.cancelled.extend(got.cancelled)
        done.looked_at += got.looked_at
        if got.looked_at < batch or clock() - started >= budget:
            return done


def _plan_one(
    session: Session,
    survey_id: int,
    now: datetime,
    rules: SurveyRules,
    calendar: WorkingCalendar,
) -> bool | None:
    """True: planned; False: cancelled; None: someone else did it first."""
    survey = session.get(Survey, survey_id, populate_existing=True)
    if survey is None or survey.status is not SurveyStatus.SCHEDULED or survey.next_attempt_at:
        return None
    order = session.get_one(WorkOrder, survey.work_order_id)
    why = why_not_call(session, survey)
    if why is not None:
        if not change_survey(
            session, survey_id, [Survey.next_attempt_at.is_(None)], cancelled(now)
        ):
            return None
        log.info("survey %s of order %s cancelled: %s", survey_id, order.number, why)
        return False
    first = survey_schedule.first_attempt_at(
        order.answered_at or survey.created_at, rules, calendar
    )
    planned = change_survey(
        session,
        survey_id,
        [Survey.status == SurveyStatus.SCHEDULED, Survey.next_attempt_at.is_(None)],
        {"next_attempt_at": first, "updated_at": now},
    )
    if not planned:
        return None
    if order.state is WorkOrderState.ANSWERED:
        try:
            start_callback(order, actor=SYSTEM_WORKER, session=session, now=now)
        except IllegalMove as refused:  # pragma: no cover - the state was just checked
            log.warning("order %s: callback not started: %s", order.number, refused)
    log.info("survey %s of order %s: first call at %s", survey_id, order.number, first)
    return True
