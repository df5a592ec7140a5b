"""Every TwilioSurveyCaller request is one that Twilio's own OpenAPI document accepts.

Runs the caller against the Stoplight Prism mock of ``twilio-oai/twilio_api_v2010.json``
(see tests/contract/test_twilio_rest_contract.py). Prism answers with the document's fixed
examples: assert "accepted vs rejected" and what the caller makes of it, never returned
state. Twilio's business errors (21211, 13224, 20429 ...) are covered by
tests/test_survey_calls.py with ``responses``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ivr.survey_caller import TwilioSurveyCaller
from ivr.twilio_errors import RetryAfterHttpClient
from tests.support.prism import PrismServer, running_prism
from tickets.survey_calls import CallFailure, CallFailureKind
from tickets.surveys import call_urls

pytestmark = pytest.mark.contract

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
API_KEY = "SK" + "89abcdef01234567" * 2
CITIZEN = "+8613800000001"
HOTLINE = "+868916312345"
KEY = "0123456789abcdef0123456789abcdef"
SINCE = datetime(2019, 10, 19, 0, 0, tzinfo=UTC)  # after the example calls: one page


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    with running_prism(tmp_path_factory.mktemp("prism-survey")) as server:
        yield server


@pytest.fixture(autouse=True)
def _local_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWILIO_EDGE", "TWILIO_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):  # never send the mock's traffic to a proxy
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1"])))


class _NoCredentials(RetryAfterHttpClient):
    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["auth"] = None
        return super().request(method, url, *args, **kwargs)


CREDENTIALS: dict[str, dict[str, str]] = {
    "auth-token": {"auth_token": AUTH_TOKEN},
    "api-key": {"api_key": API_KEY, "api_secret": AUTH_TOKEN},
}


def _caller(prism: PrismServer, name: str = "auth-token", **extra: Any) -> TwilioSurveyCaller:
    return TwilioSurveyCaller.from_settings(
        account_sid=ACCOUNT_SID,
        api_base_url=prism.base_url,
        timeout_seconds=10,
        **{**CREDENTIALS[name], **extra},
    )


def _accepted(prism: PrismServer, call: Any) -> Any:
    try:
        return call()
    except CallFailure as exc:
        if exc.status is None:
            raise
        pytest.fail(f"Prism rejected the request: {exc!r}\n--- prism log ---\n{prism.log_tail(8)}")


def _place(caller: TwilioSurveyCaller, base: str = "https://hotline.example.org") -> str:
    answer, status = call_urls(base, KEY)
    return caller.place(
        to=CITIZEN,
        from_=HOTLINE,
        attempt_key=KEY,
        answer_url=answer,
        status_url=status,
        machine_detection=True,
    )


@pytest.mark.parametrize("name", list(CREDENTIALS))
@pytest.mark.parametrize("base", ["https://hotline.example.org", "https://h.example.org/base/"])
def test_place_is_accepted(prism: PrismServer, name: str, base: str) -> None:
    sid = _accepted(prism, lambda: _place(_caller(prism, name), base))
    assert sid.startswith("CA") and len(sid) == 34


def test_find_placed_list_request_is_accepted_and_read(prism: PrismServer) -> None:
    """The document's full page: older calls to another number, so none match and its
    next page is not read."""
    found = _accepted(prism, lambda: _caller(prism).find_placed(to=CITIZEN, since=SINCE))
    assert found == []


def test_raw_call_with_relative_answer_url_is_rejected(prism: PrismServer) -> None:
    calls = _caller(prism).client.calls
    with pytest.raises(Exception, match="Unable to create record") as caught:
        calls.create(to=CITIZEN, from_=HOTLINE, url="/voice/survey/start?attempt=1")
    assert getattr(caught.value, "status", None) == 422


def test_missing_credentials_pause_survey_calls(prism: PrismServer) -> None:
    caller = _caller(prism, http_client=_NoCredentials(prism.base_url, timeout=10))

    with pytest.raises(CallFailure) as placing:
        _place(caller)
    with pytest.raises(CallFailure) as listing:
        caller.find_placed(to=CITIZEN, since=SINCE)

    for failure in (placing.value, listing.value):
        assert (failure.kind, failure.status, failure.maybe_placed) == (
            CallFailureKind.AUTH,
            401,
            False,
        )
