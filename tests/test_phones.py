"""What Twilio puts in ``From``, classified; and numbers masked for logs."""

from __future__ import annotations

import re

import pytest

from tickets.phones import Caller, CallerKind, mask_number, parse_caller, to_e164

# -- parse_caller -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+8613800138000",
        "13800138000",
        " +86 138 0013 8000 ",
        "+86-138-0013-8000",
        "008613800138000",
    ],
)
def test_a_chinese_mobile_number_is_kept_in_e164(raw: str) -> None:
    assert parse_caller(raw) == Caller(CallerKind.NUMBER, number="+8613800138000")


def test_a_local_lhasa_landline_gets_the_chinese_country_code() -> None:
    assert parse_caller("08916312345") == Caller(CallerKind.NUMBER, number="+868916312345")


def test_the_default_region_decides_how_a_national_number_is_read() -> None:
    assert parse_caller("2025550100", default_region="US").number == "+12025550100"


def test_a_foreign_number_in_e164_is_kept_as_it_is() -> None:
    assert parse_caller("+12025550100") == Caller(CallerKind.NUMBER, number="+12025550100")


@pytest.mark.parametrize(
    ("raw", "identity"),
    [("client:alice", "alice"), ("client:agent_007", "agent_007"), ("Client:Bob", "Bob")],
)
def test_a_browser_softphone_is_a_client_with_its_identity_and_no_number(
    raw: str, identity: str
) -> None:
    assert parse_caller(raw) == Caller(CallerKind.CLIENT, identity=identity)


def test_a_very_long_client_identity_is_cut() -> None:
    caller = parse_caller("client:" + "a" * 1000)

    assert caller.kind is CallerKind.CLIENT
    assert caller.identity is not None
    assert len(caller.identity) <= 120


@pytest.mark.parametrize(
    "raw",
    ["sip:alice@pbx.example.org", "sip:+8613800138000@sip.example.org;transport=tls", "sips:a@b"],
)
def test_a_sip_caller_is_kept_as_its_uri_and_not_as_a_number(raw: str) -> None:
    caller = parse_caller(raw)

    assert caller == Caller(CallerKind.SIP, identity=raw)
    assert caller.number is None


def test_a_very_long_sip_uri_is_cut() -> None:
    caller = parse_caller("sip:" + "a" * 5000 + "@example.org")

    assert caller.kind is CallerKind.SIP
    assert caller.identity is not None
    assert len(caller.identity) <= 200


@pytest.mark.parametrize(
    "raw", ["anonymous", "Anonymous", "restricted", "unknown", "private", "+266696687"]
)
def test_a_withheld_number_is_anonymous_and_never_a_fake_number(raw: str) -> None:
    assert parse_caller(raw) == Caller(CallerKind.ANONYMOUS)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_an_empty_from_is_unknown(raw: str | None) -> None:
    assert parse_caller(raw) == Caller(CallerKind.UNKNOWN)


@pytest.mark.parametrize(
    "raw",
    ["abc", "1" * 50, "+" + "8" * 50, "12", "+", "++86", "☎", "<script>", "\x00"],
    ids=["letters", "fifty-digits", "plus-fifty-digits", "two-digits", "plus", "plusplus",
         "emoji", "markup", "nul"],
)  # fmt: skip
def test_garbage_is_unknown_with_no_number(raw: str) -> None:
    caller = parse_caller(raw)

    assert caller == Caller(CallerKind.UNKNOWN)
    assert caller.number is None


def test_a_parsed_number_always_fits_the_e164_column() -> None:
    for raw in ["+8613800138000", "08916312345", "+12025550100", "+999" + "9" * 20, "9" * 17]:
        caller = parse_caller(raw)
        if caller.number is not None:
            assert re.fullmatch(r"\+[1-9]\d{1,14}", caller.number), raw


def test_to_e164_refuses_what_is_not_a_phone_number() -> None:
    assert to_e164("abc") is None
    assert to_e164("1" * 50) is None
    assert to_e164("+8613800138000") == "+8613800138000"


# -- mask_number ----------------------------------------------------------------------


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+8613800138000", "+86*******8000"),
        ("+868916312345", "+86******2345"),
        ("+442071838750", "+44******8750"),
    ],
)
def test_a_number_is_masked_to_its_country_code_and_last_four_digits(
    number: str, masked: str
) -> None:
    assert mask_number(number) == masked


@pytest.mark.parametrize(
    ("number", "country_code"),
    [
        ("+8613800138000", "86"),
        ("+868916312345", "86"),
        ("+442071838750", "44"),
        ("+85291234567", "852"),
        ("+85366123456", "853"),
        ("+886912345678", "886"),
        ("+4915123456789", "49"),
        ("+12025550100", "1"),
        ("+74951234567", "7"),
    ],
)
def test_a_masked_number_shows_no_more_than_the_country_code_and_the_last_four_digits(
    number: str, country_code: str
) -> None:
    masked = mask_number(number)

    assert masked.startswith(f"+{country_code}*")
    assert masked.endswith(number[-4:])
    assert len(_digits(masked)) <= len(country_code) + 4
    hidden = number[1 + len(country_code) : -4]
    assert hidden not in masked
    assert len(masked) == len(number), "the length is kept so the log stays readable"


@pytest.mark.parametrize(
    ("number", "masked"), [("+8612", "+86**"), ("+861234", "+86****"), ("+8612345", "+86*2345")]
)
def test_a_short_number_shows_no_more_than_its_country_code_and_last_four_digits(
    number: str, masked: str
) -> None:
    assert mask_number(number) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("client:alice", "client:***"),
        ("sip:alice@pbx.example.org", "sip:***"),
        ("anonymous", "***"),
        ("13800138000", "***"),
        (None, "-"),
        ("", "-"),
    ],
)
def test_what_is_not_an_e164_number_shows_no_digits_or_names(
    value: str | None, masked: str
) -> None:
    assert mask_number(value) == masked


def test_a_masked_client_or_sip_identity_does_not_leak_the_name() -> None:
    assert "alice" not in mask_number("client:alice")
    assert "alice" not in mask_number("sip:alice@pbx.example.org")
    assert "138" not in mask_number("sip:+8613800138000@sip.example.org")
