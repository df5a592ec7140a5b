"""SmsSender: what TwilioSmsSender sends (HTTP mocked with ``responses``), how each Twilio
error becomes an SmsFailureKind, reconciliation with find_sent, and the console and
recording senders. Requests Twilio's OpenAPI document accepts: tests/contract."""

from __future__ import annotations

import base64
import inspect
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
import responses

from ivr.sms import (
    SMS_STATUS_PATH,
    TWILIO_ERROR_KINDS,
    ConsoleSmsSender,
    TwilioSmsSender,
    console_provider_id,
    status_callback_url,
    twilio_failure_kind,
)
from ivr.twilio_errors import parse_retry_after
from tests.support.sms import RecordingSmsSender
from tickets.sms_sender import (
    MAX_REFERENCE_LENGTH,
    SentSms,
    SmsFailure,
    SmsFailureKind,
    SmsSender,
)

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
API_KEY = "SK" + "89abcdef01234567" * 2
API_SECRET = "s" * 32
MESSAGING_SERVICE_SID = "MG" + "0a1b2c3d" * 4
API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
MESSAGES_URL = f"{API}/Messages.json"
CITIZEN = "+8613800000001"
LIAISON = "+8613900000002"
HOTLINE = "+861012345678"
PUBLIC_BASE_URL = "https://hotline.example"
BODY = "您的诉求已受理,工单号 2024-000123。"
SID = "SM" + "a1b2c3d4" * 4
OTHER_SID = "SM" + "e5f6a7b8" * 4
SINCE = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)

Kind = SmsFailureKind


@pytest.fixture(autouse=True)
def _no_twilio_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)


@pytest.fixture
def http_mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def _sender(**overrides: Any) -> TwilioSmsSender:
    settings: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": HOTLINE,
        "public_base_url": PUBLIC_BASE_URL,
        **overrides,
    }
    return TwilioSmsSender.from_settings(**settings)


def _message_json(
    sid: str = SID,
    *,
    to: str = CITIZEN,
    body: str = BODY,
    status: str = "queued",
    direction: str = "outbound-api",
    created: datetime | None = SINCE,
) -> dict[str, Any]:
    stamp = format_datetime(created) if created else None
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "sid": sid,
        "to": to,
        "from": HOTLINE,
        "body": body,
        "status": status,
        "direction": direction,
        "num_segments": "1",
        "date_created": stamp,
        "date_updated": stamp,
        "date_sent": stamp,
    }


def _twilio_error(code: int, status: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _form(call: Any) -> dict[str, list[str]]:
    return parse_qs(str(call.request.body or ""), keep_blank_values=True)


def _query(call: Any) -> dict[str, str]:
    pairs = parse_qsl(urlsplit(call.request.url).query, keep_blank_values=True)
    assert len(pairs) == len(dict(pairs)), pairs  # nothing repeated
    return dict(pairs)


# ---------------------------------------------------------------------------------------------
# What a send asks Twilio for.


def test_send_posts_to_body_from_and_a_status_callback_naming_the_row(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(responses.POST, MESSAGES_URL, json=_message_json(), status=201)

    sent = _sender().send(to=CITIZEN, body=BODY, reference="sms-42")

    assert sent == SentSms(provider_id=SID, status="queued")
    [call] = http_mock.calls
    assert call.request.url == MESSAGES_URL
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert _form(call) == {
        "To": [CITIZEN],
        "Body": [BODY],
        "From": [HOTLINE],
        "StatusCallback": ["https://hotline.example/voice/sms-status?ref=sms-42"],
    }
    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"


def test_send_through_a_messaging_service_without_public_url_sends_no_from_no_callback(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(responses.POST, MESSAGES_URL, json=_message_json(), status=201)
    sender = _sender(
        from_number=None, messaging_service_sid=MESSAGING_SERVICE_SID, public_base_url=None
    )

    sender.send(to=LIAISON, body="工单 2024-000123 将于明天 17:00 到期", reference="sms-43")

    assert _form(http_mock.calls[0]) == {
        "To": [LIAISON],
        "Body": ["工单 2024-000123 将于明天 17:00 到期"],
        "MessagingServiceSid": [MESSAGING_SERVICE_SID],
    }


@pytest.mark.parametrize(
    "reference", ["sms-42", "reminder 2024-000123/due&late=1", "提醒-7", "a+b%20c#d"]
)
def test_the_reference_comes_back_intact_from_the_callback_query(
    http_mock: responses.RequestsMock, reference: str
) -> None:
    http_mock.add(responses.POST, MESSAGES_URL, json=_message_json(), status=201)

    _sender(public_base_url="https://hotline.example/base/").send(
        to=CITIZEN, body=BODY, reference=reference
    )

    callback = urlsplit(_form(http_mock.calls[0])["StatusCallback"][0])
    assert (callback.scheme, callback.netloc) == ("https", "hotline.example")
    assert callback.path == "/base" + SMS_STATUS_PATH
    assert parse_qs(callback.query) == {"ref": [reference]}
    assert not callback.fragment


def test_status_callback_url_helper() -> None:
    assert status_callback_url("https://h.example/", "sms-1") == (
        "https://h.example/voice/sms-status?ref=sms-1"
    )


def test_api_key_and_a_compatible_provider_base_url(http_mock: responses.RequestsMock) -> None:
    base = "https://sms-gateway.example.cn/twilio"
    url = f"{base}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    http_mock.add(responses.POST, url, json=_message_json(), status=201)
    sender = _sender(
        auth_token=None, api_key=API_KEY, api_secret=API_SECRET, api_base_url=base + "/"
    )

    sender.send(to=CITIZEN, body=BODY, reference="sms-42")

    [call] = http_mock.calls
    assert call.request.url == url
    expected = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"from_number": None}, "exactly one"),
        ({"messaging_service_sid": MESSAGING_SERVICE_SID}, "exactly one"),
        ({"from_number": None, "messaging_service_sid": "MG123"}, "MG followed by 32"),
        ({"public_base_url": "/relative"}, "absolute"),
        ({"public_base_url": "ftp://hotline.example"}, "absolute"),
        ({"public_base_url": "https://hotline.example/?x=1"}, "query"),
        ({"auth_token": None}, "credentials missing"),
        ({"api_key": API_KEY}, "together"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_start(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _sender(**settings)


# ---------------------------------------------------------------------------------------------
# Twilio's answers, and what the outbox is told to do about them.

ERRORS = [
    # (Twilio code, HTTP status, kind); the codes the issue names, then their neighbours.
    (21610, 400, Kind.OPTED_OUT),  # unsubscribed recipient
    (21211, 400, Kind.INVALID_NUMBER),  # invalid 'To'
    (21614, 400, Kind.INVALID_NUMBER),  # not a mobile number
    (21635, 400, Kind.INVALID_NUMBER),  # a landline
    (21268, 400, Kind.INVALID_NUMBER),  # premium rate number
    (21602, 400, Kind.REJECTED),  # empty body
    (21617, 400, Kind.REJECTED),  # body over 1600 characters
    (21408, 400, Kind.REJECTED),  # destination region not enabled for the account
    (21612, 400, Kind.REJECTED),  # To/From combination cannot be routed
    (21608, 400, Kind.REJECTED),  # trial account, unverified number
    (21606, 400, Kind.REJECTED),  # From not message-capable for this destination
    (21999, 400, Kind.REJECTED),  # a code nobody told us about: a 4xx stays a 4xx
    (20003, 401, Kind.AUTH),  # wrong credentials
    (20005, 403, Kind.AUTH),  # account not active
    (21660, 400, Kind.AUTH),  # From is not this account's
    (21603, 400, Kind.AUTH),  # neither From nor MessagingServiceSid
    (20404, 404, Kind.AUTH),  # no such account (wrong SID or base URL)
    (20429, 429, Kind.RETRY),  # too many requests
    (21611, 400, Kind.RETRY),  # the sender's queue is full
    (20500, 500, Kind.RETRY),
    (20503, 503, Kind.RETRY),
]


@pytest.mark.parametrize(("code", "status", "kind"), ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_each_twilio_error_becomes_its_kind_keeping_code_and_status(
    http_mock: responses.RequestsMock, code: int, status: int, kind: SmsFailureKind
) -> None:
    message = f"The 'To' number {CITIZEN} is not valid (error {code})."
    http_mock.add(
        responses.POST, MESSAGES_URL, json=_twilio_error(code, status, message), status=status
    )

    with pytest.raises(SmsFailure) as caught:
        _sender().send(to=CITIZEN, body=BODY, reference="sms-42")

    failure = caught.value
    assert (failure.kind, failure.code, failure.status) == (kind, code, status)
    assert failure.retryable is (kind is Kind.RETRY)
    assert failure.maybe_sent is (status >= 500)  # a 4xx is never processed
    assert failure.retry_after is None
    assert str(code) in str(failure)
    assert CITIZEN not in str(failure) and CITIZEN not in repr(failure)
    assert "+86*******0001" in str(failure)
    assert failure.__cause__ is None and failure.__suppress_context__


def test_every_code_in_the_table_is_covered_above() -> None:
    assert set(TWILIO_ERROR_KINDS) - {code for code, _, _ in ERRORS} <= {
        10001,
        21601,
        21619,
        21658,
        21266,
        21659,
    }
    for code, status, kind in ERRORS:
        assert twilio_failure_kind(code, status) is kind


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, "", Kind.AUTH),
        (403, "<html>forbidden</html>", Kind.AUTH),
        (404, "<html>not found</html>", Kind.AUTH),  # the base URL points nowhere
        (400, "<html>bad request</html>", Kind.REJECTED),
        (422, '{"status": 422, "message": "invalid"}', Kind.REJECTED),
        (408, "", Kind.RETRY),
        (429, "", Kind.RETRY),
        (502, "<html>bad gateway</html>", Kind.RETRY),
    ],
)
def test_answers_without_a_twilio_code_are_judged_by_http_status(
    http_mock: responses.RequestsMock, status: int, body: str, kind: SmsFailureKind
) -> None:
    http_mock.add(responses.POST, MESSAGES_URL, body=body, status=status)

    with pytest.raises(SmsFailure) as caught:
        _sender().send(to=CITIZEN, body=BODY, reference="sms-42")

    assert (caught.value.kind, caught.value.code, caught.value.status) == (kind, None, status)


@pytest.mark.parametrize(
    ("error", "maybe_sent"),
    [
        (requests.ConnectTimeout("connect timed out"), False),  # never reached Twilio
        (requests.ReadTimeout("read timed out"), True),  # Twilio may have created it
        (requests.ConnectionError("connection reset by peer"), True),
    ],
    ids=["connect-timeout", "read-timeout", "connection-error"],
)
def test_network_failures_are_retried_and_say_whether_the_text_may_be_out(
    http_mock: responses.RequestsMock, error: Exception, maybe_sent: bool
) -> None:
    http_mock.add(responses.POST, MESSAGES_URL, body=error)

    with pytest.raises(SmsFailure) as caught:
        _sender().send(to=CITIZEN, body=BODY, reference="sms-42")

    assert caught.value.kind is Kind.RETRY
    assert (caught.value.code, caught.value.status) == (None, None)
    assert caught.value.maybe_sent is maybe_sent
    assert type(error).__name__ in str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [("<html>proxy</html>", "not JSON"), ('{"status": "queued"}', "no message SID")],
)
def test_an_unreadable_success_may_have_sent_the_text(
    http_mock: responses.RequestsMock, body: str, message: str
) -> None:
    http_mock.add(responses.POST, MESSAGES_URL, body=body, status=201)

    with pytest.raises(SmsFailure, match=message) as caught:
        _sender().send(to=CITIZEN, body=BODY, reference="sms-42")

    assert (caught.value.kind, caught.value.maybe_sent) == (Kind.RETRY, True)


@pytest.mark.parametrize(
    ("status", "code", "header", "expected"),
    [
        (429, 20429, "7", 7.0),
        (429, 20429, "1.5", 1.5),
        (503, 20503, "120", 120.0),
        (429, 20429, None, None),
        (429, 20429, "soon", None),
        (429, 20429, "-3", 0.0),
    ],
)
def test_retry_after_is_passed_on_when_twilio_sends_it(
    http_mock: responses.RequestsMock,
    status: int,
    code: int,
    header: str | None,
    expected: float | None,
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    http_mock.add(
        responses.POST,
        MESSAGES_URL,
        json=_twilio_error(code, status, "Too Many Requests"),
        status=status,
        headers=headers,
    )

    with pytest.raises(SmsFailure) as caught:
        _sender().send(to=CITIZEN, body=BODY, reference="sms-42")

    assert caught.value.kind is Kind.RETRY
    assert caught.value.retry_after == expected


def test_retry_after_as_an_http_date(http_mock: responses.RequestsMock) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=90)
    http_mock.add(
        responses.POST,
        MESSAGES_URL,
        json=_twilio_error(20429, 429, "Too Many Requests"),
        status=429,
        headers={"Retry-After": format_datetime(later, usegmt=True)},
    )

    with pytest.raises(SmsFailure) as caught:
        _sender().send(to=CITIZEN, body=BODY, reference="sms-42")

    assert caught.value.retry_after is not None
    assert 80 <= caught.value.retry_after <= 90


def test_a_retry_after_of_an_earlier_request_is_not_reused(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(
        responses.POST,
        MESSAGES_URL,
        json=_twilio_error(20429, 429, "Too Many Requests"),
        status=429,
        headers={"Retry-After": "30"},
    )
    http_mock.add(responses.POST, MESSAGES_URL, body=requests.ReadTimeout("read timed out"))
    sender = _sender()

    with pytest.raises(SmsFailure) as first:
        sender.send(to=CITIZEN, body=BODY, reference="sms-42")
    with pytest.raises(SmsFailure) as second:
        sender.send(to=CITIZEN, body=BODY, reference="sms-42")

    assert (first.value.retry_after, second.value.retry_after) == (30.0, None)


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after(" 5 ", now) == 5.0
    for value in (None, "", "nan", "inf", "later"):
        assert parse_retry_after(value, now) is None


# ---------------------------------------------------------------------------------------------
# Checked before any request is spent.


@pytest.mark.parametrize(
    ("to", "body", "kind"),
    [
        ("13800000001", BODY, Kind.INVALID_NUMBER),  # not E.164
        ("anonymous", BODY, Kind.INVALID_NUMBER),
        ("client:taker-7", BODY, Kind.INVALID_NUMBER),
        ("", BODY, Kind.INVALID_NUMBER),
        (CITIZEN, "", Kind.REJECTED),
        (CITIZEN, "  \n", Kind.REJECTED),
    ],
)
def test_what_no_provider_could_send_fails_without_a_request(
    http_mock: responses.RequestsMock, to: str, body: str, kind: SmsFailureKind
) -> None:
    with pytest.raises(SmsFailure) as caught:
        _sender().send(to=to, body=body, reference="sms-42")
    assert caught.value.kind is kind
    assert len(http_mock.calls) == 0


@pytest.mark.parametrize("reference", ["", "  ", "r" * (MAX_REFERENCE_LENGTH + 1)])
def test_a_missing_or_overlong_reference_is_a_programming_error(
    http_mock: responses.RequestsMock, reference: str
) -> None:
    with pytest.raises(ValueError, match="reference"):
        _sender().send(to=CITIZEN, body=BODY, reference=reference)
    assert len(http_mock.calls) == 0


# ---------------------------------------------------------------------------------------------
# Logs: one line per send, numbers masked, no body, nothing from twilio's own logger.


def test_logs_mask_numbers_and_leave_out_the_body(
    http_mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    http_mock.add(responses.POST, MESSAGES_URL, json=_message_json(), status=201)
    http_mock.add(
        responses.POST,
        MESSAGES_URL,
        json=_twilio_error(21610, 400, f"Attempt to send to unsubscribed recipient {CITIZEN}"),
        status=400,
    )
    http_mock.add(
        responses.POST,
        MESSAGES_URL,
        json=_twilio_error(20003, 401, "Authenticate"),
        status=401,
    )
    caplog.set_level(logging.DEBUG)
    sender = _sender()

    sender.send(to=CITIZEN, body=BODY, reference="sms-42")
    for _ in range(2):
        with pytest.raises(SmsFailure):
            sender.send(to=CITIZEN, body=BODY, reference="sms-42")

    records = [r for r in caplog.records if r.name == "ivr.sms"]
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING, logging.ERROR]
    assert f"ref=sms-42 to=+86*******0001 sid={SID} status=queued" in records[0].getMessage()
    assert "kind=opted_out code=21610" in records[1].getMessage()
    assert "kind=auth code=20003" in records[2].getMessage()
    assert CITIZEN not in caplog.text
    assert HOTLINE not in caplog.text
    assert BODY not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("twilio")]


# ---------------------------------------------------------------------------------------------
# find_sent: reconciliation after a crash between send and commit.


def _page(
    messages: list[dict[str, Any]], *, next_page_uri: str | None = None, page: int = 0
) -> dict[str, Any]:
    return {
        "messages": messages,
        "first_page_uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=100&Page=0",
        "next_page_uri": next_page_uri,
        "previous_page_uri": None,
        "page": page,
        "page_size": 100,
        "start": 0,
        "end": len(messages) - 1,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=100&Page={page}",
    }


NEXT_PAGE_URI = (
    f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    "?To=%2B8613800000001&DateSent%3E=2024-05-01&PageSize=100&Page=1&PageToken=PAabc"
)


def test_find_sent_lists_by_number_and_day_and_matches_the_body(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(
        responses.GET,
        MESSAGES_URL,
        json=_page(
            [
                _message_json("SM" + "1" * 32, body="另一条短信"),
                _message_json(SID, status="delivered", created=SINCE + timedelta(seconds=3)),
                _message_json("SM" + "2" * 32, direction="inbound"),
            ]
        ),
    )

    found = _sender().find_sent(to=CITIZEN, body=BODY, since=SINCE)

    assert found == SentSms(provider_id=SID, status="delivered")
    [call] = http_mock.calls
    assert call.request.method == "GET"
    assert _query(call) == {"To": CITIZEN, "DateSent>": "2024-05-01", "PageSize": "100"}


def test_find_sent_asks_for_the_utc_day_of_since_less_the_clock_skew(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(responses.GET, MESSAGES_URL, json=_page([]))
    beijing = timezone(timedelta(hours=8))

    # 2024-05-02 08:01 in Beijing is 2024-05-02 00:01 UTC; less 2 minutes: 2024-05-01.
    since = datetime(2024, 5, 2, 8, 1, tzinfo=beijing)
    assert _sender().find_sent(to=CITIZEN, body=BODY, since=since) is None

    assert _query(http_mock.calls[0])["DateSent>"] == "2024-05-01"


def test_find_sent_follows_pages_and_returns_the_most_recent_match(
    http_mock: responses.RequestsMock,
) -> None:
    http_mock.add(
        responses.GET,
        MESSAGES_URL,
        json=_page([_message_json(OTHER_SID, created=SINCE)], next_page_uri=NEXT_PAGE_URI),
    )
    http_mock.add(
        responses.GET,
        MESSAGES_URL,
        json=_page([_message_json(SID, created=SINCE + timedelta(minutes=1))], page=1),
    )

    found = _sender().find_sent(to=CITIZEN, body=BODY, since=SINCE)

    assert found is not None and found.provider_id == SID
    _, second = http_mock.calls
    assert _query(second)["PageToken"] == "PAabc"
    assert _query(second)["Page"] == "1"


@pytest.mark.parametrize(
    ("message", "found"),
    [
        (_message_json(created=SINCE - timedelta(seconds=119)), True),  # within the skew
        (_message_json(created=SINCE - timedelta(minutes=3)), False),  # before the attempt
        (_message_json(to=LIAISON), False),  # a provider that ignored the To filter
        (_message_json(body=BODY + "!"), False),
        (_message_json(body=f"  {BODY}\n"), True),
        (_message_json(body="Sent from your Twilio trial account - " + BODY), True),
        (_message_json(body=""), False),  # body not retained: cannot tell
        (_message_json(direction="outbound-reply"), True),
        (_message_json(direction="inbound"), False),
        (_message_json(status="failed"), True),  # accepted, then failed: still not resent
        (_message_json(created=None), True),  # no date: the DateSent filter has to do
    ],
    ids=[
        "within-skew",
        "too-early",
        "other-number",
        "other-body",
        "whitespace",
        "trial-prefix",
        "no-body",
        "reply",
        "inbound",
        "failed",
        "no-date",
    ],
)
def test_find_sent_matching(
    http_mock: responses.RequestsMock, message: dict[str, Any], found: bool
) -> None:
    http_mock.add(responses.GET, MESSAGES_URL, json=_page([message]))

    result = _sender().find_sent(to=CITIZEN, body=BODY, since=SINCE)

    assert (result is not None) is found


def test_find_sent_refuses_to_guess_beyond_its_page_limit(
    http_mock: responses.RequestsMock,
) -> None:
    for _ in range(2):
        http_mock.add(responses.GET, MESSAGES_URL, json=_page([], next_page_uri=NEXT_PAGE_URI))
    sender = TwilioSmsSender(_sender().client, from_number=HOTLINE, find_sent_max_pages=2)

    with pytest.raises(SmsFailure, match="inconclusive") as caught:
        sender.find_sent(to=CITIZEN, body=BODY, since=SINCE)

    assert caught.value.kind is Kind.RETRY
    assert len(http_mock.calls) == 2


def test_find_sent_needs_an_aware_since(http_mock: responses.RequestsMock) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _sender().find_sent(to=CITIZEN, body=BODY, since=datetime(2024, 5, 1, 10, 0))


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "code", "retry_after"),
    [
        (401, _twilio_error(20003, 401, "Authenticate"), {}, Kind.AUTH, 20003, None),
        (
            429,
            _twilio_error(20429, 429, "Too Many Requests"),
            {"Retry-After": "4"},
            Kind.RETRY,
            20429,
            4.0,
        ),
        (500, _twilio_error(20500, 500, "Internal Server Error"), {}, Kind.RETRY, 20500, None),
    ],
    ids=["auth", "too-many-requests", "server-error"],
)
@pytest.mark.parametrize("on_page", [1, 2])
def test_find_sent_failures_on_any_page(
    http_mock: responses.RequestsMock,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    kind: SmsFailureKind,
    code: int,
    retry_after: float | None,
    on_page: int,
) -> None:
    if on_page == 2:  # twilio raises a bare TwilioException for a failed next page
        http_mock.add(responses.GET, MESSAGES_URL, json=_page([], next_page_uri=NEXT_PAGE_URI))
    http_mock.add(responses.GET, MESSAGES_URL, json=body, status=status, headers=headers)

    with pytest.raises(SmsFailure) as caught:
        _sender().find_sent(to=CITIZEN, body=BODY, since=SINCE)

    failure = caught.value
    assert (failure.kind, failure.code, failure.status) == (kind, code, status)
    assert failure.retry_after == retry_after
    assert failure.maybe_sent is False


def test_find_sent_network_errors_keep_the_number_out_of_the_message(
    http_mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing registered for GET: responses raises a ConnectionError naming the full URL,
    # query string (To=%2B86...) included.
    http_mock.add(responses.POST, MESSAGES_URL, json=_message_json(), status=201)
    sender = _sender()
    sender.send(to=CITIZEN, body=BODY, reference="sms-42")

    with pytest.raises(SmsFailure) as caught:
        sender.find_sent(to=CITIZEN, body=BODY, since=SINCE)

    assert caught.value.kind is Kind.RETRY
    text = str(caught.value) + caplog.text
    assert "ConnectionError" in text
    assert "8613800000001" not in text
    assert "%2B86*******0001" not in text and "+86*******0001" in text


# ---------------------------------------------------------------------------------------------
# The same contract, whichever sender.


def _twilio_sender_with_memory(mock: responses.RequestsMock) -> TwilioSmsSender:
    """A Twilio sender whose mock creates messages, then lists what it created."""
    created: list[dict[str, Any]] = []

    def create(request: Any) -> tuple[int, dict[str, str], str]:
        form = {key: values[0] for key, values in parse_qs(request.body).items()}
        message = _message_json(
            "SM" + f"{len(created) + 1:032x}",
            to=form["To"],
            body=form["Body"],
            created=datetime.now(UTC).replace(microsecond=0),
        )
        created.append(message)
        return 201, {}, json.dumps(message)

    def list_(request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {}, json.dumps(_page(list(reversed(created))))  # To filter left to us

    mock.add_callback(responses.POST, MESSAGES_URL, callback=create)
    mock.add_callback(responses.GET, MESSAGES_URL, callback=list_)
    return _sender()


@pytest.fixture(params=["twilio", "console", "recording"])
def any_sender(request: pytest.FixtureRequest) -> Iterator[SmsSender]:
    if request.param == "console":
        yield ConsoleSmsSender()
    elif request.param == "recording":
        yield RecordingSmsSender()
    else:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            yield _twilio_sender_with_memory(mock)


def test_any_sender_sends_and_then_finds_what_it_sent(any_sender: SmsSender) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)

    first = any_sender.send(to=CITIZEN, body=BODY, reference="sms-1")
    second = any_sender.send(to=LIAISON, body="提醒:工单明天到期", reference="sms-2")

    assert first.provider_id.startswith("SM") and first.provider_id != second.provider_id
    assert first.status == "queued"
    assert any_sender.find_sent(to=CITIZEN, body=BODY, since=before) == first
    assert any_sender.find_sent(to=CITIZEN, body="提醒:工单明天到期", since=before) is None
    assert any_sender.find_sent(to=LIAISON, body="提醒:工单明天到期", since=before) == second
    later = datetime.now(UTC) + timedelta(hours=1)
    assert any_sender.find_sent(to=CITIZEN, body=BODY, since=later) is None


def test_any_sender_refuses_what_no_provider_could_send(any_sender: SmsSender) -> None:
    with pytest.raises(SmsFailure) as bad_number:
        any_sender.send(to="010-12345678", body=BODY, reference="sms-1")
    with pytest.raises(SmsFailure) as empty:
        any_sender.send(to=CITIZEN, body=" ", reference="sms-1")
    with pytest.raises(ValueError):
        any_sender.send(to=CITIZEN, body=BODY, reference="")

    assert bad_number.value.kind is Kind.INVALID_NUMBER
    assert empty.value.kind is Kind.REJECTED


@pytest.mark.parametrize("implementation", [TwilioSmsSender, ConsoleSmsSender, RecordingSmsSender])
def test_implementations_have_the_protocols_signatures(implementation: type) -> None:
    for name in ("send", "find_sent"):
        wanted = inspect.signature(getattr(SmsSender, name))
        actual = inspect.signature(getattr(implementation, name))
        assert list(actual.parameters) == list(wanted.parameters), name
        for parameter in list(actual.parameters.values())[1:]:
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, (name, parameter)


# ---------------------------------------------------------------------------------------------
# ConsoleSmsSender


def test_console_logs_masked_and_gives_a_sid_like_id_per_reference(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ivr.sms")
    sender = ConsoleSmsSender()

    first = sender.send(to=CITIZEN, body=BODY, reference="sms-42")
    again = sender.send(to=CITIZEN, body=BODY, reference="sms-42")
    other = sender.send(to=CITIZEN, body=BODY, reference="sms-43")

    assert first.provider_id == again.provider_id == console_provider_id("sms-42")
    assert other.provider_id != first.provider_id
    assert re.fullmatch(r"SMconsole[0-9a-f]{25}", first.provider_id)
    assert [s.reference for s in sender.sent] == ["sms-42", "sms-42", "sms-43"]
    assert "+86*******0001" in caplog.text
    assert CITIZEN not in caplog.text
    assert BODY not in caplog.text


def test_console_find_sent_answers_from_this_process_with_its_clock() -> None:
    now = [SINCE]
    sender = ConsoleSmsSender(clock=lambda: now[0])
    sender.send(to=CITIZEN, body=BODY, reference="sms-1")
    now[0] = SINCE + timedelta(minutes=5)
    sender.send(to=CITIZEN, body=BODY, reference="sms-2")

    found = sender.find_sent(to=CITIZEN, body=BODY, since=SINCE)
    assert found == SentSms(console_provider_id("sms-2"), "queued")  # the most recent
    assert sender.find_sent(to=CITIZEN, body=BODY, since=SINCE + timedelta(minutes=6)) is None
    assert ConsoleSmsSender().find_sent(to=CITIZEN, body=BODY, since=SINCE) is None


# ---------------------------------------------------------------------------------------------
# RecordingSmsSender (tests/support/sms.py)


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        (Kind.RETRY, None, None),
        (Kind.OPTED_OUT, 21610, 400),
        (Kind.INVALID_NUMBER, 21211, 400),
        (Kind.REJECTED, 21602, 400),
        (Kind.AUTH, 20003, 401),
    ],
)
def test_recording_sender_fails_the_next_n_sends_with_twilios_codes(
    kind: SmsFailureKind, code: int | None, status: int | None
) -> None:
    sender = RecordingSmsSender()
    sender.fail_next(kind, times=2)

    for _ in range(2):
        with pytest.raises(SmsFailure) as caught:
            sender.send(to=CITIZEN, body=BODY, reference="sms-1")
        assert (caught.value.kind, caught.value.code, caught.value.status) == (kind, code, status)
        assert caught.value.maybe_sent is False
    sent = sender.send(to=CITIZEN, body=BODY, reference="sms-1")

    assert sender.sent == [sender.sent[0]] and sender.sent[0].provider_id == sent.provider_id
    assert sender.attempts == [("sms-1", CITIZEN)] * 3
    assert sender.pending_failures == 0


def test_recording_sender_failures_queue_in_order_with_retry_after() -> None:
    sender = RecordingSmsSender()
    sender.fail_next(Kind.RETRY, retry_after=30, code=20429, status=429)
    sender.fail_next(Kind.OPTED_OUT)
    kinds = []
    for _ in range(2):
        with pytest.raises(SmsFailure) as caught:
            sender.send(to=CITIZEN, body=BODY, reference="sms-1")
        kinds.append((caught.value.kind, caught.value.retry_after, caught.value.code))
    assert kinds == [(Kind.RETRY, 30, 20429), (Kind.OPTED_OUT, None, 21610)]


def test_recording_sender_plays_the_crash_after_the_provider_accepted() -> None:
    sender = RecordingSmsSender(clock=lambda: SINCE)
    sender.fail_next(Kind.RETRY, accepted=True)

    with pytest.raises(SmsFailure) as caught:
        sender.send(to=CITIZEN, body=BODY, reference="sms-1")

    assert caught.value.maybe_sent is True
    found = sender.find_sent(to=CITIZEN, body=BODY, since=SINCE)
    assert found is not None and found.provider_id == sender.sent[0].provider_id
    assert sender.references() == ["sms-1"]


def test_recording_sender_invalid_input_uses_no_planned_failure() -> None:
    sender = RecordingSmsSender()
    sender.fail_next(Kind.RETRY)
    with pytest.raises(SmsFailure) as caught:
        sender.send(to="12345", body=BODY, reference="sms-1")
    assert caught.value.kind is Kind.INVALID_NUMBER
    assert sender.pending_failures == 1


def test_recording_sender_find_sent_can_fail_and_refuses_nonsense() -> None:
    sender = RecordingSmsSender()
    sender.fail_next_find_sent(SmsFailure("provider down", kind=Kind.RETRY, status=503))
    with pytest.raises(SmsFailure, match="provider down"):
        sender.find_sent(to=CITIZEN, body=BODY, since=SINCE)
    assert sender.find_sent(to=CITIZEN, body=BODY, since=SINCE) is None
    assert sender.find_sent_calls == 2
    with pytest.raises(ValueError):
        sender.fail_next(Kind.RETRY, times=0)
    with pytest.raises(ValueError):
        sender.fail_next(Kind.OPTED_OUT, accepted=True)
