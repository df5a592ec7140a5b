"""What the SMS outbox needs of an SMS provider: send one text, and find one already sent.

Pure types, no provider in sight: Twilio is the reference implementation (``ivr.sms``);
a deployment in mainland China plugs in a domestic gateway behind the same interface.

Failures are one exception, :class:`SmsFailure`, whose :class:`SmsFailureKind` tells the
outbox what to do with the row: retry later, mark the recipient, give up on this text, or
stop sending altogether until an operator fixes the account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

# Room for the outbox's own keys ("sms-42", "reminder-2024-000123-due-1") in a URL query.
MAX_REFERENCE_LENGTH = 64
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class SmsFailureKind(StrEnum):
    RETRY = "retry"
    """Try again later (with backoff; honour ``retry_after``): timeouts, connection errors,
    5xx, too many requests, anything unknown. See ``maybe_sent`` before resending."""
    OPTED_OUT = "opted_out"
    """The recipient unsubscribed from this sender (replied STOP): mark it, never retry."""
    INVALID_NUMBER = "invalid_number"
    """The number cannot receive SMS (not a number, not a mobile, a landline): mark it,
    never retry."""
    REJECTED = "rejected"
    """The provider refused this text and would refuse it again (empty or too long body,
    destination not permitted for the account ...): fail the row, never retry."""
    AUTH = "auth"
    """Credentials, account or sender configuration are wrong: nothing will go out until an
    operator fixes them. Pause all sending and alert; the row itself stays pending."""


class SmsFailure(Exception):
    """A text was not (or may not have been) accepted by the provider.

    ``code`` is the provider's error code (Twilio: 21610 ...) and ``status`` the HTTP status,
    when there were any. ``retry_after`` is the provider's Retry-After in seconds, when it
    sent one. ``maybe_sent`` is true when the request may have reached the provider and been
    accepted after all (a read timeout, a 5xx, an unreadable answer): reconcile with
    :meth:`SmsSender.find_sent` before sending the same text again.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: SmsFailureKind,
        code: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent

    @property
    def retryable(self) -> bool:
        return self.kind is SmsFailureKind.RETRY

    def __repr__(self) -> str:
        return (
            f"SmsFailure({str(self)!r}, kind={self.kind.value}, code={self.code}, "
            f"status={self.status}, retry_after={self.retry_after}, "
            f"maybe_sent={self.maybe_sent})"
        )


@dataclass(frozen=True, slots=True)
class SentSms:
    """A text the provider accepted: its id there (Twilio: ``SM...``) and its status then
    (Twilio: ``queued``, ``accepted``, ``sent``, ``delivered``, ``undelivered``, ``failed`` ...)."""

    provider_id: str
    status: str


class SmsSender(Protocol):
    def send(self, *, to: str, body: str, reference: str) -> SentSms:
        """Hand one text to the provider; return what it accepted.

        ``to`` is an E.164 number. ``reference`` is the outbox row's key (e.g. ``sms-42``):
        implementations pass it along so the provider's delivery reports name the row.
        Raises :class:`SmsFailure`, and ValueError for arguments no provider could take
        (an empty or overlong reference).
        """
        ...

    def find_sent(self, *, to: str, body: str, since: datetime) -> SentSms | None:
        """The text ``body`` to ``to`` that the provider accepted at or after ``since``
        (timezone-aware), or None. For reconciliation after a crash between ``send`` and the
        commit that records it. The most recent one when there are several.

        Raises :class:`SmsFailure` when the provider cannot answer (then nobody knows:
        try again later rather than resend).
        """
        ...


def check_reference(reference: str) -> str:
    """``reference``, or ValueError when it is empty or longer than MAX_REFERENCE_LENGTH."""
    if not reference or not reference.strip():
        raise ValueError("reference must not be empty")
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise ValueError(f"reference longer than {MAX_REFERENCE_LENGTH} characters")
    return reference


def check_outgoing(*, to: str, body: str) -> None:
    """The checks any provider would make anyway, made before a request is spent on them:
    an SMS needs an E.164 number (INVALID_NUMBER) and a non-blank body (REJECTED)."""
    if not _E164.match(to or ""):
        raise SmsFailure("not an E.164 phone number", kind=SmsFailureKind.INVALID_NUMBER)
    if not body or not body.strip():
        raise SmsFailure("empty message body", kind=SmsFailureKind.REJECTED)


def check_since(since: datetime) -> datetime:
    """``since``, or ValueError when it is naive (whose clock would that be?)."""
    if since.tzinfo is None or since.utcoffset() is None:
        raise ValueError("since must be timezone-aware")
    return since
