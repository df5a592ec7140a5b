"""Twilio's webhook forms parsed into typed events. Twilio's PascalCase stops here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import Any

from werkzeug.datastructures import MultiDict

from tickets.models import CallStatus

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
MAX_PARAM_CHARS = 2_000  # a 10 kB speech result is cut before it is stored


def form_snapshot(*forms: MultiDict[str, str]) -> dict[str, Any]:
    """The parameters as stored in ``call_events``: lists only where repeated.

    At most 100 names and 20 values a name; a name in several ``forms`` (query string
    and body) keeps the values of the first.
    """
    snapshot: dict[str, Any] = {}
    for form in forms:
        for key, values in islice(form.lists(), 100):
            name = _clean(key)[:100]
            if name in snapshot or len(snapshot) >= 100:
                continue
            if len(values) == 1:
                snapshot[name] = _clean(values[0])[:MAX_PARAM_CHARS]
            else:
                snapshot[name] = [_clean(value)[:MAX_PARAM_CHARS] for value in values[:20]]
    return snapshot


def _clean(text: str) -> str:
    """PostgreSQL's JSONB refuses NUL characters; nothing Twilio sends contains one."""
    return text.replace("\x00", "")


def _int(value: str | None) -> int | None:
    """A small non-negative integer from Twilio's form, else None (never an overflow)."""
    try:
        number = int(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number < 2**31 else None


def _timestamp(value: str | None) -> datetime:
    if value:
        try:
            parsed = parsedate_to_datetime(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _call_status(value: str | None) -> CallStatus | None:
    try:
        return CallStatus((value or "").strip().lower())
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CallStatusEvent:
    call_sid: str
    status: CallStatus | None
    sequence_number: int | None
    duration_seconds: int | None
    at: datetime

    @classmethod
    def parse(cls, form: MultiDict[str, str]) -> CallStatusEvent:
        return cls(
            call_sid=form.get("CallSid", "")[:34],
            status=_call_status(form.get("CallStatus")),
            sequence_number=_int(form.get("SequenceNumber")),
            duration_seconds=_int(form.get("CallDuration")),
            at=_timestamp(form.get("Timestamp")),
        )


@dataclass(frozen=True, slots=True)
class ConferenceEvent:
    conference_sid: str
    room: str
    event: str
    call_sid: str
    label: str
    sequence_number: int | None
    at: datetime

    @classmethod
    def parse(cls, form: MultiDict[str, str]) -> ConferenceEvent:
        return cls(
            conference_sid=form.get("ConferenceSid", "")[:34],
            room=form.get("FriendlyName", "")[:128],
            event=form.get("StatusCallbackEvent", "")[:40],
            call_sid=form.get("CallSid", "")[:34],
            label=form.get("ParticipantLabel", "")[:64],
            sequence_number=_int(form.get("SequenceNumber")),
            at=_timestamp(form.get("Timestamp")),
        )


def dedupe_key(token: str | None, *fallback: object) -> str | None:
    """Twilio's idempotency token, else a key built from the callback's own identity."""
    if token:
        return token.strip()[:120]
    if fallback and all(part not in (None, "") for part in fallback):
        return ":".join(str(part) for part in fallback)[:120]
    return None
