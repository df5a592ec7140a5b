"""Reading what went wrong with a Twilio REST request, for the outbound senders.

twilio-python and requests raise half a dozen exception types, some carrying Twilio's
error code, some only an HTTP status, some neither. ``read_error`` turns any of them into
one :class:`TwilioError`: the code, the status, a message with every number masked, and
whether the request may have been acted on anyway (a 5xx, a read timeout or a dropped
connection can come after Twilio created the call or the message: the caller must look
before it tries again). ``failure_kind`` judges a code and status against a sender's own
table of Twilio error codes. ``ivr.sms`` and ``ivr.survey_caller`` build their failures
from these; no twilio or requests exception leaves them.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.response import Response

from ivr.gateway import TWILIO_API_BASE_URL, BaseUrlHttpClient, scrub_numbers

Kind = TypeVar("Kind")
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


@dataclass(frozen=True, slots=True)
class TwilioError:
    """A failed request. ``transport``: no HTTP answer to judge (timeout, dropped
    connection, a body that is not JSON): always worth a retry. ``maybe_done``: Twilio may
    have acted on it (only ever True for a request that creates something)."""

    message: str
    code: int | None = None
    status: int | None = None
    transport: bool = False
    maybe_done: bool = False


def failure_kind(
    code: int | None,
    status: int | None,
    table: Mapping[int, Kind],
    *,
    retry: Kind,
    auth: Kind,
    rejected: Kind,
) -> Kind:
    """A Twilio error code in ``table`` decides; otherwise the HTTP status: 5xx and the
    transient 4xx are ``retry``, 401/403/404 (credentials, account, base URL) ``auth``,
    any other 4xx ``rejected``."""
    if code is not None and code in table:
        return table[code]
    if status is None or status >= 500 or status in TRANSIENT_STATUSES:
        return retry
    if status in (401, 403, 404):
        return auth
    if status >= 400:
        return rejected
    return retry


def read_error(exc: BaseException, operation: str, *, creating: bool) -> TwilioError | None:
    """What ``exc`` says about the request; None when it is not a Twilio or HTTP error."""
    if isinstance(exc, TwilioRestException):
        return _answered(operation, _int_code(exc.code), exc.status, exc.msg, creating)
    if isinstance(exc, TwilioServiceException):
        return _answered(
            operation, _int_code(exc.code), exc.status, exc.detail or exc.title, creating
        )
    if isinstance(exc, requests.ConnectTimeout):  # never reached the provider
        return TwilioError(
            _scrub(f"{operation} failed: {type(exc).__name__}: {exc}"), transport=True
        )
    if isinstance(exc, requests.RequestException):
        # A read timeout or a dropped connection may come after Twilio acted.
        message = _scrub(f"{operation} failed: {type(exc).__name__}: {exc}")
        return TwilioError(message, transport=True, maybe_done=creating)
    if isinstance(exc, json.JSONDecodeError):  # a 2xx that is not JSON (proxy, wrong base URL)
        return TwilioError(
            f"{operation} failed: response is not JSON", transport=True, maybe_done=creating
        )
    if isinstance(exc, TwilioException):
        return _page_error(exc, operation) or TwilioError(
            _scrub(f"{operation} failed: {exc}"), transport=True, maybe_done=creating
        )
    return None


@contextmanager
def translated(
    operation: str,
    *,
    creating: bool,
    failure: Callable[[TwilioError], Exception],
    passes: type[Exception],
) -> Iterator[None]:
    """Raise ``failure(error)`` in place of any Twilio or HTTP error (unchained: the
    original message may carry numbers); ``passes`` (the sender's own failure) goes
    through as it is."""
    try:
        yield
    except passes:
        raise
    except (TwilioException, requests.RequestException, json.JSONDecodeError) as exc:
        error = read_error(exc, operation, creating=creating)
        if error is None:  # pragma: no cover - every type caught here is read
            raise
        raise failure(error) from None


def _answered(
    operation: str, code: int | None, status: int | None, detail: Any, creating: bool
) -> TwilioError:
    return TwilioError(
        _scrub(f"{operation} failed: HTTP {status}, code {code}: {detail}"),
        code=code,
        status=status,
        maybe_done=creating and (status is None or status >= 500),  # a 4xx never acted
    )


def _page_error(exc: TwilioException, operation: str) -> TwilioError | None:
    """twilio raises ``TwilioException("Unable to fetch page", response)`` for a failed
    list page (no status, no code): read them from the response."""
    response = exc.args[1] if len(exc.args) > 1 else None
    if not isinstance(response, Response):
        return None
    code, detail = None, exc.args[0]
    try:
        payload = json.loads(response.text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        code = _int_code(payload.get("code"))
        detail = payload.get("message") or payload.get("detail") or detail
    return _answered(operation, code, response.status_code, detail, creating=False)


def _scrub(text: str) -> str:
    """Mask numbers in ``text``, including URL-encoded ones (``To=%2B86...`` in a query)."""
    return scrub_numbers(re.sub("%2[Bb]", "+", text))


def _int_code(value: Any) -> int | None:
    # twilio-python puts the HTTP status into ``code`` when the body has no Twilio code.
    return value if isinstance(value, int) and value >= 10000 else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return max(0.0, seconds)


class RetryAfterHttpClient(BaseUrlHttpClient):
    """A :class:`BaseUrlHttpClient` that remembers, per thread, the last response's headers,
    so that an error can carry the provider's Retry-After (twilio's exceptions drop headers)."""

    def __init__(self, base_url: str = TWILIO_API_BASE_URL, timeout: float | None = None):
        super().__init__(base_url, timeout=timeout)
        self._last = threading.local()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self._last.headers = None
        response = super().request(method, url, *args, **kwargs)
        self._last.headers = response.headers
        return response

    def last_header(self, name: str) -> str | None:
        headers = getattr(self._last, "headers", None)
        if not headers:
            return None
        value = headers.get(name)
        return str(value) if value is not None else None

    def retry_after(self) -> float | None:
        """The last response's Retry-After, in seconds."""
        return parse_retry_after(self.last_header("Retry-After"))


def retry_after_of(client: Any) -> float | None:
    """The Retry-After of ``client``'s last response, when its HTTP client keeps it."""
    http_client = getattr(client, "http_client", None)
    return http_client.retry_after() if isinstance(http_client, RetryAfterHttpClient) else None
