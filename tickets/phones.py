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
    number = to_e164(value, default_region)
    if number is None:
        return Caller(CallerKind.UNKNOWN)
    return Caller(CallerKind.NUMBER, number=number)


def mask_number(value: str | None) -> str:
    """A number safe for logs: country code and last 4 digits, e.g. ``+86*******0001``."""
    if not value:
        return "-"
    text = str(value)
    if not text.startswith("+"):
        # client:/sip:/anonymous identities are not phone numbers; show the scheme only.
        head, sep, _ = text.partition(":")
        return f"{head}:***" if sep else "***"
    digits = text[1:]
    if len(digits) <= 6:
        return "+" + "*" * len(digits)
    return "+" + digits[:2] + "*" * (len(digits) - 6) + digits[-4:]
