"""What the survey worker needs of a voice provider: place one outbound call, and find the
calls already placed to a number (to reconcile a create whose outcome nobody heard).

Pure types, no provider in sight: Twilio is the reference implementation
(``ivr.survey_caller``); a deployment in mainland China plugs in a domestic carrier behind
the same interface.

Creating a call is not idempotent: a timeout or a 5xx after the request left may still
have placed it. Such a failure says ``maybe_placed``; the worker then asks
``find_placed`` before anything is placed again, so the citizen is called once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol

# Twilio's call statuses (a gateway's own are mapped to these by its implementation).
NOT_FINAL_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"})
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


class CallFailureKind(StrEnum):
    RETRY = "retry"
    """Try again later (with backoff; honour ``retry_after``): 20429 too many requests,
    5xx, timeouts, connection errors. See ``maybe_placed`` before placing again."""
    INVALID_NUMBER = "invalid_number"
    """The number cannot be called (21211, 13224, 21214 ...): mark it, never retry."""
    AUTH = "auth"
    """Credentials, account, caller id or callback URLs are wrong (20003 ...): nothing will
    be placed until an operator fixes them. Pause all survey calls and alert."""
    REJECTED = "rejected"
    """The provider refused this call and would refuse it again (another 4xx: a
    destination the account may not call ...): stop calling this survey."""


class CallFailure(Exception):
    """A call was not (or may not have been) placed by the provider.

    ``code`` is the provider's error code (Twilio: 21211 ...), ``status`` the HTTP status,
    ``retry_after`` the provider's Retry-After in seconds, when there were any.
    ``maybe_placed``: the request may have reached the provider and the call been created
    after all (a read timeout, a 5xx): call :meth:`SurveyCaller.find_placed` first.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: CallFailureKind,
        code: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_placed: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.maybe_placed = maybe_placed

    @property
    def is_throttled(self) -> bool:
        """The provider asked us to slow down (Twilio 20429 / HTTP 429)."""
        return self.code == 20429 or self.status == 429

    def __repr__(self) -> str:
        return (
            f"CallFailure({str(self)!r}, kind={self.kind.value}, code={self.code}, "
            f"status={self.status}, retry_after={self.retry_after}, "
            f"maybe_placed={self.maybe_placed})"
        )


class PlacedCall(NamedTuple):
    """A call the provider has: its SID, its status then (``queued`` ... ``completed``),
    when it started (None while it waits in the provider's queue), and the answering
    machine detection's verdict when there was one (``human``, ``machine_start`` ...)."""

    call_sid: str
    status: str
    start_time: datetime | None
    answered_by: str | None = None


class SurveyCaller(Protocol):
    def place(
        self,
        *,
        to: str,
        from_: str,
        attempt_key: str,
        answer_url: str,
        status_url: str,
        machine_detection: bool,
    ) -> str:
        """Place one call from ``from_`` to ``to`` (E.164); its SID.

        ``answer_url`` is fetched (POST) for the call's TwiML when it is answered;
        ``status_url`` gets the ``initiated``, ``ringing``, ``answered`` and ``completed``
        events. Both carry ``attempt_key`` (implementations only log it). With
        ``machine_detection`` the provider tells a human from a machine (``AnsweredBy``).
        Raises :class:`CallFailure`.
        """
        ...

    def find_placed(self, *, to: str, since: datetime) -> list[PlacedCall]:
        """The outbound calls to ``to`` created at or after ``since`` (timezone-aware),
        oldest first, queued ones included. For reconciling a create whose outcome
        nobody heard. Raises :class:`CallFailure` when the provider cannot answer (then
        nobody knows: ask again later, never place blindly)."""
        ...
