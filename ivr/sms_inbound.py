"""Twilio's incoming-message webhook: ``POST /voice/sms-incoming`` (the number's "A message
comes in" setting).

The citizen's reply to the survey's last-resort SMS (``tickets.survey_sms_replies``).
Signed like every voice webhook (403 otherwise). Each message is recorded once in
``call_events`` (kind ``sms-incoming``, keyed by Twilio's MessageSid, so a retried delivery
is stored and applied once), and applied in the same transaction, after what the webhook
journal holds (``ivr.persist.store_or_journal``). The answer is always messaging TwiML: a short
thank-you in the citizen's language, the reply codes again (once per survey) for a reply
that cannot be read, or nothing. Never a 404 or a 5xx: Twilio does not retry an
incoming message, so while the database is unreachable the message is journaled and
answered with nothing (we cannot know the survey); the drain applies it later, as of its
arrival and once (``tickets.webhooks``), with the words read here on arrival.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from flask import Blueprint, Response, request
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.datastructures import MultiDict

from callflows import survey_speech
from ivr.events import form_snapshot
from ivr.persist import store_or_journal
from ivr.voice import require_twilio_signature
from tickets.db import utcnow
from tickets.phones import mask_number
from tickets.survey_sms_replies import words_in
from tickets.webhooks import SMS_INCOMING, StoredWebhook, incoming_sms_extra, store_incoming_sms

log = logging.getLogger(__name__)
bp = Blueprint("sms_inbound", __name__)
bp.before_request(require_twilio_signature)

SMS_INCOMING_PATH = "/voice/sms-incoming"
EVENT_KIND = SMS_INCOMING
MAX_BODY_CHARS = 1_600  # Twilio's longest message


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """Twilio's incoming-message form, parsed (its PascalCase stops here)."""

    message_sid: str
    from_number: str
    body: str

    @classmethod
    def parse(cls, form: MultiDict[str, str]) -> IncomingSms:
        return cls(
            message_sid=(form.get("MessageSid") or form.get("SmsSid") or "").strip()[:64],
            from_number=form.get("From", "").strip()[:64],
            body=form.get("Body", "")[:MAX_BODY_CHARS],
        )


# One reply in words, one answer a part: "联系了，解决了，满意" / "yes, solved, satisfied".
# Split on punctuation first ("not solved" is one answer), else on spaces.
_PUNCTUATION = re.compile(r"\s*[,.;/、，。；]+\s*")
_SPACES = re.compile(r"\s+")
_TABLES = (
    survey_speech.RESPONDED_WORDS,
    survey_speech.SOLVED_WORDS,
    survey_speech.SATISFIED_WORDS,
)


def read_words(text: str) -> tuple[str, str, str] | None:
    """The three codes of a reply in words (``callflows.survey_speech``'s tables), one
    answer per part; None unless there are exactly three parts, each understood."""
    parts = [part for part in _PUNCTUATION.split(text.strip()) if part]
    if len(parts) != len(_TABLES):
        parts = [part for part in _SPACES.split(text.strip()) if part]
    if len(parts) != len(_TABLES):
        return None
    codes = [
        survey_speech.answer_in(part, table) for part, table in zip(parts, _TABLES, strict=True)
    ]
    if any(code is None for code in codes):
        return None
    first, second, third = codes
    return first, second, third  # type: ignore[return-value]


def _answer(text: str | None = None) -> Response:
    twiml = MessagingResponse()
    if text:
        twiml.message(text)
    return Response(str(twiml), content_type="text/xml")


@bp.route(SMS_INCOMING_PATH, methods=["POST"])
def sms_incoming() -> Response:
    message = IncomingSms.parse(request.form)
    who = mask_number(message.from_number)
    if not message.message_sid:
        log.warning("incoming sms without a MessageSid from %s ignored", who)
        return _answer()
    try:
        result, journaled = store_or_journal(_webhook(message), store_incoming_sms)
    except Exception:
        log.exception("incoming sms %s from %s failed", message.message_sid, who)
        return _answer()
    if journaled:
        log.error(
            "database unavailable: sms %s from %s journaled, applied when it is back",
            message.message_sid,
            who,
        )
        return _answer()
    if result is None:
        log.info("incoming sms %s seen before: nothing changed", message.message_sid)
        return _answer()
    log.info(
        "incoming sms %s from %s: %s (survey %s)",
        message.message_sid,
        who,
        result.outcome.value,
        result.survey_id,
    )
    return _answer(result.reply)


def _webhook(message: IncomingSms) -> StoredWebhook:
    """The delivery, stored now or journaled: keyed by its MessageSid, with what it says."""
    this_request = request._get_current_object()  # type: ignore[attr-defined]
    return StoredWebhook(
        kind=EVENT_KIND,
        call_sid=None,
        params=form_snapshot(this_request.args, this_request.form),
        dedupe_key=f"{EVENT_KIND}:{message.message_sid}",
        received_at=utcnow().isoformat(),
        extra=incoming_sms_extra(
            message_sid=message.message_sid,
            from_number=message.from_number,
            body=message.body,
            words=words_in(message.body, read_words),
        ),
    )
