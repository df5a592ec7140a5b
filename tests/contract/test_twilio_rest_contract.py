"""Every TwilioGateway request is one that Twilio's own OpenAPI document accepts.

Runs the gateway against the Stoplight Prism mock of ``twilio-oai/twilio_api_v2010.json``.
Prism answers with the document's fixed examples, so these tests assert "accepted vs
rejected" only, never returned state. Business errors (21211, 20404 ...) are covered by
tests/test_gateway.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ivr.gateway import GatewayError, ParticipantGone, TwilioGateway
from ivr.gateway_conference import PARTICIPANT_STATUS_EVENTS
from tests.support.prism import PrismServer, running_prism

pytestmark = pytest.mark.contract

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
API_KEY = "SK" + "89abcdef01234567" * 2
CALL_SID = "CA" + "a1b2c3d4" * 4
STATUS_URL = f"https://hotline.example/voice/status?leg=emergency&parent={CALL_SID}&try=1&lang=zh"
CONFERENCE_SID = "CF" + "0a1b2c3d" * 4
PARTICIPANT_STATUS_URL = f"https://hotline.example/voice/participant-status?call={CALL_SID}"
CONFERENCE_STATUS_URL = "https://hotline.example/voice/conference-status"
HOLD_URL = "https://hotline.example/voice/audio/hold-music.mp3"


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    with running_prism(tmp_path_factory.mktemp("prism")) as server:
        yield server


@pytest.fixture(autouse=True)
def _local_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWILIO_EDGE", "TWILIO_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):  # never send the mock's traffic to a proxy
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1"])))


@pytest.fixture(params=["auth-token", "api-key"])
def gateway(request: pytest.FixtureRequest, prism: PrismServer) -> TwilioGateway:
    credentials: dict[str, str] = (
        {"auth_token": AUTH_TOKEN}
        if request.param == "auth-token"
        else {"api_key": API_KEY, "api_secret": AUTH_TOKEN}
    )
    return TwilioGateway.from_settings(
        account_sid=ACCOUNT_SID, api_base_url=prism.base_url, timeout_seconds=10, **credentials
    )


def _accepted(prism: PrismServer, call: Any) -> Any:
    """Run ``call``; on a GatewayError show Prism's log, which names the failing field."""
    try:
        return call()
    except GatewayError as exc:
        pytest.fail(f"Prism rejected the request: {exc}\n--- prism log ---\n{prism.log_tail(8)}")


@pytest.mark.parametrize(("start", "end"), [(True, False), (False, True)])
def test_join_conference_is_accepted(
    prism: PrismServer, gateway: TwilioGateway, start: bool, end: bool
) -> None:
    sid = _accepted(
        prism,
        lambda: gateway.join_conference(
            to_number="+8613800000001",
            from_number="+861012345678",
            room="ticket-2024-000123",
            label="citizen",
            status_callback_url=STATUS_URL,
            start_conference_on_enter=start,
            end_conference_on_exit=end,
            ring_timeout_seconds=25,
        ),
    )
    assert isinstance(sid, str)
    assert sid.startswith("CA")


def test_redirect_call_is_accepted(prism: PrismServer, gateway: TwilioGateway) -> None:
    _accepted(prism, lambda: gateway.redirect_call(CALL_SID, "https://hotline.example/ivr/next"))


def test_hang_up_is_accepted(prism: PrismServer, gateway: TwilioGateway) -> None:
    _accepted(prism, lambda: gateway.hang_up(CALL_SID))


# Conference operations: the room is created by its friendly name (the citizen's CallSid),
# then every later request names it by its CF... SID, and a party by its label or CallSid.


@pytest.mark.parametrize(
    ("to", "start", "end", "beep"),
    [
        ("+8613900000002", True, False, False),  # a call-taker's phone
        ("client:taker-7", True, False, True),  # a call-taker's browser softphone
        ("+8612345", False, False, False),  # a consulted department
        ("+86110", False, True, False),  # an emergency line, by configuration
    ],
    ids=["phone", "softphone", "consultee", "emergency-line"],
)
def test_add_participant_by_friendly_name_is_accepted(
    prism: PrismServer, gateway: TwilioGateway, to: str, start: bool, end: bool, beep: bool
) -> None:
    sid = _accepted(
        prism,
        lambda: gateway.add_participant(
            CALL_SID,
            to=to,
            from_number="+861012345678",
            label="taker-7",
            start_conference_on_enter=start,
            end_conference_on_exit=end,
            early_media=True,
            beep=beep,
            timeout_seconds=20,
            status_callback=PARTICIPANT_STATUS_URL,
            status_callback_events=list(PARTICIPANT_STATUS_EVENTS),
            conference_status_callback=CONFERENCE_STATUS_URL,
        ),
    )
    assert isinstance(sid, str)
    assert sid.startswith("CA")


@pytest.mark.parametrize(
    ("hold", "hold_url"),
    [(True, HOLD_URL), (True, None), (False, None), (False, HOLD_URL)],
    ids=["hold-with-music", "hold-default-music", "resume", "resume-ignores-music"],
)
def test_hold_and_resume_by_label_are_accepted(
    prism: PrismServer, gateway: TwilioGateway, hold: bool, hold_url: str | None
) -> None:
    _accepted(
        prism,
        lambda: gateway.hold_participant(CONFERENCE_SID, "citizen", hold=hold, hold_url=hold_url),
    )


@pytest.mark.parametrize("party", ["consult-1", "night shift/2", CALL_SID])
def test_remove_participant_by_label_or_call_sid_is_accepted(
    prism: PrismServer, gateway: TwilioGateway, party: str
) -> None:
    _accepted(prism, lambda: gateway.remove_participant(CONFERENCE_SID, party))


def test_end_conference_is_accepted(prism: PrismServer, gateway: TwilioGateway) -> None:
    _accepted(prism, lambda: gateway.end_conference(CONFERENCE_SID))


# The mock must be able to say no, or the tests above prove nothing.


def test_raw_client_call_with_relative_status_callback_is_rejected(
    gateway: TwilioGateway,
) -> None:
    calls = gateway.client.calls
    with pytest.raises(Exception, match="Unable to create record") as caught:
        calls.create(
            to="+8613800000001",
            from_="+861012345678",
            twiml="<Response><Hangup/></Response>",
            status_callback="/ivr/call-status",
        )
    assert type(caught.value).__name__ == "TwilioRestException"
    assert getattr(caught.value, "status", None) == 422


def test_gateway_maps_a_rejection_to_a_non_retryable_error(gateway: TwilioGateway) -> None:
    with pytest.raises(GatewayError) as caught:
        gateway.redirect_call(CALL_SID, "/relative/url")
    assert (caught.value.status, caught.value.retryable) == (422, False)


def test_participant_update_by_friendly_name_is_rejected(gateway: TwilioGateway) -> None:
    """Why the gateway takes a CF... SID for everything but create (it refuses a name itself)."""
    participant = gateway.client.conferences(CALL_SID).participants("citizen")
    with pytest.raises(Exception, match="Unable to update record") as caught:
        participant.update(hold=True)
    assert getattr(caught.value, "status", None) == 422


def test_relative_hold_url_is_rejected(gateway: TwilioGateway) -> None:
    with pytest.raises(GatewayError) as caught:
        gateway.hold_participant(CONFERENCE_SID, "citizen", hold=True, hold_url="/hold.mp3")
    assert (caught.value.status, caught.value.retryable) == (422, False)
    assert not isinstance(caught.value, ParticipantGone)


def test_relative_participant_status_callback_is_rejected(gateway: TwilioGateway) -> None:
    with pytest.raises(GatewayError) as caught:
        gateway.add_participant(
            CALL_SID,
            to="+8613900000002",
            from_number="+861012345678",
            label="taker-7",
            start_conference_on_enter=True,
            end_conference_on_exit=False,
            early_media=True,
            beep=False,
            timeout_seconds=20,
            status_callback="/voice/participant-status",
            status_callback_events=list(PARTICIPANT_STATUS_EVENTS),
            conference_status_callback=CONFERENCE_STATUS_URL,
        )
    assert caught.value.status == 422


def test_malformed_call_sid_is_rejected(gateway: TwilioGateway) -> None:
    with pytest.raises(GatewayError) as caught:
        gateway.hang_up("not-a-call-sid")
    assert caught.value.status == 422


def test_request_without_credentials_is_rejected(prism: PrismServer) -> None:
    url = f"{prism.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{CALL_SID}.json"
    response = requests.post(url, data={"Status": "completed"}, timeout=10)
    assert response.status_code == 401


def test_pristine_spec_stays_pristine(prism: PrismServer) -> None:
    """The encoding fix lives in a derived copy next to the log, never in the repo's file."""
    spec = Path(__file__).parent / "twilio-oai" / "twilio_api_v2010.json"
    assert '"encoding"' not in spec.read_text(encoding="utf-8")
    derived = prism.log_path.parent / "twilio_api_v2010.prism.json"
    assert '"encoding"' in derived.read_text(encoding="utf-8")
