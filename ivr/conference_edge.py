"""The conference machine driven for real: stored state in, Twilio REST calls out.

One change to a citizen's conference (a console command, a Twilio callback, a REST answer)
is one transaction: load the room (``tickets.conferences``), ask the pure machine
(``callflows.conference``), write what it logged to the call's ``call_events``, move the
call-takers it concerns (``tickets.staff``), save the room if nobody saved it meanwhile
(else reload and apply again), commit. Only then are the REST calls made (``ivr.effects``);
what Twilio answers (20404: the party is gone; any other failure) goes back into the
machine as an event, and routing follows up (the next call-taker, the queue).

Everything here needs the :class:`~ivr.config.VoiceConfig`: the public functions take it
from the Flask app context, the ``*_with`` ones are given it (the journal drainer has none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session

from callflows.conference_messages import (
    Command,
    Effect,
    Event,
    FailReason,
    LogEntry,
    NotifyTaker,
    Outcome,
    ParticipantFailed,
    RedirectCitizenToQueue,
    Refusal,
    StartWrapUp,
    TakerMissedCall,
)
from callflows.conference_roster import ConferenceState, Party, PartyState, Phase, Role
from ivr.config import VoiceConfig, voice_config
from ivr.effects import LegPlaced, ProviderDown, carry_out
from ivr.routing_view import caller_of, routing_taker
from ivr.wakeups import wake_at
from routing.assignment import Assignment
from routing.rings import RingResult, ring_failed
from tickets import calls, conferences, staff
from tickets.db import utcnow
from tickets.events import record_event
from tickets.models import CallTakerState

log = logging.getLogger(__name__)

Step = Callable[[ConferenceState], Outcome]
Prepare = Callable[[Session], bool]
MAX_RACES = 8  # lost optimistic saves in a row before giving up (never seen in practice)
# Rings that follow from one another in one go (unreachable call-takers one after the
# other); beyond it the caller waits for the next decision (the sweep, within a minute).
MAX_CHAIN = 10
SYSTEM_ACTOR = "system:conference"
ROUTING_ACTOR = "system:routing"
RING_RESULTS = {"no-answer": RingResult.NO_ANSWER, "busy": RingResult.BUSY}
S = CallTakerState


@dataclass
class FollowUps:
    """What must happen after the commit, besides the machine's REST effects."""

    language: str = "zh"
    next_rings: list[Assignment] = field(default_factory=list)
    freed: bool = False  # a call-taker became available: run the queue again
    wrap_ups: list[tuple[int, datetime]] = field(default_factory=list)


def run_command(call_sid: str, command: Command) -> None:
    """Carry out a console (or routing) command on the citizen call ``call_sid``.

    Raises :class:`Refusal` (its message is for the console) when the command makes no
    sense now; the refusal is logged on the call too. Needs an app context.
    """
    run_command_with(voice_config(), call_sid, command)


def handle_event(call_sid: str, event: Event) -> None:
    """Apply one Twilio callback (or REST answer) to the call's conference. App context."""
    handle_event_with(voice_config(), call_sid, event)


def run_command_with(config: VoiceConfig, call_sid: str, command: Command) -> None:
    flow = config.conference_flow
    try:
        drive(config, call_sid, lambda state: flow.command(state, command))
    except Refusal as refusal:
        note(config, call_sid, "refused", str(command.by), f"{refusal.what}: {refusal.message}")
        raise


def handle_event_with(config: VoiceConfig, call_sid: str, event: Event, depth: int = 0) -> None:
    flow = config.conference_flow
    drive(config, call_sid, lambda state: flow.event(state, event), depth=depth)


def drive(
    config: VoiceConfig,
    call_sid: str,
    step: Step,
    *,
    prepare: Prepare | None = None,
    initial: Callable[[], ConferenceState] | None = None,
    depth: int = 0,
) -> bool:
    """Apply ``step`` to the stored room and carry out what follows; see the module doc.

    ``prepare`` runs first in the same transaction (dispatch claims a call-taker there);
    when it answers False nothing happens and ``drive`` answers False. ``initial`` is the
    state of a room that does not exist yet (default: the citizen alone, waiting).
    """
    flow = config.conference_flow
    start = initial or (lambda: flow.start(call_sid))
    for _ in range(MAX_RACES):
        with config.sessions() as session:
            # The room is read and stepped before ``prepare`` writes: on SQLite the write
            # lock is then held for the writes alone (the save checks the room's version).
            room = conferences.load_room(
                session=session, call_sid=call_sid, initial=lambda: start().to_dict()
            )
            before = ConferenceState.from_dict(room.state)
            after, effects = step(before)
            if prepare is not None and not prepare(session):
                session.rollback()
                return False
            if after == before and not effects and prepare is None:
                session.rollback()
                return True
            follow_ups, failed_rings = _book(config, session, room, before, after, effects)
            if not conferences.save_room(
                room, after.to_dict(), session=session, failed_rings=failed_rings
            ):
                session.rollback()
                continue  # somebody else saved first: reload and apply again
            session.commit()
        _after_commit(config, after, effects, follow_ups, depth)
        return True
    raise RuntimeError(f"the conference of {call_sid} kept changing under us")


def _after_commit(
    config: VoiceConfig,
    state: ConferenceState,
    effects: tuple[Effect, ...],
    follow_ups: FollowUps,
    depth: int,
) -> None:
    """REST calls, what they answered back into the machine, then routing's follow-ups."""
    for answer in carry_out(config, state, effects, follow_ups.language):
        if isinstance(answer, LegPlaced):
            _remember_leg(config, state.call_sid, answer)
        elif isinstance(answer, ProviderDown):
            # Not the call-taker's fault: their ring is withdrawn (they are free again) and
            # nobody else is rung now, or the whole floor would be rung through and lost.
            withdrawn = ParticipantFailed(
                answer.label, reason=FailReason.CANCELED, detail="provider unavailable"
            )
            handle_event_with(config, state.call_sid, withdrawn, MAX_CHAIN)
        else:
            handle_event_with(config, state.call_sid, answer, depth)
    for _staff_id, until in follow_ups.wrap_ups:
        wake_at(config, until)  # the decision then ends the wrap-up and rings
    if depth >= MAX_CHAIN:
        if follow_ups.next_rings or follow_ups.freed:
            log.warning("%s: routing follow-ups left to the next decision", state.call_sid)
        return
    from ivr import dispatch  # dispatch drives rooms through this module

    dispatch.follow_up(config, follow_ups.next_rings, freed=follow_ups.freed, depth=depth + 1)


def _remember_leg(config: VoiceConfig, call_sid: str, leg: LegPlaced) -> None:
    """Keep a new leg's CallSid on its party (callbacks may have told us first)."""

    def step(state: ConferenceState) -> Outcome:
        party = state.find_party(leg.label)
        if party is None or party.call_sid:
            return Outcome(state, ())
        return Outcome(state.with_party(replace(party, call_sid=leg.call_sid)), ())

    drive(config, call_sid, step)


def note(config: VoiceConfig, call_sid: str, what: str, who: str, outcome: str) -> None:
    """One line of the call's history, in a transaction of its own."""
    try:
        with config.sessions.begin() as session:
            _log(session, call_sid, what, who, outcome)
    except Exception:
        log.exception("could not log %s on %s", what, call_sid)


def _log(session: Session, call_sid: str, what: str, who: str, outcome: str) -> None:
    record_event(
        session=session,
        kind=f"conference:{what}"[:40],
        call_sid=call_sid,
        params={"who": who, "outcome": outcome[:500]},
        dedupe_key=None,
    )


# -- inside the transaction -----------------------------------------------------------------


def _book(
    config: VoiceConfig,
    session: Session,
    room: conferences.ConferenceRoom,
    before: ConferenceState,
    after: ConferenceState,
    effects: tuple[Effect, ...],
) -> tuple[FollowUps, list | None]:
    """The database side of one change: history, call-takers, the queue."""
    now = utcnow()
    call_sid = after.call_sid
    call = calls.find_call(session=session, call_sid=call_sid)
    follow_ups = FollowUps(language=(call.language if call else None) or "zh")
    for effect in effects:
        if isinstance(effect, LogEntry):
            _log(session, call_sid, effect.what, effect.who, effect.outcome)
        elif isinstance(effect, NotifyTaker):
            _log(session, call_sid, "notify", effect.staff_id, effect.message)
    missed = {e.staff_id: e.reason for e in effects if isinstance(e, TakerMissedCall)}
    wrapping = {e.staff_id for e in effects if isinstance(e, StartWrapUp)}
    mover = _Mover(config, session, call_sid, now, follow_ups)
    for party in after.others():
        if party.staff_id:
            mover.follow(before.find_party(party.label), party, missed, wrapping)
    failed_rings = None
    for staff_id, reason in missed.items():
        if _missed(config, session, room, staff_id, reason, now, follow_ups):
            failed_rings = conferences.with_failed_ring(room, int(staff_id), now)
    if _taker_answered(before, after):
        calls.leave_queue(session=session, call_sid=call_sid, at=now)
    if any(isinstance(effect, RedirectCitizenToQueue) for effect in effects):
        calls.return_to_queue(session=session, call_sid=call_sid, at=now)
    if after.phase is Phase.ENDED and before.phase is not Phase.ENDED:
        calls.mark_abandoned(session=session, call_sid=call_sid, at=now)  # if still waiting
    return follow_ups, failed_rings


@dataclass
class _Mover:
    """Moves the staff on a call as their legs move (ringing, on the call, gone)."""

    config: VoiceConfig
    session: Session
    call_sid: str
    now: datetime
    follow_ups: FollowUps

    def move(self, staff_id: str, from_states: set[S], to: S, reason: str) -> bool:
        if not staff_id.isdigit():
            return False
        moved = conferences.move_call_taker(
            session=self.session,
            staff_id=int(staff_id),
            call_sid=self.call_sid,
            from_states=frozenset(from_states),
            to_state=to,
            actor=SYSTEM_ACTOR,
            reason=reason,
            wrap_up_seconds=self.config.wrap_up_seconds,
            now=self.now,
        )
        if moved is not None and to is S.AVAILABLE:
            self.follow_ups.freed = True
        if moved is not None and to is S.WRAP_UP and moved.wrap_up_until is not None:
            self.follow_ups.wrap_ups.append((int(staff_id), moved.wrap_up_until))
        return moved is not None

    def follow(
        self, was: Party | None, party: Party, missed: dict[str, str], wrapping: set[str]
    ) -> None:
        sid = party.staff_id
        if was is None and party.is_pending and party.role is not Role.CALL_TAKER:
            self.move(sid, {S.AVAILABLE}, S.RINGING, f"consulted ({party.label})")
        elif was is not None and was.is_pending and party.is_present:
            self.move(sid, {S.RINGING}, S.ON_CALL, "answered")
        elif was is not None and was.is_pending and party.is_over and sid not in missed:
            self.move(sid, {S.RINGING}, S.AVAILABLE, f"ring ended ({party.reason})")
        elif was is not None and was.is_present and party.is_over:
            self.move(sid, {S.ON_CALL}, S.WRAP_UP, f"left the call ({party.reason})")
        if sid in wrapping:
            self.move(sid, {S.ON_CALL}, S.WRAP_UP, "wrap-up")


def _missed(
    config: VoiceConfig,
    session: Session,
    room: conferences.ConferenceRoom,
    staff_id: str,
    reason: str,
    now: datetime,
    follow_ups: FollowUps,
) -> bool:
    """A ring that ran out, was busy or failed: the call-taker goes away, and
    ``routing.rings`` names who rings next for this caller."""
    if not staff_id.isdigit():
        return False
    profiles = staff.list_call_takers(
        states=(S.AVAILABLE, S.RINGING, S.ON_CALL, S.WRAP_UP), session=session, now=now
    )
    mine = next((p for p in profiles if p.staff_id == int(staff_id)), None)
    call = calls.find_call(session=session, call_sid=room.call_sid)
    if mine is None or mine.call_sid != room.call_sid or call is None:
        return False
    caller = caller_of(call, conferences.failed_rings_of(room), now)
    result = RING_RESULTS.get(reason, RingResult.FAILED)
    takers = [routing_taker(p) for p in profiles]
    outcome = ring_failed(caller, routing_taker(mine), result, takers, now, config.routing_policy)
    if outcome.is_stale:
        return False
    new_state = S(outcome.taker.state.value)
    why = outcome.taker.away_reason or result.value
    conferences.move_call_taker(
        session=session,
        staff_id=mine.staff_id,
        call_sid=room.call_sid,
        from_states=frozenset({S.RINGING}),
        to_state=new_state,
        actor=ROUTING_ACTOR,
        reason=str(why),
        now=now,
    )
    if outcome.next is not None:
        follow_ups.next_rings.append(outcome.next)
    return True


def _taker_answered(before: ConferenceState, after: ConferenceState) -> bool:
    """The first member of staff joined: the caller's wait in the queue is over."""

    def staff_present(state: ConferenceState) -> bool:
        return any(p.staff_id and p.state is PartyState.JOINED for p in state.others())

    return staff_present(after) and not staff_present(before)
