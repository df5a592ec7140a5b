"""Which free call-taker takes which waiting caller.

The rule (issue 3, "Routing"): callers in queue order (emergency first, then arrival); for
each, the best free call-taker by language, then skill for the caller's intent, then the
longest idle. Each call-taker gets at most one caller per decision; a caller with nobody
suitable free stays waiting.

A caller whose language no free call-taker speaks waits for a speaker who is *on duty*
(signed in and working: available, ringing, on a call or in wrap-up) for at most
``RoutingPolicy.language_wait`` from the moment they joined the queue, then goes to anyone
free, with ``Reason.LANGUAGE_FALLBACK`` on the assignment so the edge can log it. With no
speaker on duty (all offline or away) the fallback is immediate; an emergency caller never
waits for a language.

``choose_taker`` decides for one caller by scanning; ``assign`` decides for the whole queue
with the free call-takers indexed by language and skill, and gives the same answers as
``choose_taker`` applied caller by caller (a test holds them together).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from routing.queue_order import WaitingCaller, in_queue_order, require_aware


class TakerState(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    AWAY = "away"


# Signed in and working: a caller may wait for such a call-taker to become free.
ON_DUTY = frozenset(
    {TakerState.AVAILABLE, TakerState.RINGING, TakerState.ON_CALL, TakerState.WRAP_UP}
)


@dataclass(frozen=True, slots=True)
class CallTaker:
    """A call-taker as routing sees them; ``idle_since`` is when they last became free."""

    staff_id: int
    languages: frozenset[str]
    skills: frozenset[str]
    state: TakerState
    idle_since: datetime
    away_reason: str | None = None

    def __post_init__(self) -> None:
        require_aware("CallTaker.idle_since", self.idle_since)
        object.__setattr__(self, "state", TakerState(self.state))  # a stored "available" too


class Reason(StrEnum):
    """Why this call-taker: for the call's event history and the floor manager."""

    EMERGENCY = "emergency"  # an emergency caller, served before the queue
    LANGUAGE = "language"  # speaks the caller's language
    LANGUAGE_FALLBACK = "language_fallback"  # does not: nobody free who does (log it)
    LANGUAGE_WAIT_OVER = "language_wait_over"  # a speaker is on duty, but busy for too long
    SKILL = "skill"  # has the skill for the caller's intent


@dataclass(frozen=True, slots=True)
class Assignment:
    call_sid: str
    staff_id: int
    reasons: tuple[Reason, ...]

    @property
    def is_language_fallback(self) -> bool:
        return Reason.LANGUAGE_FALLBACK in self.reasons


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Configuration of the decision. ``language_wait=timedelta(0)``: never wait."""

    language_wait: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if self.language_wait < timedelta(0):
            raise ValueError("language_wait must not be negative")

    def falls_back_at(self, caller: WaitingCaller) -> datetime:
        """When a caller waiting for a busy speaker of their language goes to anyone free.

        Nothing else happens at that moment, so the edge re-runs ``assign`` then (or at the
        next position announcement).
        """
        return caller.queued_at + self.language_wait


DEFAULT_POLICY = RoutingPolicy()


def _idle_key(taker: CallTaker) -> tuple[datetime, int]:
    return (taker.idle_since, taker.staff_id)


def _fallback_reasons(
    caller: WaitingCaller, speaker_on_duty: bool, now: datetime, policy: RoutingPolicy
) -> list[Reason] | None:
    """Reasons to serve the caller in another language, or None: keep waiting for a speaker."""
    if not speaker_on_duty or caller.is_emergency:
        return [Reason.LANGUAGE_FALLBACK]
    if now < policy.falls_back_at(caller):
        return None
    return [Reason.LANGUAGE_FALLBACK, Reason.LANGUAGE_WAIT_OVER]


def _assignment(caller: WaitingCaller, taker: CallTaker, reasons: list[Reason]) -> Assignment:
    if caller.is_emergency:
        reasons.insert(0, Reason.EMERGENCY)
    if caller.intent is not None and caller.intent in taker.skills:
        reasons.append(Reason.SKILL)
    return Assignment(caller.call_sid, taker.staff_id, tuple(reasons))


def choose_taker(
    caller: WaitingCaller,
    takers: Iterable[CallTaker],
    now: datetime,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> Assignment | None:
    """The best free call-taker for one caller, or None: the caller waits."""
    require_aware("now", now)
    takers = list(takers)
    free = [
        t
        for t in takers
        if t.state is TakerState.AVAILABLE and not caller.excludes(t.staff_id, t.idle_since)
    ]
    pool = [t for t in free if caller.language in t.languages]
    reasons: list[Reason] | None = [Reason.LANGUAGE]
    if not pool:
        speaker_on_duty = any(
            t.state in ON_DUTY
            and caller.language in t.languages
            and not caller.excludes(t.staff_id, t.idle_since)
            for t in takers
        )
        pool, reasons = free, _fallback_reasons(caller, speaker_on_duty, now, policy)
    if not pool or reasons is None:
        return None
    best = min(pool, key=lambda t: (caller.intent not in t.skills, t.idle_since, t.staff_id))
    return _assignment(caller, best, reasons)


_PoolKey = tuple[str | None, str | None]  # (language, skill); None: any


class _FreeTakers:
    """The free call-takers of one decision, in pools by (language, skill).

    Each pool lists positions in ``free`` (longest idle first), so its first member that is
    neither taken nor excluded is its best. Taken members are skipped once (the pool's start
    moves past them), so a decision costs about the free takers' pool entries plus the
    callers looked at, not takers × callers. The pools without a language serve only the
    rare language fallback and are built when first asked for.
    """

    def __init__(self, takers: Iterable[CallTaker]) -> None:
        self.free = sorted((t for t in takers if t.state is TakerState.AVAILABLE), key=_idle_key)
        self.taken = [False] * len(self.free)
        self.left = len(self.free)
        pools: defaultdict[_PoolKey, list[int]] = defaultdict(list)
        for p, taker in enumerate(self.free):
            skills = taker.skills
            for language in taker.languages:
                pools[language, None].append(p)
                for skill in skills:
                    pools[language, skill].append(p)
        self.pools: dict[_PoolKey, list[int]] = dict(pools)
        self.starts: dict[_PoolKey, int] = {}  # every member of the pool before it is taken
        self.position: dict[int, int] | None = None

    def excluded(self, caller: WaitingCaller) -> set[int]:
        if self.position is None:
            self.position = {t.staff_id: p for p, t in enumerate(self.free)}
        found: set[int] = set()
        for ring in caller.failed_rings:
            p = self.position.get(ring.staff_id)
            if p is not None and caller.excludes(ring.staff_id, self.free[p].idle_since):
                found.add(p)
        return found

    def pool(self, key: _PoolKey) -> list[int]:
        members = self.pools.get(key)
        if members is None:
            language, skill = key
            if language is not None:
                return []  # nobody free speaks it
            members = self.pools[key] = [
                p for p, t in enumerate(self.free) if skill is None or skill in t.skills
            ]
        return members

    def best(self, language: str | None, skill: str | None, excluded: set[int]) -> int | None:
        key = (language, skill)
        members, taken = self.pool(key), self.taken
        start, end = self.starts.get(key, 0), len(members)
        while start < end and taken[members[start]]:
            start += 1
        self.starts[key] = start
        if not excluded:
            return members[start] if start < end else None
        for i in range(start, end):  # excluded for this caller only: they stay in the pool
            p = members[i]
            if not taken[p] and p not in excluded:
                return p
        return None

    def best_of(self, language: str | None, skill: str | None, excluded: set[int]) -> int | None:
        """The best with the skill if anyone free has it, else the best without."""
        found = self.best(language, skill, excluded) if skill is not None else None
        return self.best(language, None, excluded) if found is None else found

    def take(self, p: int) -> CallTaker:
        self.taken[p] = True
        self.left -= 1
        return self.free[p]


def _speakers_on_duty(takers: Iterable[CallTaker]) -> dict[str, list[CallTaker]]:
    speakers: dict[str, list[CallTaker]] = {}
    for taker in takers:
        if taker.state in ON_DUTY:
            for language in taker.languages:
                speakers.setdefault(language, []).append(taker)
    return speakers


def assign(
    callers: Iterable[WaitingCaller],
    takers: Iterable[CallTaker],
    now: datetime,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> list[Assignment]:
    """Pair as many waiting callers as possible with free call-takers, in queue order.

    One entry per call (``call_sid``) and per call-taker (``staff_id``). The edge rings each
    assigned call-taker (their state becomes ringing) and runs the decision again whenever a
    call-taker becomes free, a caller joins the queue or a language wait ends.
    """
    require_aware("now", now)
    takers = list(takers)
    free = _FreeTakers(takers)
    if not free.left:
        return []
    on_duty = _speakers_on_duty(takers)
    assignments: list[Assignment] = []
    for caller in in_queue_order(callers):
        excluded = free.excluded(caller) if caller.failed_rings else set()
        p = free.best_of(caller.language, caller.intent, excluded)
        reasons: list[Reason] | None = [Reason.LANGUAGE]
        if p is None:
            speaker_on_duty = any(
                not caller.excludes(t.staff_id, t.idle_since)
                for t in on_duty.get(caller.language, ())
            )
            reasons = _fallback_reasons(caller, speaker_on_duty, now, policy)
            if reasons is None:
                continue
            p = free.best_of(None, caller.intent, excluded)
            if p is None:
                continue
        assignments.append(_assignment(caller, free.take(p), reasons))
        if not free.left:
            break
    return assignments


def first_free_taker(takers: Iterable[CallTaker], language: str) -> CallTaker | None:
    """The call-taker for an emergency three-way: the longest idle, a speaker preferred."""
    free = [t for t in takers if t.state is TakerState.AVAILABLE]
    return min(free, key=lambda t: (language not in t.languages, *_idle_key(t)), default=None)
