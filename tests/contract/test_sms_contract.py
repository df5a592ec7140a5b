"""Every TwilioSmsSender request is one that Twilio's own OpenAPI document accepts.

Runs the sender against the Stoplight Prism mock of ``twilio-oai/twilio_api_v2010.json``
(see tests/contract/test_twilio_rest_contract.py). Prism answers with the document's fixed
examples: assert "accepted vs rejected" and what the sender makes of it, never returned
state. What Prism does not check (phone number formats, an empty body, the DateSent value,
Twilio's business errors 21610/21211 ...) is covered by tests/test_sms_sender.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ivr.sms import TwilioSmsSender
from ivr.twilio_errors import RetryAfterHttpClient
from tests.support.prism import PrismServer, running_prism
from tickets.sms_sender import SentSms, SmsFailure, SmsFailureKind

pytestmark = pytest.mark.contract

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
API_KEY = "SK" + "89abcdef01234567" * 2
MESSAGING_SERVICE_SID = "MG" + "0a1b2c3d" * 4
CITIZEN = "+8613800000001"
HOTLINE = "+861012345678"
BODY = "您的诉求已受理,工单号 2024-000123。如有疑问请拨打 12345。"
SINCE = datetime(2019, 5, 24, 17, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    with running_prism(tmp_path_factory.mktemp("prism-sms")) as server:
        yield server


@pytest.fixture(autouse=True)
def _local_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWILIO_EDGE", "TWILIO_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):  # never send the mock's traffic to a proxy
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1"])))


class _PreferExample(RetryAfterHttpClient):
    """Asks Prism for one named example of the document (``Prefer: example=...``)."""

    def __init__(self, base_url: str, example: str) -> None:
        super().__init__(base_url, timeout=10)
        self.example = example

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "Prefer": f"example={self.example}"}
        return super().request(method, url, *args, **kwargs)


class _NoCredentials(RetryAfterHttpClient):
    """Drops the Authorization, as a misconfigured proxy would."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["auth"] = None
        return super().request(method, url, *args, **kwargs)


SENDERS: dict[str, dict[str, Any]] = {
    "number+auth-token": {"auth_token": AUTH_TOKEN, "from_number": HOTLINE},
    "service+api-key": {
        "api_key": API_KEY,
        "api_secret": AUTH_TOKEN,
        "messaging_service_sid": MESSAGING_SERVICE_SID,
    },
}


def _sender(prism: PrismServer, name: str = "number+auth-token", **extra: Any) -> TwilioSmsSender:
    return TwilioSmsSender.from_settings(
        account_sid=ACCOUNT_SID,
        api_base_url=prism.base_url,
        timeout_seconds=10,
        **{**SENDERS[name], **extra},
    )


def _accepted(prism: PrismServer, call: Any) -> Any:
    """Run ``call``; on a rejection show Prism's log, which names the failing field."""
    try:
        return call()
    except SmsFailure as exc:
        if exc.status is None:
            raise
        pytest.fail(f"Prism rejected the request: {exc!r}\n--- prism log ---\n{prism.log_tail(8)}")


@pytest.mark.parametrize("name", list(SENDERS))
@pytest.mark.parametrize(
    ("public_base_url", "reference"),
    [
        ("https://hotline.example.org", "sms-42"),
        ("https://hotline.example.org/base/", "reminder 2024-000123/due&late=1"),
        (None, "sms-43"),
    ],
    ids=["callback", "callback-odd-reference", "no-callback"],
)
def test_send_is_accepted(
    prism: PrismServer, name: str, public_base_url: str | None, reference: str
) -> None:
    sender = _sender(prism, name, public_base_url=public_base_url)

    sent = _accepted(prism, lambda: sender.send(to=CITIZEN, body=BODY, reference=reference))

    assert isinstance(sent, SentSms)
    assert sent.provider_id.startswith("SM")
    assert sent.status


def test_find_sent_list_request_is_accepted_and_read(prism: PrismServer) -> None:
    """The document's empty-list example: no next page, nothing found."""
    http_client = _PreferExample(prism.base_url, "readEmptySentdateGreater")
    sender = _sender(prism, http_client=http_client)

    assert _accepted(prism, lambda: sender.find_sent(to=CITIZEN, body=BODY, since=SINCE)) is None


def test_find_sent_follows_the_next_page_link(prism: PrismServer) -> None:
    """The document's full-page example always links a next page (Prism serves it again):
    every page request is accepted, and the sender stops at its page limit."""
    base = _sender(prism)
    sender = TwilioSmsSender(base.client, from_number=HOTLINE, find_sent_max_pages=3)
    before = _list_requests(prism)

    with pytest.raises(SmsFailure, match="inconclusive") as caught:
        sender.find_sent(to=CITIZEN, body=BODY, since=SINCE)

    assert (caught.value.kind, caught.value.status) == (SmsFailureKind.RETRY, None)
    assert _list_requests(prism) - before == 3


def _list_requests(prism: PrismServer) -> int:
    log = prism.log_path.read_text(encoding="utf-8", errors="replace")
    return sum(
        1
        for line in log.splitlines()
        if "get /2010-04-01/Accounts/" in line and "/Messages.json" in line
    )


# The mock must be able to say no, or the tests above prove nothing.


def test_raw_message_with_relative_status_callback_is_rejected(prism: PrismServer) -> None:
    messages = _sender(prism).client.messages
    with pytest.raises(Exception, match="Unable to create record") as caught:
        messages.create(
            to=CITIZEN, from_=HOTLINE, body=BODY, status_callback="/voice/sms-status?ref=1"
        )
    assert getattr(caught.value, "status", None) == 422


def test_raw_message_with_malformed_messaging_service_sid_is_rejected(
    prism: PrismServer,
) -> None:
    messages = _sender(prism).client.messages
    with pytest.raises(Exception, match="Unable to create record") as caught:
        messages.create(to=CITIZEN, messaging_service_sid="MG123", body=BODY)
    assert getattr(caught.value, "status", None) == 422


def test_raw_list_with_an_impossible_page_size_is_rejected(prism: PrismServer) -> None:
    messages = _sender(prism).client.messages
    with pytest.raises(Exception, match="Unable to fetch page"):
        messages.page(to=CITIZEN, page_size=5000)


def test_missing_credentials_pause_sending(prism: PrismServer) -> None:
    sender = _sender(prism, http_client=_NoCredentials(prism.base_url, timeout=10))

    with pytest.raises(SmsFailure) as sending:
        sender.send(to=CITIZEN, body=BODY, reference="sms-42")
    with pytest.raises(SmsFailure) as listing:
        sender.find_sent(to=CITIZEN, body=BODY, since=SINCE)

    for failure in (sending.value, listing.value):
        assert (failure.kind, failure.status, failure.maybe_sent) == (
            SmsFailureKind.AUTH,
            401,
            False,
        )
