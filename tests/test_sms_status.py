"""Twilio's SMS delivery reports (``POST /voice/sms-status?ref=sms-<id>``), signed like every
webhook: recorded once, the row's provider status moved forward only, a row left sending by
a crash confirmed as sent (and not sent again), opted-out and invalid numbers marked, and
anything we cannot use answered 200."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.support.sms import RecordingSmsSender
from tests.support.webhooks import ACCOUNT_SID, TwilioSender
from tests.test_sms_delivery import (
    CITIZEN,
    OTHER,
    T0,
    Clock,
    Crash,
    CrashingSender,
    outbox_row,
    row,
    run,
)
from tickets.models import CallEvent, ContactPreference, SmsStatus


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def sender(clock: Clock) -> RecordingSmsSender:
    return RecordingSmsSender(clock=clock)


def report(
    twilio: TwilioSender,
    message_id: int | str,
    sid: str,
    status: str,
    *,
    token: str | None = None,
    error: int | None = None,
    signature: str | None = None,
):
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": CITIZEN,
        "From": "+868916312345",
        **({"ErrorCode": str(error)} if error is not None else {}),
    }
    ref = message_id if isinstance(message_id, str) else f"sms-{message_id}"
    return twilio.post(f"/voice/sms-status?ref={ref}", params, token=token, signature=signature)


def sent_row(db: Session, sessions, sender, clock, key: str = "report") -> tuple[int, str]:
    message = outbox_row(db, key)
    assert run(sessions, sender, clock)["sent"] == 1
    return message, sender.sent[-1].provider_id


def reports_stored(db: Session) -> int:
    return db.scalar(
        select(func.count()).select_from(CallEvent).where(CallEvent.kind == "sms-status")
    )


def test_reports_move_the_status_forward_and_a_retry_changes_nothing(
    twilio, db, sessions, sender, clock
) -> None:
    message, sid = sent_row(db, sessions, sender, clock)

    first = report(twilio, message, sid, "sent", token="token-sent")
    assert first.status_code == 200 and first.mimetype == "text/xml"
    assert row(db, message).provider_status == "sent"
    assert report(twilio, message, sid, "sent", token="token-sent").status_code == 200  # retry
    assert reports_stored(db) == 1

    assert report(twilio, message, sid, "delivered").status_code == 200
    assert report(twilio, message, sid, "sent", token="token-sent").status_code == 200
    assert report(twilio, message, sid, "sending").status_code == 200  # late, out of order

    delivered = row(db, message)
    assert (delivered.status, delivered.provider_status) == (SmsStatus.SENT, "delivered")
    assert delivered.provider_id == sid
    assert reports_stored(db) == 3


def test_a_report_for_a_row_left_sending_by_a_crash_confirms_it(
    twilio, db, sessions, sender, clock
) -> None:
    message = outbox_row(db, "crashed")
    with pytest.raises(Crash):
        run(sessions, CrashingSender(sender, taken=True), clock)
    sid = sender.sent[0].provider_id
    assert row(db, message).status is SmsStatus.SENDING

    assert report(twilio, message, sid, "delivered").status_code == 200

    confirmed = row(db, message)
    assert confirmed.status is SmsStatus.SENT
    assert (confirmed.provider_id, confirmed.provider_status) == (sid, "delivered")
    assert confirmed.lease_owner is None
    clock.advance(hours=1)  # the lease is long gone: the row is not due again
    assert run(sessions, sender, clock).claimed == 0
    assert len(sender.sent) == 1 and sender.find_sent_calls == 0


def test_an_opted_out_report_marks_the_number(twilio, db, sessions, sender, clock) -> None:
    message, sid = sent_row(db, sessions, sender, clock)
    waiting = outbox_row(db, "next", due=T0 + timedelta(days=1))
    elsewhere = outbox_row(db, "other", to=OTHER, due=T0 + timedelta(days=1))

    assert report(twilio, message, sid, "undelivered", error=21610).status_code == 200

    stopped = row(db, message)
    assert (stopped.status, stopped.error_code) == (SmsStatus.OPTED_OUT, 21610)
    assert stopped.provider_status == "undelivered"
    assert db.get_one(ContactPreference, CITIZEN).opted_out_sms
    assert row(db, waiting).status is SmsStatus.CANCELLED
    assert row(db, elsewhere).status is SmsStatus.PENDING


def test_an_invalid_number_report_marks_the_number(twilio, db, sessions, sender, clock) -> None:
    message, sid = sent_row(db, sessions, sender, clock)

    assert report(twilio, message, sid, "failed", error=21211).status_code == 200

    assert row(db, message).status is SmsStatus.INVALID
    preference = db.get_one(ContactPreference, CITIZEN)
    assert preference.invalid and not preference.opted_out_sms


def test_another_delivery_failure_is_noted_on_the_row_only(
    twilio, db, sessions, sender, clock
) -> None:
    message, sid = sent_row(db, sessions, sender, clock)

    assert report(twilio, message, sid, "undelivered", error=30003).status_code == 200

    failed = row(db, message)
    assert (failed.status, failed.provider_status) == (SmsStatus.SENT, "undelivered")
    assert failed.error_code == 30003
    assert db.get(ContactPreference, CITIZEN) is None


def test_a_forged_report_is_refused(twilio, db, sessions, sender, clock) -> None:
    message, sid = sent_row(db, sessions, sender, clock)

    forged = report(twilio, message, sid, "undelivered", error=21610, signature="Zm9yZ2Vk")

    assert forged.status_code == 403
    assert row(db, message).status is SmsStatus.SENT
    assert db.get(ContactPreference, CITIZEN) is None
    assert reports_stored(db) == 0


@pytest.mark.parametrize("ref", ["sms-999999", "sms-x", "nonsense", ""])
def test_a_report_we_cannot_use_is_answered_200(twilio, db, ref: str) -> None:
    response = report(twilio, ref, "SM" + "0" * 32, "delivered")

    assert response.status_code == 200


def test_a_report_naming_another_message_leaves_the_row_alone(
    twilio, db, sessions, sender, clock
) -> None:
    message, _ = sent_row(db, sessions, sender, clock)

    assert report(twilio, message, "SM" + "f" * 32, "failed", error=21610).status_code == 200

    assert row(db, message).status is SmsStatus.SENT
    assert db.get(ContactPreference, CITIZEN) is None
