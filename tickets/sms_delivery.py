"""Sending the SMS outbox, each text exactly once; the worker's sweep (with escalation).

The worker's sweep (``sweep``) does three things, each in its own short transactions:

1. ``escalation.escalate_due``: orders whose escalation time passed go to the floor
   manager (``order_flow.supervise``) and, when a floor manager's number is configured,
   an ``escalation`` row joins the outbox. Two workers racing: ``row_version`` lets one win.
2. ``claim_due``: due rows (``pending`` and ``next_attempt_at`` passed, or ``sending`` with
   an expired lease: its sender crashed) become ``sending`` under this sweep's lease
   (``lease_owner``, ``lease_until``), committed before anything is sent. PostgreSQL locks
   them with ``FOR UPDATE SKIP LOCKED``, then updates them; SQLite runs one conditional
   UPDATE, atomic there (one writer at a time). Either way the UPDATE repeats the "due"
   condition, so a row another worker claimed first is never claimed again.
3. ``deliver`` each claimed row:

   - **Reconcile first.** Before a send, the row is stamped in ``details`` with the time of
     the attempt (``UNCONFIRMED``), and ``attempts`` is counted; the stamp is removed as
     soon as the outcome is known. A row that still carries it was being sent when its
     sender crashed (or timed out after the provider took it): ``sender.find_sent`` decides.
     Found: ``sent``, nothing is sent again. Not found: sent normally. The provider
     cannot tell: try again later, never resend blindly.
   - **Still ours, still wanted.** Right before the send, in the transaction that stamps
     the attempt: the row is still ours (``lease_owner``, ``attempts`` unchanged), the
     number may still be texted (``sms_outbox.may_text``), and a reminder's clock still
     runs on the deadline it was written for (the order may have been signed off, answered,
     extended or dispatched again since the claim): otherwise ``cancelled``.
   - **Send, then record** in a new transaction: ``sent`` with the provider's id, if the
     row is still on our attempt (a row a slower worker took over after our lease expired
     is recorded by whoever gets there first; the other's writes then match nothing).

What each failure does (``SmsFailure.kind``):

- ``retry``: back to ``pending`` at ``now + backoff`` (1, 2, 4, 8 ... minutes, capped at
  an hour, never before the provider's Retry-After), ``failed`` after ``max_attempts``.
  With ``maybe_sent`` (a timeout after the request left): stays ``sending``, its lease
  cut to the backoff, so the next sweep reconciles it instead of resending.
- ``opted_out`` (Twilio 21610) / ``invalid_number`` (21211 ...): the row is marked
  ``opted_out`` / ``invalid``, so is the number's ``ContactPreference``, and the number's
  other pending rows are cancelled. Never retried.
- ``rejected``: ``failed``, never retried.
- ``auth``: the row goes back to ``pending`` uncounted, the sweep stops and gives back the
  rows it had claimed, and an ERROR is logged: nothing is lost, nothing goes out until an
  operator fixes the account.

The provider's delivery reports are ``tickets.sms_reports``.

No Flask here: the webapp passes a sessionmaker, the sender and the settings' values.
Numbers are masked in every log line.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tickets import sms_outbox
from tickets.db import utcnow
from tickets.escalation import DEFAULT_ZONE, escalate_due
from tickets.lifecycle import OPEN_STATES
from tickets.models import (
    ContactPreference,
    SmsMessage,
    SmsPurpose,
    SmsStatus,
    WorkOrder,
)
from tickets.order_flow import CLOCK_DUE_FIELDS, CLOCK_MET_FIELDS
from tickets.phones import mask_number
from tickets.sms_sender import SentSms, SmsFailure, SmsFailureKind, SmsSender

log = logging.getLogger(__name__)

ACTOR = "system:sms"  # who marks a number opted out or invalid (ContactPreference.updated_by)
UNCONFIRMED = "unconfirmed_send_at"  # details: an attempt whose outcome nobody heard
RECONCILE_FAILURES = "reconcile_failures"  # details: find_sent could not answer, so often
_REMINDERS = (SmsPurpose.REMINDER, SmsPurpose.OVERDUE)


class Outcome(StrEnum):
    """What ``deliver`` did with one claimed row."""

    SENT = "sent"  # the provider took it now
    RECONCILED = "reconciled"  # it had gone out before a crash: recorded, not sent again
    RETRY = "retry"  # failed for now: pending again, after the backoff
    UNCERTAIN = "uncertain"  # may have gone out: the next sweep asks the provider first
    FAILED = "failed"  # rejected, or out of attempts
    OPTED_OUT = "opted_out"  # the number replied STOP (Twilio 21610)
    INVALID = "invalid"  # the number cannot take SMS (Twilio 21211 ...)
    CANCELLED = "cancelled"  # no longer wanted (the clock stopped, the citizen said no SMS)
    SKIPPED = "skipped"  # not ours (any more): another worker has it
    PAUSED = "paused"  # the provider refused our account: stop sending, the row waits


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try. ``lease`` must comfortably exceed one send (the provider's
    timeout): a row whose lease runs out mid-send is reconciled by the next sweep."""

    max_attempts: int = 6
    first_retry: timedelta = timedelta(minutes=1)
    max_retry: timedelta = timedelta(hours=1)
    max_retry_after: timedelta = timedelta(hours=6)  # a longer Retry-After is cut to this
    lease: timedelta = timedelta(minutes=5)
    batch: int = 50  # rows claimed per sweep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.batch < 1:
            raise ValueError("batch must be at least 1")
        if self.lease < timedelta(seconds=30):
            raise ValueError("lease must be at least 30 seconds")

    def retry_delay(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """The wait after the ``attempts``-th failed try: 1, 2, 4, 8 ... minutes, capped,
        and never shorter than the provider's Retry-After."""
        doublings = min(max(attempts, 1) - 1, 30)
        delay = min(self.first_retry * (2**doublings), self.max_retry)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(timedelta(seconds=retry_after), self.max_retry_after))
        return delay


DEFAULT_POLICY = DeliveryPolicy()


def new_owner(prefix: str = "worker") -> str:
    """A lease owner name unique to one sweep: host, process, a random part."""
    host = socket.gethostname()[:40] or "host"
    return f"{prefix}:{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"[:80]


def reference(message_id: int) -> str:
    """The reference the sender passes to the provider (it comes back in the delivery
    report's URL, ``?ref=sms-42``)."""
    return f"sms-{message_id}"


def message_id_of(ref: str | None) -> int | None:
    """The outbox row a reference names, or None."""
    prefix, _, digits = (ref or "").strip().partition("-")
    if prefix != "sms" or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


# -- claiming ---------------------------------------------------------------------------------


def _due(now: datetime) -> Any:
    return or_(
        and_(SmsMessage.status == SmsStatus.PENDING, SmsMessage.next_attempt_at <= now),
        and_(
            SmsMessage.status == SmsStatus.SENDING,
            or_(SmsMessage.lease_until.is_(None), SmsMessage.lease_until <= now),
        ),
    )


def claim_due(
    *, session: Session, now: datetime, owner: str, limit: int, lease_seconds: float
) -> list[int]:
    """Claim up to ``limit`` due rows for ``owner`` and commit the claim; their ids, the
    earliest due first. Due: ``pending`` with ``next_attempt_at <= now``, or ``sending``
    whose lease expired (its sender died; ``deliver`` reconciles before resending)."""
    if limit < 1:
        return []
    picked = (
        select(SmsMessage.id)
        .where(_due(now))
        .order_by(SmsMessage.next_attempt_at, SmsMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Lock the picked rows first (rows another worker is claiming are skipped, not
        # waited for; a row it claimed and committed since our snapshot fails the "due"
        # re-check under the lock), then take them. Two statements: inside an UPDATE's
        # WHERE, the locking subquery may be run more than once and take more than
        # ``limit`` rows.
        chosen = list(session.scalars(picked.with_for_update(skip_locked=True)))
        if not chosen:
            session.commit()
            return []
        targets: Any = SmsMessage.id.in_(chosen)
    else:
        # SQLite: one UPDATE, atomic under the one write lock, reading the latest rows.
        targets = SmsMessage.id.in_(picked.scalar_subquery())
    # The "due" condition is repeated: a row is only taken while it is still due.
    claimed = session.execute(
        update(SmsMessage)
        .where(targets, _due(now))
        .values(
            status=SmsStatus.SENDING,
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(SmsMessage.id, SmsMessage.next_attempt_at)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    ids = [row_id for row_id, _ in sorted(claimed, key=lambda row: (row[1], row[0]))]
    if ids:
        log.info("sms claimed %d due message(s) for %s", len(ids), owner)
    return ids


def release(ids: Sequence[int], *, sessions: sessionmaker[Session], owner: str) -> int:
    """Give back claimed rows not delivered (the sweep paused): ``pending`` again, no
    attempt counted. A row with an unconfirmed attempt keeps its stamp and is reconciled
    when it is next claimed."""
    if not ids:
        return 0
    with sessions.begin() as session:
        result = session.execute(
            update(SmsMessage)
            .where(
                SmsMessage.id.in_(list(ids)),
                SmsMessage.status == SmsStatus.SENDING,
                SmsMessage.lease_owner == owner,
            )
            .values(status=SmsStatus.PENDING, lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- delivering one row --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    """What ``deliver`` read of the row (no ORM object outlives its session)."""

    id: int
    purpose: SmsPurpose
    status: SmsStatus
    to: str
    body: str
    attempts: int
    lease_owner: str | None
    work_order_id: int | None
    dedupe_key: str
    details: dict[str, Any]

    @property
    def unconfirmed_since(self) -> datetime | None:
        stamp = self.details.get(UNCONFIRMED)
        if not isinstance(stamp, str):
            return None
        try:
            at = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        return at if at.tzinfo is not None else None

    def details_without(self, *keys: str) -> dict[str, Any]:
        return {key: value for key, value in self.details.items() if key not in keys}

    @property
    def ref(self) -> str:
        return reference(self.id)

    def describe(self) -> str:
        return f"ref={self.ref} purpose={self.purpose.value} to={mask_number(self.to)}"


def _read(sessions: sessionmaker[Session], message_id: int) -> _Row | None:
    with sessions() as session:
        row = session.get(SmsMessage, message_id)
        if row is None:
            return None
        return _Row(
            id=row.id,
            purpose=row.purpose,
            status=row.status,
            to=row.to_number,
            body=row.body,
            attempts=row.attempts,
            lease_owner=row.lease_owner,
            work_order_id=row.work_order_id,
            dedupe_key=row.dedupe_key,
            details=dict(row.details or {}),
        )


def update_row(session: Session, message_id: int, conditions: Sequence[Any], **values: Any) -> bool:
    """One conditional UPDATE of the row; whether it matched (rowcount 1)."""
    result = session.execute(
        update(SmsMessage)
        .where(SmsMessage.id == message_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def _ours(row: _Row, owner: str) -> list[Any]:
    """The row is still as we left it: sending, under our lease, on the same attempt."""
    return [
        SmsMessage.status == SmsStatus.SENDING,
        SmsMessage.lease_owner == owner,
        SmsMessage.attempts == row.attempts,
    ]


def deliver(
    message_id: int,
    *,
    sessions: sessionmaker[Session],
    sender: SmsSender,
    owner: str,
    now_fn: Callable[[], datetime] = utcnow,
    policy: DeliveryPolicy = DEFAULT_POLICY,
) -> Outcome:
    """Send one row claimed by ``owner`` (see the module's docstring); what happened.

    Never holds a transaction open while the provider is asked.
    """
    row = _read(sessions, message_id)
    if row is None or row.status is not SmsStatus.SENDING or row.lease_owner != owner:
        return Outcome.SKIPPED
    if row.unconfirmed_since is not None:
        settled = _reconcile(
            row, sessions=sessions, sender=sender, owner=owner, now_fn=now_fn, policy=policy
        )
        if settled is not None:
            return settled
        row = _read(sessions, message_id)  # the stamp is gone; the attempts are the same
        if row is None or row.status is not SmsStatus.SENDING or row.lease_owner != owner:
            return Outcome.SKIPPED
    if row.attempts >= policy.max_attempts:
        error = f"gave up after {row.attempts} attempts"
        return _finish(row, sessions, owner, now_fn(), SmsStatus.FAILED, error=error)
    with sessions.begin() as session:
        now = now_fn()
        unwanted = _why_not_send(session, row)
        if unwanted is not None:
            status, why = unwanted
            if not update_row(session, row.id, _ours(row, owner), **_closed(status, now, why)):
                return Outcome.SKIPPED
            log.info("sms not sent %s: %s", row.describe(), why)
            return _STATUS_OUTCOME[status]
        # The stamp and the count go in before the request leaves: a crash from here on is
        # found again (the lease runs out) and reconciled, never blindly resent.
        stamped = update_row(
            session,
            row.id,
            _ours(row, owner),
            attempts=row.attempts + 1,
            lease_until=now + policy.lease,
            details={**row.details_without(RECONCILE_FAILURES), UNCONFIRMED: now.isoformat()},
            updated_at=now,
        )
        if not stamped:
            return Outcome.SKIPPED
    attempt = replace(row, attempts=row.attempts + 1)
    try:
        sent = sender.send(to=row.to, body=row.body, reference=row.ref)
    except SmsFailure as failure:
        return _failed(
            attempt, failure, sessions=sessions, owner=owner, now_fn=now_fn, policy=policy
        )
    _record_sent(attempt, sent, sessions=sessions, at=now_fn(), how="sent")
    return Outcome.SENT


_STATUS_OUTCOME = {
    SmsStatus.CANCELLED: Outcome.CANCELLED,
    SmsStatus.OPTED_OUT: Outcome.OPTED_OUT,
    SmsStatus.INVALID: Outcome.INVALID,
    SmsStatus.FAILED: Outcome.FAILED,
}


def _closed(status: SmsStatus, now: datetime, why: str, code: int | None = None) -> dict[str, Any]:
    """The values that end a row that was not sent."""
    return {
        "status": status,
        "lease_owner": None,
        "lease_until": None,
        "last_error": why[:2000],
        "error_code": code,
        "updated_at": now,
    }


def _finish(
    row: _Row,
    sessions: sessionmaker[Session],
    owner: str,
    now: datetime,
    status: SmsStatus,
    *,
    error: str,
    code: int | None = None,
) -> Outcome:
    with sessions.begin() as session:
        values = _closed(status, now, error, code)
        values["details"] = row.details_without(UNCONFIRMED, RECONCILE_FAILURES)
        if not update_row(session, row.id, _ours(row, owner), **values):
            return Outcome.SKIPPED
    log.warning("sms %s %s: %s", status.value, row.describe(), error)
    return _STATUS_OUTCOME[status]


def _why_not_send(session: Session, row: _Row) -> tuple[SmsStatus, str] | None:
    """Why this row should not go out now (and its final status), or None: send it."""
    preference = session.get(ContactPreference, row.to)
    if preference is not None:
        if preference.opted_out_sms:
            return SmsStatus.OPTED_OUT, "the number opted out of SMS"
        if preference.invalid:
            return SmsStatus.INVALID, "the number cannot take SMS"
        if preference.no_sms:
            return SmsStatus.CANCELLED, "the number asked for no SMS"
    if row.work_order_id is None or row.purpose is SmsPurpose.ORDER_OPENED:
        return None
    order = session.get(WorkOrder, row.work_order_id)
    if order is None or order.state not in OPEN_STATES:
        return SmsStatus.CANCELLED, "the order is no longer open"
    if row.purpose not in _REMINDERS:
        return None
    clock = row.details.get("clock")
    if clock not in CLOCK_MET_FIELDS:
        return None
    if getattr(order, CLOCK_MET_FIELDS[clock]) is not None:
        return SmsStatus.CANCELLED, f"the {clock} clock has stopped"
    written_for = _deadline_of(row.details)
    deadline: datetime | None = getattr(order, CLOCK_DUE_FIELDS[clock])
    if written_for is not None and (
        deadline is None or abs(deadline.timestamp() - written_for) >= 1
    ):
        return SmsStatus.CANCELLED, f"the {clock} deadline has moved"
    return None


def _deadline_of(details: dict[str, object]) -> float | None:
    """The deadline a reminder was written for (``order_flow._schedule_reminders`` keeps
    it in ``details["due_at"]``), or None for a row without one."""
    due = details.get("due_at")
    if not isinstance(due, str):
        return None
    try:
        return datetime.fromisoformat(due).timestamp()
    except ValueError:
        return None


def _reconcile(
    row: _Row,
    *,
    sessions: sessionmaker[Session],
    sender: SmsSender,
    owner: str,
    now_fn: Callable[[], datetime],
    policy: DeliveryPolicy,
) -> Outcome | None:
    """Ask the provider whether the unconfirmed attempt went out. Settled (recorded as sent,
    or to be asked again later): its outcome; None: it did not go out, send it."""
    since = row.unconfirmed_since
    assert since is not None
    try:
        found = sender.find_sent(to=row.to, body=row.body, since=since)
    except SmsFailure as failure:
        return _reconcile_failed(
            row, failure, sessions=sessions, owner=owner, now_fn=now_fn, policy=policy
        )
    if found is not None:
        log.info("sms %s had gone out before a crash: sid=%s", row.describe(), found.provider_id)
        _record_sent(row, found, sessions=sessions, at=since, how="reconciled")
        return Outcome.RECONCILED
    with sessions.begin() as session:
        cleared = update_row(
            session,
            row.id,
            _ours(row, owner),
            details=row.details_without(UNCONFIRMED, RECONCILE_FAILURES),
            updated_at=now_fn(),
        )
    if not cleared:
        return Outcome.SKIPPED
    log.info("sms %s: the unconfirmed attempt did not go out; sending", row.describe())
    return None


def _reconcile_failed(
    row: _Row,
    failure: SmsFailure,
    *,
    sessions: sessionmaker[Session],
    owner: str,
    now_fn: Callable[[], datetime],
    policy: DeliveryPolicy,
) -> Outcome:
    """The provider could not say whether it went out: ask again later, never resend."""
    now = now_fn()
    if failure.kind is SmsFailureKind.AUTH:
        _pause(row, failure, sessions=sessions, owner=owner, now=now, attempts=row.attempts)
        return Outcome.PAUSED
    failures = int(row.details.get(RECONCILE_FAILURES, 0) or 0) + 1
    if failures >= policy.max_attempts:
        error = (
            f"could not learn whether it went out ({failure}); it may have: check the "
            "provider's log before sending it again"
        )
        return _finish(row, sessions, owner, now, SmsStatus.FAILED, error=error, code=failure.code)
    with sessions.begin() as session:
        update_row(
            session,
            row.id,
            _ours(row, owner),
            lease_until=now + policy.retry_delay(failures, failure.retry_after),
            details={**row.details, RECONCILE_FAILURES: failures},
            last_error=f"find_sent: {failure}"[:2000],
            error_code=failure.code,
            updated_at=now,
        )
    log.warning("sms %s: could not reconcile (%s); asking again later", row.describe(), failure)
    return Outcome.UNCERTAIN


def _record_sent(
    row: _Row, sent: SentSms, *, sessions: sessionmaker[Session], at: datetime, how: str
) -> bool:
    """``sent`` if the row is still on this attempt (whoever holds the lease now: the
    attempt is what went out). False when the row moved on meanwhile."""
    with sessions.begin() as session:
        recorded = update_row(
            session,
            row.id,
            [SmsMessage.status == SmsStatus.SENDING, SmsMessage.attempts == row.attempts],
            status=SmsStatus.SENT,
            provider_id=sent.provider_id[:64],
            provider_status=sent.status[:24] or None,
            sent_at=at,
            lease_owner=None,
            lease_until=None,
            error_code=None,
            details=row.details_without(UNCONFIRMED, RECONCILE_FAILURES),
            updated_at=utcnow(),
        )
    if recorded:
        log.info("sms %s %s: sid=%s", how, row.describe(), sent.provider_id)
    elif _confirmed_as(sessions, row.id, sent.provider_id):
        log.info(
            "sms %s %s: sid=%s, already confirmed by its report",
            how,
            row.describe(),
            sent.provider_id,
        )
    else:
        log.warning(
            "sms %s %s (sid=%s) but the row changed meanwhile: left as it is",
            how,
            row.describe(),
            sent.provider_id,
        )
    return recorded


def _confirmed_as(sessions: sessionmaker[Session], message_id: int, provider_id: str) -> bool:
    """The row is ``sent`` as ``provider_id`` (the provider's report came first)."""
    with sessions() as session:
        found = session.get(SmsMessage, message_id)
        return (
            found is not None
            and found.status is SmsStatus.SENT
            and found.provider_id == provider_id[:64]
        )


def _failed(
    row: _Row,
    failure: SmsFailure,
    *,
    sessions: sessionmaker[Session],
    owner: str,
    now_fn: Callable[[], datetime],
    policy: DeliveryPolicy,
) -> Outcome:
    """The send of attempt ``row.attempts`` failed: what the failure's kind says."""
    now = now_fn()
    kind = failure.kind
    if kind is SmsFailureKind.AUTH:
        _pause(row, failure, sessions=sessions, owner=owner, now=now, attempts=row.attempts - 1)
        return Outcome.PAUSED
    if kind in (SmsFailureKind.OPTED_OUT, SmsFailureKind.INVALID_NUMBER):
        return _mark_recipient(row, failure, sessions=sessions, owner=owner, now=now)
    if kind is SmsFailureKind.REJECTED:
        error = f"rejected: {failure}"
        return _finish(row, sessions, owner, now, SmsStatus.FAILED, error=error, code=failure.code)
    delay = policy.retry_delay(row.attempts, failure.retry_after)
    if failure.maybe_sent:
        # It may have gone out: the next sweep after the backoff asks the provider first.
        with sessions.begin() as session:
            kept = update_row(
                session,
                row.id,
                _ours(row, owner),
                lease_until=now + delay,
                last_error=str(failure)[:2000],
                error_code=failure.code,
                updated_at=now,
            )
        if kept:
            log.warning(
                "sms %s may have gone out (%s): reconciling after %ss",
                row.describe(),
                failure,
                int(delay.total_seconds()),
            )
        return Outcome.UNCERTAIN if kept else Outcome.SKIPPED
    if row.attempts >= policy.max_attempts:
        error = f"gave up after {row.attempts} attempts: {failure}"
        return _finish(row, sessions, owner, now, SmsStatus.FAILED, error=error, code=failure.code)
    with sessions.begin() as session:
        again = update_row(
            session,
            row.id,
            _ours(row, owner),
            status=SmsStatus.PENDING,
            next_attempt_at=now + delay,
            lease_owner=None,
            lease_until=None,
            last_error=str(failure)[:2000],
            error_code=failure.code,
            details=row.details_without(UNCONFIRMED, RECONCILE_FAILURES),
            updated_at=now,
        )
    if not again:
        return Outcome.SKIPPED
    log.warning(
        "sms %s failed (attempt %d of %d), retrying in %ss: %s",
        row.describe(),
        row.attempts,
        policy.max_attempts,
        int(delay.total_seconds()),
        failure,
    )
    return Outcome.RETRY


def _pause(
    row: _Row,
    failure: SmsFailure,
    *,
    sessions: sessionmaker[Session],
    owner: str,
    now: datetime,
    attempts: int,
) -> None:
    """The account is refused: the row waits, ``pending``, its attempt not counted."""
    with sessions.begin() as session:
        update_row(
            session,
            row.id,
            _ours(row, owner),
            status=SmsStatus.PENDING,
            attempts=attempts,
            lease_owner=None,
            lease_until=None,
            last_error=f"paused: {failure}"[:2000],
            error_code=failure.code,
            # A refused request sent nothing: only a stamp from before (reconciling) stays.
            details=row.details if attempts == row.attempts else row.details_without(UNCONFIRMED),
            updated_at=now,
        )
    log.error(
        "SMS SENDING PAUSED: the provider refused the account or sender (code %s, HTTP %s): "
        "%s. Nothing is sent until an operator fixes the SMS settings; the messages wait.",
        failure.code,
        failure.status,
        failure,
    )


def _mark_recipient(
    row: _Row,
    failure: SmsFailure,
    *,
    sessions: sessionmaker[Session],
    owner: str,
    now: datetime,
) -> Outcome:
    opted_out = failure.kind is SmsFailureKind.OPTED_OUT
    status = SmsStatus.OPTED_OUT if opted_out else SmsStatus.INVALID
    why = f"{'opted out' if opted_out else 'invalid number'}: {failure}"
    for tries_left in (1, 0):  # two workers may create the number's preference at once
        try:
            with sessions.begin() as session:
                values = _closed(status, now, why, failure.code)
                values["details"] = row.details_without(UNCONFIRMED, RECONCILE_FAILURES)
                if not update_row(session, row.id, _ours(row, owner), **values):
                    return Outcome.SKIPPED
                cancelled = mark_number(
                    session,
                    row.to,
                    opted_out=opted_out,
                    reason=f"sms {row.ref}: {failure.code or failure.kind.value}",
                    now=now,
                )
            break
        except IntegrityError:
            if not tries_left:
                raise
    log.warning(
        "sms %s %s (code %s); %d other pending message(s) to it cancelled",
        status.value,
        row.describe(),
        failure.code,
        cancelled,
    )
    return _STATUS_OUTCOME[status]


def mark_number(
    session: Session, number: str, *, opted_out: bool, reason: str, now: datetime | None = None
) -> int:
    """The provider says ``number`` opted out (or cannot take SMS): note it on its
    preference and cancel its other pending texts; how many were cancelled. Used by the
    sender's failures and by the delivery reports."""
    flag = {"opted_out_sms": True} if opted_out else {"invalid": True}
    sms_outbox.set_preference(number, session=session, actor=ACTOR, reason=reason, **flag)
    result = session.execute(
        update(SmsMessage)
        .where(SmsMessage.to_number == number, SmsMessage.status == SmsStatus.PENDING)
        .values(
            status=SmsStatus.CANCELLED,
            last_error=("the number opted out" if opted_out else "the number is invalid"),
            updated_at=now or utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- the sweep --------------------------------------------------------------------------------


@dataclass
class SweepCounts:
    """What one sweep did."""

    escalated: int = 0
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    released: int = 0
    paused: bool = False

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1

    def __getitem__(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "escalated": self.escalated,
            "claimed": self.claimed,
            **{outcome.value: self[outcome.value] for outcome in Outcome},
            "errors": self.errors,
            "released": self.released,
            "paused": self.paused,
        }

    def summary(self) -> str:
        parts = [f"{name} {value}" for name, value in self.as_dict().items() if value]
        return ", ".join(parts) or "nothing due"


def sweep(
    *,
    sessions: sessionmaker[Session],
    sender: SmsSender,
    owner: str | None = None,
    now_fn: Callable[[], datetime] = utcnow,
    floor_manager_number: str | None = None,
    zone: tzinfo = DEFAULT_ZONE,
    policy: DeliveryPolicy = DEFAULT_POLICY,
) -> SweepCounts:
    """Escalate what is overdue, then claim and deliver what is due. A row whose delivery
    raised is logged and left to its lease (the next sweep after it reconciles it)."""
    owner = owner or new_owner()
    counts = SweepCounts()
    try:
        with sessions() as session:
            counts.escalated = len(
                escalate_due(
                    session=session,
                    now=now_fn(),
                    floor_manager_number=floor_manager_number,
                    zone=zone,
                )
            )
    except Exception:
        counts.errors += 1
        log.exception("escalating overdue work orders failed")
    with sessions() as session:
        ids = claim_due(
            session=session,
            now=now_fn(),
            owner=owner,
            limit=policy.batch,
            lease_seconds=policy.lease.total_seconds(),
        )
    counts.claimed = len(ids)
    for position, message_id in enumerate(ids):
        try:
            outcome = deliver(
                message_id,
                sessions=sessions,
                sender=sender,
                owner=owner,
                now_fn=now_fn,
                policy=policy,
            )
        except Exception:
            counts.errors += 1
            log.exception("sms delivery of %s failed", reference(message_id))
            continue
        counts.count(outcome)
        if outcome is Outcome.PAUSED:
            counts.paused = True
            counts.released = release(ids[position + 1 :], sessions=sessions, owner=owner)
            log.error(
                "sms sweep paused: %d claimed message(s) given back, to be sent once the "
                "provider accepts the account again",
                counts.released,
            )
            break
    if counts.claimed or counts.escalated or counts.errors:
        log.info("sms sweep %s: %s", owner, counts.summary())
    return counts
