"""An incoming SMS and an SMS delivery report that come while the database is down: answered
200 (Twilio does not retry an incoming message), journaled, and applied once by the drain,
as if stored on arrival; whatever is delivered again, live or journaled, changes nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from ivr.gateway import ConsoleGateway
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, make_settings
from tests.support.orders import CALLER, import_demo_directory
from tests.support.sms import RecordingSmsSender
from tests.support.webhooks import TwilioSender
from tests.test_sms_delivery import CITIZEN, T0, Clock, outbox_row, row
from tests.test_sms_status import report, reports_stored, sent_row
from tests.test_survey_sms_replies import (
    events,
    fresh,
    messages_in,
    new_message_sid,
    reply,
    sms_survey,
)
from tickets.db import utcnow
from tickets.journal import pending_lines
from tickets.models import (
    ClosedHow,
    ContactPreference,
    SmsStatus,
    SurveyReview,
    SurveyStatus,
    WorkOrderState,
)
from tickets.phones import mask_number
from tickets.survey_settling import survey_sms_text
from webapp import create_app
from webapp.drainer import drain_all
from webapp.settings import Settings

OTHER_CALLER = "+8613900000077"


@pytest.fixture(autouse=True)
def directory(db: Session) -> None:
    import_demo_directory(db)


@pytest.fixture
def down(tmp_path: Path, settings: Settings) -> Iterator[TwilioSender]:
    """Twilio posting to a web node whose database is unreachable; its journal is the one
    the live app (``twilio``, ``app``) drains."""
    broken = make_settings(
        f"sqlite:///{tmp_path}/missing/dir/hotline.db", JOURNAL_DIR=settings.journal_dir
    )
    outage_app = create_app(broken, gateway=ConsoleGateway())
    yield TwilioSender(outage_app.test_client(), AUTH_TOKEN, PUBLIC_BASE_URL)
    outage_app.extensions["hotline.engine"].dispose()


def journaled(settings: Settings) -> int:
    return pending_lines(settings.journal_dir)


# -- a survey reply ---------------------------------------------------------------------------


def test_a_reply_while_the_database_is_down_finishes_the_survey_when_drained(
    down, twilio, app: Flask, db, settings
) -> None:
    survey = sms_survey(db)
    live_survey = sms_survey(db, caller=OTHER_CALLER)  # the same reply, stored at once
    messages_in(reply(twilio, "111", from_number=OTHER_CALLER))
    sid = new_message_sid()
    before = utcnow()

    answered = reply(down, "111", sid=sid)

    arrived = utcnow()
    assert messages_in(answered) == []  # 200, empty TwiML: we could not read the survey
    assert journaled(settings) == 1
    assert events(db) == 1  # the live one
    assert fresh(db, survey)[0].status is SurveyStatus.SMS_SENT
    time.sleep(0.01)

    assert drain_all(app) == (1, 0)

    survey, order = fresh(db, survey)
    live_survey, live_order = fresh(db, live_survey)
    for each, its_order in ((survey, order), (live_survey, live_order)):
        assert each.status is SurveyStatus.COMPLETED
        assert (each.responded, each.solved, each.satisfied) == ("yes", "solved", "satisfied")
        assert each.review is None
        assert (its_order.state, its_order.closed_how) == (
            WorkOrderState.CLOSED,
            ClosedHow.AFTER_CALLBACK,
        )
    assert survey.answered_call_sid == sid
    assert before <= survey.answered_at <= arrived  # as of its arrival, not of the drain
    assert events(db) == 2
    assert journaled(settings) == 0
    assert drain_all(app) == (0, 0)


def test_a_journaled_reply_comes_before_a_later_live_one(down, twilio, db, settings) -> None:
    survey = sms_survey(db)
    messages_in(reply(down, "111"))

    later = messages_in(reply(twilio, "233"))  # the live request drains the journal first

    assert later == []  # the survey was answered by the journaled reply
    survey, order = fresh(db, survey)
    assert (survey.responded, survey.solved, survey.satisfied) == ("yes", "solved", "satisfied")
    assert order.state is WorkOrderState.CLOSED
    assert events(db) == 2
    assert journaled(settings) == 0


def test_the_same_message_journaled_twice_is_applied_once(down, app, db, settings) -> None:
    older = sms_survey(db, sent_ago=timedelta(days=2))
    newer = sms_survey(db, sent_ago=timedelta(hours=2))
    sid = new_message_sid()

    messages_in(reply(down, "123", sid=sid))
    messages_in(reply(down, "123", sid=sid))  # delivered again (a new token)
    assert journaled(settings) == 2
    assert drain_all(app) == (2, 0)
    messages_in(reply(down, "123", sid=sid))  # and again, after the first drain
    assert drain_all(app) == (1, 0)

    assert events(db) == 1
    newer, _ = fresh(db, newer)
    assert newer.status is SurveyStatus.COMPLETED
    assert newer.review is SurveyReview.PENDING
    assert fresh(db, older)[0].status is SurveyStatus.SMS_SENT  # not answered by a copy


def test_a_message_applied_live_then_journaled_again_changes_nothing(
    down, twilio, app, db, settings
) -> None:
    older = sms_survey(db, sent_ago=timedelta(days=2))
    newer = sms_survey(db, sent_ago=timedelta(hours=2))
    sid = new_message_sid()
    assert len(messages_in(reply(twilio, "111", sid=sid))) == 1

    messages_in(reply(down, "111", sid=sid))
    assert drain_all(app) == (1, 0)

    assert events(db) == 1
    assert fresh(db, newer)[0].status is SurveyStatus.COMPLETED
    assert fresh(db, older)[0].status is SurveyStatus.SMS_SENT


def test_a_journaled_message_delivered_again_live_changes_nothing(
    down, twilio, app, db, settings
) -> None:
    older = sms_survey(db, sent_ago=timedelta(days=2))
    newer = sms_survey(db, sent_ago=timedelta(hours=2))
    sid = new_message_sid()
    messages_in(reply(down, "111", sid=sid))
    assert drain_all(app) == (1, 0)

    assert messages_in(reply(twilio, "111", sid=sid)) == []  # seen before

    assert events(db) == 1
    assert fresh(db, newer)[0].status is SurveyStatus.COMPLETED
    assert fresh(db, older)[0].status is SurveyStatus.SMS_SENT


def test_a_journaled_reply_in_words_reads_as_on_arrival(down, app, db) -> None:
    survey = sms_survey(db)

    messages_in(reply(down, "联系过了，没有解决，不满意"))
    drain_all(app)

    survey, _ = fresh(db, survey)
    assert (survey.responded, survey.solved, survey.satisfied) == (
        "yes",
        "not_solved",
        "dissatisfied",
    )
    assert survey.review is SurveyReview.PENDING


def test_a_journaled_stop_is_recorded_when_drained(down, app, db) -> None:
    survey = sms_survey(db)

    assert messages_in(reply(down, "退订")) == []
    messages_in(reply(down, "TD", from_number=OTHER_CALLER))  # no survey: honoured too
    assert drain_all(app) == (2, 0)

    survey, order = fresh(db, survey)
    assert survey.status is SurveyStatus.OPTED_OUT
    assert order.state is WorkOrderState.ANSWERED
    for number in (CALLER, OTHER_CALLER):
        preference = db.get_one(ContactPreference, number)
        assert preference.no_sms and preference.no_calls


def test_a_journaled_zero_means_no_more_survey_calls(down, app, db) -> None:
    survey = sms_survey(db)

    messages_in(reply(down, "0"))
    drain_all(app)

    assert fresh(db, survey)[0].status is SurveyStatus.OPTED_OUT
    preference = db.get_one(ContactPreference, CALLER)
    assert preference.no_calls and not preference.no_sms


def test_a_journaled_unreadable_reply_leaves_the_codes_for_a_live_one(
    down, twilio, app, db
) -> None:
    survey = sms_survey(db)
    order = fresh(db, survey)[1]

    messages_in(reply(down, "还行吧"))
    drain_all(app)
    assert events(db, "survey-sms-codes") == 0  # nobody was sent the codes

    assert messages_in(reply(twilio, "不知道")) == [survey_sms_text("zh", order.number)]
    assert events(db, "survey-sms-codes") == 1
    assert events(db) == 2
    assert fresh(db, survey)[0].status is SurveyStatus.SMS_SENT


def test_the_logs_of_a_journaled_reply_mask_the_number(down, app, db, caplog) -> None:
    sms_survey(db)
    caplog.set_level(logging.INFO)

    messages_in(reply(down, "111"))
    drain_all(app)

    assert "journaled" in caplog.text
    assert mask_number(CALLER) in caplog.text
    assert CALLER not in caplog.text
    assert CALLER[3:] not in caplog.text


# -- a delivery report ------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def sender(clock: Clock) -> RecordingSmsSender:
    return RecordingSmsSender(clock=clock)


def test_a_report_while_the_database_is_down_is_recorded_once_when_drained(
    down, app, db, settings, sessions, sender, clock
) -> None:
    message, sid = sent_row(db, sessions, sender, clock)

    first = report(down, message, sid, "delivered", token="token-delivered")
    again = report(down, message, sid, "delivered", token="token-delivered")

    for response in (first, again):
        assert response.status_code == 200 and response.mimetype == "text/xml"
        assert b"<Response/>" in response.data
    assert journaled(settings) == 2
    assert reports_stored(db) == 0
    assert drain_all(app) == (2, 0)
    report(down, message, sid, "delivered", token="token-delivered")
    assert drain_all(app) == (1, 0)

    delivered = row(db, message)
    assert (delivered.status, delivered.provider_status) == (SmsStatus.SENT, "delivered")
    assert reports_stored(db) == 1


def test_a_journaled_opted_out_report_marks_the_number(
    down, app, db, sessions, sender, clock
) -> None:
    message, sid = sent_row(db, sessions, sender, clock)
    waiting = outbox_row(db, "next", due=T0 + timedelta(days=1))

    assert report(down, message, sid, "undelivered", error=21610).status_code == 200
    drain_all(app)

    stopped = row(db, message)
    assert (stopped.status, stopped.error_code) == (SmsStatus.OPTED_OUT, 21610)
    assert db.get_one(ContactPreference, CITIZEN).opted_out_sms
    assert row(db, waiting).status is SmsStatus.CANCELLED
    assert reports_stored(db) == 1


def test_a_report_stored_live_and_journaled_again_is_recorded_once(
    down, twilio, app, db, sessions, sender, clock
) -> None:
    message, sid = sent_row(db, sessions, sender, clock)
    assert report(twilio, message, sid, "sent", token="token-sent").status_code == 200

    report(down, message, sid, "sent", token="token-sent")
    assert drain_all(app) == (1, 0)

    assert reports_stored(db) == 1
    assert row(db, message).provider_status == "sent"
