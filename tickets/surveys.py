"""Survey calls (回访), scheduled inside calling hours and each placed exactly once.

The worker's sweep (``sweep``, every minute) runs in short transactions:

1. ``plan_new``: a survey ``order_flow.answer`` opened (``next_attempt_at`` None) gets its
   first call time (``survey_schedule.first_attempt_at``) and its order moves to CALLBACK
   (回访). No callable number, or a number on the do-not-call list or known invalid: the
   survey is ``cancelled`` and the order stays ANSWERED, for a callback agent or a
   reviewer to close by hand.
2. ``claim_due``: due rows (``scheduled`` and ``next_attempt_at`` passed: FRESH; or
   ``calling`` whose lease ran out: RECOVER) become ``calling`` under this sweep's lease,
   committed before anything else. PostgreSQL locks them ``FOR UPDATE SKIP LOCKED``, then
   updates them; SQLite runs one conditional UPDATE. The UPDATE repeats the "due"
   condition, so two workers never hold one survey. Outside calling hours nothing FRESH is
   claimed: the due rows move to the next opening of calling hours instead.
3. For each claimed row (``advance``): a FRESH one gets a new attempt (``place_attempt``);
   a RECOVER one is looked at through its latest attempt:

   - ``placing`` / ``unknown`` (the worker died during the create, or it timed out):
     **reconciled before anything is placed again** (``find_placed`` by number and time);
     the call found is recorded and counts, none found: the survey is due again.
   - a live call whose final status callback never came: asked of the provider.
   - a final status nobody acted on: settled (next attempt, SMS fallback, completed).

The attempt row, with its ``attempt_key`` in the call's URLs, is committed before the REST
create: a create whose answer is lost is always found again.

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

The status callback (``record_attempt_status``, from the voice edge) ends an attempt:
a human who answered leaves the survey to the conversation (``tickets.survey_results``
marks it completed); a machine, no answer, busy, failed, canceled, or a completed call
without any answer is a failed attempt: the next one at least ``min_gap`` later inside
calling hours, or when they are spent, an SMS with the questions and reply codes.

Pacing: a sweep claims at most ``calls_per_second * 60`` new calls less those placed in
the last minute, and spaces the creates ``1 / calls_per_second`` apart, so Twilio's queue
never holds more than a minute or two of calls.

No Flask here: the webapp passes a sessionmaker, the caller and the settings' values.
Numbers are masked in every log line.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from tickets import sms_outbox, survey_results, survey_schedule
from tickets.calendar import WorkingCalendar
from tickets.db import utcnow
from tickets.lifecycle import IllegalMove
from tickets.models import (
    ContactPreference,
    SmsPurpose,
    Survey,
    SurveyAttempt,
    SurveyStatus,
    WorkOrder,
    WorkOrderState,
)
from tickets.order_flow import SYSTEM_WORKER, start_callback
from tickets.phones import mask_number
from tickets.sms_delivery import new_owner
from tickets.survey_calls import (
    FINAL_STATUSES,
    NOT_FINAL_STATUSES,
    CallFailure,
    CallFailureKind,
    PlacedCall,
    SurveyCaller,
)
from tickets.survey_schedule import SurveyRules

log = logging.getLogger(__name__)

ACTOR = "system:survey"  # who marks a number invalid (ContactPreference.updated_by)
START_PATH = "/voice/survey/start"  # the call's TwiML, ``?attempt=<attempt_key>``
STATUS_PATH = "/voice/survey-status"  # its status callback, ``?attempt=<attempt_key>``

# SurveyAttempt.status: ours before the provider's, then Twilio's call statuses.
PLACING = "placing"  # committed before the create; a crash leaves it for reconciliation
UNKNOWN = "unknown"  # the create failed in a way that may have placed the call
NOT_PLACED = "not_placed"  # definitely not placed: not counted
INVALID = "invalid"  # the number cannot be called
REJECTED = "rejected"  # the provider refused this call for good
UNSETTLED = frozenset({PLACING, UNKNOWN})
_STATUS_RANK = {"queued": 1, "initiated": 2, "ringing": 3, "in-progress": 4}
CALLABLE_ORDER_STATES = frozenset({WorkOrderState.ANSWERED, WorkOrderState.CALLBACK})

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


@dataclass(frozen=True)
class SurveyPlan:
    """When the survey may call: the rules and the hotline's calendar (its zone)."""

    rules: SurveyRules
    calendar: WorkingCalendar


@dataclass(frozen=True)
class CallPolicy:
    """Pacing and leases. ``lease`` covers a claim until its create (a sweep lasts about a
    minute); ``call_watch`` a placed call until its final status callback: a callback
    that never comes is looked up at the provider after it."""

    calls_per_second: float = 1.0
    max_batch: int = 500  # rows claimed per sweep, whatever the rate
    lease: timedelta = timedelta(minutes=5)
    call_watch: timedelta = timedelta(minutes=30)
    conversation_grace: timedelta = timedelta(minutes=10)  # answers may still be stored
    reconcile_after: timedelta = timedelta(minutes=1)
    clock_skew: timedelta = timedelta(minutes=2)  # ours against the provider's
    first_retry: timedelta = timedelta(minutes=1)
    max_retry: timedelta = timedelta(hours=1)
    max_retry_after: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not 0 < self.calls_per_second <= 100:
            raise ValueError("calls_per_second must be above 0 and at most 100")
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")

    @property
    def per_minute(self) -> int:
        return max(1, int(self.calls_per_second * 60))

    @property
    def spacing(self) -> float:
        return 1.0 / self.calls_per_second

    def retry_delay(self, failures: int, retry_after: float | None = None) -> timedelta:
        """1, 2, 4 ... minutes after the ``failures``-th failure in a row, capped, never
        shorter than the provider's Retry-After."""
        delay = min(self.first_retry * (2 ** min(max(failures, 1) - 1, 20)), self.max_retry)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(timedelta(seconds=retry_after), self.max_retry_after))
        return delay


DEFAULT_POLICY = CallPolicy()


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


class ClaimKind(StrEnum):
    FRESH = "fresh"  # was scheduled and due: place a call
    RECOVER = "recover"  # was calling, its lease ran out: look at its latest attempt


@dataclass(frozen=True, slots=True)
class Claim:
    survey_id: int
    kind: ClaimKind


@dataclass(frozen=True, slots=True)
class Planned:
    planned: list[int]
    cancelled: list[int]


# -- queries shared with the voice edge ------------------------------------------------------


def find_attempt(session: Session, attempt_key: str) -> SurveyAttempt | None:
    """The attempt whose key a call's URL carries, or None."""
    if not attempt_key or len(attempt_key) > 40:
        return None
    return session.scalar(select(SurveyAttempt).where(SurveyAttempt.attempt_key == attempt_key))


def call_urls(public_base_url: str, attempt_key: str) -> tuple[str, str]:
    """The answer URL and the status callback URL of an attempt."""
    base, query = public_base_url.rstrip("/"), urlencode({"attempt": attempt_key})
    return f"{base}{START_PATH}?{query}", f"{base}{STATUS_PATH}?{query}"


def _latest_attempt(session: Session, survey_id: int) -> SurveyAttempt | None:
    return session.scalar(
        select(SurveyAttempt)
        .where(SurveyAttempt.survey_id == survey_id)
        .order_by(SurveyAttempt.number.desc())
        .limit(1)
    )


def _has_answers(survey: Survey) -> bool:
    return any(value is not None for value in (survey.responded, survey.solved, survey.satisfied))


def _why_not_call(session: Session, survey: Survey) -> str | None:
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


# -- 1. planning ------------------------------------------------------------------------------


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
    done = Planned([], [])
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
    why = _why_not_call(session, survey)
    if why is not None:
        if not _change(session, survey_id, [Survey.next_attempt_at.is_(None)], _cancel(now)):
            return None
        log.info("survey %s of order %s cancelled: %s", survey_id, order.number, why)
        return False
    first = survey_schedule.first_attempt_at(
        order.answered_at or survey.created_at, rules, calendar
    )
    planned = _change(
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


def _cancel(now: datetime) -> dict[str, Any]:
    return {
        "status": SurveyStatus.CANCELLED,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": now,
    }


def _change(
    session: Session, survey_id: int, conditions: Sequence[Any], values: dict[str, Any]
) -> bool:
    """One conditional UPDATE of the survey; whether it matched."""
    result = session.execute(
        update(Survey)
        .where(Survey.id == survey_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def _change_attempt(
    session: Session, attempt_id: int, conditions: Sequence[Any], values: dict[str, Any]
) -> bool:
    result = session.execute(
        update(SurveyAttempt)
        .where(SurveyAttempt.id == attempt_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


# -- 2. claiming ------------------------------------------------------------------------------


def _fresh(now: datetime) -> Any:
    return and_(Survey.status == SurveyStatus.SCHEDULED, Survey.next_attempt_at <= now)


def _recover(now: datetime) -> Any:
    return and_(
        Survey.status == SurveyStatus.CALLING,
        or_(Survey.lease_until.is_(None), Survey.lease_until <= now),
    )


def claim_due(
    session: Session,
    *,
    now: datetime,
    owner: str,
    limit: int,
    lease: timedelta,
    plan: SurveyPlan,
    recover_limit: int | None = None,
) -> list[Claim]:
    """Claim up to ``limit`` due surveys (and up to ``recover_limit`` whose lease ran out)
    for ``owner`` and commit the claim; the RECOVER ones first, then the earliest due.
    Outside calling hours the due ones are moved to the next opening instead."""
    claims: list[Claim] = []
    recovered = _claim(
        session, _recover(now), now, owner, lease, recover_limit if recover_limit else limit
    )
    claims += [Claim(survey_id, ClaimKind.RECOVER) for survey_id in recovered]
    if survey_schedule.is_inside(now, plan.rules, plan.calendar):
        fresh = _claim(session, _fresh(now), now, owner, lease, limit)
        claims += [Claim(survey_id, ClaimKind.FRESH) for survey_id in fresh]
    else:
        opening = survey_schedule.next_calling_moment(now, plan.rules, plan.calendar)
        moved = session.execute(
            update(Survey)
            .where(_fresh(now))
            .values(next_attempt_at=opening, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            log.info(
                "survey calls: outside calling hours, %d due survey(s) moved to %s",
                moved.rowcount,  # type: ignore[attr-defined]
                opening.isoformat(),
            )
    session.commit()
    if claims:
        log.info("survey calls: claimed %d survey(s) for %s", len(claims), owner)
    return claims


def _claim(
    session: Session, due: Any, now: datetime, owner: str, lease: timedelta, limit: int
) -> list[int]:
    if limit < 1:
        return []
    picked = select(Survey.id).where(due).order_by(Survey.next_attempt_at, Survey.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # Lock first (rows another worker is claiming are skipped), then update; the
        # UPDATE repeats the condition, so a row claimed and committed since is left.
        chosen = list(session.scalars(picked.with_for_update(skip_locked=True)))
        if not chosen:
            return []
        targets: Any = Survey.id.in_(chosen)
    else:
        targets = Survey.id.in_(picked.scalar_subquery())  # SQLite: one atomic UPDATE
    claimed = session.execute(
        update(Survey)
        .where(targets, due)
        .values(
            status=SurveyStatus.CALLING,
            lease_owner=owner,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(Survey.id, Survey.next_attempt_at)
        .execution_options(synchronize_session=False)
    ).all()
    return [survey_id for survey_id, _ in sorted(claimed, key=lambda row: (row[1] or now, row[0]))]


def release(claims: Sequence[Claim], *, sessions: sessionmaker[Session], owner: str) -> int:
    """Give back claims not worked on (the sweep stopped): a FRESH one is scheduled again
    as it was, a RECOVER one is left for the next sweep (lease gone)."""
    fresh = [claim.survey_id for claim in claims if claim.kind is ClaimKind.FRESH]
    recover = [claim.survey_id for claim in claims if claim.kind is ClaimKind.RECOVER]
    released = 0
    ours = (Survey.status == SurveyStatus.CALLING, Survey.lease_owner == owner)
    with sessions.begin() as session:
        for ids, values in (
            (fresh, {"status": SurveyStatus.SCHEDULED}),
            (recover, {}),
        ):
            if not ids:
                continue
            result = session.execute(
                update(Survey)
                .where(Survey.id.in_(ids), *ours)
                .values(lease_owner=None, lease_until=None, **values)
                .execution_options(synchronize_session=False)
            )
            released += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return released


# -- 3. one claimed survey --------------------------------------------------------------------


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


def advance(claim: Claim, ctx: CallContext) -> Outcome:
    """Do what a claimed survey needs (see the module's docstring)."""
    with ctx.sessions() as session:
        survey = session.get(Survey, claim.survey_id)
        if survey is None or survey.status is not SurveyStatus.CALLING:
            return Outcome.SKIPPED
        if survey.lease_owner != ctx.owner:
            return Outcome.SKIPPED
        latest = _latest_attempt(session, survey.id) if claim.kind is ClaimKind.RECOVER else None
        status = latest.status if latest is not None else None
    if latest is not None and status in FINAL_STATUSES:  # a final status nobody acted on
        with ctx.sessions.begin() as session:
            return _settle(session, claim.survey_id, latest.id, ctx.plan, ctx.now_fn(), ctx.owner)
    if latest is not None and latest.call_sid:  # placed, live: its final status was lost
        return _watch(claim.survey_id, latest.id, ctx)
    if latest is not None and status in UNSETTLED:  # the create's outcome is unknown
        return _reconcile(claim.survey_id, latest.id, ctx)
    return place_attempt(claim.survey_id, ctx)


def place_attempt(survey_id: int, ctx: CallContext) -> Outcome:
    """A new attempt: the row (with a new ``attempt_key``) committed, then the create."""
    now = ctx.now_fn()
    with ctx.sessions.begin() as session:
        survey = session.get(Survey, survey_id)
        if survey is None or survey.status is not SurveyStatus.CALLING:
            return Outcome.SKIPPED
        if survey.lease_owner != ctx.owner:
            return Outcome.SKIPPED
        why = _why_not_call(session, survey)
        if why is not None:
            if not _change(session, survey_id, ctx.ours(), _cancel(now)):
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
        if not _change(session, survey_id, ctx.ours(), {"lease_until": now + ctx.policy.lease}):
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
        _mark_placed(session, attempt_id, survey_id, call_sid, "queued")
        status = session.scalar(select(SurveyAttempt.status).where(SurveyAttempt.id == attempt_id))
        if status in FINAL_STATUSES:  # its final status callback came before our commit
            _settle(session, survey_id, attempt_id, ctx.plan, ctx.now_fn(), ctx.owner)
        else:
            _change(
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
    values = {
        "status": SurveyStatus.SCHEDULED,
        "next_attempt_at": opening,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": now,
    }
    return Outcome.MOVED if _change(session, survey_id, ctx.ours(), values) else Outcome.SKIPPED


def _mark_placed(
    session: Session, attempt_id: int, survey_id: int, call_sid: str, status: str | None
) -> bool:
    """Record the call's SID on the attempt, once; the attempt then counts. Whether this
    call did it (a status callback may have come first)."""
    values: dict[str, Any] = {"call_sid": call_sid[:34]}
    marked = _change_attempt(session, attempt_id, [SurveyAttempt.call_sid.is_(None)], values)
    if not marked:
        return False
    if status:
        _change_attempt(
            session, attempt_id, [SurveyAttempt.status.in_(UNSETTLED)], {"status": status[:20]}
        )
    session.execute(
        update(Survey)
        .where(Survey.id == survey_id)
        .values(attempts=Survey.attempts + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return True


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
            _change_attempt(session, attempt_id, [], {"status": UNKNOWN, **error})
            delay = max(ctx.policy.reconcile_after, ctx.policy.retry_delay(1, failure.retry_after))
            _change(session, survey_id, ctx.ours(), {"lease_until": now + delay})
            log.warning(
                "survey %s: the call to %s may have been placed (%s): reconciling in %ss",
                survey_id,
                mask_number(to),
                failure,
                int(delay.total_seconds()),
            )
            return Outcome.UNCERTAIN
        if kind in (CallFailureKind.RETRY, CallFailureKind.AUTH):
            _change_attempt(session, attempt_id, [], {"status": NOT_PLACED, **error})
            values: dict[str, Any] = {
                "status": SurveyStatus.SCHEDULED,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            }
            if kind is CallFailureKind.AUTH:  # due as before: nothing is wrong with the survey
                _change(session, survey_id, ctx.ours(), values)
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
            _change(session, survey_id, ctx.ours(), values)
            log.warning(
                "survey %s: call not placed (%s), due again at %s",
                survey_id,
                failure,
                values["next_attempt_at"].isoformat(),
            )
            return Outcome.THROTTLED if failure.is_throttled else Outcome.RETRY
        if kind is CallFailureKind.INVALID_NUMBER:
            _change_attempt(session, attempt_id, [], {"status": INVALID, **error})
            if not _change(session, survey_id, ctx.ours(), _cancel(now)):
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
        _change_attempt(session, attempt_id, [], {"status": REJECTED, **error})
        _give_up(session, survey_id, now, ctx.plan, [*ctx.ours()], why=f"rejected: {failure}")
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


def _known_sids(session: Session, calls: Sequence[PlacedCall]) -> set[str]:
    sids = [call.call_sid for call in calls]
    if not sids:
        return set()
    return set(
        session.scalars(select(SurveyAttempt.call_sid).where(SurveyAttempt.call_sid.in_(sids)))
    )


def _reconcile(survey_id: int, attempt_id: int, ctx: CallContext) -> Outcome:
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
            _mark_placed(session, attempt_id, survey_id, found.call_sid, found.status)
            if found.answered_by:
                _change_attempt(session, attempt_id, [], {"answered_by": found.answered_by[:24]})
            log.info(
                "survey %s: the unconfirmed call to %s had been placed: %s (%s)",
                survey_id,
                mask_number(to),
                found.call_sid,
                found.status,
            )
            if found.status in FINAL_STATUSES:
                _change_attempt(
                    session, attempt_id, [SurveyAttempt.ended_at.is_(None)], {"ended_at": now}
                )
                _settle(session, survey_id, attempt_id, ctx.plan, now, ctx.owner)
            else:
                _change(
                    session, survey_id, ctx.ours(), {"lease_until": now + ctx.policy.call_watch}
                )
            return Outcome.RECONCILED
        _change_attempt(
            session,
            attempt_id,
            [SurveyAttempt.status.in_(UNSETTLED)],
            {"status": NOT_PLACED, "error": "reconciled: the provider has no such call"},
        )
        again = survey_schedule.next_calling_moment(now, ctx.plan.rules, ctx.plan.calendar)
        values = {
            "status": SurveyStatus.SCHEDULED,
            "next_attempt_at": again,
            "lease_owner": None,
            "lease_until": None,
            "updated_at": now,
        }
        if not _change(session, survey_id, ctx.ours(), values):
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
            _change(session, survey_id, ctx.ours(), {"lease_owner": None, "lease_until": None})
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
        _change(session, survey_id, ctx.ours(), {"lease_until": now + delay})
    log.warning(
        "survey %s: could not look the call up (%s); asking again later", survey_id, failure
    )
    return Outcome.UNCERTAIN


def _watch(survey_id: int, attempt_id: int, ctx: CallContext) -> Outcome:
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
            _change(session, survey_id, ctx.ours(), {"lease_until": now + ctx.policy.call_watch})
            return Outcome.WATCHING
        values: dict[str, Any] = {"status": found.status, "ended_at": now}
        if found.answered_by:
            values["answered_by"] = found.answered_by[:24]
        _change_attempt(session, attempt_id, [SurveyAttempt.ended_at.is_(None)], values)
        return _settle(session, survey_id, attempt_id, ctx.plan, now, ctx.owner)


# -- ending an attempt ------------------------------------------------------------------------


def _is_machine(answered_by: str | None) -> bool:
    return bool(answered_by) and (
        answered_by.startswith("machine") or answered_by == "fax"  # type: ignore[union-attr]
    )


def _maybe_a_person(attempt: SurveyAttempt) -> bool:
    """A completed call that a person (or nobody could tell what) answered."""
    return attempt.status == "completed" and not _is_machine(attempt.answered_by)


def _settle(
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
    latest = _latest_attempt(session, survey_id)
    if latest is None or latest.id != attempt_id:
        return Outcome.SKIPPED
    if owner is not None and survey.lease_owner != owner:
        return Outcome.SKIPPED
    conditions = [Survey.status == SurveyStatus.CALLING]
    if owner is not None:
        conditions.append(Survey.lease_owner == owner)
    if _maybe_a_person(attempt) and _has_answers(survey):
        # The conversation's own end was lost (its final status never finished it): the
        # same decision on the answers as if it had (closed, or to a reviewer).
        survey.answered_call_sid = survey.answered_call_sid or attempt.call_sid
        survey_results.finish(
            session, survey, opted_out=False, at=survey.answered_at or attempt.ended_at or now
        )
        return Outcome.SETTLED
    return _after_failed(session, survey, attempt, plan, now, conditions)


def _after_failed(
    session: Session,
    survey: Survey,
    attempt: SurveyAttempt,
    plan: SurveyPlan,
    now: datetime,
    conditions: list[Any],
) -> Outcome:
    again = survey_schedule.next_attempt_at(
        attempt.placed_at, max(survey.attempts, 1), plan.rules, plan.calendar
    )
    if again is not None:
        values = {
            "status": SurveyStatus.SCHEDULED,
            "next_attempt_at": again,
            "lease_owner": None,
            "lease_until": None,
            "updated_at": now,
        }
        if not _change(session, survey.id, conditions, values):
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
    return _give_up(session, survey.id, now, plan, conditions, why=why)


def _give_up(
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
    values: dict[str, Any] = _cancel(now)
    if message is not None:
        values |= {"status": SurveyStatus.SMS_SENT, "sms_message_id": message.id}
    if not _change(session, survey_id, conditions, values):
        return Outcome.SKIPPED
    log.info(
        "survey %s: no more calls (%s): %s",
        survey_id,
        why,
        "the questions go by SMS" if message is not None else "cancelled",
    )
    return Outcome.GAVE_UP


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
            _mark_placed(session, attempt.id, attempt.survey_id, call_sid, None)
        elif attempt.call_sid != call_sid:
            log.warning(
                "survey attempt %s: a report for call %s, the attempt records %s: ignored",
                attempt_key,
                call_sid,
                attempt.call_sid,
            )
            return attempt
    if answered_by:
        _change_attempt(
            session,
            attempt.id,
            [SurveyAttempt.answered_by.is_(None)],
            {"answered_by": answered_by.strip()[:24]},
        )
    final_before = [SurveyAttempt.ended_at.is_(None), SurveyAttempt.status.not_in(FINAL_STATUSES)]
    if status in NOT_FINAL_STATUSES:
        earlier = [s for s, rank in _STATUS_RANK.items() if rank < _STATUS_RANK[status]]
        _change_attempt(
            session,
            attempt.id,
            [*final_before, SurveyAttempt.status.in_([*earlier, *UNSETTLED])],
            {"status": status},
        )
    elif status in FINAL_STATUSES and _change_attempt(
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
    latest = _latest_attempt(session, survey.id)
    if latest is None or latest.id != attempt.id:
        return  # a late report of an older attempt
    calling = [Survey.status == SurveyStatus.CALLING]
    if _maybe_a_person(attempt):
        grace = DEFAULT_POLICY.conversation_grace
        _change(session, survey.id, calling, {"lease_until": at + grace, "updated_at": at})
        return
    if plan is not None:
        _after_failed(session, survey, attempt, plan, at, calling)
    else:  # the worker's next sweep plans it (RECOVER: a final status to settle)
        _change(session, survey.id, calling, {"lease_until": at, "updated_at": at})


# -- the sweep --------------------------------------------------------------------------------


@dataclass
class SweepCounts:
    planned: int = 0
    cancelled: int = 0
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    released: int = 0
    paused: bool = False
    throttled: bool = False

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1

    def __getitem__(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "cancelled_unplanned": self.cancelled,
            "claimed": self.claimed,
            **{outcome.value: self[outcome.value] for outcome in Outcome},
            "errors": self.errors,
            "released": self.released,
            "paused": self.paused,
            "throttled": self.throttled,
        }

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.as_dict().items() if v) or "nothing due"


class Pacer:
    """Spaces the creates ``spacing`` seconds apart (the first one at once)."""

    def __init__(
        self,
        spacing: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spacing, self.sleep, self.monotonic = spacing, sleep, monotonic
        self._last: float | None = None

    def __call__(self) -> None:
        if self._last is not None:
            wait = self._last + self.spacing - self.monotonic()
            if wait > 0:
                self.sleep(wait)
        self._last = self.monotonic()


def placed_recently(session: Session, now: datetime, window: timedelta) -> int:
    """Attempts created in the last ``window`` (by any worker)."""
    return int(
        session.scalar(
            select(func.count(SurveyAttempt.id)).where(SurveyAttempt.placed_at > now - window)
        )
        or 0
    )


def sweep(
    *,
    sessions: sessionmaker[Session],
    caller: SurveyCaller,
    plan: SurveyPlan,
    public_base_url: str,
    from_number: str,
    policy: CallPolicy = DEFAULT_POLICY,
    owner: str | None = None,
    now_fn: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> SweepCounts:
    """Plan new surveys, claim the due ones within the rate, and place their calls."""
    owner = owner or new_owner("survey")
    counts = SweepCounts()
    try:
        with sessions() as session:
            planned = plan_new(session, now=now_fn(), rules=plan.rules, calendar=plan.calendar)
        counts.planned, counts.cancelled = len(planned.planned), len(planned.cancelled)
    except Exception:
        counts.errors += 1
        log.exception("planning survey calls failed")
    with sessions() as session:
        now = now_fn()
        budget = policy.per_minute - placed_recently(session, now, timedelta(minutes=1))
        claims = claim_due(
            session,
            now=now,
            owner=owner,
            limit=min(max(budget, 0), policy.max_batch),
            lease=policy.lease,
            plan=plan,
            recover_limit=policy.max_batch,
        )
    counts.claimed = len(claims)
    ctx = CallContext(
        sessions=sessions,
        caller=caller,
        plan=plan,
        owner=owner,
        public_base_url=public_base_url,
        from_number=from_number,
        policy=policy,
        now_fn=now_fn,
        pace=Pacer(policy.spacing, sleep=sleep, monotonic=monotonic),
    )
    for position, claim in enumerate(claims):
        try:
            outcome = advance(claim, ctx)
        except Exception:
            counts.errors += 1
            log.exception("survey %s: placing its call failed", claim.survey_id)
            continue
        counts.count(outcome)
        if outcome in (Outcome.PAUSED, Outcome.THROTTLED):
            counts.paused = outcome is Outcome.PAUSED
            counts.throttled = outcome is Outcome.THROTTLED
            counts.released = release(claims[position + 1 :], sessions=sessions, owner=owner)
            log.log(
                logging.ERROR if counts.paused else logging.WARNING,
                "survey sweep stopped (%s): %d claimed survey(s) given back",
                outcome.value,
                counts.released,
            )
            break
    if counts.claimed or counts.planned or counts.cancelled or counts.errors:
        log.info("survey sweep %s: %s", owner, counts.summary())
    return counts
