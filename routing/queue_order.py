"""The waiting callers and the one order they are served in.

Emergency calls first, then arrival order; the call SID breaks ties so the order is total
and the same on every web node. ``assign`` serves callers in this order and the wait-room
announcements read positions from it: one order, never two.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from heapq import heapify, heappop


def require_aware(name: str, moment: datetime) -> None:
    """Naive times would compare wrongly across servers: refuse them at the door."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone aware datetime, got {moment!r}")


@dataclass(frozen=True, slots=True)
class FailedRing:
    """A call-taker who was rung for this call and did not take it (timeout, busy, decline)."""

    staff_id: int
    at: datetime

    def __post_init__(self) -> None:
        require_aware("FailedRing.at", self.at)


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    """A citizen in the queue.

    ``language`` is ``zh``, ``bo`` or ``en``; ``intent`` is the front door's intent value
    (``consultation``, ``complaint``, ``help``, ``operator``, ``progress``, ``emergency``) or
    None. ``is_emergency`` is set for an emergency caller whose line could not be reached.
    """

    call_sid: str
    language: str
    intent: str | None
    queued_at: datetime
    is_emergency: bool = False
    failed_rings: tuple[FailedRing, ...] = ()

    def __post_init__(self) -> None:
        require_aware("WaitingCaller.queued_at", self.queued_at)

    def excludes(self, staff_id: int, idle_since: datetime) -> bool:
        """Whether this call-taker is skipped for this caller.

        A call-taker who let this call fail is not offered it again, unless they have become
        free since (went available again after being marked away, or finished another call):
        then they are back, and a caller is never locked out of the only speaker of their
        language by a ring that was missed minutes ago.
        """
        return any(
            ring.staff_id == staff_id and idle_since <= ring.at for ring in self.failed_rings
        )


def queue_key(caller: WaitingCaller) -> tuple[bool, datetime, str]:
    return (not caller.is_emergency, caller.queued_at, caller.call_sid)


def queue_order(callers: Iterable[WaitingCaller]) -> list[WaitingCaller]:
    """Emergency calls first, then by ``queued_at``, then by ``call_sid``."""
    return sorted(callers, key=queue_key)


def in_queue_order(callers: Iterable[WaitingCaller]) -> Iterator[WaitingCaller]:
    """``queue_order``, lazily: a decision that runs out of free call-takers after a few
    callers does not pay for sorting the whole queue (a heap is built in linear time)."""
    heap = [(queue_key(caller), n, caller) for n, caller in enumerate(callers)]
    heapify(heap)
    while heap:
        yield heappop(heap)[2]


def positions(callers: Iterable[WaitingCaller]) -> dict[str, int]:
    """Each waiting call's place in line, from 1, for the wait-room announcements."""
    return {caller.call_sid: place for place, caller in enumerate(queue_order(callers), 1)}


def position_in_queue(callers: Iterable[WaitingCaller], call_sid: str) -> int | None:
    """One call's place in line, from 1; None when that call is not waiting.

    Counts the callers ahead with the same key as ``queue_order`` (no sort: one pass).
    """
    waiting = list(callers)
    mine = next((caller for caller in waiting if caller.call_sid == call_sid), None)
    if mine is None:
        return None
    key = queue_key(mine)
    return 1 + sum(queue_key(caller) < key for caller in waiting)
