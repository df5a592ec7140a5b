"""Routing for real: who waits, who is free, and ringing the chosen call-taker.

``dispatch_waiting_calls`` reads the waiting callers and the call-takers on duty, asks
``routing.assign``, then rings each assignment. Ringing claims the call-taker and the caller
in one transaction: the call-taker moves available → ringing only if they are still
available (``tickets.staff.ring_if_available``: one UPDATE that matches only an available
call-taker, and its history row), and the caller's room takes ``RingTaker`` only if nobody
else rang for them (the room's version);
so two dispatchers running at once never ring one call-taker twice or one caller twice.
The participant is created after that commit (``ivr.conference_edge``).

When it runs: after queue entries are stored (``ivr.persist``), when a call-taker becomes
available (the console calls ``dispatch_waiting_calls``; the end of a ring or a wrap-up
here and in the worker), after a missed ring (the next call-taker, ``routing.rings``), and
every minute in the worker's sweep (language waits that ran out, lost callbacks).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from callflows.conference_messages import FailReason, ParticipantFailed, Refusal, RingTaker, Target
from callflows.conference_roster import ConferenceState
from ivr.conference_edge import ROUTING_ACTOR, drive, handle_event_with
from ivr.config import VoiceConfig, voice_config
from ivr.routing_view import routing_taker, target_for
from ivr.wakeups import wake_at
from routing.assignment import (
    Assignment,
    CallTaker,
    Reason,
    TakerState,
    assign,
    first_free_taker,
)
from routing.queue_order import WaitingCaller
from tickets import calls, conferences, staff
from tickets.db import utcnow, writes_first
from tickets.events import record_event
from tickets.models import CallTakerState

log = logging.getLogger(__name__)
S = CallTakerState
ON_DUTY = (S.AVAILABLE, S.RINGING, S.ON_CALL, S.WRAP_UP)
LOST_CALLBACK_GRACE = timedelta(seconds=30)  # after the ring timeout
HEAD_PER_FREE_TAKER = 16  # callers read first for each free call-taker (see ``_decide``)


def dispatch_waiting_calls(
    *,
    config: VoiceConfig | None = None,
    now: datetime | None = None,
    freed_staff_id: int | None = None,
    attempts: int = 2,
    fresh_reads: bool = False,
) -> list[Assignment]:
    """One routing decision over the queue; the assignments that were rung.

    ``freed_staff_id``: the call-taker who has just become free (the console's trigger):
    their assignment is rung first, and decided again if another pass took their caller
    meanwhile (they would be left idle otherwise): first on the same reads without that
    caller, each such choice checked by a plain read before its claim (another read of
    the queue would cost more than a choice made on reads a few milliseconds old), then
    once on fresh reads. The others' come after. Without ``config`` it needs an app
    context.

    Two reads (the call-takers on duty as plain rows, with where each is rung; the head
    of the queue, see ``_decide``), the decision, then each ring: a claim of two
    statements, the room's step, the commit, the participant create.
    """
    config = config or voice_config()
    now = now or utcnow()
    decided = _decide(config, now)
    if decided is None:
        return []
    decisions = decided.decisions
    if freed_staff_id is None:
        return _ring_each(config, decisions, decided.targets, fresh=1)
    theirs = [d for d in decisions if d.staff_id == freed_staff_id]
    rung = _ring_each(config, theirs, decided.targets, fresh=1)
    taken: set[str] = set()
    while theirs and not rung and len(taken) < attempts:  # their caller was taken meanwhile
        taken.add(theirs[0].call_sid)
        decisions = decided.again_without(taken)
        theirs = [d for d in decisions if d.staff_id == freed_staff_id]
        rung = _ring_each(config, theirs, decided.targets, fresh=0)
    if not rung and not fresh_reads and (theirs or not decided.whole_queue):
        return dispatch_waiting_calls(
            config=config, freed_staff_id=freed_staff_id, attempts=attempts, fresh_reads=True
        )
    others = [d for d in decisions if d.staff_id != freed_staff_id]
    return rung + _ring_each(config, others, decided.targets, fresh=0)


@dataclass
class _Decided:
    """One decision and what it was made on."""

    config: VoiceConfig
    now: datetime
    callers: list[WaitingCaller]
    takers: list[CallTaker]
    decisions: list[Assignment]
    targets: dict[int, Target | None]
    whole_queue: bool

    def again_without(self, taken: set[str]) -> list[Assignment]:
        left = [caller for caller in self.callers if caller.call_sid not in taken]
        return assign(left, self.takers, self.now, self.config.routing_policy)


def _decide(config: VoiceConfig, now: datetime) -> _Decided | None:
    """Read and decide; None when nobody is free or nobody waits.

    The queue is read from its head: ``HEAD_PER_FREE_TAKER`` callers per free call-taker
    in queue order. ``assign`` serves callers in that order, each taking the best free
    call-taker left, so when the head gives every free call-taker a caller the rest of
    the queue could change nothing; only when it does not (the head is all callers
    waiting for another language, say) is the whole queue read and the decision made
    again. A queue of 2,000 then costs a freed call-taker what a queue of 16 does.
    """
    with config.sessions() as session:
        rows = staff.call_takers_for_routing(states=ON_DUTY, session=session, now=now)
        free = sum(1 for row in rows if row.state is S.AVAILABLE)
        head = HEAD_PER_FREE_TAKER * free
        callers = calls.list_waiting_callers(session=session, first=head) if free else []
        session.commit()  # wrap-ups that ended on the way (one commit, for both reads)
    if not callers:
        return None
    whole_queue = len(callers) < head
    takers = [routing_taker(row) for row in rows]
    decisions = assign(callers, takers, now, config.routing_policy)
    if not whole_queue and len(decisions) < free:
        with config.sessions() as session:
            callers = calls.list_waiting_callers(session=session)
        decisions = assign(callers, takers, now, config.routing_policy)
        whole_queue = True
    if whole_queue:
        _wake_for_language_waits(config, callers, takers, decisions, now)
    targets = {
        row.staff_id: target_for(
            row.staff_id, row.client_identity, row.phone_number, row.display_name
        )
        for row in rows
        if row.state is S.AVAILABLE
    }
    return _Decided(config, now, callers, takers, decisions, targets, whole_queue)


def _ring_each(
    config: VoiceConfig,
    decisions: list[Assignment],
    targets: dict[int, Target | None],
    *,
    fresh: int,
) -> list[Assignment]:
    """Ring the decisions in order; the ones rung. The first ``fresh`` are rung at once
    (just decided); before each of the others a plain read checks that the call-taker is
    still free and the caller still waiting, since another pass may have rung either
    meanwhile (each ring here takes a commit and a REST call), and a claim bound to fail
    still waits for the write lock (SQLite)."""
    rung = []
    for n, assignment in enumerate(decisions):
        if n >= fresh and not _may_ring(config, assignment):
            continue
        if ring(config, assignment, target=targets.get(assignment.staff_id)):
            rung.append(assignment)
    return rung


def _may_ring(config: VoiceConfig, assignment: Assignment) -> bool:
    with config.sessions() as session:
        return conferences.may_ring(
            session=session, staff_id=assignment.staff_id, call_sid=assignment.call_sid
        )


def _wake_for_language_waits(
    config: VoiceConfig,
    callers: list[WaitingCaller],
    takers: list[CallTaker],
    decisions: list[Assignment],
    now: datetime,
) -> None:
    """Someone stayed free while a caller waits for a busy speaker of their language: the
    next decision is due when the first such wait is over."""
    rung = {decision.staff_id for decision in decisions}
    if not any(t.state is TakerState.AVAILABLE and t.staff_id not in rung for t in takers):
        return
    assigned = {decision.call_sid for decision in decisions}
    policy = config.routing_policy
    waits_over = [
        policy.falls_back_at(caller)
        for caller in callers
        if caller.call_sid not in assigned and policy.falls_back_at(caller) > now
    ]
    if waits_over:
        wake_at(config, min(waits_over))


def ring(
    config: VoiceConfig,
    assignment: Assignment,
    *,
    depth: int = 0,
    target: Target | None = None,
) -> bool:
    """Claim the call-taker and the caller, then ring. False when either was taken.

    ``target``: where the call-taker is rung, when the caller has just read it; else it is
    read here, before the claim (nothing is read while the claim holds the write lock).
    """
    if target is None:
        with config.sessions() as session:
            found = staff.ring_address(assignment.staff_id, session=session)
        target = found and target_for(
            found.staff_id, found.client_identity, found.phone_number, found.display_name
        )
        if target is None:
            return False  # no such call-taker, or no phone and no softphone
    ringing = RingTaker("routing", target)

    def claim(session: Session) -> bool:
        if not staff.ring_if_available(
            session=session,
            staff_id=assignment.staff_id,
            call_sid=assignment.call_sid,
            actor=ROUTING_ACTOR,
            reason="rung for a caller: " + ", ".join(assignment.reasons),
        ):
            return False
        _note_assignment(session, assignment)
        return True

    def ring_taker(state: ConferenceState) -> object:
        return config.conference_flow.command(state, ringing)

    try:
        with writes_first():  # a caller waits for it
            return drive(
                config,
                assignment.call_sid,
                ring_taker,  # type: ignore[arg-type]
                prepare=claim,
                depth=depth,
            )
    except Refusal as refusal:  # the caller was served or hung up meanwhile
        log.info("not ringing %s for %s: %s", assignment.staff_id, assignment.call_sid, refusal)
        return False


def ring_first_free_taker(config: VoiceConfig, call_sid: str, language: str) -> Assignment | None:
    """The emergency three-way: the longest-idle free call-taker (a speaker of the caller's
    language preferred) joins the caller and the emergency line; None: nobody is free."""
    tried: set[int] = set()
    for _ in range(5):
        with config.sessions() as session:
            free = staff.call_takers_for_routing(states=(S.AVAILABLE,), session=session)
            session.commit()
        chosen = first_free_taker(
            [routing_taker(row) for row in free if row.staff_id not in tried], language
        )
        if chosen is None:
            return None
        reasons = (Reason.EMERGENCY,) + (
            (Reason.LANGUAGE,) if language in chosen.languages else (Reason.LANGUAGE_FALLBACK,)
        )
        assignment = Assignment(call_sid, chosen.staff_id, reasons)
        row = next(row for row in free if row.staff_id == chosen.staff_id)
        target = target_for(row.staff_id, row.client_identity, row.phone_number, row.display_name)
        if target is not None and ring(config, assignment, target=target):
            return assignment
        tried.add(chosen.staff_id)
    return None


def follow_up(
    config: VoiceConfig, next_rings: Iterable[Assignment], *, freed: bool, depth: int = 0
) -> None:
    """After a change to a room: ring who ``routing.rings`` chose next; run the queue again
    when a call-taker became free or a chosen one was taken meanwhile."""
    again = freed
    for assignment in next_rings:
        again = not ring(config, assignment, depth=depth) or again
    if again:
        dispatch_waiting_calls(config=config)


def sweep(config: VoiceConfig, *, now: datetime | None = None) -> list[Assignment]:
    """The worker's safety net, every minute: wrap-ups that are over, rings whose final
    callback never came (treated as no answer), then one routing decision."""
    now = now or utcnow()
    limit = now - timedelta(seconds=config.ring_timeout_seconds) - LOST_CALLBACK_GRACE
    with config.sessions() as session:
        staff.end_expired_wrap_ups(session=session, now=now)
        stuck = conferences.rooms_ringing_since(session=session, before=limit)
        rooms = {sid: conferences.find_room(session=session, call_sid=sid) for sid in stuck}
        session.commit()
    for call_sid, room in rooms.items():
        state = ConferenceState.from_dict(room.state) if room else None
        taker = state.find_party(state.taker) if state and state.taker else None
        if taker is not None and taker.is_pending:
            log.warning("no final callback for %s on %s: taken as no answer", taker.label, call_sid)
            lost = ParticipantFailed(taker.label, reason=FailReason.NO_ANSWER, detail="lost")
            handle_event_with(config, call_sid, lost)
    return dispatch_waiting_calls(config=config, now=now)


def _note_assignment(session: Session, assignment: Assignment) -> None:
    """Every decision on the call's history; a language fallback is named as such."""
    kind = "routing:language-fallback" if assignment.is_language_fallback else "routing:assigned"
    record_event(
        session=session,
        kind=kind,
        call_sid=assignment.call_sid,
        params={
            "who": "routing",
            "staff_id": assignment.staff_id,
            "reasons": [reason.value for reason in assignment.reasons],
        },
        dedupe_key=None,
    )
    if assignment.is_language_fallback:
        log.info(
            "language fallback: %s rung for %s (%s)",
            assignment.staff_id,
            assignment.call_sid,
            ", ".join(assignment.reasons),
        )
