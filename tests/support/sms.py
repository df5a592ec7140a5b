"""A :class:`~tickets.sms_sender.SmsSender` for tests: records what was sent, and fails
on demand.

    sender = RecordingSmsSender()
    sender.fail_next(SmsFailureKind.RETRY, times=2, retry_after=30)
    sender.fail_next(SmsFailureKind.RETRY, accepted=True)  # timed out after the provider took it

Failures queue up in order; each send takes the next one. A failure ``accepted=True`` plays
the crash between "the provider took it" and "we heard back": the text is recorded as sent
(``find_sent`` finds it) and ``send`` still raises, with ``maybe_sent`` set.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tickets.sms_sender import (
    SentSms,
    SmsFailure,
    SmsFailureKind,
    check_outgoing,
    check_reference,
    check_since,
)

# What Twilio answers for each kind, so handlers that log the code see a realistic one.
DEFAULT_CODES: dict[SmsFailureKind, int | None] = {
    SmsFailureKind.RETRY: None,
    SmsFailureKind.OPTED_OUT: 21610,
    SmsFailureKind.INVALID_NUMBER: 21211,
    SmsFailureKind.REJECTED: 21602,
    SmsFailureKind.AUTH: 20003,
}
DEFAULT_STATUSES: dict[SmsFailureKind, int | None] = {
    SmsFailureKind.RETRY: None,
    SmsFailureKind.OPTED_OUT: 400,
    SmsFailureKind.INVALID_NUMBER: 400,
    SmsFailureKind.REJECTED: 400,
    SmsFailureKind.AUTH: 401,
}


@dataclass(frozen=True, slots=True)
class RecordedSms:
    provider_id: str
    to: str
    body: str
    reference: str
    at: datetime


@dataclass(frozen=True, slots=True)
class _PlannedFailure:
    kind: SmsFailureKind
    code: int | None
    status: int | None
    retry_after: float | None
    accepted: bool


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class RecordingSmsSender:
    """Records every text the "provider" accepted in ``sent``; ``attempts`` counts every
    call to ``send``, failed or not (as ``(reference, to)``)."""

    sent: list[RecordedSms] = field(default_factory=list)
    attempts: list[tuple[str, str]] = field(default_factory=list)
    find_sent_calls: int = 0
    clock: Callable[[], datetime] = _utc_now
    _planned: deque[_PlannedFailure] = field(default_factory=deque, repr=False)
    _find_failures: deque[SmsFailure] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counter: int = field(default=0, repr=False)

    def fail_next(
        self,
        kind: SmsFailureKind,
        *,
        times: int = 1,
        code: int | None = -1,
        status: int | None = -1,
        retry_after: float | None = None,
        accepted: bool = False,
    ) -> None:
        """Make the next ``times`` sends (after any already planned) fail with ``kind``.

        ``code``/``status`` default to Twilio's usual ones for the kind (DEFAULT_CODES).
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if accepted and kind is not SmsFailureKind.RETRY:
            raise ValueError("only a RETRY failure can come after the provider accepted")
        planned = _PlannedFailure(
            kind,
            DEFAULT_CODES[kind] if code == -1 else code,
            DEFAULT_STATUSES[kind] if status == -1 else status,
            retry_after,
            accepted,
        )
        with self._lock:
            self._planned.extend([planned] * times)

    def fail_next_find_sent(self, failure: SmsFailure, *, times: int = 1) -> None:
        """Make the next ``times`` calls to ``find_sent`` raise ``failure``."""
        with self._lock:
            self._find_failures.extend([failure] * times)

    @property
    def pending_failures(self) -> int:
        return len(self._planned)

    def send(self, *, to: str, body: str, reference: str) -> SentSms:
        check_reference(reference)
        with self._lock:
            self.attempts.append((reference, to))
        check_outgoing(to=to, body=body)  # never reaches the provider: no planned failure used
        with self._lock:
            planned = self._planned.popleft() if self._planned else None
        if planned is not None and not planned.accepted:
            raise SmsFailure(
                f"send failed (simulated {planned.kind.value})",
                kind=planned.kind,
                code=planned.code,
                status=planned.status,
                retry_after=planned.retry_after,
            )
        record = self._record(to=to, body=body, reference=reference)
        if planned is not None:
            raise SmsFailure(
                "send failed (simulated: timed out after the provider accepted)",
                kind=planned.kind,
                code=planned.code,
                status=planned.status,
                retry_after=planned.retry_after,
                maybe_sent=True,
            )
        return SentSms(provider_id=record.provider_id, status="queued")

    def find_sent(self, *, to: str, body: str, since: datetime) -> SentSms | None:
        check_since(since)
        with self._lock:
            self.find_sent_calls += 1
            if self._find_failures:
                raise self._find_failures.popleft()
            matches = [s for s in self.sent if s.to == to and s.body == body and s.at >= since]
        if not matches:
            return None
        latest = max(matches, key=lambda s: s.at)
        return SentSms(provider_id=latest.provider_id, status="queued")

    def sent_to(self, to: str) -> list[RecordedSms]:
        return [s for s in self.sent if s.to == to]

    def references(self) -> list[str]:
        return [s.reference for s in self.sent]

    def _record(self, *, to: str, body: str, reference: str) -> RecordedSms:
        with self._lock:
            self._counter += 1
            record = RecordedSms(f"SMtest{self._counter:028d}", to, body, reference, self.clock())
            self.sent.append(record)
        return record
