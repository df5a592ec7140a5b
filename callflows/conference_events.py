"""How Twilio's callbacks change a conference's roster, and what follows from any change.

``on_event`` applies one callback. Parties only move forward (dialing → ringing → joined →
left or failed): a duplicate, a late or an out-of-order callback finds nothing to change,
and a party that has left never comes back. ``settled`` then looks at the roster as a whole
and decides the phase and the consequences (the citizen back with the call-taker, on hold
while someone is rung, back to the queue, or the end of the call). Commands end with the
same ``settled``, so a command and a callback that lead to the same roster lead to the same
place. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import replace

from callflows.conference_messages import (
    ConferenceEnded,
    Effect,
    EndConference,
    Event,
    FailReason,
    LogEntry,
    NotifyTaker,
    Operation,
    OperationFailed,
    Outcome,
    ParticipantFailed,
    ParticipantGone,
    ParticipantHeld,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantResumed,
    ParticipantRinging,
    RedirectCitizenToQueue,
    RemoveParticipant,
    TakerMissedCall,
    UpdateParticipant,
)
from callflows.conference_roster import CITIZEN, ConferenceState, Party, PartyState, Phase, Role

_ON_HOLD_PHASES = (Phase.CONSULTING, Phase.TRANSFERRING)
_Changes = tuple[ConferenceState, list[Effect]]


def on_event(state: ConferenceState, event: Event) -> Outcome:
    sid = event.conference_sid
    if sid and sid in state.retired_conference_sids:
        return Outcome(state, ())  # about a room the citizen has left for the queue
    if sid and state.conference_sid and sid != state.conference_sid:
        return Outcome(state, ())  # about some other room
    if sid and not state.conference_sid:
        state = replace(state, conference_sid=sid)
    if isinstance(event, ConferenceEnded):
        if state.phase is Phase.ENDED:
            return Outcome(state, ())
        new, effects = end_call(state, "the call has ended", notify=True, end=False)
        return Outcome(new, (LogEntry(event.what, "twilio", "conference ended"), *effects))
    party = state.find_party(event.label)
    if party is None:
        return Outcome(state, ())  # not a leg of ours
    if event.call_sid and not party.call_sid:
        party = replace(party, call_sid=event.call_sid)
        state = state.with_party(party)
    changed, effects = _apply(state, party, event)
    if changed is None:
        return Outcome(state, tuple(effects))
    log = LogEntry(event.what, party.label, _describe(changed))
    return settled(state.phase, state.with_party(changed), [log, *effects])


def _apply(state: ConferenceState, party: Party, event: Event) -> tuple[Party | None, list]:
    """The party after ``event`` (None: nothing new) and who must be told."""
    match event:
        case ParticipantRinging() if party.state is PartyState.DIALING:
            return replace(party, state=PartyState.RINGING), []
        case ParticipantJoined() if party.is_pending:
            return replace(party, state=PartyState.JOINED), []
        case ParticipantJoined() if _was_canceled(state, party):
            # They answered as we hung up on them: out again, so nobody is in by mistake.
            left = replace(party, state=PartyState.LEFT, reason="removed")
            return left, [RemoveParticipant(party.label, party.call_sid)]
        case ParticipantHeld() | ParticipantResumed() if party.is_pending:
            return replace(party, state=PartyState.JOINED), []  # the join callback is late
        case ParticipantLeft() if not party.is_over:
            # Twilio only reports a leave for a leg that joined: a missing join was late.
            return _gone(state, party, "hung up", joined=True)
        case ParticipantFailed() | ParticipantGone() if not party.is_over:
            reason = event.reason.value if isinstance(event, ParticipantFailed) else "gone"
            return _gone(state, party, reason, joined=party.is_present)
        case OperationFailed():
            return _operation_failed(state, party, event)
    return None, []


def _gone(
    state: ConferenceState, party: Party, reason: str, *, joined: bool
) -> tuple[Party, list[Effect]]:
    """A leg that ended on its own (not by our command), and who must know."""
    never_joined = not joined
    gone = replace(party, state=PartyState.LEFT if joined else PartyState.FAILED, reason=reason)
    if party.role is Role.CITIZEN or state.phase is Phase.ENDED:
        return gone, []
    if party.role is Role.CALL_TAKER:
        # A cancelled ring is ours (the caller hung up, the call ended): not the taker's miss.
        missed = never_joined and reason != FailReason.CANCELED.value
        return gone, [TakerMissedCall(party.staff_id, reason)] if missed else []
    if never_joined:
        return gone, tell(party.added_by, f"{party.title} did not answer ({reason})")
    still_here = any(p.staff_id == party.added_by and not p.is_over for p in state.roster)
    return gone, tell(party.added_by, f"{party.title} left the call") if still_here else []


def _operation_failed(
    state: ConferenceState, party: Party, event: OperationFailed
) -> tuple[Party | None, list[Effect]]:
    """A REST request failed for good: undo what the roster assumed, and say so."""
    who = state.get_party(state.taker).staff_id if state.taker else party.added_by
    if event.operation is Operation.CREATE and party.is_pending:
        gone = replace(party, state=PartyState.FAILED, reason="failed")
        if party.role is Role.CALL_TAKER:
            return gone, [TakerMissedCall(party.staff_id, "failed")]
        return gone, tell(who, f"could not call {party.title}: {event.message}")
    changed = None
    if event.operation is Operation.HOLD and party.state is PartyState.ON_HOLD:
        changed = replace(party, state=PartyState.JOINED)
    elif event.operation is Operation.RESUME and party.state is PartyState.JOINED:
        changed = replace(party, state=PartyState.ON_HOLD)
    return changed, tell(who, f"could not {event.operation.value} {party.title}: {event.message}")


# -- consequences -------------------------------------------------------------------------


def settled(before: Phase, state: ConferenceState, effects: list[Effect]) -> Outcome:
    state, more = _settle(before, state)
    return Outcome(state, (*effects, *more))


def _settle(before: Phase, state: ConferenceState) -> _Changes:
    """Where the citizen stands after a change: the phase, and what must follow."""
    if state.phase is Phase.ENDED:
        return state, []
    if state.citizen.is_over:
        return end_call(state, "the caller hung up", notify=True)
    effects: list[Effect] = []
    if state.taker and state.get_party(state.taker).is_over:
        state = replace(state, taker="")
    if state.target:
        target = state.get_party(state.target)
        if target.is_over:  # did not answer, declined or hung up: the transfer is over
            state = replace(state, target="")
        elif target.is_present and not state.taker:  # answered, and nobody of ours is left
            state = hand_over(state, target)
            effects.append(LogEntry("transfer-completed", target.label, "took the call"))
    others = state.others()
    present = any(party.is_present for party in others)
    pending = any(party.is_pending for party in others)
    started = state.started or present
    if state.target:
        phase = Phase.CONSULTING if state.taker else Phase.TRANSFERRING
    elif present:
        phase = Phase.TALKING
    elif pending:
        phase = Phase.TRANSFERRING if started else Phase.RINGING
    elif started:
        return _requeue(state, effects)
    else:
        phase = Phase.WAITING
    state = replace(state, phase=phase, started=started)
    if phase in _ON_HOLD_PHASES and before not in _ON_HOLD_PHASES:
        state, holds = set_hold(state, CITIZEN, hold=True)  # music while alone, not silence
        effects += holds
    elif phase is Phase.TALKING and before in _ON_HOLD_PHASES:
        state, holds = set_hold(state, CITIZEN, hold=False)  # back with someone
        effects += holds
    return state, effects


def _requeue(state: ConferenceState, effects: list[Effect]) -> _Changes:
    """Nobody left and nobody rung in a started room: back to the queue, in a new room."""
    retired = state.retired_conference_sids
    if state.conference_sid:
        retired = (*retired, state.conference_sid)
    citizen = replace(state.citizen, state=PartyState.JOINED)  # not on hold in the new room
    state = replace(
        state.with_party(citizen),
        phase=Phase.WAITING,
        taker="",
        target="",
        started=False,
        conference_sid="",
        retired_conference_sids=retired,
        requeued=state.requeued + 1,
    )
    redirect = RedirectCitizenToQueue("nobody else is on the call", bool(state.handoffs))
    return state, [*effects, redirect, LogEntry("requeue", CITIZEN, "back to the queue")]


def end_call(state: ConferenceState, why: str, *, notify: bool, end: bool = True) -> _Changes:
    """Close the room: legs still ringing are cancelled, everyone else is out."""
    effects: list[Effect] = [
        RemoveParticipant(party.label, party.call_sid)
        for party in state.others()
        if party.is_pending
    ]
    if end:
        effects.append(EndConference())
    if notify:
        staff = [p.staff_id for p in state.others() if p.staff_id and not p.is_over]
        effects += [NotifyTaker(staff_id, why) for staff_id in dict.fromkeys(staff)]
    roster = tuple(_closed(party) for party in state.roster)
    state = replace(state, roster=roster, phase=Phase.ENDED, taker="", target="")
    return state, [*effects, LogEntry("call-ended", CITIZEN, why)]


# -- building blocks ----------------------------------------------------------------------


def set_hold(state: ConferenceState, label: str, *, hold: bool) -> _Changes:
    """Hold or resume one present party, unless it is so already."""
    party = state.get_party(label)
    if not party.is_present or (party.state is PartyState.ON_HOLD) == hold:
        return state, []
    new = replace(party, state=PartyState.ON_HOLD if hold else PartyState.JOINED)
    return state.with_party(new), [UpdateParticipant(label, hold)]


def take_out(
    state: ConferenceState, party: Party, reason: str
) -> tuple[ConferenceState, RemoveParticipant]:
    """Our decision to end a leg: a ringing one never got in (failed), a present one left."""
    if party.is_pending:
        gone = replace(party, state=PartyState.FAILED, reason=FailReason.CANCELED.value)
    else:
        gone = replace(party, state=PartyState.LEFT, reason=reason)
    return state.with_party(gone), RemoveParticipant(party.label, party.call_sid)


def hand_over(state: ConferenceState, target: Party) -> ConferenceState:
    """The transfer target has the call; a colleague becomes the call-taker in charge."""
    if target.staff_id:
        taker = replace(target, role=Role.CALL_TAKER)
        return replace(state.with_party(taker), taker=target.label, target="")
    return replace(state, taker="", target="")


def tell(staff_id: str, message: str) -> list[Effect]:
    return [NotifyTaker(staff_id, message)] if staff_id else []


def _closed(party: Party) -> Party:
    if party.is_pending:
        return replace(party, state=PartyState.FAILED, reason=FailReason.CANCELED.value)
    if party.is_present:
        return replace(party, state=PartyState.LEFT, reason=party.reason or "call ended")
    return party


def _was_canceled(state: ConferenceState, party: Party) -> bool:
    return (
        state.phase is not Phase.ENDED
        and party.state is PartyState.FAILED
        and party.reason == FailReason.CANCELED.value
    )


def _describe(party: Party) -> str:
    return f"{party.state.value} ({party.reason})" if party.reason else party.state.value
