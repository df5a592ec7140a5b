"""The citizen's SMS reply to the survey's last-resort text (``POST /voice/sms-incoming``,
``tickets.survey_sms_replies``), on the real database: signed like every webhook, recorded
once by its MessageSid, the answers decided as a finished call's are (closed, or the
reviewer queue), the reply formats, STOP and "0", unknown numbers, retries, forgeries, and
an unreadable reply answered with the codes again once."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.sms_inbound import read_words
from tests.support.orders import (
    CALLER,
    ZONE,
    dispatched_order,
    import_demo_directory,
    liaison,
    shipped_clocks,
)
from tests.support.webhooks import ACCOUNT_SID, TwilioSender
from tickets import order_flow, survey_results
from tickets.calendar import WorkingCalendar
from tickets.db import utcnow
from tickets.models import (
    CallEvent,
    ClosedHow,
    ContactPreference,
    SmsMessage,
    SmsStatus,
    Survey,
    SurveyReview,
    SurveyStatus,
    WorkOrder,
    WorkOrderState,
)
from tickets.survey_schedule import SurveyRules
from tickets.survey_settling import SMS_TEXTS, give_up, survey_sms_text
from tickets.survey_sms_replies import CODES, ReplyKind, parse_reply
from tickets.surveys import SurveyPlan

ZJJ = "D-CGQ-ZJJ"
HOTLINE = "+868916312345"
STRANGER = "+8613900000009"
PLAN = SurveyPlan(rules=SurveyRules(), calendar=WorkingCalendar(zone=ZONE))


@pytest.fixture(autouse=True)
def directory(db: Session) -> None:
    import_demo_directory(db)


def sms_survey(
    db: Session, *, caller: str = CALLER, language: str = "zh", sent_ago=timedelta(hours=1)
) -> Survey:
    """An answered order whose survey calls ran out: the questions went by SMS
    (``survey_settling.give_up``), and the SMS went out ``sent_ago``."""
    order = dispatched_order(db, caller_number=caller, summary=f"垃圾没人清 {uuid.uuid4().hex}")
    order_flow.accept(order, actor=liaison(ZJJ), session=db, clocks=shipped_clocks())
    order_flow.answer(order, outcome="已清运", actor=liaison(ZJJ), session=db)
    survey = db.scalars(select(Survey).where(Survey.work_order_id == order.id)).one()
    survey.status, survey.attempts, survey.language = SurveyStatus.CALLING, 3, language
    db.flush()
    sent = utcnow() - sent_ago
    give_up(db, survey.id, sent, PLAN, [Survey.status == SurveyStatus.CALLING], why="test")
    db.commit()
    db.refresh(survey)
    assert survey.status is SurveyStatus.SMS_SENT and survey.sms_message_id is not None
    message = db.get_one(SmsMessage, survey.sms_message_id)
    message.status, message.sent_at = SmsStatus.SENT, sent
    message.provider_id = "SM" + uuid.uuid4().hex
    db.commit()
    return survey


def new_message_sid() -> str:
    return "SM" + uuid.uuid4().hex


def reply(
    twilio: TwilioSender,
    body: str,
    *,
    sid: str | None = None,
    from_number: str = CALLER,
    signature: str | None = None,
):
    sid = sid or new_message_sid()
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "SmsStatus": "received",
        "NumMedia": "0",
        "NumSegments": "1",
        "From": from_number,
        "To": HOTLINE,
        "Body": body,
    }
    return twilio.post("/voice/sms-incoming", params, signature=signature)


def messages_in(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/xml"
    text = response.get_data(as_text=True)
    assert "<Response" in text
    return re.findall(r"<Message>(.*?)</Message>", text, re.S)


def fresh(db: Session, survey: Survey) -> tuple[Survey, WorkOrder]:
    db.expire_all()
    found = db.get_one(Survey, survey.id)
    return found, db.get_one(WorkOrder, found.work_order_id)


def events(db: Session, kind: str = "sms-incoming") -> int:
    return db.scalar(select(func.count()).select_from(CallEvent).where(CallEvent.kind == kind))


# -- the reply decides as a finished call does ------------------------------------------------


def test_a_satisfied_reply_closes_the_order(twilio, db) -> None:
    survey = sms_survey(db)
    sid = new_message_sid()

    said = messages_in(reply(twilio, "111", sid=sid))

    survey, order = fresh(db, survey)
    assert survey.status is SurveyStatus.COMPLETED
    assert (survey.responded, survey.solved, survey.satisfied) == ("yes", "solved", "satisfied")
    assert survey.answered_call_sid == sid  # the message the answers came from
    assert survey.review is None
    assert (order.state, order.closed_how) == (WorkOrderState.CLOSED, ClosedHow.AFTER_CALLBACK)
    assert said == ["【12345热线】已收到您的回访答复，谢谢！"]
    assert events(db) == 1


def test_a_dissatisfied_reply_goes_to_the_reviewer(twilio, db) -> None:
    survey = sms_survey(db)

    said = messages_in(reply(twilio, "1 2 3"))

    survey, order = fresh(db, survey)
    assert survey.status is SurveyStatus.COMPLETED
    assert (survey.responded, survey.solved, survey.satisfied) == (
        "yes",
        "partly",
        "dissatisfied",
    )
    assert survey.review is SurveyReview.PENDING
    assert order.state is WorkOrderState.ANSWERED
    assert len(said) == 1


def test_an_english_survey_is_thanked_in_english(twilio, db) -> None:
    survey = sms_survey(db, language="en")

    said = messages_in(reply(twilio, "1,1,2"))

    assert said == ["12345 hotline: thank you, your answers are recorded."]
    survey, order = fresh(db, survey)
    assert survey.satisfied == "basically_satisfied"
    assert order.state is WorkOrderState.CLOSED


def test_the_newest_survey_of_the_number_is_answered(twilio, db) -> None:
    older = sms_survey(db, sent_ago=timedelta(days=2))
    newer = sms_survey(db, sent_ago=timedelta(hours=2))

    messages_in(reply(twilio, "111"))

    assert fresh(db, newer)[0].status is SurveyStatus.COMPLETED
    assert fresh(db, older)[0].status is SurveyStatus.SMS_SENT


def test_a_reply_after_the_window_answers_nothing(twilio, db) -> None:
    survey = sms_survey(db, sent_ago=timedelta(days=8))

    assert messages_in(reply(twilio, "111")) == []

    assert fresh(db, survey)[0].status is SurveyStatus.SMS_SENT
    assert events(db) == 1  # kept


# -- the reply formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("111", ("yes", "solved", "satisfied")),
        ("1 1 1", ("yes", "solved", "satisfied")),
        (" 1,2,3 ", ("yes", "partly", "dissatisfied")),
        ("1、3、3", ("yes", "not_solved", "dissatisfied")),
        ("2-3-3。", ("no", "not_solved", "dissatisfied")),
        ("１２３", ("yes", "partly", "dissatisfied")),
        ("１，１，２", ("yes", "solved", "basically_satisfied")),
        ("一一一", ("yes", "solved", "satisfied")),
        ("二 三 三", ("no", "not_solved", "dissatisfied")),
    ],
)
def test_digit_replies(text: str, codes: tuple[str, str, str]) -> None:
    parsed = parse_reply(text)

    assert parsed.kind is ReplyKind.ANSWERS
    assert tuple(parsed.answers[question] for question in survey_results.QUESTIONS) == codes


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("联系了，解决了，满意", ("yes", "solved", "satisfied")),
        ("没有联系 没解决 不满意", ("no", "not_solved", "dissatisfied")),
        ("联系过，部分解决，基本满意", ("yes", "partly", "basically_satisfied")),
        ("yes, solved, satisfied", ("yes", "solved", "satisfied")),
        ("no; not solved; dissatisfied", ("no", "not_solved", "dissatisfied")),
    ],
)
def test_replies_in_words(text: str, codes: tuple[str, str, str]) -> None:
    parsed = parse_reply(text, words=read_words)

    assert parsed.kind is ReplyKind.ANSWERS
    assert tuple(parsed.answers[question] for question in survey_results.QUESTIONS) == codes


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "11",
        "1111",
        "411",
        "333",
        "133 thanks",
        "13",
        "你们是谁",
        "满意",
        "1" * 200,
        "0 0",
    ],
)
def test_replies_that_cannot_be_read(text: str) -> None:
    assert parse_reply(text, words=read_words).kind is ReplyKind.UNREADABLE


@pytest.mark.parametrize("text", ["TD", "td", "T", "退订", "STOP", "Stop.", "unsubscribe", "ＴＤ"])
def test_stop_words(text: str) -> None:
    assert parse_reply(text).kind is ReplyKind.STOP


@pytest.mark.parametrize("text", ["0", " 0 ", "０", "零"])
def test_zero_is_no_more_surveys(text: str) -> None:
    assert parse_reply(text).kind is ReplyKind.NO_MORE_SURVEYS


@pytest.mark.parametrize("language", sorted(SMS_TEXTS))
def test_the_codes_are_the_ones_the_text_announces(language: str) -> None:
    text = survey_sms_text(language, "20261124-0001")
    example = re.search(r"(?:回复|reply )(\d{3})", text, re.I)
    assert example is not None
    assert parse_reply(example.group(1)).kind is ReplyKind.ANSWERS
    assert "回复0" in text or "Reply 0" in text
    for question, choices in CODES:
        assert set(choices.values()) == set(survey_results.ANSWERS[question])
        assert sorted(choices) == [str(n) for n in range(1, len(choices) + 1)]
    if language == "zh":  # the choices, as numbered in the text
        assert "1是 2否" in text
        assert "1已解决 2部分解决 3未解决" in text
        assert "1满意 2基本满意 3不满意" in text
    else:
        assert "1 yes 2 no" in text
        assert "1 solved 2 partly 3 not solved" in text
        assert "1 satisfied 2 basically 3 dissatisfied" in text


def test_a_full_width_reply_lands_through_the_webhook(twilio, db) -> None:
    survey = sms_survey(db)

    messages_in(reply(twilio, "１　１　１"))

    survey, order = fresh(db, survey)
    assert survey.status is SurveyStatus.COMPLETED
    assert order.state is WorkOrderState.CLOSED


def test_a_reply_in_words_lands_through_the_webhook(twilio, db) -> None:
    survey = sms_survey(db)

    messages_in(reply(twilio, "联系过了，没有解决，不满意"))

    survey, _ = fresh(db, survey)
    assert (survey.responded, survey.solved, survey.satisfied) == (
        "yes",
        "not_solved",
        "dissatisfied",
    )
    assert survey.review is SurveyReview.PENDING


# -- do not text, do not call ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["TD", "退订", "STOP"])
def test_stop_puts_the_number_off_texts_and_calls(twilio, db, text: str) -> None:
    survey = sms_survey(db)

    assert messages_in(reply(twilio, text)) == []

    survey, order = fresh(db, survey)
    assert survey.status is SurveyStatus.OPTED_OUT
    assert order.state is WorkOrderState.ANSWERED
    preference = db.get_one(ContactPreference, CALLER)
    assert preference.no_sms and preference.no_calls


def test_stop_from_a_number_without_a_survey_is_honoured(twilio, db) -> None:
    assert messages_in(reply(twilio, "退订", from_number=STRANGER)) == []

    preference = db.get_one(ContactPreference, STRANGER)
    assert preference.no_sms and preference.no_calls


def test_zero_means_no_more_survey_calls(twilio, db) -> None:
    survey = sms_survey(db)

    said = messages_in(reply(twilio, "0"))

    survey, order = fresh(db, survey)
    assert survey.status is SurveyStatus.OPTED_OUT
    assert order.state is WorkOrderState.ANSWERED
    preference = db.get_one(ContactPreference, CALLER)
    assert preference.no_calls and not preference.no_sms
    assert said == ["【12345热线】好的，今后不再回访您。谢谢！"]


# -- what is kept and ignored ------------------------------------------------------------------


def test_a_reply_from_an_unknown_number_is_kept_and_ignored(twilio, db) -> None:
    survey = sms_survey(db)

    assert messages_in(reply(twilio, "111", from_number=STRANGER)) == []

    assert fresh(db, survey)[0].status is SurveyStatus.SMS_SENT
    assert events(db) == 1
    assert db.get(ContactPreference, STRANGER) is None


@pytest.mark.parametrize("sender", ["", "anonymous", "client:alice", "12345"])
def test_a_reply_from_no_phone_number_is_kept(twilio, db, sender: str) -> None:
    sms_survey(db)

    assert messages_in(reply(twilio, "111", from_number=sender)) == []

    assert events(db) == 1


def test_a_retried_webhook_is_applied_once(twilio, db) -> None:
    survey = sms_survey(db)
    sid = new_message_sid()

    first = messages_in(reply(twilio, "123", sid=sid))
    again = messages_in(reply(twilio, "123", sid=sid))  # Twilio's retry: a new token

    assert len(first) == 1 and again == []
    assert events(db) == 1
    survey, _ = fresh(db, survey)
    assert survey.status is SurveyStatus.COMPLETED
    assert survey.review is SurveyReview.PENDING


def test_a_second_reply_changes_no_answer(twilio, db) -> None:
    survey = sms_survey(db)
    messages_in(reply(twilio, "233"))

    assert messages_in(reply(twilio, "111")) == []

    survey, order = fresh(db, survey)
    assert (survey.responded, survey.solved, survey.satisfied) == (
        "no",
        "not_solved",
        "dissatisfied",
    )
    assert order.state is WorkOrderState.ANSWERED
    assert events(db) == 2


def test_a_forged_reply_is_refused(twilio, db) -> None:
    survey = sms_survey(db)

    forged = reply(twilio, "111", signature="Zm9yZ2Vk")

    assert forged.status_code == 403
    assert fresh(db, survey)[0].status is SurveyStatus.SMS_SENT
    assert events(db) == 0


def test_a_reply_without_a_message_sid_is_answered_200(twilio, db) -> None:
    params = {"AccountSid": ACCOUNT_SID, "From": CALLER, "To": HOTLINE, "Body": "111"}

    assert messages_in(twilio.post("/voice/sms-incoming", params)) == []


def test_an_unreadable_reply_gets_the_codes_again_once(twilio, db) -> None:
    survey = sms_survey(db)
    order = db.get_one(WorkOrder, survey.work_order_id)

    first = messages_in(reply(twilio, "还行吧"))
    second = messages_in(reply(twilio, "不知道"))

    assert first == [survey_sms_text("zh", order.number)]
    assert second == []
    assert events(db) == 2
    assert events(db, "survey-sms-codes") == 1
    assert fresh(db, survey)[0].status is SurveyStatus.SMS_SENT  # still waiting

    messages_in(reply(twilio, "111"))  # a readable reply still counts

    survey, order = fresh(db, survey)
    assert survey.status is SurveyStatus.COMPLETED
    assert order.state is WorkOrderState.CLOSED


def test_two_replies_racing_decide_once(twilio, db) -> None:
    survey = sms_survey(db)
    start = threading.Barrier(2)
    said: dict[str, list[str]] = {}

    def send(text: str) -> None:
        start.wait()
        said[text] = messages_in(reply(twilio, text))

    threads = [threading.Thread(target=send, args=(text,)) for text in ("111", "233")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert events(db) == 2
    assert sorted(len(messages) for messages in said.values()) == [0, 1]  # one thanked
    winner = next(text for text, messages in said.items() if messages)
    survey, order = fresh(db, survey)
    assert survey.status is SurveyStatus.COMPLETED
    expected = {"111": ("yes", "solved", "satisfied"), "233": ("no", "not_solved", "dissatisfied")}
    assert (survey.responded, survey.solved, survey.satisfied) == expected[winner]
    assert (order.state is WorkOrderState.CLOSED) == (winner == "111")
