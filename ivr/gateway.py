"""Call control through Twilio's REST API, and a console stand-in for development and tests.

Callers depend on :class:`CallGateway` and :class:`GatewayError` only; no twilio or requests
exception leaves this module. The conference operations (Participants and Conferences APIs)
live in :mod:`ivr.gateway_conference` and are mixed into both gateways here.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from ivr.gateway_conference import (
    AddedParticipant,
    ConferenceGateway,
    ConsoleConferenceOperations,
    HoldChange,
    RemovedParticipant,
    TwilioConferenceOperations,
)
from tickets.phones import mask_number

# A staff member's announcement before joining a room (e.g. whom a callback is for).
ANNOUNCEMENT_VOICE, ANNOUNCEMENT_LANGUAGE = "Polly.Zhiyu", "cmn-CN"

log = logging.getLogger(__name__)

TWILIO_API_BASE_URL = "https://api.twilio.com"
CALL_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
TWILIO_HTTP_LOGGER = "twilio.http_client"  # logs request URLs (and numbers in them) at INFO

_NOT_FOUND_CODE = 20404
_TOO_MANY_REQUESTS_CODE = 20429
_PHONE_LIKE = re.compile(r"(?<![\w+])\+?\d{7,15}(?!\w)")


class GatewayError(Exception):
    """A call-control request failed. ``retryable``: the same request may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code  # Twilio error code (e.g. 21211), when the API gave one
        self.status = status  # HTTP status, when there was a response
        self.retryable = retryable


class CallNotFound(GatewayError):
    """The call SID is unknown to the provider (Twilio 20404 / HTTP 404)."""


class ParticipantGone(CallNotFound):
    """Twilio 20404 on a conference operation: the participant (or the whole conference) had
    already left. Expected in a live call; the edge turns it into the state machine's
    ``ParticipantGone`` event."""


class GatewayUnavailable(GatewayError):
    """The provider could not be reached or asked us to slow down; always retryable.

    A read timeout on ``join_conference`` may still have placed the call: retry with care.
    """

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None):
        super().__init__(message, code=code, status=status, retryable=True)


class CallGateway(ConferenceGateway, Protocol):
    def join_conference(
        self,
        *,
        to_number: str,
        from_number: str,
        room: str,
        label: str,
        status_callback_url: str,
        start_conference_on_enter: bool = True,
        end_conference_on_exit: bool = False,
        ring_timeout_seconds: int = 30,
        announcement: str | None = None,
    ) -> str:
        """Call ``to_number`` into conference ``room``; return the new call's SID.
        ``announcement`` is spoken (Mandarin) to whoever answers, before they join."""
        ...

    def redirect_call(self, call_sid: str, url: str) -> None:
        """Make a live call fetch new TwiML from ``url`` (POST)."""
        ...

    def hang_up(self, call_sid: str) -> None:
        """End a live call."""
        ...


def conference_twiml(
    *,
    room: str,
    label: str,
    start_conference_on_enter: bool,
    end_conference_on_exit: bool,
    announcement: str | None = None,
) -> str:
    """TwiML that puts the answered call into conference ``room`` as participant ``label``,
    after ``announcement`` (Mandarin text-to-speech) when there is one."""
    response = VoiceResponse()
    if announcement:
        response.say(announcement, voice=ANNOUNCEMENT_VOICE, language=ANNOUNCEMENT_LANGUAGE)
    dial = response.dial()
    dial.conference(
        room,
        participant_label=label,
        beep=False,
        start_conference_on_enter=start_conference_on_enter,
        end_conference_on_exit=end_conference_on_exit,
    )
    return str(response)


def scrub_numbers(text: str) -> str:
    """Mask phone numbers that Twilio echoes in error messages (e.g. 21211)."""
    return _PHONE_LIKE.sub(lambda match: mask_number(match.group()), text)


def _from_twilio(
    exc: TwilioRestException | TwilioServiceException,
    operation: str,
    not_found: type[CallNotFound] = CallNotFound,
) -> GatewayError:
    status = exc.status
    # twilio-python puts the HTTP status into ``code`` when the body has no Twilio code.
    code = exc.code if isinstance(exc.code, int) and exc.code >= 10000 else None
    detail = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
    message = scrub_numbers(f"{operation} failed: HTTP {status}, code {code}: {detail}")
    if code == _NOT_FOUND_CODE or status == 404:
        return not_found(message, code=code, status=status)
    if code == _TOO_MANY_REQUESTS_CODE or status == 429 or (status is not None and status >= 500):
        return GatewayUnavailable(message, code=code, status=status)
    return GatewayError(message, code=code, status=status)


@contextmanager
def _translated_errors(
    operation: str, not_found: type[CallNotFound] = CallNotFound
) -> Iterator[None]:
    try:
        yield
    except (TwilioRestException, TwilioServiceException) as exc:
        # ``from None``: the original message may carry unmasked phone numbers.
        raise _from_twilio(exc, operation, not_found) from None
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise GatewayUnavailable(f"{operation} failed: {type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:
        raise GatewayError(f"{operation} failed: {type(exc).__name__}: {exc}") from exc
    except json.JSONDecodeError as exc:  # a 2xx that is not JSON (proxy page, wrong base URL)
        raise GatewayError(f"{operation} failed: response is not JSON") from exc
    except TwilioException as exc:
        raise GatewayError(scrub_numbers(f"{operation} failed: {exc}")) from None


class BaseUrlHttpClient(TwilioHttpClient):
    """A TwilioHttpClient that sends ``https://api.twilio.com/...`` requests to ``base_url``.

    Used for Twilio-compatible providers and for the Prism mock in tests.
    """

    def __init__(self, base_url: str = TWILIO_API_BASE_URL, timeout: float | None = None):
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self.base_url != TWILIO_API_BASE_URL and (
            url == TWILIO_API_BASE_URL or url.startswith(TWILIO_API_BASE_URL + "/")
        ):
            url = self.base_url + url[len(TWILIO_API_BASE_URL) :]
        return super().request(method, url, *args, **kwargs)


def quiet_twilio_http_logging() -> None:
    """twilio's HTTP client logs request URLs and query parameters (numbers) at INFO."""
    twilio_http_log = logging.getLogger(TWILIO_HTTP_LOGGER)
    if twilio_http_log.getEffectiveLevel() < logging.WARNING:
        twilio_http_log.setLevel(logging.WARNING)


def twilio_client(
    *,
    account_sid: str,
    auth_token: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    api_base_url: str = TWILIO_API_BASE_URL,
    timeout_seconds: float = 10.0,
    http_client: TwilioHttpClient | None = None,
) -> Client:
    """Authenticate with an API key + secret when given, else the account's auth token.

    ``http_client`` replaces the default one; ``api_base_url`` and ``timeout_seconds``
    are then that client's business.
    """
    if http_client is None:
        http_client = BaseUrlHttpClient(api_base_url, timeout=timeout_seconds)
    if api_key or api_secret:
        if not (api_key and api_secret):
            raise ValueError("api_key and api_secret must be given together")
        client = Client(api_key, api_secret, account_sid, http_client=http_client)
    elif auth_token:
        client = Client(account_sid, auth_token, http_client=http_client)
    else:
        raise ValueError("Twilio credentials missing: give auth_token or api_key+api_secret")
    if api_base_url.rstrip("/") != TWILIO_API_BASE_URL:
        # TWILIO_EDGE/TWILIO_REGION would rename the host and defeat the base URL rewrite.
        client.edge = None
        client.region = None
    # twilio imports its REST API's modules at their first use: do it now, at start-up,
    # not in the first REST call of a process (0.1 s of CPU idle, far more under load).
    _ = client.api.account
    return client


class TwilioGateway(TwilioConferenceOperations):
    """The production :class:`CallGateway`. Create once and share; it pools connections."""

    def __init__(self, client: Client) -> None:
        self._client = client
        quiet_twilio_http_logging()

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
    ) -> TwilioGateway:
        """A gateway on :func:`twilio_client` (see there for the arguments)."""
        return cls(
            twilio_client(
                account_sid=account_sid,
                auth_token=auth_token,
                api_key=api_key,
                api_secret=api_secret,
                api_base_url=api_base_url,
                timeout_seconds=timeout_seconds,
                http_client=http_client,
            )
        )

    @property
    def client(self) -> Client:
        """The underlying twilio Client (for contract tests; application code uses the methods)."""
        return self._client

    def join_conference(
        self,
        *,
        to_number: str,
        from_number: str,
        room: str,
        label: str,
        status_callback_url: str,
        start_conference_on_enter: bool = True,
        end_conference_on_exit: bool = False,
        ring_timeout_seconds: int = 30,
        announcement: str | None = None,
    ) -> str:
        twiml = conference_twiml(
            room=room,
            label=label,
            start_conference_on_enter=start_conference_on_enter,
            end_conference_on_exit=end_conference_on_exit,
            announcement=announcement,
        )
        with _translated_errors("join_conference"):
            call = self._client.calls.create(
                to=to_number,
                from_=from_number,
                twiml=twiml,
                status_callback=status_callback_url,
                status_callback_method="POST",
                status_callback_event=list(CALL_STATUS_EVENTS),
                timeout=ring_timeout_seconds,
            )
        sid = call.sid
        if not sid:
            raise GatewayError("join_conference failed: no call SID in the response")
        log.info(
            "join_conference room=%s label=%s to=%s from=%s call=%s",
            room,
            label,
            mask_number(to_number),
            mask_number(from_number),
            sid,
        )
        return sid

    @contextmanager
    def _conference_request(
        self, operation: str, *, conference: str, label: str, missing_is_gone: bool
    ) -> Iterator[None]:
        """Translate errors (a 404 is :class:`ParticipantGone` when ``missing_is_gone``) and
        log a failure once: at INFO when the party was gone, else at WARNING."""
        try:
            with _translated_errors(
                operation, ParticipantGone if missing_is_gone else CallNotFound
            ):
                yield
        except GatewayError as exc:
            level = logging.INFO if isinstance(exc, ParticipantGone) else logging.WARNING
            log.log(level, "%s conference=%s label=%s: %s", operation, conference, label, exc)
            raise

    def redirect_call(self, call_sid: str, url: str) -> None:
        with _translated_errors("redirect_call"):
            self._client.calls(call_sid).update(url=url, method="POST")
        log.info("redirect_call call=%s url=%s", call_sid, url)

    def hang_up(self, call_sid: str) -> None:
        with _translated_errors("hang_up"):
            self._client.calls(call_sid).update(status="completed")
        log.info("hang_up call=%s", call_sid)


@dataclass(frozen=True, slots=True)
class PlacedCall:
    sid: str
    to_number: str
    from_number: str
    room: str
    label: str
    status_callback_url: str
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    ring_timeout_seconds: int
    announcement: str | None = None


@dataclass(frozen=True, slots=True)
class RedirectedCall:
    call_sid: str
    url: str


@dataclass(eq=False)
class ConsoleGateway(ConsoleConferenceOperations):
    """A :class:`CallGateway` that only logs and records; for development without Twilio.

    Set ``fail_next`` to make the next operation raise that error (once), for example
    ``ParticipantGone("gone", code=20404, status=404)``.
    """

    placed: list[PlacedCall] = field(default_factory=list)
    redirected: list[RedirectedCall] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)
    added: list[AddedParticipant] = field(default_factory=list)
    held: list[HoldChange] = field(default_factory=list)
    removed: list[RemovedParticipant] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)  # conference SIDs
    fail_next: GatewayError | None = None

    def _maybe_fail(self) -> None:
        error, self.fail_next = self.fail_next, None
        if error is not None:
            raise error

    def join_conference(
        self,
        *,
        to_number: str,
        from_number: str,
        room: str,
        label: str,
        status_callback_url: str,
        start_conference_on_enter: bool = True,
        end_conference_on_exit: bool = False,
        ring_timeout_seconds: int = 30,
        announcement: str | None = None,
    ) -> str:
        self._maybe_fail()
        sid = "CA" + uuid.uuid4().hex
        self.placed.append(
            PlacedCall(
                sid=sid,
                to_number=to_number,
                from_number=from_number,
                room=room,
                label=label,
                status_callback_url=status_callback_url,
                start_conference_on_enter=start_conference_on_enter,
                end_conference_on_exit=end_conference_on_exit,
                ring_timeout_seconds=ring_timeout_seconds,
                announcement=announcement,
            )
        )
        log.info(
            "[console] would call to=%s from=%s into room=%s label=%s: call=%s",
            mask_number(to_number),
            mask_number(from_number),
            room,
            label,
            sid,
        )
        return sid

    def redirect_call(self, call_sid: str, url: str) -> None:
        self._maybe_fail()
        self.redirected.append(RedirectedCall(call_sid, url))
        log.info("[console] would redirect call=%s to url=%s", call_sid, url)

    def hang_up(self, call_sid: str) -> None:
        self._maybe_fail()
        self.hung_up.append(call_sid)
        log.info("[console] would hang up call=%s", call_sid)
