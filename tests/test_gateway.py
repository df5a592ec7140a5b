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
from urllib.parse import parse_qsl, unquote, urlsplit
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
    ParticipantGone,
    TwilioGateway,
    conference_twiml,
)
from ivr.gateway_conference import CONFERENCE_STATUS_EVENTS, PARTICIPANT_STATUS_EVENTS
from tests.support.twiml_schema import assert_valid_twiml

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
API_KEY = "SK" + "89abcdef01234567" * 2
API_SECRET = "s" * 32
CALL_SID = "CA" + "a1b2c3d4" * 4
API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
CALLS_URL = f"{API}/Calls.json"
CALL_URL = f"{API}/Calls/{CALL_SID}.json"
SID = re.compile(r"^CA[0-9a-f]{32}$")
CITIZEN = "+8613800000001"
HOTLINE = "+861012345678"
STATUS_URL = "https://hotline.example/ivr/call-status"
NEXT_URL = "https://hotline.example/ivr/after-transfer"

# The conference of CALL_SID's citizen: created by its friendly name, then known by its SID.
ROOM = CALL_SID
CONFERENCE_SID = "CF" + "0a1b2c3d" * 4
PARTY_SID = "CA" + "e5f6a7b8" * 4
TAKER = "+8613900000002"
LABEL = "taker-7"
PARTICIPANT_STATUS_URL = "https://hotline.example/voice/participant-status"
CONFERENCE_STATUS_URL = "https://hotline.example/voice/conference-status"
HOLD_URL = "https://hotline.example/voice/audio/hold-music.mp3"
PARTICIPANTS_URL = f"{API}/Conferences/{ROOM}/Participants.json"
PARTICIPANT_URL = f"{API}/Conferences/{CONFERENCE_SID}/Participants/{LABEL}.json"
CONFERENCE_URL = f"{API}/Conferences/{CONFERENCE_SID}.json"

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

ADD: dict[str, Any] = {
    "to": TAKER,
    "from_number": HOTLINE,
    "label": LABEL,
    "start_conference_on_enter": True,
    "end_conference_on_exit": False,
    "early_media": True,
    "beep": False,
    "timeout_seconds": 20,
    "status_callback": PARTICIPANT_STATUS_URL,
    "status_callback_events": list(PARTICIPANT_STATUS_EVENTS),
    "conference_status_callback": CONFERENCE_STATUS_URL,
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
    "add_participant": lambda gateway: gateway.add_participant(ROOM, **ADD),
    "hold_participant": lambda gateway: gateway.hold_participant(
        CONFERENCE_SID, LABEL, hold=True, hold_url=HOLD_URL
    ),
    "resume_participant": lambda gateway: gateway.hold_participant(
        CONFERENCE_SID, LABEL, hold=False, hold_url=None
    ),
    "remove_participant": lambda gateway: gateway.remove_participant(CONFERENCE_SID, LABEL),
    "end_conference": lambda gateway: gateway.end_conference(CONFERENCE_SID),
}
CREATING = {"join_conference", "add_participant"}  # these return the new call's SID
# A 404 on these means the participant or the conference had already left.
ON_A_LIVE_CONFERENCE = {
    "hold_participant",
    "resume_participant",
    "remove_participant",
    "end_conference",
}


def _expected_error(operation: str, failure: Failure) -> type[GatewayError]:
    if failure.error is CallNotFound and operation in ON_A_LIVE_CONFERENCE:
        return ParticipantGone
    return failure.error


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


def _call_json(sid: str = CALL_SID) -> dict[str, Any]:
    return {"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "api_version": "2010-04-01"}


def _participant_json(call_sid: str = PARTY_SID, *, hold: bool = False) -> dict[str, Any]:
    return {
        "account_sid": ACCOUNT_SID,
        "call_sid": call_sid,
        "conference_sid": CONFERENCE_SID,
        "label": LABEL,
        "hold": hold,
        "status": "queued",
    }


def _conference_json() -> dict[str, Any]:
    return {"sid": CONFERENCE_SID, "friendly_name": ROOM, "status": "completed"}


# operation: (HTTP method, URL, status and JSON body of a success)
ROUTES: dict[str, tuple[str, str, int, dict[str, Any] | None]] = {
    "join_conference": (responses.POST, CALLS_URL, 201, _call_json()),
    "redirect_call": (responses.POST, CALL_URL, 200, _call_json()),
    "hang_up": (responses.POST, CALL_URL, 200, _call_json()),
    "add_participant": (responses.POST, PARTICIPANTS_URL, 201, _participant_json()),
    "hold_participant": (responses.POST, PARTICIPANT_URL, 200, _participant_json(hold=True)),
    "resume_participant": (responses.POST, PARTICIPANT_URL, 200, _participant_json()),
    "remove_participant": (responses.DELETE, PARTICIPANT_URL, 204, None),
    "end_conference": (responses.POST, CONFERENCE_URL, 200, _conference_json()),
}
CONFERENCE_PATH = re.compile(
    r"/Conferences/(?P<conference>[^/]+?)(?:/Participants(?:/(?P<label>[^/]+))?)?\.json$"
)


def _form(call: Any) -> list[tuple[str, str]]:
    return parse_qsl(str(call.request.body or ""), keep_blank_values=True)


def _twilio_view(call: Any) -> tuple[str, dict[str, Any]]:
    """What one request asked Twilio for, in the shape the console records it."""
    url, method = call.request.url, call.request.method
    pairs = _form(call)
    form = dict(pairs)
    if url == CALLS_URL:
        view = {
            "to_number": form["To"],
            "from_number": form["From"],
            "status_callback_url": form["StatusCallback"],
            "ring_timeout_seconds": int(form["Timeout"]),
            **_conference_view(form["Twiml"]),
        }
        return "join_conference", view
    if url == CALL_URL:
        if "Url" in form:
            return "redirect_call", {"call_sid": CALL_SID, "url": form["Url"]}
        assert form == {"Status": "completed"}
        return "hang_up", {"call_sid": CALL_SID}
    path = CONFERENCE_PATH.search(urlsplit(url).path)
    assert path is not None, url
    conference, label = unquote(path["conference"]), unquote(path["label"] or "")
    if url.endswith("/Participants.json"):
        view = {
            "conference": conference,
            "to": form["To"],
            "from_number": form["From"],
            "label": form["Label"],
            "start_conference_on_enter": form["StartConferenceOnEnter"] == "true",
            "end_conference_on_exit": form["EndConferenceOnExit"] == "true",
            "early_media": form["EarlyMedia"] == "true",
            "beep": form["Beep"] == "true",
            "timeout_seconds": int(form["Timeout"]),
            "status_callback": form["StatusCallback"],
            "status_callback_events": [v for k, v in pairs if k == "StatusCallbackEvent"],
            "conference_status_callback": form["ConferenceStatusCallback"],
        }
        return "add_participant", view
    if label and method == "DELETE":
        return "remove_participant", {"conference_sid": conference, "label": label}
    if label:
        hold = form.pop("Hold") == "true"
        view = {"conference_sid": conference, "label": label, "hold": hold}
        view["hold_url"] = form.get("HoldUrl")
        return ("hold_participant" if hold else "resume_participant"), view
    assert form == {"Status": "completed"}
    return "end_conference", {"conference_sid": conference}


@dataclass
class TwilioBackend:
    mock: responses.RequestsMock
    gateway: TwilioGateway = field(init=False)

    def __post_init__(self) -> None:
        self.gateway = TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

    def succeed(self, operation: str) -> None:
        method, url, status, body = ROUTES[operation]
        self.mock.add(method, url, json=body, status=status)

    def fail(self, operation: str, failure: Failure) -> None:
        method, url, _, _ = ROUTES[operation]
        if isinstance(failure.body, Exception):
            self.mock.add(method, url, body=failure.body)
        else:
            self.mock.add(method, url, json=failure.body, status=failure.status)

    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            _twilio_view(call)
            for call in self.mock.calls
            # leave out the failures arranged by fail()
            if isinstance(call.response, requests.Response) and call.response.ok
        ]


@dataclass
class ConsoleBackend:
    gateway: ConsoleGateway = field(default_factory=ConsoleGateway)

    def succeed(self, operation: str) -> None:
        pass

    def fail(self, operation: str, failure: Failure) -> None:
        error_class = _expected_error(operation, failure)
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
        gateway = self.gateway
        result: list[tuple[str, dict[str, Any]]] = []
        for placed in gateway.placed:
            view = {key: getattr(placed, key) for key in JOIN}
            result.append(("join_conference", view))
        for redirected in gateway.redirected:
            result.append(
                ("redirect_call", {"call_sid": redirected.call_sid, "url": redirected.url})
            )
        result.extend(("hang_up", {"call_sid": sid}) for sid in gateway.hung_up)
        for added in gateway.added:
            view = {key: getattr(added, key) for key in ADD}
            view["status_callback_events"] = list(added.status_callback_events)
            result.append(("add_participant", {"conference": added.conference, **view}))
        for change in gateway.held:
            operation = "hold_participant" if change.hold else "resume_participant"
            view = {
                "conference_sid": change.conference_sid,
                "label": change.label,
                "hold": change.hold,
                "hold_url": change.hold_url,
            }
            result.append((operation, view))
        for removed in gateway.removed:
            view = {"conference_sid": removed.conference_sid, "label": removed.label}
            result.append(("remove_participant", view))
        result.extend(("end_conference", {"conference_sid": sid}) for sid in gateway.ended)
        return result


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
    "add_participant": ("add_participant", {"conference": ROOM, **ADD}),
    "hold_participant": (
        "hold_participant",
        {"conference_sid": CONFERENCE_SID, "label": LABEL, "hold": True, "hold_url": HOLD_URL},
    ),
    "resume_participant": (
        "resume_participant",
        {"conference_sid": CONFERENCE_SID, "label": LABEL, "hold": False, "hold_url": None},
    ),
    "remove_participant": (
        "remove_participant",
        {"conference_sid": CONFERENCE_SID, "label": LABEL},
    ),
    "end_conference": ("end_conference", {"conference_sid": CONFERENCE_SID}),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_operation_reaches_the_provider(backend: Backend, operation: str) -> None:
    backend.succeed(operation)

    result = OPERATIONS[operation](backend.gateway)

    if operation in CREATING:
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

    assert type(caught.value) is _expected_error(operation, failure)
    assert (caught.value.code, caught.value.status) == (failure.code, failure.status)
    assert caught.value.retryable is failure.retryable
    assert CITIZEN not in str(caught.value)
    # The failure is not sticky: the same operation works next time.
    OPERATIONS[operation](backend.gateway)
    assert backend.sent() == [EXPECTED_SENT[operation]]


# ---------------------------------------------------------------------------------------------
# TwilioGateway only.


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


def test_an_announcement_is_spoken_before_joining() -> None:
    twiml = conference_twiml(
        room="callback-7-1",
        label="staff-3",
        start_conference_on_enter=True,
        end_conference_on_exit=True,
        announcement="12345回拨，任务7",
    )
    assert_valid_twiml(twiml)
    assert twiml.index("<Say") < twiml.index("<Dial")
    assert 'voice="Polly.Zhiyu"' in twiml and "12345回拨，任务7" in twiml


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


# ---------------------------------------------------------------------------------------------
# Conference operations: what only the Twilio implementation shows (path, form, logs).


def _gateway() -> TwilioGateway:
    return TwilioGateway.from_settings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)


def test_add_participant_sends_exactly_this_form_to_the_room_by_name(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(responses.POST, PARTICIPANTS_URL, json=_participant_json(), status=201)

    assert _gateway().add_participant(ROOM, **ADD) == PARTY_SID

    [call] = http_mock.calls
    assert call.request.url == PARTICIPANTS_URL  # the friendly name, not a CF... SID
    form = _form(call)
    assert [value for key, value in form if key == "StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    assert [value for key, value in form if key == "ConferenceStatusCallbackEvent"] == [
        "start",
        "end",
        "join",
        "leave",
        "hold",
    ]
    single = {k: v for k, v in form if not k.endswith("StatusCallbackEvent")}
    assert len(single) == len(form) - 9  # nothing else is repeated
    assert single == {
        "From": HOTLINE,
        "To": TAKER,
        "Label": LABEL,
        "StartConferenceOnEnter": "true",
        "EndConferenceOnExit": "false",
        "EarlyMedia": "true",
        "Beep": "false",  # a string parameter at Twilio: true, false, onEnter, onExit
        "Timeout": "20",
        "StatusCallback": PARTICIPANT_STATUS_URL,
        "StatusCallbackMethod": "POST",
        "ConferenceStatusCallback": CONFERENCE_STATUS_URL,
        "ConferenceStatusCallbackMethod": "POST",
    }
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_add_participant_rings_a_softphone_and_sends_only_the_chosen_events(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(responses.POST, PARTICIPANTS_URL, json=_participant_json(), status=201)

    _gateway().add_participant(
        ROOM,
        **{
            **ADD,
            "to": "client:taker-7",
            "beep": True,
            "start_conference_on_enter": False,
            "end_conference_on_exit": True,
            "early_media": False,
            "status_callback_events": ["ringing", "completed"],
        },
    )

    form = _form(http_mock.calls[0])
    single = dict(form)
    assert single["To"] == "client:taker-7"
    assert (single["Beep"], single["StartConferenceOnEnter"]) == ("true", "false")
    assert (single["EndConferenceOnExit"], single["EarlyMedia"]) == ("true", "false")
    assert [v for k, v in form if k == "StatusCallbackEvent"] == ["ringing", "completed"]


def test_hold_resume_remove_and_end_send_exactly_this(http_mock: responses.RequestsMock) -> None:
    for _ in range(3):
        http_mock.add(responses.POST, PARTICIPANT_URL, json=_participant_json())
    http_mock.add(responses.DELETE, PARTICIPANT_URL, status=204)
    http_mock.add(responses.POST, CONFERENCE_URL, json=_conference_json())
    gateway = _gateway()

    gateway.hold_participant(CONFERENCE_SID, LABEL, hold=True, hold_url=HOLD_URL)
    gateway.hold_participant(CONFERENCE_SID, LABEL, hold=True, hold_url=None)
    gateway.hold_participant(CONFERENCE_SID, LABEL, hold=False, hold_url=HOLD_URL)
    gateway.remove_participant(CONFERENCE_SID, LABEL)
    gateway.end_conference(CONFERENCE_SID)

    hold, hold_default_music, resume, remove, end = http_mock.calls
    assert _form(hold) == [("Hold", "true"), ("HoldUrl", HOLD_URL), ("HoldMethod", "GET")]
    assert _form(hold_default_music) == [("Hold", "true")]
    assert _form(resume) == [("Hold", "false")]  # no music to fetch when resuming
    assert (remove.request.method, remove.request.url, _form(remove)) == (
        "DELETE",
        PARTICIPANT_URL,
        [],
    )
    assert (end.request.url, _form(end)) == (CONFERENCE_URL, [("Status", "completed")])


def test_a_participant_is_addressed_by_call_sid_or_by_its_percent_encoded_label(
    http_mock: responses.RequestsMock,
) -> None:
    by_sid = f"{API}/Conferences/{CONFERENCE_SID}/Participants/{PARTY_SID}.json"
    by_label = f"{API}/Conferences/{CONFERENCE_SID}/Participants/night%20shift%2F2.json"
    http_mock.add(responses.DELETE, by_sid, status=204)
    http_mock.add(responses.POST, by_label, json=_participant_json())
    gateway = _gateway()

    gateway.remove_participant(CONFERENCE_SID, PARTY_SID)
    gateway.hold_participant(CONFERENCE_SID, "night shift/2", hold=True, hold_url=None)

    assert [call.request.url for call in http_mock.calls] == [by_sid, by_label]


@pytest.mark.parametrize(
    "operation",
    [
        lambda gateway: gateway.hold_participant(ROOM, LABEL, hold=True, hold_url=None),
        lambda gateway: gateway.remove_participant(ROOM, LABEL),
        lambda gateway: gateway.end_conference(ROOM),
        lambda gateway: gateway.end_conference(""),
        lambda gateway: gateway.remove_participant(CONFERENCE_SID, ""),
    ],
    ids=["hold-by-name", "remove-by-name", "end-by-name", "end-without-sid", "no-label"],
)
def test_operations_on_a_live_conference_refuse_a_name_before_sending_anything(
    backend: Backend, operation: Callable[[CallGateway], object]
) -> None:
    """Twilio answers a friendly name there with 404, which would read as "party gone"."""
    with pytest.raises(ValueError, match=r"conference SID|label"):
        operation(backend.gateway)
    assert backend.sent() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timeout_seconds": 4}, "timeout_seconds"),
        ({"timeout_seconds": 601}, "timeout_seconds"),
        ({"status_callback_events": ["ringing", "busy"]}, "busy"),
        ({"label": ""}, "label"),
    ],
    ids=["timeout-too-short", "timeout-too-long", "call-status-as-event", "no-label"],
)
def test_add_participant_refuses_what_twilio_would_reject(
    backend: Backend, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        backend.gateway.add_participant(ROOM, **{**ADD, **change})
    with pytest.raises(ValueError, match="conference"):
        backend.gateway.add_participant("r" * 129, **ADD)
    assert backend.sent() == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, _twilio_error(20404, 404, "The requested resource was not found")),
        (404, "<html>not found</html>"),
    ],
    ids=["twilio-20404", "html-404"],
)
def test_a_party_that_already_left_is_gone_not_an_error(
    http_mock: responses.RequestsMock, status: int, body: Any
) -> None:
    kwargs: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"body": body}
    http_mock.add(responses.POST, PARTICIPANT_URL, status=status, **kwargs)
    http_mock.add(responses.DELETE, PARTICIPANT_URL, status=status, **kwargs)
    http_mock.add(responses.POST, CONFERENCE_URL, status=status, **kwargs)
    gateway = _gateway()

    for operation in (
        lambda: gateway.hold_participant(CONFERENCE_SID, LABEL, hold=False, hold_url=None),
        lambda: gateway.remove_participant(CONFERENCE_SID, LABEL),
        lambda: gateway.end_conference(CONFERENCE_SID),
    ):
        with pytest.raises(ParticipantGone) as caught:
            operation()
        assert isinstance(caught.value, CallNotFound)  # existing handlers still catch it
        assert caught.value.retryable is False
        assert caught.value.status == 404


def test_a_404_when_adding_a_participant_is_not_mistaken_for_a_departure(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(responses.POST, PARTICIPANTS_URL, json=FAILURES["not-found"].body, status=404)

    with pytest.raises(CallNotFound) as caught:
        _gateway().add_participant(ROOM, **ADD)
    assert not isinstance(caught.value, ParticipantGone)


def test_twilio_business_errors_keep_code_and_message(http_mock: responses.RequestsMock) -> None:
    body = _twilio_error(16002, 400, "Conference is full")  # any other 4xx with Twilio's code
    http_mock.add(responses.POST, PARTICIPANT_URL, json=body, status=400)

    with pytest.raises(GatewayError) as caught:
        _gateway().hold_participant(CONFERENCE_SID, LABEL, hold=True, hold_url=HOLD_URL)
    assert type(caught.value) is GatewayError
    assert (caught.value.code, caught.value.status, caught.value.retryable) == (16002, 400, False)
    assert "Conference is full" in str(caught.value)
    assert "hold_participant" in str(caught.value)


def test_a_created_participant_without_call_sid_is_an_error(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(responses.POST, PARTICIPANTS_URL, json={"label": LABEL}, status=201)

    with pytest.raises(GatewayError, match="add_participant failed: no call SID"):
        _gateway().add_participant(ROOM, **ADD)


def _gateway_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "ivr.gateway"]


def test_each_conference_call_logs_one_info_line_with_room_and_label_and_no_number(
    http_mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    http_mock.add(responses.POST, PARTICIPANTS_URL, json=_participant_json(), status=201)
    http_mock.add(responses.POST, PARTICIPANT_URL, json=_participant_json(hold=True))
    http_mock.add(responses.POST, PARTICIPANT_URL, json=_participant_json())
    http_mock.add(responses.DELETE, PARTICIPANT_URL, status=204)
    http_mock.add(responses.POST, CONFERENCE_URL, json=_conference_json())
    caplog.set_level(logging.DEBUG)
    gateway = _gateway()

    for operation in list(OPERATIONS)[3:]:
        OPERATIONS[operation](gateway)

    records = _gateway_records(caplog)
    assert [record.levelno for record in records] == [logging.INFO] * 5
    messages = [record.getMessage() for record in records]
    assert [message.split()[0] for message in messages] == list(OPERATIONS)[3:]
    assert f"conference={ROOM} label={LABEL} to=+86*******0002" in messages[0]
    assert f"call={PARTY_SID} conference_sid={CONFERENCE_SID}" in messages[0]
    for message in messages[1:4]:
        assert f"conference={CONFERENCE_SID} label={LABEL} " in message
    assert f"end_conference conference={CONFERENCE_SID} " in messages[4]
    assert TAKER not in caplog.text
    assert HOTLINE not in caplog.text
    assert not [record for record in caplog.records if record.name.startswith("twilio")]


def test_failed_conference_calls_log_once_gone_at_info_others_at_warning(
    http_mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    http_mock.add(responses.DELETE, PARTICIPANT_URL, json=FAILURES["not-found"].body, status=404)
    http_mock.add(
        responses.POST, PARTICIPANTS_URL, json=FAILURES["invalid-number"].body, status=400
    )
    caplog.set_level(logging.INFO, logger="ivr.gateway")
    gateway = _gateway()

    with pytest.raises(ParticipantGone):
        gateway.remove_participant(CONFERENCE_SID, LABEL)
    with pytest.raises(GatewayError):
        gateway.add_participant(ROOM, **{**ADD, "to": CITIZEN})

    gone, failed = _gateway_records(caplog)
    assert gone.levelno == logging.INFO
    assert gone.getMessage().startswith(f"remove_participant conference={CONFERENCE_SID} label=")
    assert "20404" in gone.getMessage()
    assert failed.levelno == logging.WARNING
    assert "21211" in failed.getMessage()
    assert CITIZEN not in caplog.text


# ---------------------------------------------------------------------------------------------
# ConsoleGateway: conference operations.

CONSOLE_CONFERENCE = "CF" + "c" * 32


def test_console_records_conference_operations_and_returns_fresh_call_sids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ivr.gateway")
    gateway = ConsoleGateway()

    taker = gateway.add_participant(ROOM, **ADD)
    consultee = gateway.add_participant(ROOM, **{**ADD, "label": "consult-1", "to": CITIZEN})
    gateway.hold_participant(CONSOLE_CONFERENCE, "citizen", hold=True, hold_url=HOLD_URL)
    gateway.hold_participant(CONSOLE_CONFERENCE, "citizen", hold=False, hold_url=HOLD_URL)
    gateway.remove_participant(CONSOLE_CONFERENCE, "consult-1")
    gateway.end_conference(CONSOLE_CONFERENCE)

    assert SID.match(taker) and SID.match(consultee) and taker != consultee
    assert [(added.call_sid, added.label) for added in gateway.added] == [
        (taker, LABEL),
        (consultee, "consult-1"),
    ]
    assert gateway.added[0].status_callback_events == PARTICIPANT_STATUS_EVENTS
    assert [(c.label, c.hold, c.hold_url) for c in gateway.held] == [
        ("citizen", True, HOLD_URL),
        ("citizen", False, None),  # what Twilio would be sent: no music when resuming
    ]
    assert [(r.conference_sid, r.label) for r in gateway.removed] == [
        (CONSOLE_CONFERENCE, "consult-1")
    ]
    assert gateway.ended == [CONSOLE_CONFERENCE]
    assert CITIZEN not in caplog.text
    assert TAKER not in caplog.text
    assert "+86*******0002" in caplog.text


def test_console_can_be_told_that_the_next_party_is_gone() -> None:
    gateway = ConsoleGateway()
    gateway.fail_next = ParticipantGone("gone (simulated)", code=20404, status=404)

    with pytest.raises(ParticipantGone):
        gateway.remove_participant(CONSOLE_CONFERENCE, LABEL)
    gateway.remove_participant(CONSOLE_CONFERENCE, LABEL)

    assert [removed.label for removed in gateway.removed] == [LABEL]


def test_console_conference_records_are_frozen() -> None:
    gateway = ConsoleGateway()
    gateway.add_participant(ROOM, **ADD)
    gateway.hold_participant(CONSOLE_CONFERENCE, LABEL, hold=True, hold_url=None)
    with pytest.raises(AttributeError):
        gateway.added[0].label = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        gateway.held[0].hold = False  # type: ignore[misc]


def test_conference_events_asked_for_cover_the_roster() -> None:
    """join/leave/hold (hold and unhold) and end keep the roster; start marks the wait over."""
    assert set(CONFERENCE_STATUS_EVENTS) == {"start", "end", "join", "leave", "hold"}
