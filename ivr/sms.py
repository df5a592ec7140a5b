"""SMS through Twilio's Messages API, and a console stand-in for development.

Both implement :class:`tickets.sms_sender.SmsSender`; callers see :class:`SentSms` and
:class:`SmsFailure` only: no twilio or requests exception leaves this module, and no phone
number reaches a log line or an error message unmasked.

Twilio's synchronous error codes (the ones ``POST .../Messages.json`` answers with) map to a
:class:`SmsFailureKind` in :data:`TWILIO_ERROR_KINDS`; a code not listed there is judged by
its HTTP status (:func:`twilio_failure_kind`). Delivery failures reported later by the status
callback (30xxx) are not this module's business.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ivr.gateway import TWILIO_API_BASE_URL, quiet_twilio_http_logging, twilio_client
from ivr.twilio_errors import (
    RetryAfterHttpClient,
    TwilioError,
    failure_kind,
    retry_after_of,
    translated,
)
from tickets.phones import mask_number
from tickets.sms_sender import (
    SentSms,
    SmsFailure,
    SmsFailureKind,
    check_outgoing,
    check_reference,
    check_since,
)

log = logging.getLogger(__name__)

SMS_STATUS_PATH = "/voice/sms-status"  # the status callback; ``?ref=<reference>`` names the row
TRIAL_PREFIX = "Sent from your Twilio trial account - "  # what a trial account prepends
_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

_Kind = SmsFailureKind
# Twilio's error codes for a message request (https://www.twilio.com/docs/api/errors/<code>).
TWILIO_ERROR_KINDS: dict[int, SmsFailureKind] = {
    # The recipient replied STOP to this sender.
    21610: _Kind.OPTED_OUT,  # Attempt to send to unsubscribed recipient
    # The number itself cannot take an SMS.
    21211: _Kind.INVALID_NUMBER,  # Invalid 'To' phone number
    21614: _Kind.INVALID_NUMBER,  # 'To' number is not a valid mobile number
    21635: _Kind.INVALID_NUMBER,  # 'To' number cannot be a landline
    21268: _Kind.INVALID_NUMBER,  # Premium rate or information service number
    # This text (or this destination for this account) is refused, and would be again.
    21602: _Kind.REJECTED,  # Message body is required
    21619: _Kind.REJECTED,  # A message body, media URL or content SID is required
    21617: _Kind.REJECTED,  # Concatenated body exceeds the 1600 character limit
    21658: _Kind.REJECTED,  # Parameter exceeded character limit
    21266: _Kind.REJECTED,  # 'To' and 'From' numbers cannot be the same
    21408: _Kind.REJECTED,  # Destination region not enabled (Messaging Geo Permissions)
    21608: _Kind.REJECTED,  # Trial account: 'To' number not verified
    21612: _Kind.REJECTED,  # Cannot route this combination of 'To' and 'From'
    21606: _Kind.REJECTED,  # 'From' not message-capable for this destination/account
    21659: _Kind.REJECTED,  # 'From' not a Twilio number, or short code country mismatch
    # Nothing will go out until an operator fixes credentials, account or sender.
    20003: _Kind.AUTH,  # Permission denied / authenticate
    20005: _Kind.AUTH,  # Account not active
    10001: _Kind.AUTH,  # Account is not active (suspended)
    21601: _Kind.AUTH,  # 'From' is not an SMS-capable number of this account
    21603: _Kind.AUTH,  # A 'From' or 'MessagingServiceSid' parameter is required
    21660: _Kind.AUTH,  # 'From' number does not belong to the account
    # Try again later.
    20429: _Kind.RETRY,  # Too many requests (never processed: safe to retry)
    21611: _Kind.RETRY,  # 'From' has exceeded the maximum number of queued messages
}
# HTTP statuses that a later identical request may not get.


def twilio_failure_kind(code: int | None, status: int | None) -> SmsFailureKind:
    """What the outbox should do about Twilio error ``code`` / HTTP ``status``."""
    return failure_kind(
        code,
        status,
        TWILIO_ERROR_KINDS,
        retry=_Kind.RETRY,
        auth=_Kind.AUTH,
        rejected=_Kind.REJECTED,
    )


def status_callback_url(public_base_url: str, reference: str) -> str:
    """``<public_base_url>/voice/sms-status?ref=<reference>``, the reference URL-encoded."""
    return f"{public_base_url.rstrip('/')}{SMS_STATUS_PATH}?{urlencode({'ref': reference})}"


class TwilioSmsSender:
    """The production :class:`~tickets.sms_sender.SmsSender`. Create once and share.

    Sends from ``from_number`` or through ``messaging_service_sid`` (exactly one). With a
    ``public_base_url``, each message asks for delivery reports at
    ``<public_base_url>/voice/sms-status?ref=<reference>``.
    """

    def __init__(
        self,
        client: Client,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        public_base_url: str | None = None,
        find_sent_page_size: int = 100,
        find_sent_max_pages: int = 20,
        clock_skew: timedelta = timedelta(minutes=2),
    ) -> None:
        from_number = (from_number or "").strip() or None
        messaging_service_sid = (messaging_service_sid or "").strip() or None
        if (from_number is None) == (messaging_service_sid is None):
            raise ValueError("give exactly one of from_number and messaging_service_sid")
        if messaging_service_sid and not _MESSAGING_SERVICE_SID.match(messaging_service_sid):
            raise ValueError("messaging_service_sid must look like MG followed by 32 hex digits")
        if public_base_url is not None:
            parts = urlsplit(public_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("public_base_url must be an absolute http(s) URL")
            if parts.query or parts.fragment:
                raise ValueError("public_base_url must not have a query or fragment")
            public_base_url = public_base_url.rstrip("/")
        if not 1 <= find_sent_page_size <= 1000:
            raise ValueError("find_sent_page_size must be between 1 and 1000")
        if find_sent_max_pages < 1:
            raise ValueError("find_sent_max_pages must be at least 1")
        if clock_skew < timedelta(0):
            raise ValueError("clock_skew must not be negative")
        self._client = client
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self._public_base_url = public_base_url
        self._page_size = find_sent_page_size
        self._max_pages = find_sent_max_pages
        self._clock_skew = clock_skew
        quiet_twilio_http_logging()  # find_sent's query string carries the number

    @classmethod
    def from_settings(
        cls,
        *,
        account_sid: str,
        auth_token: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        api_base_url: str = TWILIO_API_BASE_URL,
        timeout_seconds: float = 10.0,
        http_client: TwilioHttpClient | None = None,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        public_base_url: str | None = None,
    ) -> TwilioSmsSender:
        """Credentials, base URL and timeout as for :func:`ivr.gateway.twilio_client`.

        The default HTTP client is a :class:`RetryAfterHttpClient`; another ``http_client``
        works too, but then failures carry no ``retry_after``.
        """
        if http_client is None:
            http_client = RetryAfterHttpClient(api_base_url, timeout=timeout_seconds)
        client = twilio_client(
            account_sid=account_sid,
            auth_token=auth_token,
            api_key=api_key,
            api_secret=api_secret,
            api_base_url=api_base_url,
            timeout_seconds=timeout_seconds,
            http_client=http_client,
        )
        return cls(
            client,
            from_number=from_number,
            messaging_service_sid=messaging_service_sid,
            public_base_url=public_base_url,
        )

    @property
    def client(self) -> Client:
        """The underlying twilio Client (for contract tests; application code uses the methods)."""
        return self._client

    # -- sending ---------------------------------------------------------------------------

    def send(self, *, to: str, body: str, reference: str) -> SentSms:
        check_reference(reference)
        try:
            check_outgoing(to=to, body=body)
        except SmsFailure as failure:
            self._log_failure("send", reference, to, failure)
            raise
        arguments: dict[str, Any] = {"to": to, "body": body}
        if self._from_number is not None:
            arguments["from_"] = self._from_number
        else:
            arguments["messaging_service_sid"] = self._messaging_service_sid
        if self._public_base_url is not None:
            arguments["status_callback"] = status_callback_url(self._public_base_url, reference)
        with self._translated_errors("send", reference=reference, to=to, sending=True):
            message = self._client.messages.create(**arguments)
            if not message.sid:
                raise SmsFailure(
                    "send failed: no message SID in the response",
                    kind=SmsFailureKind.RETRY,
                    maybe_sent=True,
                )
        sent = SentSms(provider_id=message.sid, status=str(message.status or "queued"))
        log.info(
            "sms sent ref=%s to=%s sid=%s status=%s segments=%s",
            reference,
            mask_number(to),
            sent.provider_id,
            sent.status,
            message.num_segments,
        )
        return sent

    # -- reconciliation ----------------------------------------------------------------------

    def find_sent(self, *, to: str, body: str, since: datetime) -> SentSms | None:
        """List the Messages sent to ``to`` on or after ``since``'s day (Twilio's ``DateSent``
        filter takes a GMT date), keep outbound ones created at or after ``since`` minus the
        allowed clock skew whose body is ``body``, and return the most recent.

        A message still queued at Twilio may have no ``DateSent`` yet and not be listed:
        reconcile a few minutes after the attempt, and let the status callback (which names
        the reference) settle the rest. Raises SmsFailure (RETRY) when more than
        ``find_sent_max_pages`` pages match: an answer from part of the list would be a guess.
        """
        cutoff = check_since(since).astimezone(UTC) - self._clock_skew
        best: Any = None
        pages = 0
        with self._translated_errors("find_sent", to=to):
            page: Any = self._client.messages.page(
                to=to,
                date_sent_after=cutoff.date().isoformat(),  # sent as DateSent>=YYYY-MM-DD
                page_size=self._page_size,
            )
            while page is not None:
                pages += 1
                for message in page:
                    if _is_the_text(message, to=to, body=body, cutoff=cutoff) and (
                        best is None or _created(message) > _created(best)
                    ):
                        best = message
                if pages >= self._max_pages and page.next_page_url:
                    raise SmsFailure(
                        f"find_sent inconclusive: more than {self._max_pages} pages of messages",
                        kind=SmsFailureKind.RETRY,
                    )
                page = page.next_page()
        if best is None:
            log.info("sms find_sent to=%s since=%s: none", mask_number(to), cutoff.isoformat())
            return None
        found = SentSms(provider_id=best.sid, status=str(best.status or ""))
        log.info(
            "sms find_sent to=%s since=%s: sid=%s status=%s",
            mask_number(to),
            cutoff.isoformat(),
            found.provider_id,
            found.status,
        )
        return found

    # -- errors -----------------------------------------------------------------------------

    @contextmanager
    def _translated_errors(
        self, operation: str, *, to: str, reference: str | None = None, sending: bool = False
    ) -> Iterator[None]:
        def as_failure(error: TwilioError) -> SmsFailure:
            return SmsFailure(
                error.message,
                kind=_Kind.RETRY
                if error.transport
                else twilio_failure_kind(error.code, error.status),
                code=error.code,
                status=error.status,
                retry_after=None if error.transport else retry_after_of(self._client),
                maybe_sent=error.maybe_done,
            )

        try:
            with translated(operation, creating=sending, failure=as_failure, passes=SmsFailure):
                yield
        except SmsFailure as failed:
            self._log_failure(operation, reference, to, failed)
            raise

    @staticmethod
    def _log_failure(operation: str, reference: str | None, to: str, failure: SmsFailure) -> None:
        level = logging.ERROR if failure.kind is SmsFailureKind.AUTH else logging.WARNING
        log.log(
            level,
            "sms %s failed ref=%s to=%s kind=%s code=%s status=%s retry_after=%s maybe_sent=%s: %s",
            operation,
            reference or "-",
            mask_number(to),
            failure.kind.value,
            failure.code,
            failure.status,
            failure.retry_after,
            failure.maybe_sent,
            failure,
        )


def _created(message: Any) -> datetime:
    return message.date_created or message.date_sent or datetime.min.replace(tzinfo=UTC)


def _same_body(listed: str | None, body: str) -> bool:
    if listed is None:
        return False
    listed, body = listed.strip(), body.strip()
    return listed == body or listed == TRIAL_PREFIX + body


def _is_the_text(message: Any, *, to: str, body: str, cutoff: datetime) -> bool:
    if message.to != to or not str(message.direction or "").startswith("outbound"):
        return False
    if not _same_body(message.body, body):
        return False
    created = message.date_created or message.date_sent
    # Without a date the DateSent filter is all there is to go by: count it as a match.
    return created is None or created >= cutoff


# ---------------------------------------------------------------------------------------------
# Development


@dataclass(frozen=True, slots=True)
class ConsoleSms:
    provider_id: str
    to: str
    body: str
    reference: str
    at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


def console_provider_id(reference: str) -> str:
    """``SMconsole`` + 25 hex digits derived from ``reference`` (34 characters, like a SID)."""
    return "SMconsole" + hashlib.sha256(reference.encode()).hexdigest()[:25]


@dataclass(eq=False)
class ConsoleSmsSender:
    """An :class:`~tickets.sms_sender.SmsSender` that only logs (number masked) and records.

    ``find_sent`` answers from what this process sent.
    """

    sent: list[ConsoleSms] = field(default_factory=list)
    clock: Callable[[], datetime] = _utc_now
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, *, to: str, body: str, reference: str) -> SentSms:
        check_reference(reference)
        check_outgoing(to=to, body=body)
        record = ConsoleSms(console_provider_id(reference), to, body, reference, self.clock())
        with self._lock:
            self.sent.append(record)
        log.info(
            "[console] would send sms ref=%s to=%s (%d characters): sid=%s",
            reference,
            mask_number(to),
            len(body),
            record.provider_id,
        )
        return SentSms(provider_id=record.provider_id, status="queued")

    def find_sent(self, *, to: str, body: str, since: datetime) -> SentSms | None:
        check_since(since)
        with self._lock:
            matches = [s for s in self.sent if s.to == to and s.body == body and s.at >= since]
        if not matches:
            return None
        latest = max(matches, key=lambda s: s.at)
        return SentSms(provider_id=latest.provider_id, status="queued")
