"""The SMS outbox sent by the worker's sweep on a real database (SQLite, or PostgreSQL when
DATABASE_URL says so): due rows only, each exactly once with two workers racing, a crash
between the send and its commit reconciled and not resent, retries with backoff, opted-out
and invalid numbers, a refused account pausing the sweep without losing anything, rows that
are no longer wanted, the escalation of overdue orders, the Huey task and the CLI."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, make_settings
from tests.support.orders import (
    TUESDAY_10AM,
    dispatched_order,
    import_demo_directory,
    liaison,
    shipped_clocks,
)
from tests.support.sms import RecordingSmsSender
from tickets import escalation, order_flow, sms_delivery, sms_outbox
from tickets.db import make_engine
from tickets.escalation import escalate_due
from tickets.models import (
    ContactPreference,
    ObjectionReason,
    SmsMessage,
    SmsPurpose,
    SmsStatus,
    WorkOrder,
    WorkOrderHistory,
)
from tickets.sms_delivery import (
    UNCONFIRMED,
    DeliveryPolicy,
    Outcome,
    claim_due,
    deliver,
    sweep,
)
from tickets.sms_sender import SentSms, SmsFailure, SmsFailureKind
from webapp import SMS_SENDER_KEY, create_app, worker
from webapp.cli import main
from webapp.sms import DELIVER_SOON_KEY, deliver_sms_soon

CITIZEN = "+8613800000001"
OTHER = "+8613900000002"
FLOOR_MANAGER = "+8613700000003"
T0 = TUESDAY_10AM
Kind = SmsFailureKind


class Clock:
    """The sweep's and the provider's clock, moved by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def sender(clock: Clock) -> RecordingSmsSender:
    return RecordingSmsSender(clock=clock)


def outbox_row(
    db: Session,
    key: str,
    *,
    to: str = CITIZEN,
    due: datetime = T0,
    purpose: SmsPurpose = SmsPurpose.ORDER_OPENED,
    body: str | None = None,
) -> int:
    message = sms_outbox.schedule(
        session=db,
        dedupe_key=key,
        purpose=purpose,
        to_number=to,
        body=body or f"【12345热线】测试短信 {key}",
        due_at=due,
    )
    db.commit()
    assert message is not None
    return message.id


def row(db: Session, message_id: int) -> SmsMessage:
    db.expire_all()
    return db.get_one(SmsMessage, message_id)


def run(
    sessions: sessionmaker[Session],
    sender: object,
    clock: Clock,
    *,
    owner: str | None = None,
    policy: DeliveryPolicy = sms_delivery.DEFAULT_POLICY,
    floor_manager: str | None = None,
) -> sms_delivery.SweepCounts:
    return sweep(
        sessions=sessions,
        sender=sender,  # type: ignore[arg-type]
        owner=owner,
        now_fn=clock,
        policy=policy,
        floor_manager_number=floor_manager,
    )


# -- due, sent once ----------------------------------------------------------------------------


def test_only_due_rows_are_sent_and_each_only_once(db, sessions, sender, clock) -> None:
    due = outbox_row(db, "due", due=T0 - timedelta(minutes=1))
    later = outbox_row(db, "later", to=OTHER, due=T0 + timedelta(hours=1))

    counts = run(sessions, sender, clock)

    assert (counts.claimed, counts["sent"]) == (1, 1)
    assert sender.references() == [f"sms-{due}"]
    sent = row(db, due)
    assert sent.status is SmsStatus.SENT
    assert sent.provider_id == sender.sent[0].provider_id and sent.provider_status == "queued"
    assert sent.sent_at == T0 and sent.attempts == 1
    assert (sent.lease_owner, sent.lease_until) == (None, None)
    assert UNCONFIRMED not in sent.details
    assert row(db, later).status is SmsStatus.PENDING

    assert run(sessions, sender, clock).claimed == 0  # nothing due: nothing sent again
    clock.advance(hours=1)
    assert run(sessions, sender, clock)["sent"] == 1
    assert sender.references() == [f"sms-{due}", f"sms-{later}"]


class SlowSender(RecordingSmsSender):
    """A provider that takes a little while, so two workers' steps interleave."""

    def send(self, *, to: str, body: str, reference: str) -> SentSms:
        threading.Event().wait(0.002)
        return super().send(to=to, body=body, reference=reference)


def race(database_url: str, work: Callable[[sessionmaker[Session]], object], workers: int = 2):
    """Run ``work`` in ``workers`` threads at once, each with its own engine; the results."""
    engines = [make_engine(database_url) for _ in range(workers)]
    start = threading.Barrier(workers)
    results: list[object] = [None] * workers
    errors: list[BaseException] = []

    def worker_thread(index: int) -> None:
        try:
            with engines[index].connect():  # connected before the start, not during the race
                pass
            start.wait(timeout=10)
            results[index] = work(sessionmaker(engines[index], expire_on_commit=False))
        except BaseException as error:  # reported by the test
            errors.append(error)

    threads = [threading.Thread(target=worker_thread, args=(i,)) for i in range(workers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for each in engines:
            each.dispose()
    assert not errors, errors
    return results


def test_two_workers_racing_send_every_row_exactly_once(db, database_url, clock) -> None:
    ids = [outbox_row(db, f"race-{n}", due=T0 - timedelta(seconds=n)) for n in range(40)]
    sender = SlowSender(clock=clock)
    policy = DeliveryPolicy(batch=4)

    def work(sessions: sessionmaker[Session]) -> list[int]:
        claimed = []
        while (counts := run(sessions, sender, clock, policy=policy)).claimed:
            claimed.append(counts.claimed)
            assert counts.errors == 0
        return claimed

    first, second = race(database_url, work)

    assert sorted(sender.references()) == sorted(f"sms-{i}" for i in ids)  # each once
    assert sum(first) + sum(second) == len(ids)  # each claimed once: no row owned twice
    db.expire_all()
    statuses = db.scalars(select(SmsMessage.status).where(SmsMessage.id.in_(ids))).all()
    assert set(statuses) == {SmsStatus.SENT}


def test_racing_claims_never_share_a_row(db, database_url, clock) -> None:
    ids = {outbox_row(db, f"claim-{n}", due=T0) for n in range(60)}
    each_round = threading.Barrier(2)

    def work(sessions: sessionmaker[Session]) -> list[int]:
        mine: list[int] = []
        owner = sms_delivery.new_owner("test")
        for _ in range(12):  # both claim at the same moment, round after round
            each_round.wait(timeout=10)
            with sessions() as session:
                mine += claim_due(session=session, now=T0, owner=owner, limit=3, lease_seconds=60)
        return mine

    first, second = race(database_url, work)

    assert first and second  # both took part
    assert set(first).isdisjoint(second)
    assert sorted(first + second) == sorted(ids)  # every row claimed, none twice


def test_a_claim_takes_at_most_its_limit_earliest_first(db, sessions) -> None:
    ids = [outbox_row(db, f"limit-{n}", due=T0 - timedelta(minutes=n)) for n in range(10)]

    with sessions() as session:
        claimed = claim_due(session=session, now=T0, owner="me", limit=3, lease_seconds=60)

    assert claimed == [ids[9], ids[8], ids[7]]
    lease = row(db, ids[9])
    assert (lease.status, lease.lease_owner) == (SmsStatus.SENDING, "me")
    assert lease.lease_until == T0 + timedelta(seconds=60)
    assert row(db, ids[6]).status is SmsStatus.PENDING


def test_postgresql_skips_rows_another_worker_is_claiming(db, engine, sessions) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite has one writer at a time")
    locked, free = outbox_row(db, "locked"), outbox_row(db, "free")
    with engine.connect() as other_worker:
        other_worker.execute(
            select(SmsMessage.id).where(SmsMessage.id == locked).with_for_update()
        ).all()  # its claim is not committed yet
        with sessions() as session:
            claimed = claim_due(session=session, now=T0, owner="me", limit=5, lease_seconds=60)
        other_worker.rollback()

    assert claimed == [free]  # not blocked, and not taken


# -- crashes ---------------------------------------------------------------------------------


class Crash(BaseException):
    """The worker process dies (not an Exception: nothing catches it on the way out)."""


@dataclass
class CrashingSender:
    """Dies during the next ``crashes`` sends: after the provider took the text
    (``taken=True``: it went out, we never heard), or before (it did not)."""

    provider: RecordingSmsSender
    taken: bool = True
    crashes: int = 1
    during_send: Callable[[], None] | None = None
    calls: list[str] = field(default_factory=list)

    def send(self, *, to: str, body: str, reference: str) -> SentSms:
        self.calls.append(reference)
        if self.crashes:
            self.crashes -= 1
            if self.taken:
                self.provider.send(to=to, body=body, reference=reference)
            raise Crash
        sent = self.provider.send(to=to, body=body, reference=reference)
        if self.during_send:
            self.during_send()
        return sent

    def find_sent(self, *, to: str, body: str, since: datetime) -> SentSms | None:
        return self.provider.find_sent(to=to, body=body, since=since)


def test_a_crash_after_the_provider_took_it_is_reconciled_not_sent_again(
    db, sessions, sender, clock
) -> None:
    message = outbox_row(db, "crash")
    crashing = CrashingSender(sender, taken=True)

    with pytest.raises(Crash):
        run(sessions, crashing, clock, owner="worker-a")

    left = row(db, message)
    assert left.status is SmsStatus.SENDING and left.lease_owner == "worker-a"
    assert left.attempts == 1 and left.details[UNCONFIRMED] == T0.isoformat()
    clock.advance(minutes=1)
    assert run(sessions, crashing, clock, owner="worker-b").claimed == 0  # the lease holds

    clock.advance(minutes=5)  # the lease ran out: the next sweep reconciles
    counts = run(sessions, crashing, clock, owner="worker-b")

    assert counts["reconciled"] == 1 and counts["sent"] == 0
    assert len(sender.sent) == 1 and crashing.calls == [f"sms-{message}"]  # never resent
    settled = row(db, message)
    assert settled.status is SmsStatus.SENT
    assert settled.provider_id == sender.sent[0].provider_id
    assert settled.sent_at == T0  # when it went out, not when we learned it
    assert UNCONFIRMED not in settled.details
    assert sender.find_sent_calls == 1


def test_a_crash_before_the_provider_took_it_is_sent_after_the_lease(
    db, sessions, sender, clock
) -> None:
    message = outbox_row(db, "crash-early")
    crashing = CrashingSender(sender, taken=False)
    with pytest.raises(Crash):
        run(sessions, crashing, clock)

    clock.advance(minutes=6)
    counts = run(sessions, crashing, clock)

    assert counts["sent"] == 1 and sender.find_sent_calls == 1
    assert sender.references() == [f"sms-{message}"]
    assert row(db, message).attempts == 2


def test_a_timeout_after_the_provider_took_it_is_reconciled_by_the_next_sweep(
    db, sessions, sender, clock
) -> None:
    message = outbox_row(db, "timeout")
    sender.fail_next(Kind.RETRY, accepted=True)  # read timeout: it went out, we never heard

    assert run(sessions, sender, clock)["uncertain"] == 1
    kept = row(db, message)
    assert kept.status is SmsStatus.SENDING
    assert kept.lease_until == T0 + timedelta(minutes=1)  # cut to the backoff
    clock.advance(seconds=30)
    assert run(sessions, sender, clock).claimed == 0

    clock.advance(minutes=1)
    assert run(sessions, sender, clock)["reconciled"] == 1
    assert len(sender.sent) == 1 and len(sender.attempts) == 1
    assert row(db, message).status is SmsStatus.SENT


def test_when_the_provider_cannot_say_whether_it_went_nothing_is_resent(
    db, sessions, sender, clock
) -> None:
    message = outbox_row(db, "unknown")
    sender.fail_next(Kind.RETRY, accepted=True)
    run(sessions, sender, clock)
    sender.fail_next_find_sent(SmsFailure("list failed", kind=Kind.RETRY))

    clock.advance(minutes=2)
    assert run(sessions, sender, clock)["uncertain"] == 1
    assert len(sender.attempts) == 1
    assert row(db, message).details[sms_delivery.RECONCILE_FAILURES] == 1

    clock.advance(minutes=2)
    assert run(sessions, sender, clock)["reconciled"] == 1
    assert len(sender.sent) == 1 and len(sender.attempts) == 1


def test_a_sender_slower_than_its_lease_is_reconciled_by_the_next_worker(
    db, sessions, sender, clock
) -> None:
    message = outbox_row(db, "slow")
    other: list[sms_delivery.SweepCounts] = []

    def meanwhile() -> None:  # the provider took it; the lease runs out before we hear
        clock.advance(minutes=6)
        other.append(run(sessions, sender, clock, owner="worker-b"))

    slow = CrashingSender(sender, crashes=0, during_send=meanwhile)
    counts = run(sessions, slow, clock, owner="worker-a")

    assert other[0]["reconciled"] == 1
    assert counts["sent"] == 1  # it went out; worker-b had recorded it already
    assert len(sender.sent) == 1
    assert row(db, message).status is SmsStatus.SENT


# -- failures --------------------------------------------------------------------------------


def test_retries_back_off_then_succeed(db, sessions, sender, clock) -> None:
    message = outbox_row(db, "retry")
    sender.fail_next(Kind.RETRY, times=3)

    waits = []
    for _ in range(3):
        assert run(sessions, sender, clock)["retry"] == 1
        waiting = row(db, message)
        assert waiting.status is SmsStatus.PENDING and waiting.lease_owner is None
        waits.append(waiting.next_attempt_at - clock.at)
        clock.at = waiting.next_attempt_at - timedelta(seconds=1)
        assert run(sessions, sender, clock).claimed == 0  # not before its time
        clock.advance(seconds=1)

    assert waits == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert run(sessions, sender, clock)["sent"] == 1
    sent = row(db, message)
    assert sent.status is SmsStatus.SENT and sent.attempts == 4
    assert len(sender.attempts) == 4 and len(sender.sent) == 1


def test_retry_after_is_honoured_and_the_attempts_are_capped(db, sessions, sender, clock) -> None:
    message = outbox_row(db, "capped")
    policy = DeliveryPolicy(max_attempts=3)
    sender.fail_next(Kind.RETRY, times=5, retry_after=600)

    run(sessions, sender, clock, policy=policy)
    assert row(db, message).next_attempt_at == T0 + timedelta(minutes=10)
    for _ in range(2):
        clock.at = row(db, message).next_attempt_at
        run(sessions, sender, clock, policy=policy)

    failed = row(db, message)
    assert failed.status is SmsStatus.FAILED and failed.attempts == 3
    assert "gave up after 3 attempts" in failed.last_error
    clock.advance(days=1)
    assert run(sessions, sender, clock, policy=policy).claimed == 0
    assert len(sender.attempts) == 3 and sender.sent == []


def test_the_backoff_doubles_up_to_its_cap() -> None:
    policy = DeliveryPolicy()
    assert [policy.retry_delay(n).total_seconds() / 60 for n in range(1, 9)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert policy.retry_delay(1, retry_after=90) == timedelta(seconds=90)
    assert policy.retry_delay(1, retry_after=10**9) == timedelta(hours=6)


def test_an_opted_out_number_is_marked_and_its_other_texts_cancelled(
    db, sessions, sender, clock
) -> None:
    first = outbox_row(db, "stop-1", due=T0 - timedelta(minutes=2))
    second = outbox_row(db, "stop-2", due=T0 + timedelta(hours=1))
    elsewhere = outbox_row(db, "fine", to=OTHER, due=T0 - timedelta(minutes=1))
    sender.fail_next(Kind.OPTED_OUT)

    counts = run(sessions, sender, clock)

    assert (counts["opted_out"], counts["sent"]) == (1, 1)
    stopped = row(db, first)
    assert (stopped.status, stopped.error_code) == (SmsStatus.OPTED_OUT, 21610)
    assert row(db, second).status is SmsStatus.CANCELLED
    assert row(db, elsewhere).status is SmsStatus.SENT
    preference = db.get_one(ContactPreference, CITIZEN)
    assert preference.opted_out_sms and preference.updated_by == sms_delivery.ACTOR
    assert sender.attempts == [(f"sms-{first}", CITIZEN), (f"sms-{elsewhere}", OTHER)]
    clock.advance(days=1)
    assert run(sessions, sender, clock).claimed == 0  # never retried
    assert (
        sms_outbox.schedule(  # and nothing new is queued for it
            session=db,
            dedupe_key="stop-3",
            purpose=SmsPurpose.ORDER_OPENED,
            to_number=CITIZEN,
            body="x",
            due_at=T0,
        )
        is None
    )


def test_an_invalid_number_is_marked_and_not_retried(db, sessions, sender, clock) -> None:
    message = outbox_row(db, "invalid")
    sender.fail_next(Kind.INVALID_NUMBER)

    assert run(sessions, sender, clock)["invalid"] == 1

    invalid = row(db, message)
    assert (invalid.status, invalid.error_code) == (SmsStatus.INVALID, 21211)
    assert db.get_one(ContactPreference, CITIZEN).invalid
    clock.advance(days=1)
    assert run(sessions, sender, clock).claimed == 0


def test_a_rejected_text_fails_at_once(db, sessions, sender, clock) -> None:
    message = outbox_row(db, "rejected")
    sender.fail_next(Kind.REJECTED)

    assert run(sessions, sender, clock)["failed"] == 1
    assert row(db, message).status is SmsStatus.FAILED
    clock.advance(days=1)
    assert run(sessions, sender, clock).claimed == 0 and len(sender.attempts) == 1


def test_a_refused_account_pauses_the_sweep_and_loses_nothing(
    db, sessions, sender, clock, caplog
) -> None:
    ids = [outbox_row(db, f"auth-{n}", due=T0 - timedelta(minutes=n)) for n in range(3)]
    sender.fail_next(Kind.AUTH)

    counts = run(sessions, sender, clock)

    assert counts.paused and counts["paused"] == 1 and counts.released == 2
    assert len(sender.attempts) == 1 and sender.sent == []
    for message_id in ids:
        waiting = row(db, message_id)
        assert waiting.status is SmsStatus.PENDING and waiting.attempts == 0
        assert (waiting.lease_owner, waiting.lease_until) == (None, None)
    assert any(r.levelname == "ERROR" and "PAUSED" in r.getMessage() for r in caplog.records)

    clock.advance(minutes=1)  # the operator fixed the account
    assert run(sessions, sender, clock)["sent"] == 3
    assert sorted(sender.references()) == sorted(f"sms-{i}" for i in ids)


def test_a_number_marked_since_the_claim_is_not_texted(db, sessions, sender, clock) -> None:
    message = outbox_row(db, "asked")
    with sessions() as session:
        (claimed,) = claim_due(session=session, now=T0, owner="me", limit=5, lease_seconds=60)
    sms_outbox.set_preference(CITIZEN, session=db, actor="staff:1", reason="asked", no_sms=True)
    db.commit()

    outcome = deliver(claimed, sessions=sessions, sender=sender, owner="me", now_fn=clock)

    assert outcome is Outcome.CANCELLED and sender.attempts == []
    assert row(db, message).status is SmsStatus.CANCELLED


def test_a_row_claimed_by_someone_else_is_not_sent(db, sessions, sender, clock) -> None:
    outbox_row(db, "theirs")
    with sessions() as session:
        (claimed,) = claim_due(session=session, now=T0, owner="them", limit=5, lease_seconds=60)

    outcome = deliver(claimed, sessions=sessions, sender=sender, owner="me", now_fn=clock)

    assert outcome is Outcome.SKIPPED and sender.attempts == []


# -- reminders and escalation ------------------------------------------------------------------


@pytest.fixture
def directory(db: Session) -> None:
    import_demo_directory(db)


def reminders(db: Session, order: WorkOrder) -> dict[tuple[str, str], SmsMessage]:
    db.expire_all()
    rows = db.scalars(
        select(SmsMessage).where(
            SmsMessage.work_order_id == order.id,
            SmsMessage.purpose.in_((SmsPurpose.REMINDER, SmsPurpose.OVERDUE)),
        )
    )
    return {(m.details["clock"], m.details["kind"]): m for m in rows}


def test_cancelled_reminders_are_not_sent(db, sessions, sender, clock, directory) -> None:
    order = dispatched_order(db)
    order_flow.accept(order, actor=liaison("D-CGQ-ZJJ"), session=db, clocks=shipped_clocks())
    db.commit()

    clock.at = T0 + timedelta(minutes=50)  # sign-off reminders and the contact one are due
    counts = run(sessions, sender, clock)

    assert counts["sent"] == 1
    (sent,) = sender.sent
    assert "响应" in sent.body  # the contact reminder; the sign-off ones were cancelled
    statuses = {key: m.status for key, m in reminders(db, order).items()}
    assert statuses[("signoff", "before")] is SmsStatus.CANCELLED
    assert statuses[("contact", "before")] is SmsStatus.SENT


def test_a_reminder_whose_clock_stopped_after_the_claim_is_not_sent(
    db, sessions, sender, clock, directory
) -> None:
    order = dispatched_order(db)
    clock.at = T0 + timedelta(minutes=25)  # the sign-off reminder is due
    with sessions() as session:
        (claimed,) = claim_due(session=session, now=clock.at, owner="me", limit=5, lease_seconds=60)
    order_flow.accept(order, actor=liaison("D-CGQ-ZJJ"), session=db, clocks=shipped_clocks())
    db.commit()  # cancel_pending leaves a claimed row alone: delivery must look again

    outcome = deliver(claimed, sessions=sessions, sender=sender, owner="me", now_fn=clock)

    assert outcome is Outcome.CANCELLED and sender.attempts == []
    cancelled = reminders(db, order)[("signoff", "before")]
    assert cancelled.status is SmsStatus.CANCELLED
    assert "signoff clock has stopped" in cancelled.last_error


def test_an_overdue_order_is_escalated_once_and_the_floor_manager_texted(
    db, sessions, sender, clock, directory
) -> None:
    order = dispatched_order(db)
    assert order.escalation_due_at is not None
    clock.at = order.escalation_due_at - timedelta(minutes=1)
    assert run(sessions, sender, clock, floor_manager=FLOOR_MANAGER).escalated == 0

    clock.at = order.escalation_due_at + timedelta(minutes=1)
    counts = run(sessions, sender, clock, floor_manager=FLOOR_MANAGER)

    assert counts.escalated == 1
    db.expire_all()
    supervised = db.get_one(WorkOrder, order.id)
    assert supervised.is_supervised and supervised.escalation_due_at is None
    history = db.scalars(
        select(WorkOrderHistory).where(
            WorkOrderHistory.work_order_id == order.id, WorkOrderHistory.action == "supervise"
        )
    ).all()
    assert [(h.actor, h.actor_role) for h in history] == [("system:worker", "system")]
    assert "签收" in history[0].reason and history[0].details["clock"] == "signoff"
    (text,) = sender.sent_to(FLOOR_MANAGER)  # scheduled and sent in the same sweep
    assert order.number in text.body and "城关区住房和城乡建设局" in text.body
    assert "签收时限（11-24 10:30）" in text.body
    escalation = db.scalars(
        select(SmsMessage).where(SmsMessage.purpose == SmsPurpose.ESCALATION)
    ).one()
    assert escalation.dedupe_key == f"escalation:{order.id}:1"

    clock.advance(hours=1)
    assert run(sessions, sender, clock, floor_manager=FLOOR_MANAGER).escalated == 0
    assert len(sender.sent_to(FLOOR_MANAGER)) == 1


def test_without_a_floor_manager_number_the_order_is_still_supervised(
    db, sessions, sender, clock, directory
) -> None:
    order = dispatched_order(db)
    with sessions() as session:
        assert escalate_due(
            session=session, now=T0 + timedelta(days=1), floor_manager_number=None
        ) == [order.id]
    assert (
        db.scalar(
            select(func.count())
            .select_from(SmsMessage)
            .where(SmsMessage.purpose == SmsPurpose.ESCALATION)
        )
        == 0
    )


def test_two_workers_racing_escalate_an_order_once(
    db, database_url, directory, monkeypatch
) -> None:
    order = dispatched_order(db)
    later = T0 + timedelta(days=1)
    both_loaded = threading.Barrier(2)
    real_supervise = escalation.supervise

    def supervise_together(*args, **kwargs):  # both hold the unsupervised order, then race
        both_loaded.wait(timeout=10)
        return real_supervise(*args, **kwargs)

    monkeypatch.setattr(escalation, "supervise", supervise_together)

    def work(sessions: sessionmaker[Session]) -> list[int]:
        with sessions() as session:
            return escalate_due(session=session, now=later, floor_manager_number=FLOOR_MANAGER)

    results = race(database_url, work)

    assert sorted(results, key=len) == [[], [order.id]]  # one won, the other was stale
    db.expire_all()
    assert db.get_one(WorkOrder, order.id).is_supervised
    count = select(func.count()).select_from(WorkOrderHistory)
    assert db.scalar(count.where(WorkOrderHistory.action == "supervise")) == 1
    assert (
        db.scalar(
            select(func.count())
            .select_from(SmsMessage)
            .where(SmsMessage.purpose == SmsPurpose.ESCALATION)
        )
        == 1
    )


def test_an_objected_order_waits_for_the_review_before_escalating(db, sessions, directory) -> None:
    order = dispatched_order(db)
    order_flow.object_to(
        order,
        reason_code=next(iter(ObjectionReason)),
        text="不属于本单位职责",
        actor=liaison("D-CGQ-ZJJ"),
        session=db,
    )
    db.commit()
    with sessions() as session:
        assert (
            escalate_due(session=session, now=T0 + timedelta(days=1), floor_manager_number=None)
            == []
        )


# -- the worker and the CLI ------------------------------------------------------------------


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, engine):
    env = {
        "DATABASE_URL": database_url,
        "JOURNAL_DIR": str(tmp_path / "journal"),
        "HUEY_SQLITE_PATH": str(tmp_path / "huey.db"),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "LOG_LEVEL": "warning",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    if worker._app is not None:
        worker._app.extensions["hotline.engine"].dispose()
        worker._app = None


def test_the_huey_task_runs_a_sweep(worker_env, db) -> None:
    settings = make_settings(
        worker_env["DATABASE_URL"],
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        HUEY_SQLITE_PATH=worker_env["HUEY_SQLITE_PATH"],
    )
    worker._app = create_app(settings)
    provider = RecordingSmsSender()
    worker._app.extensions[SMS_SENDER_KEY] = provider
    message = outbox_row(db, "from-the-worker", due=datetime.now(T0.tzinfo) - timedelta(minutes=1))
    huey = worker.make_huey(settings)
    huey.flush()
    for job in (worker.deliver_sms, worker.deliver_sms_now):
        task = huey.task()(job.func)
        task()  # enqueued in the real storage (Redis in CI's second run, SQLite otherwise)
        queued = huey.dequeue()
        assert queued is not None
        result = huey.execute(queued)
        assert result["claimed"] == (1 if job is worker.deliver_sms else 0)

    assert provider.references() == [f"sms-{message}"]
    assert row(db, message).status is SmsStatus.SENT


@pytest.fixture
def sms_app(app: Flask) -> Iterator[tuple[Flask, RecordingSmsSender]]:
    provider = RecordingSmsSender()
    app.extensions[SMS_SENDER_KEY] = provider
    yield app, provider


def test_hotline_sms_send_due_runs_one_sweep(sms_app, db) -> None:
    app, provider = sms_app
    outbox_row(db, "cli", due=datetime.now(T0.tzinfo) - timedelta(minutes=1))

    result = app.test_cli_runner().invoke(main, ["sms", "send-due"])

    assert result.exit_code == 0, result.output
    assert "claimed: 1" in result.output and "sent: 1" in result.output
    assert len(provider.sent) == 1


def test_hotline_sms_send_due_says_when_sending_is_paused(sms_app, db) -> None:
    app, provider = sms_app
    outbox_row(db, "cli-auth", due=datetime.now(T0.tzinfo) - timedelta(minutes=1))
    provider.fail_next(Kind.AUTH)

    result = app.test_cli_runner().invoke(main, ["sms", "send-due"])

    assert result.exit_code == 1
    assert "paused: True" in result.output and "sending is paused" in result.output


def test_hotline_sms_outbox_lists_rows_with_masked_numbers(sms_app, db) -> None:
    app, _ = sms_app
    outbox_row(db, "listed", to=CITIZEN)
    outbox_row(db, "listed-2", to=OTHER)
    runner = app.test_cli_runner()

    listed = runner.invoke(main, ["sms", "outbox"])
    pending = runner.invoke(main, ["sms", "outbox", "--status", "sent"])

    assert listed.exit_code == 0, listed.output
    assert "+86*******0001" in listed.output and "+86*******0002" in listed.output
    assert CITIZEN not in listed.output and OTHER not in listed.output
    assert listed.output.count("pending") == 2
    assert pending.output.strip() == "no messages"


def test_deliver_sms_soon_asks_the_worker_and_never_fails_the_request(app: Flask) -> None:
    asked: list[bool] = []
    with app.app_context():
        deliver_sms_soon()  # HOTLINE_ENV=test and no hook: nothing
        app.extensions[DELIVER_SOON_KEY] = lambda: asked.append(True)
        deliver_sms_soon()
        app.extensions[DELIVER_SOON_KEY] = lambda: 1 / 0
        deliver_sms_soon()  # logged, not raised
    assert asked == [True]
