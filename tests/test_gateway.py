"""CallGateway contract, run against TwilioGateway (HTTP mocked with ``responses``) and
ConsoleGateway, plus what only the Twilio implementation has: the exact form it sends,
error mapping from Twilio's error JSON, auth, base URL and logging."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import pytest
import requests
import responses

from ivr.gateway import (
    CALL_STATUS_EVENTS,
    CallGateway,
    CallNotFound,
    ConsoleGateway,
    GatewayError,
    GatewayUnavailable,
    TwilioGateway,
    conference_twiml,
)
from tests.support.twiml_schema import assert_valid_twiml

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
API_KEY = "SK" + "89abcdef01234567" * 2
API_SECRET = "s" * 32
CALL_SID = "CA" + "a1b2c3d4" * 4
CALLS_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
CALL_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{CALL_SID}.json"
SID = re.compile(r"^CA[0-9a-f]{32}$")
CITIZEN = "+8613800000001"
HOTLINE = "+861012345678"
STATUS_URL = "https://hotline.example/ivr/call-status"
NEXT_URL = "https://hotline.example/ivr/after-transfer"

JOIN: dict[str, Any] = {
    "to_number": CITIZEN,
    "from_number": HOTLINE,
    "room": "ticket-2024-000123",
    "label": "citizen",
    "status_callback_url": STATUS_URL,
    "start_conference_on_enter": False,
    "end_conference_on_exit": True,
    "ring_timeout_seconds": 25,
}


@pytest.fixture(autouse=True)
def _no_twilio_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)


# ---------------------------------------------------------------------------------------------
# Failures, as Twilio (or the network) produces them, and what the gateway must raise.


@dataclass(frozen=True)
class Failure:
    error: type[GatewayError]
    code: int | None
    status: int | None
    retryable: bool
    body: dict[str, Any] | Exception


def _twilio_error(code: int, status: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


FAILURES = {
    "not-found": Failure(
        CallNotFound,
        20404,
        404,
        False,
        _twilio_error(20404, 404, "The requested resource was not found"),
    ),
    "too-many-requests": Failure(
        GatewayUnavailable, 20429, 429, True, _twilio_error(20429, 429, "Too Many Requests")
    ),
    "invalid-number": Failure(
        GatewayError,
        21211,
        400,
        False,
        _twilio_error(21211, 400, f"The 'To' number {CITIZEN} is not a valid phone number."),
    ),
    "server-error": Failure(
        GatewayUnavailable, 20500, 500, True, _twilio_error(20500, 500, "Internal Server Error")
    ),
    "connection-error": Failure(
        GatewayUnavailable, None, None, True, requests.ConnectionError("connection refused")
    ),
    "timeout": Failure(
        GatewayUnavailable, None, None, True, requests.ReadTimeout("read timed out")
    ),
}

OPERATIONS: dict[str, Callable[[CallGateway], object]] = {
    "join_conference": lambda gateway: gateway.join_conference(**JOIN),
    "redirect_call": lambda gateway: gateway.redirect_call(CALL_SID, NEXT_URL),
    "hang_up": lambda gateway: gateway.hang_up(CALL_SID),
}


# ---------------------------------------------------------------------------------------------
# Backends: each arranges outcomes and reports, in one shape, what reached the "provider".


class Backend(Protocol):
    gateway: CallGateway

    def succeed(self, operation: str) -> None: ...

    def fail(self, operation: str, failure: Failure) -> None: ...

    def sent(self) -> list[tuple[str, dict[str, Any]]]: ...


def _conference_view(twiml: str) -> dict[str, Any]:
    conference = ElementTree.fromstring(twiml).find("./Dial/Conference")
    assert conference is not None, twiml
    return {
        "room": conference.text,
        "label": conference.get("participantLabel"),
        "start_conference_on_enter": conference.get("startConferenceOnEnter") == "true",
        "end_conference_on_exit": conference.get("endConferenceOnExit") == "true",
    }


@dataclass
class TwilioBackend:
    mock: responses.RequestsMock
    gateway: TwilioGateway = field(init=False)

    def __post_init__(self) -> None:
        self.gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    @staticmethod
    def _url(operation: str) -> str:
        return CALLS_URL if operation == "join_conference" else CALL_URL

    def succeed(self, operation: str) -> None:
        status = 201 if operation == "join_conference" else 200
        self.mock.add(responses.POST, self._url(operation), json=_call_json(), status=status)

    def fail(self, operation: str, failure: Failure) -> None:
        if isinstance(failure.body, Exception):
            self.mock.add(responses.POST, self._url(operation), body=failure.body)
        else:
            self.mock.add(
                responses.POST, self._url(operation), json=failure.body, status=failure.status
            )

    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        result = []
        for call in self.mock.calls:
            if not isinstance(call.response, requests.Response) or not call.response.ok:
                continue  # a failure arranged by fail()
            form = dict(parse_qsl(str(call.request.body)))
            if call.request.url == CALLS_URL:
                view = {
                    "to_number": form["To"],
                    "from_number": form["From"],
                    "status_callback_url": form["StatusCallback"],
                    "ring_timeout_seconds": int(form["Timeout"]),
                    **_conference_view(form["Twiml"]),
                }
                result.append(("join_conference", view))
            elif "Url" in form:
                result.append(("redirect_call", {"call_sid": CALL_SID, "url": form["Url"]}))
            else:
                assert form == {"Status": "completed"}
                result.append(("hang_up", {"call_sid": CALL_SID}))
        return result


@dataclass
class ConsoleBackend:
    gateway: ConsoleGateway = field(default_factory=ConsoleGateway)

    def succeed(self, operation: str) -> None:
        pass

    def fail(self, operation: str, failure: Failure) -> None:
        error_class = failure.error
        message = f"{operation} failed (simulated)"
        if error_class is GatewayUnavailable:
            self.gateway.fail_next = GatewayUnavailable(
                message, code=failure.code, status=failure.status
            )
        else:
            self.gateway.fail_next = error_class(
                message, code=failure.code, status=failure.status, retryable=failure.retryable
            )

    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        result: list[tuple[str, dict[str, Any]]] = []
        for placed in self.gateway.placed:
            view = {key: getattr(placed, key) for key in JOIN}
            result.append(("join_conference", view))
        for redirected in self.gateway.redirected:
            result.append(
                ("redirect_call", {"call_sid": redirected.call_sid, "url": redirected.url})
            )
        result.extend(("hang_up", {"call_sid": sid}) for sid in self.gateway.hung_up)
        return result


def _call_json(sid: str = CALL_SID) -> dict[str, Any]:
    return {"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "api_version": "2010-04-01"}


@pytest.fixture
def http_mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture(params=["twilio", "console"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "twilio":
        return TwilioBackend(request.getfixturevalue("http_mock"))
    return ConsoleBackend()


# ---------------------------------------------------------------------------------------------
# The shared contract.

EXPECTED_SENT: dict[str, tuple[str, dict[str, Any]]] = {
    "join_conference": ("join_conference", {key: JOIN[key] for key in JOIN}),
    "redirect_call": ("redirect_call", {"call_sid": CALL_SID, "url": NEXT_URL}),
    "hang_up": ("hang_up", {"call_sid": CALL_SID}),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_operation_reaches_the_provider(backend: Backend, operation: str) -> None:
    backend.succeed(operation)

    result = OPERATIONS[operation](backend.gateway)

    if operation == "join_conference":
        assert isinstance(result, str)
        assert SID.match(result)
    else:
        assert result is None
    assert backend.sent() == [EXPECTED_SENT[operation]]


@pytest.mark.parametrize("failure_name", list(FAILURES))
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_failures_become_gateway_errors(
    backend: Backend, operation: str, failure_name: str
) -> None:
    failure = FAILURES[failure_name]
    backend.fail(operation, failure)
    backend.succeed(operation)

    with pytest.raises(GatewayError) as caught:
        OPERATIONS[operation](backend.gateway)

    assert type(caught.value) is failure.error
    assert (caught.value.code, caught.value.status) == (failure.code, failure.status)
    assert caught.value.retryable is failure.retryable
    assert CITIZEN not in str(caught.value)
    # The failure is not sticky: the same operation works next time.
    OPERATIONS[operation](backend.gateway)
    assert backend.sent() == [EXPECTED_SENT[operation]]


# ---------------------------------------------------------------------------------------------
# TwilioGateway only.


def _form(call: Any) -> list[tuple[str, str]]:
    return parse_qsl(str(call.request.body), keep_blank_values=True)


def test_join_conference_sends_exactly_this_form(http_mock: responses.RequestsMock) -> None:
    http_mock.add(responses.POST, CALLS_URL, json=_call_json(), status=201)
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    assert gateway.join_conference(**JOIN) == CALL_SID

    [call] = http_mock.calls
    form = _form(call)
    single = {key: value for key, value in form if key != "StatusCallbackEvent"}
    assert sorted(single) == [
        "From",
        "StatusCallback",
        "StatusCallbackMethod",
        "Timeout",
        "To",
        "Twiml",
    ]
    assert len(single) == len(form) - 4  # nothing else is repeated
    assert single["To"] == CITIZEN
    assert single["From"] == HOTLINE
    assert single["StatusCallback"] == STATUS_URL
    assert single["StatusCallbackMethod"] == "POST"
    assert single["Timeout"] == "25"
    assert [value for key, value in form if key == "StatusCallbackEvent"] == list(
        CALL_STATUS_EVENTS
    )
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    twiml = single["Twiml"]
    assert_valid_twiml(twiml)
    assert '<Conference beep="false" endConferenceOnExit="true"' in twiml
    assert 'participantLabel="citizen"' in twiml
    assert 'startConferenceOnEnter="false"' in twiml
    assert ">ticket-2024-000123</Conference>" in twiml


def test_conference_twiml_is_valid_for_both_flag_settings() -> None:
    for start, end in [(True, False), (False, True)]:
        assert_valid_twiml(
            conference_twiml(
                room="r-1",
                label="agent 7",
                start_conference_on_enter=start,
                end_conference_on_exit=end,
            )
        )


def test_redirect_and_hang_up_send_exactly_this_form(http_mock: responses.RequestsMock) -> None:
    http_mock.add(responses.POST, CALL_URL, json=_call_json())
    http_mock.add(responses.POST, CALL_URL, json=_call_json())
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    gateway.redirect_call(CALL_SID, NEXT_URL)
    gateway.hang_up(CALL_SID)

    redirect, hang_up = http_mock.calls
    assert _form(redirect) == [("Url", NEXT_URL), ("Method", "POST")]
    assert _form(hang_up) == [("Status", "completed")]


def _basic_user(call: Any) -> str:
    scheme, _, token = call.request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    return base64.b64decode(token).decode().partition(":")[0]


def test_auth_token_and_api_key_modes(http_mock: responses.RequestsMock) -> None:
    http_mock.add(responses.POST, CALL_URL, json=_call_json())
    http_mock.add(responses.POST, CALL_URL, json=_call_json())

    TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).hang_up(CALL_SID)
    TwilioGateway.from_settings(
        account_sid=ACCOUNT_SID, api_key=API_KEY, api_secret=API_SECRET
    ).hang_up(CALL_SID)

    assert [_basic_user(call) for call in http_mock.calls] == [ACCOUNT_SID, API_KEY]


@pytest.mark.parametrize(
    "settings",
    [{}, {"api_key": API_KEY}, {"api_secret": API_SECRET}, {"auth_token": ""}],
    ids=["nothing", "key-only", "secret-only", "empty-token"],
)
def test_missing_credentials_are_a_configuration_error(settings: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"api_key|credentials"):
        TwilioGateway.from_settings(account_sid=ACCOUNT_SID, **settings)


def test_api_base_url_rewrites_every_request_even_with_an_edge_set(
    http_mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "singapore")
    monkeypatch.setenv("TWILIO_REGION", "sg1")
    base = "http://twilio-compatible.example:8080/"
    target = f"http://twilio-compatible.example:8080/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    http_mock.add(responses.POST, target, json=_call_json(), status=201)
    gateway = TwilioGateway.from_settings(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base_url=base
    )

    assert gateway.join_conference(**JOIN) == CALL_SID
    assert urlsplit(http_mock.calls[0].request.url).netloc == "twilio-compatible.example:8080"


def test_requests_carry_an_explicit_timeout(http_mock: responses.RequestsMock) -> None:
    http_mock.add(responses.POST, CALL_URL, json=_call_json())
    http_mock.add(responses.POST, CALL_URL, json=_call_json())

    TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).hang_up(CALL_SID)
    TwilioGateway.from_settings(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, timeout_seconds=2.5
    ).hang_up(CALL_SID)

    timeouts = [call.request.req_kwargs["timeout"] for call in http_mock.calls]
    assert timeouts == [10.0, 2.5]


def test_rfc9457_errors_are_mapped_too(http_mock: responses.RequestsMock) -> None:
    problem = {"type": "https://www.twilio.com/docs/errors/20429", "title": "Too Many Requests"}
    http_mock.add(
        responses.POST, CALL_URL, json={**problem, "status": 429, "code": 20429}, status=429
    )
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    with pytest.raises(GatewayUnavailable) as caught:
        gateway.hang_up(CALL_SID)
    assert (caught.value.code, caught.value.status, caught.value.retryable) == (20429, 429, True)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, "<html>not found</html>", CallNotFound),
        (502, "Bad Gateway", GatewayUnavailable),
        (401, '{"code": 20003, "message": "Authenticate", "status": 401}', GatewayError),
        (200, "<html>captive portal</html>", GatewayError),
    ],
    ids=["html-404", "text-502", "auth", "non-json-200"],
)
def test_odd_responses_still_map(
    http_mock: responses.RequestsMock, status: int, body: str, error: type[GatewayError]
) -> None:
    http_mock.add(responses.POST, CALL_URL, body=body, status=status)
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    with pytest.raises(GatewayError) as caught:
        gateway.hang_up(CALL_SID)
    assert type(caught.value) is error
    assert caught.value.status == (status if status >= 400 else None)


def test_other_requests_errors_are_not_retryable(http_mock: responses.RequestsMock) -> None:
    http_mock.add(responses.POST, CALL_URL, body=requests.TooManyRedirects("loop"))
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    with pytest.raises(GatewayError) as caught:
        gateway.hang_up(CALL_SID)
    assert type(caught.value) is GatewayError
    assert caught.value.retryable is False


def test_twilio_exceptions_are_not_chained(http_mock: responses.RequestsMock) -> None:
    """Twilio's own message may repeat the number unmasked; it must not ride along."""
    http_mock.add(responses.POST, CALLS_URL, json=FAILURES["invalid-number"].body, status=400)
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    with pytest.raises(GatewayError) as caught:
        gateway.join_conference(**JOIN)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert "+86*******0001" in str(caught.value)


def test_logs_mask_numbers_and_silence_twilio_request_logger(
    http_mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    http_mock.add(responses.POST, CALLS_URL, json=_call_json(), status=201)
    caplog.set_level(logging.DEBUG)
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    gateway.join_conference(**JOIN)

    assert logging.getLogger("twilio.http_client").getEffectiveLevel() == logging.WARNING
    assert not [record for record in caplog.records if record.name.startswith("twilio")]
    [record] = [record for record in caplog.records if record.name == "ivr.gateway"]
    assert record.levelno == logging.INFO
    assert CITIZEN not in caplog.text
    assert HOTLINE not in caplog.text
    assert "+86*******0001" in record.getMessage()
    assert CALL_SID in record.getMessage()


# ---------------------------------------------------------------------------------------------
# ConsoleGateway only.


def test_console_records_everything_and_logs_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ivr.gateway")
    gateway = ConsoleGateway()

    first = gateway.join_conference(**JOIN)
    second = gateway.join_conference(**{**JOIN, "label": "agent-7"})
    gateway.redirect_call(first, NEXT_URL)
    gateway.hang_up(second)

    assert first != second
    assert [placed.sid for placed in gateway.placed] == [first, second]
    assert gateway.placed[1].label == "agent-7"
    assert [(r.call_sid, r.url) for r in gateway.redirected] == [(first, NEXT_URL)]
    assert gateway.hung_up == [second]
    assert CITIZEN not in caplog.text
    assert "+86*******0001" in caplog.text


def test_console_placed_calls_are_frozen() -> None:
    gateway = ConsoleGateway()
    gateway.join_conference(**JOIN)
    with pytest.raises(AttributeError):
        gateway.placed[0].room = "other"  # type: ignore[misc]


def test_a_created_call_without_sid_is_an_error(http_mock: responses.RequestsMock) -> None:
    http_mock.add(responses.POST, CALLS_URL, json={"status": "queued"}, status=201)
    gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    with pytest.raises(GatewayError, match="no call SID"):
        gateway.join_conference(**JOIN)
