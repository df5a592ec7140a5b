"""Survey calls through Twilio's Calls API, and a console stand-in for development.

Both implement :class:`tickets.survey_calls.SurveyCaller`; callers see call SIDs,
:class:`PlacedCall` and :class:`CallFailure` only: no twilio or requests exception leaves
this module, and no phone number reaches a log line or an error message unmasked.

Twilio's synchronous error codes (the ones ``POST .../Calls.json`` answers with) map to a
:class:`CallFailureKind` in :data:`TWILIO_CALL_ERROR_KINDS`; a code not listed there is
judged by its HTTP status (:func:`twilio_call_failure_kind`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ivr.gateway import (
    CALL_STATUS_EVENTS,
    TWILIO_API_BASE_URL,
    quiet_twilio_http_logging,
    twilio_client,
)
from ivr.twilio_errors import (
    RetryAfterHttpClient,
    TwilioError,
    failure_kind,
    retry_after_of,
    translated,
)
from tickets.phones import mask_number
from tickets.survey_calls import CallFailure, CallFailureKind, PlacedCall

log = logging.getLogger(__name__)

_Kind = CallFailureKind
# Twilio's error codes for a call request (https://www.twilio.com/docs/api/errors/<code>).
TWILIO_CALL_ERROR_KINDS: dict[int, CallFailureKind] = {
    # The number cannot be called.
    21211: _Kind.INVALID_NUMBER,  # Invalid 'To' phone number
    21214: _Kind.INVALID_NUMBER,  # 'To' phone number cannot be reached
    21217: _Kind.INVALID_NUMBER,  # Phone number does not appear to be valid
    21401: _Kind.INVALID_NUMBER,  # Invalid phone number
    13223: _Kind.INVALID_NUMBER,  # Dial: invalid phone number format
    13224: _Kind.INVALID_NUMBER,  # Dial: invalid phone number (or one Twilio cannot call)
    # This call is refused, and would be again.
    21215: _Kind.REJECTED,  # Geo permissions do not allow calls to this destination
    21216: _Kind.REJECTED,  # Account not allowed to call premium numbers
    21219: _Kind.REJECTED,  # Trial account: 'To' number not verified
    # Nothing will be placed until an operator fixes credentials, account or configuration.
    20003: _Kind.AUTH,  # Permission denied / authenticate
    20005: _Kind.AUTH,  # Account not active
    10001: _Kind.AUTH,  # Account is not active (suspended)
    21210: _Kind.AUTH,  # 'From' phone number not verified
    21212: _Kind.AUTH,  # Invalid 'From' (caller id) number
    21213: _Kind.AUTH,  # 'From' phone number is required
    21205: _Kind.AUTH,  # Url is not a valid URL (PUBLIC_BASE_URL)
    # Try again later: never processed, safe to retry.
    20429: _Kind.RETRY,  # Too many requests
}


def twilio_call_failure_kind(code: int | None, status: int | None) -> CallFailureKind:
    """What the survey worker should do about Twilio error ``code`` / HTTP ``status``."""
    return failure_kind(
        code,
        status,
        TWILIO_CALL_ERROR_KINDS,
        retry=_Kind.RETRY,
        auth=_Kind.AUTH,
        rejected=_Kind.REJECTED,
    )


class TwilioSurveyCaller:
    """The production :class:`~tickets.survey_calls.SurveyCaller`. Create once and share."""

    def __init__(
        self,
        client: Client,
        *,
        ring_timeout_seconds: int = 30,
        find_page_size: int = 50,
        find_max_pages: int = 10,
    ) -> None:
        if not 5 <= ring_timeout_seconds <= 600:
            raise ValueError("ring_timeout_seconds must be between 5 and 600")
        if not 1 <= find_page_size <= 1000:
            raise ValueError("find_page_size must be between 1 and 1000")
        if find_max_pages < 1:
            raise ValueError("find_max_pages must be at least 1")
        self._client = client
        self._ring_timeout = ring_timeout_seconds
        self._page_size = find_page_size
        self._max_pages = find_max_pages
        quiet_twilio_http_logging()  # the list's query string carries the number

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
        ring_timeout_seconds: int = 30,
    ) -> TwilioSurveyCaller:
        """Credentials, base URL and timeout as for :func:`ivr.gateway.twilio_client`; the
        default HTTP client keeps the Retry-After of a 429."""
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
        return cls(client, ring_timeout_seconds=ring_timeout_seconds)

    @property
    def client(self) -> Client:
        """The underlying twilio Client (for contract tests)."""
        return self._client

    def place(
        self,
        *,
        to: str,
        from_: str,
        attempt_key: str,
        answer_url: str,
        status_url: str,
        machine_detection: bool,
    ) -> str:
        arguments: dict[str, Any] = {
            "to": to,
            "from_": from_,
            "url": answer_url,
            "method": "POST",
            "status_callback": status_url,
            "status_callback_method": "POST",
            "status_callback_event": list(CALL_STATUS_EVENTS),
            "timeout": self._ring_timeout,
        }
        if machine_detection:
            arguments["machine_detection"] = "Enable"
        with self._translated_errors("place", to=to, attempt_key=attempt_key, placing=True):
            call = self._client.calls.create(**arguments)
            if not call.sid:
                raise CallFailure(
                    "place failed: no call SID in the response",
                    kind=CallFailureKind.RETRY,
                    maybe_placed=True,
                )
        log.info(
            "survey call placed attempt=%s to=%s sid=%s status=%s",
            attempt_key,
            mask_number(to),
            call.sid,
            call.status,
        )
        return str(call.sid)

    def find_placed(self, *, to: str, since: datetime) -> list[PlacedCall]:
        """Twilio lists a number's calls newest first. No ``StartTime>`` filter: a call
        still queued at Twilio has no start time yet and would be missed, which is
        exactly the call a reconciliation must find. Pages are read until a call created
        before ``since``; more than ``find_max_pages`` pages: RETRY (inconclusive)."""
        if since.tzinfo is None or since.utcoffset() is None:
            raise ValueError("since must be timezone-aware")
        cutoff = since.astimezone(UTC)
        found: list[PlacedCall] = []
        with self._translated_errors("find_placed", to=to):
            page: Any = self._client.calls.page(to=to, page_size=self._page_size)
            pages = 0
            while page is not None:
                pages += 1
                older = False
                for call in page:
                    created = call.date_created
                    if created is not None and created < cutoff:
                        older = True
                        continue
                    if call.to == to and str(call.direction or "").startswith("outbound"):
                        found.append(
                            PlacedCall(
                                call_sid=str(call.sid),
                                status=str(call.status or ""),
                                start_time=call.start_time,
                                answered_by=call.answered_by,
                            )
                        )
                if older or not page.next_page_url:
                    break
                if pages >= self._max_pages:
                    raise CallFailure(
                        f"find_placed inconclusive: more than {self._max_pages} pages of calls",
                        kind=CallFailureKind.RETRY,
                    )
                page = page.next_page()
        found.reverse()  # oldest first
        log.info(
            "survey find_placed to=%s since=%s: %s",
            mask_number(to),
            cutoff.isoformat(),
            ", ".join(f"{c.call_sid} {c.status}" for c in found) or "none",
        )
        return found

    # -- errors -----------------------------------------------------------------------------

    @contextmanager
    def _translated_errors(
        self, operation: str, *, to: str, attempt_key: str | None = None, placing: bool = False
    ) -> Iterator[None]:
        def as_failure(error: TwilioError) -> CallFailure:
            return CallFailure(
                error.message,
                kind=_Kind.RETRY
                if error.transport
                else twilio_call_failure_kind(error.code, error.status),
                code=error.code,
                status=error.status,
                retry_after=None if error.transport else retry_after_of(self._client),
                maybe_placed=error.maybe_done,
            )

        try:
            with translated(operation, creating=placing, failure=as_failure, passes=CallFailure):
                yield
        except CallFailure as failure:
            level = logging.ERROR if failure.kind is CallFailureKind.AUTH else logging.WARNING
            log.log(
                level,
                "survey %s failed attempt=%s to=%s kind=%s code=%s status=%s maybe_placed=%s: %s",
                operation,
                attempt_key or "-",
                mask_number(to),
                failure.kind.value,
                failure.code,
                failure.status,
                failure.maybe_placed,
                failure,
            )
            raise


# ---------------------------------------------------------------------------------------------
# Development


@dataclass(frozen=True, slots=True)
class ConsoleCall:
    call_sid: str
    to: str
    from_: str
    attempt_key: str
    answer_url: str
    status_url: str
    at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


def console_call_sid(attempt_key: str) -> str:
    """``CA`` + 32 hex digits derived from the attempt key (34 characters, like a SID)."""
    return "CA" + hashlib.sha256(attempt_key.encode()).hexdigest()[:32]


@dataclass(eq=False)
class ConsoleSurveyCaller:
    """A :class:`~tickets.survey_calls.SurveyCaller` that only logs (number masked) and
    records; ``find_placed`` answers from what this process placed (all ``queued``)."""

    placed: list[ConsoleCall] = field(default_factory=list)
    clock: Callable[[], datetime] = _utc_now
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def place(
        self,
        *,
        to: str,
        from_: str,
        attempt_key: str,
        answer_url: str,
        status_url: str,
        machine_detection: bool,
    ) -> str:
        call = ConsoleCall(
            console_call_sid(attempt_key),
            to,
            from_,
            attempt_key,
            answer_url,
            status_url,
            self.clock(),
        )
        with self._lock:
            self.placed.append(call)
        log.info(
            "[console] would place survey call attempt=%s to=%s: sid=%s",
            attempt_key,
            mask_number(to),
            call.call_sid,
        )
        return call.call_sid

    def find_placed(self, *, to: str, since: datetime) -> list[PlacedCall]:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        with self._lock:
            calls = [c for c in self.placed if c.to == to and c.at >= since]
        return [PlacedCall(c.call_sid, "queued", None) for c in sorted(calls, key=lambda c: c.at)]
