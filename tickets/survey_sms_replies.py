"""The citizen's SMS reply to the survey's last-resort text (issue 5, point 1).

When a survey's calls run out, ``tickets.survey_settling.give_up`` texts the three
questions with reply codes (``survey_sms_text``) and the survey is ``SMS_SENT``. A reply
comes back through Twilio's incoming-message webhook (``ivr.sms_inbound``, which records
it once, keyed by its MessageSid, in the same transaction); here it is read and applied:

- the survey it answers: the newest one in ``SMS_SENT`` whose SMS went to the reply's
  number (E.164) and went out within ``WINDOW``; none → the reply is kept (the event) and
  ignored;
- the codes the text announced: three digits, one per question ("111", "1 1 1", "1,2,3",
  full-width "１２３", Chinese numerals "一一一"), or, when the ``ivr`` edge gives a
  ``WordReader``, three answers in words ("联系了，解决了，满意"); "0" (announced: no
  more survey calls) → the survey is OPTED_OUT and the number on the do-not-call list;
- "TD" / "T" / "退订" / "STOP" (and Twilio's other opt-out words) → the number is neither
  texted nor called again (``ContactPreference.no_sms`` and ``no_calls``), whether a
  survey matches or not; a matching survey is OPTED_OUT;
- answers are stored and decided exactly as a finished call's are
  (``survey_results.record_answers`` then ``finish``): the survey is COMPLETED, the order
  closed or sent to review by the same rule; the reply's MessageSid stands where a call's
  CallSid would (``Survey.answered_call_sid``);
- a reply that cannot be read is answered with the codes again, at most once per survey
  (a ``call_events`` row keyed ``survey-sms-codes:<survey id>`` is the ledger).

A reply that came while the database was down is journaled by the edge and applied here
when the journal is drained (``tickets.webhooks``), as of its arrival time, with the words
the edge read on arrival (``words_in``): the same effect, except that nothing goes back
to the citizen (the webhook was answered long ago), so an unreadable reply then leaves
the codes-again ledger alone (``answering=False``).

Applying twice changes nothing: only a survey still in ``SMS_SENT`` is touched, under a
row lock. No Flask here; the caller owns the transaction (nothing is committed).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tickets import sms_outbox, survey_results
from tickets.events import record_event
from tickets.models import (
    SmsMessage,
    SmsPurpose,
    SmsStatus,
    Survey,
    SurveyStatus,
    WorkOrder,
)
from tickets.phones import CallerKind, parse_caller
from tickets.survey_settling import survey_sms_text

log = logging.getLogger(__name__)

WINDOW = timedelta(days=7)  # a reply later than this answers no survey
ACTOR = "system:sms-reply"  # who changes a number's preference on a reply
CODES_AGAIN_KIND = "survey-sms-codes"  # the ledger of "the codes again" (once per survey)

# The reply codes of ``survey_sms_text``, in the order of the three digits
# (tests/test_survey_sms_replies.py reads them back from the text).
CODES: tuple[tuple[str, Mapping[str, str]], ...] = (
    ("responded", {"1": "yes", "2": "no"}),
    ("solved", {"1": "solved", "2": "partly", "3": "not_solved"}),
    ("satisfied", {"1": "satisfied", "2": "basically_satisfied", "3": "dissatisfied"}),
)
NO_MORE_SURVEYS = "0"  # "回复0不再回访" / "Reply 0 for no more survey calls"
# Whole replies that mean "stop texting me": the Chinese carriers' convention (TD, T,
# 退订) and Twilio's standard opt-out keywords (Twilio itself blocks the number on them).
STOP_WORDS = frozenset(
    {"td", "t", "退订", "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout"}
)
MAX_REPLY_CHARS = 160  # a longer text is a letter, not a reply: not read

_SEPARATORS = re.compile(r"[\s,.;:/\\|\-_+、，。；：！!？?()（）\[\]【】\"'“”‘’]+")
_CHINESE_DIGITS = str.maketrans("〇零一幺二两三", "0011223")

THANKS: Mapping[str, str] = {
    "zh": "【12345热线】已收到您的回访答复，谢谢！",
    "en": "12345 hotline: thank you, your answers are recorded.",
}
NO_MORE_THANKS: Mapping[str, str] = {
    "zh": "【12345热线】好的，今后不再回访您。谢谢！",
    "en": "12345 hotline: OK, we will not call you for surveys again. Thank you.",
}


class WordReader(Protocol):
    """Reads the three answers in words (``ivr``'s, on ``callflows.survey_speech``): the
    three codes ("1", "2", "3" as announced), or None when it cannot tell them all."""

    def __call__(self, text: str) -> tuple[str, str, str] | None: ...


class ReplyKind(StrEnum):
    ANSWERS = "answers"
    NO_MORE_SURVEYS = "no_more_surveys"  # "0"
    STOP = "stop"  # TD / 退订 / STOP
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class ParsedReply:
    kind: ReplyKind
    answers: Mapping[str, str] = field(default_factory=dict)  # survey_results' names


class ReplyOutcome(StrEnum):
    """What ``apply_reply`` did."""

    ANSWERED = "answered"  # the survey is COMPLETED (``decision`` says closed or review)
    NO_MORE_SURVEYS = "no_more_surveys"  # the survey is OPTED_OUT, the number not called
    STOPPED = "stopped"  # the number is neither texted nor called again
    UNREADABLE = "unreadable"  # kept; the codes again once (``reply``)
    NO_SURVEY = "no_survey"  # no survey waits for a reply from this number: kept, ignored
    NOT_A_NUMBER = "not_a_number"  # From is no phone number: kept, ignored


@dataclass(frozen=True, slots=True)
class ReplyResult:
    outcome: ReplyOutcome
    survey_id: int | None = None
    decision: survey_results.Outcome | None = None
    reply: str | None = None  # the text to answer the citizen with, if any


def parse_reply(text: str, *, words: WordReader | None = None) -> ParsedReply:
    """What the reply says, by the codes the survey SMS announced."""
    normal = _normal(text)
    if not normal or len(normal) > MAX_REPLY_CHARS:
        return ParsedReply(ReplyKind.UNREADABLE)
    compact = _SEPARATORS.sub("", normal)
    if compact in STOP_WORDS:
        return ParsedReply(ReplyKind.STOP)
    digits = compact.translate(_CHINESE_DIGITS)
    if digits == NO_MORE_SURVEYS:
        return ParsedReply(ReplyKind.NO_MORE_SURVEYS)
    answers = _answers(tuple(digits)) if digits.isascii() and digits.isdigit() else None
    if answers is None and words is not None:
        codes = words_in(text, words)
        answers = _answers(codes) if codes is not None else None
    if answers is None:
        return ParsedReply(ReplyKind.UNREADABLE)
    return ParsedReply(ReplyKind.ANSWERS, answers)


def words_in(text: str, words: WordReader) -> tuple[str, str, str] | None:
    """The codes ``words`` reads in the reply, asked as ``parse_reply`` asks it; None when
    it cannot tell (or fails). The edge keeps them with a journaled reply, so that the
    reply reads later as it did on arrival."""
    normal = _normal(text)
    if not normal or len(normal) > MAX_REPLY_CHARS:
        return None
    try:
        return words(normal)
    except Exception:  # a reader's bug must not lose the reply: it is unreadable
        log.exception("reading a survey reply in words failed")
        return None


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip().lower()


def _answers(codes: tuple[str, ...]) -> dict[str, str] | None:
    if len(codes) != len(CODES):
        return None
    found = {}
    for code, (question, choices) in zip(codes, CODES, strict=True):
        if code not in choices:
            return None
        found[question] = choices[code]
    return found


def waiting_survey(
    session: Session, number: str, *, now: datetime, window: timedelta = WINDOW
) -> Survey | None:
    """The newest survey in SMS_SENT whose SMS went to ``number`` within ``window``."""
    went_out = func.coalesce(SmsMessage.sent_at, SmsMessage.updated_at)
    return session.scalar(
        select(Survey)
        .join(SmsMessage, SmsMessage.id == Survey.sms_message_id)
        .where(
            Survey.status == SurveyStatus.SMS_SENT,
            SmsMessage.purpose == SmsPurpose.SURVEY,
            SmsMessage.to_number == number,
            SmsMessage.status.in_((SmsStatus.SENT, SmsStatus.SENDING)),
            went_out >= now - window,
        )
        .order_by(went_out.desc(), Survey.id.desc())
        .limit(1)
    )


def apply_reply(
    session: Session,
    *,
    message_sid: str,
    from_number: str | None,
    body: str,
    now: datetime,
    default_region: str = "CN",
    words: WordReader | None = None,
    window: timedelta = WINDOW,
    answering: bool = True,
) -> ReplyResult:
    """Apply the citizen's reply ``body`` from ``from_number`` (Twilio's ``From``), which
    arrived at ``now``.

    The caller has recorded the webhook once (this is for its first delivery), and owns
    the transaction. ``answering``: the result's ``reply`` is sent back (the webhook's
    answer); False when the reply is applied from the journal, after its webhook was
    answered: an unreadable reply then does not count as answered with the codes."""
    caller = parse_caller(from_number, default_region)
    if caller.kind is not CallerKind.NUMBER or caller.number is None:
        log.info("sms reply %s from no phone number: kept, ignored", message_sid)
        return ReplyResult(ReplyOutcome.NOT_A_NUMBER)
    number = caller.number
    parsed = parse_reply(body, words=words)
    found = waiting_survey(session, number, now=now, window=window)
    survey = _locked(session, found) if found is not None else None

    if parsed.kind is ReplyKind.STOP:
        if survey is not None:
            survey_results.finish(session, survey, opted_out=True, at=now)
        sms_outbox.set_preference(
            number,
            session=session,
            actor=ACTOR,
            reason=f"replied {body.strip()[:20]!r} by SMS ({message_sid})",
            no_sms=True,
            no_calls=True,
        )
        log.info("sms reply %s: the number asked for no texts and no calls", message_sid)
        return ReplyResult(ReplyOutcome.STOPPED, survey.id if survey else None)

    if survey is None:
        log.info("sms reply %s (%s) answers no waiting survey: kept", message_sid, parsed.kind)
        return ReplyResult(ReplyOutcome.NO_SURVEY)

    if parsed.kind is ReplyKind.NO_MORE_SURVEYS:
        survey_results.finish(session, survey, opted_out=True, at=now)
        return ReplyResult(
            ReplyOutcome.NO_MORE_SURVEYS, survey.id, reply=_text(NO_MORE_THANKS, survey)
        )

    if parsed.kind is ReplyKind.UNREADABLE and not answering:
        log.info("sms reply %s to survey %s unreadable (no answer now)", message_sid, survey.id)
        return ReplyResult(ReplyOutcome.UNREADABLE, survey.id)

    if parsed.kind is ReplyKind.UNREADABLE:
        again = record_event(
            session=session,
            kind=CODES_AGAIN_KIND,
            call_sid=None,
            params={"survey_id": str(survey.id), "message_sid": message_sid},
            dedupe_key=f"{CODES_AGAIN_KIND}:{survey.id}",
            received_at=now,
        )
        log.info(
            "sms reply %s to survey %s unreadable: %s",
            message_sid,
            survey.id,
            "the codes again" if again else "the codes were sent again before",
        )
        order = session.get_one(WorkOrder, survey.work_order_id)
        codes = survey_sms_text(survey.language, order.number) if again else None
        return ReplyResult(ReplyOutcome.UNREADABLE, survey.id, reply=codes)

    survey_results.record_answers(session, survey, parsed.answers, call_sid=message_sid, at=now)
    decision = survey_results.finish(session, survey, opted_out=False, at=now)
    log.info("sms reply %s to survey %s: %s", message_sid, survey.id, decision.value)
    return ReplyResult(ReplyOutcome.ANSWERED, survey.id, decision, reply=_text(THANKS, survey))


def _locked(session: Session, survey: Survey) -> Survey | None:
    """The survey, locked as the voice edge and the settling lock it, still waiting."""
    locked = session.get(Survey, survey.id, with_for_update=True, populate_existing=True)
    if locked is None or locked.status is not SurveyStatus.SMS_SENT:
        return None
    return locked


def _text(texts: Mapping[str, str], survey: Survey) -> str:
    return texts.get(survey.language, texts["zh"])  # no Tibetan SMS: Chinese
