"""Posting webhooks to the app exactly as Twilio would: signed, with its parameters."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.twilio_sdk import RequestValidator

ACCOUNT_SID = "AC" + "1" * 32


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def call_params(call_sid: str, from_number: str = "+8613800000001", **extra: str) -> dict:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "in-progress",
        "Direction": "inbound",
        "From": from_number,
        "To": "+868916312345",
        "Caller": from_number,
        "Called": "+868916312345",
        **extra,
    }


@dataclass
class TwilioSender:
    client: FlaskClient
    auth_token: str
    public_base_url: str
    validator: RequestValidator = field(init=False)

    def __post_init__(self) -> None:
        self.validator = RequestValidator(self.auth_token)

    def signature(self, path: str, params: Mapping[str, str]) -> str:
        return self.validator.compute_signature(self.public_base_url + path, dict(params))

    def post(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        token: str | None = None,
        signature: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> TestResponse:
        all_headers = {
            "X-Twilio-Signature": signature or self.signature(path, params),
            "I-Twilio-Idempotency-Token": token or str(uuid.uuid4()),
            **(headers or {}),
        }
        return self.client.post(path, data=dict(params), headers=all_headers)
