"""Phone numbers: parse what Twilio sends into E.164 and mask numbers for logs.

Twilio's ``From`` is not always a number: ``client:alice`` (a browser softphone),
``sip:...``, ``anonymous``/``+266696687`` (withheld caller id) or an empty string.
Those callers are kept as a *kind* with no number, never as a fake number.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import phonenumbers

# What carriers put in From when the caller withheld their number.
_WITHHELD = {"anonymous", "restricted", "unknown", "private", "unavailable", "+266696687"}


class CallerKind(StrEnum):
    NUMBER = "number"
    ANONYMOUS = "anonymous"
    CLIENT = "client"
    SIP = "sip"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Caller:
    kind: CallerKind
    number: str | None = None  # E.164, only for CallerKind.NUMBER
    identity: str | None = None  # client identity or SIP URI


def to_e164(raw: str, default_region: str = "CN") -> str | None:
    """The E.164 form of ``raw``, or None when it is not a valid phone number."""
    try:
        parsed = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_caller(raw: str | None, default_region: str = "CN") -> Caller:
    """Classify Twilio's ``From`` value."""
    value = (raw or "").strip()
    lowered = value.lower()
    if not value:
        return Caller(CallerKind.UNKNOWN)
    if lowered in _WITHHELD:
        return Caller(CallerKind.ANONYMOUS)
    if lowered.startswith("client:"):
        return Caller(CallerKind.CLIENT, identity=value[len("client:") :][:120])
    if lowered.startswith(("sip:", "sips:")):
        return Caller(CallerKind.SIP, identity=value[:200])
    try:
        parsed = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        # A short code or garbage: not a number we could call back (the raw value stays
        # in the call's events).
        return Caller(CallerKind.UNKNOWN)
    return Caller(
        CallerKind.NUMBER,
        number=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
    )


def mask_number(value: str | None) -> str:
    """A number safe for logs: country code and last 4 digits, e.g. ``+86*******0001``."""
    if not value:
        return "-"
    text = str(value)
    if not text.startswith("+"):
        # client:/sip:/anonymous identities are not phone numbers; show the scheme only.
        head, sep, _ = text.partition(":")
        return f"{head}:***" if sep else "***"
    digits = "".join(ch for ch in text[1:] if ch.isdigit())
    try:
        country = str(phonenumbers.parse(text).country_code)
    except phonenumbers.NumberParseException:
        country = ""
    rest = digits[len(country) :]
    if len(rest) <= 4:
        return "+" + country + "*" * len(rest)
    return "+" + country + "*" * (len(rest) - 4) + rest[-4:]
