"""The webhooks the benchmark posts: Twilio's form for an inbound call, signed as Twilio signs.

The only module of the harness that imports twilio (tests/test_architecture.py exempts it).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from .tools import AUTH_TOKEN

ACCOUNT_SID = "AC" + "0" * 32
HOTLINE_NUMBER = "+868916312345"
INCOMING_PATH = "/voice/incoming"
MENU_PATH = "/voice/step/menu?lang=zh&try=1"
MENU_KIND = "step:menu"


@dataclass(frozen=True)
class Delivery:
    path: str
    form: list[tuple[str, str]]

    def signed(self, base_url: str) -> tuple[str, str]:
        """``(X-Twilio-Signature, body)`` for a server whose public base is ``base_url``."""
        validator = RequestValidator(AUTH_TOKEN)
        signature = validator.compute_signature(base_url + self.path, dict(self.form))
        return signature, urlencode(self.form)


def call_sids(count: int, run: str) -> list[str]:
    return [f"CA{run}{index:08d}".ljust(34, "0")[:34] for index in range(count)]


def twilio_form(call_sid: str, index: int, **extra: str) -> list[tuple[str, str]]:
    """The form Twilio posts for an inbound call (voice webhook parameters)."""
    caller = f"+86138{index:08d}"
    return [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", extra.pop("CallStatus", "in-progress")),
        ("Called", HOTLINE_NUMBER),
        ("CalledCountry", "CN"),
        ("Caller", caller),
        ("CallerCountry", "CN"),
        ("Direction", "inbound"),
        ("From", caller),
        ("FromCountry", "CN"),
        ("To", HOTLINE_NUMBER),
        ("ToCountry", "CN"),
        *extra.items(),
    ]


def post(base_url: str, delivery: Delivery, token: str, timeout: float = 5.0) -> tuple[int, str]:
    signature, body = delivery.signed(base_url)
    request = urllib.request.Request(
        base_url + delivery.path,
        data=body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": token,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
