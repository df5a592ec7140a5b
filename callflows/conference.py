"""The conference choreography of PRODUCT.md ("Transfers and conferences") as a pure
state machine: hold, warm and cold transfer, added parties, the emergency three-way.

``ConferenceFlow.command(state, command)`` and ``ConferenceFlow.event(state, event)`` each
return an ``Outcome``: the new state and the effects the edge carries out, in order. A
command that makes no sense now raises ``Refusal``; an event is never refused, and one that
says nothing new (a duplicate, a late one, one about a room the citizen has left) changes
nothing and has no effects. Nothing here does I/O.

How the legs join (the citizen joins by TwiML in ``ivr/twiml.py``, everyone else through
the Participants API with the effects below):

- citizen: ``startConferenceOnEnter=False`` (they hear the wait room until one of ours
  arrives), ``endConferenceOnExit=True``: when the citizen hangs up there is nobody left to
  serve, so the room closes and every other leg is hung up, whatever state it is in.
- everyone else (call-taker, consultee, added party, emergency line):
  ``startConferenceOnEnter=True`` (their arrival ends the wait music) and
  ``endConferenceOnExit=False``: their leaving must never take the citizen with it. What
  happens to the citizen then is this machine's decision (``conference_events.settled``):
  back with the call-taker, on hold while someone is rung, or, when nobody is left and
  nobody is being rung, back to the queue (``RedirectCitizenToQueue``), because a
  conference that has started never plays its wait music again.

Hold is always one participant (``UpdateParticipant``), never the whole conference.
Twilio's hold and unhold callbacks only confirm what was asked: the roster's hold state is
the machine's own (a failed request comes back as ``OperationFailed`` and is undone).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from callflows.conference_events import end_call, hand_over, on_event, set_hold, settled, take_out
from callflows.conference_messages import (
    AddParty,
    CancelTransfer,
    ColdTransfer,
    Command,
    CompleteTransfer,
    ConfirmHandoff,
    CreateParticipant,
    Effect,
    EmergencyTransfer,
    EndCall,
    Event,
    Hold,
    LogEntry,
    Outcome,
    Refusal,
    RemoveParty,
    Resume,
    RingTaker,
    StartWarmTransfer,
    StartWrapUp,
    Target,
    UpdateParticipant,
    WrapUp,
)
from callflows.conference_roster import (
    CITIZEN,
    ConferenceState,
    Handoff,
    Party,
    PartyState,
    Phase,
    Role,
    is_token,
)

_ON_CALL = frozenset({Phase.TALKING, Phase.CONSULTING})
_ANSWERED = frozenset({Phase.TALKING, Phase.CONSULTING, Phase.TRANSFERRING})
# The phases in which each command can be carried out at all; finer checks follow.
ALLOWED_PHASES: dict[type, frozenset[Phase]] = {
    RingTaker: frozenset({Phase.WAITING, Phase.RINGING, Phase.TALKING}),
    Hold: frozenset({Phase.TALKING}),
    Resume: frozenset({Phase.TALKING}),
    StartWarmTransfer: frozenset({Phase.TALKING}),
    CompleteTransfer: frozenset({Phase.CONSULTING}),
    CancelTransfer: frozenset({Phase.CONSULTING}),
    ColdTransfer: frozenset({Phase.TALKING}),
    AddParty: frozenset({Phase.TALKING}),
    RemoveParty: _ON_CALL,
    EmergencyTransfer: _ON_CALL,
    ConfirmHandoff: frozenset({Phase.TALKING}),
    EndCall: _ANSWERED,
    WrapUp: frozenset(Phase),
}
_WHY_NOT = {
    Phase.WAITING: "the caller is still waiting for a call-taker",
    Phase.RINGING: "the call-taker has not answered yet",
    Phase.TALKING: "nobody is being consulted",
    Phase.CONSULTING: "a consultation is in progress: complete or cancel it first",
    Phase.TRANSFERRING: "the caller is being transferred",
    Phase.ENDED: "the call has ended",
}


@dataclass(frozen=True, slots=True)
class ConferencePolicy:
    taker_ring_seconds: int = 20  # issue 3: configurable, default 20 s
    party_ring_seconds: int = 30
    emergency_ring_seconds: int = 30
    max_added_parties: int = 3  # besides the citizen and the call-taker


# role -> (start_conference_on_enter, end_conference_on_exit, early_media); see the docstring.
# Early media lets the call-taker hear a consulted or added party's line ring.
LEG_SETTINGS = {
    Role.CALL_TAKER: (True, False, False),
    Role.CONSULTEE: (True, False, True),
    Role.PARTY: (True, False, True),
    Role.EMERGENCY_LINE: (True, False, True),
}


@dataclass(frozen=True, slots=True)
class ConferenceFlow:
    policy: ConferencePolicy = ConferencePolicy()

    # -- entry ---------------------------------------------------------------------------
    def start(self, call_sid: str, *, conference_sid: str = "") -> ConferenceState:
        """The citizen in their own room, waiting for a call-taker."""
        citizen = Party(CITIZEN, Role.CITIZEN, PartyState.JOINED)
        return ConferenceState(call_sid, roster=(citizen,), conference_sid=conference_sid)

    def start_emergency(
        self, call_sid: str, line: str, address: str, *, conference_sid: str = ""
    ) -> Outcome:
        """The emergency lane: the line is rung into the citizen's room at once; routing
        adds the first free call-taker with ``RingTaker``."""
        state = self.start(call_sid, conference_sid=conference_sid)
        if not is_token(line) or not address:
            raise ValueError(f"not an emergency line: {line!r}")
        state, create = self._dial_line(state, line, address, added_by="")
        log = LogEntry("emergency-lane", "front-door", f"ringing the {line} line")
        return settled(Phase.WAITING, state, [log, create])

    # -- commands ------------------------------------------------------------------------
    def command(self, state: ConferenceState, command: Command) -> Outcome:
        allowed = ALLOWED_PHASES.get(type(command))
        if allowed is None:
            raise TypeError(f"not a conference command: {command!r}")
        if state.phase not in allowed:
            why = _WHY_NOT[state.phase]
            if isinstance(command, CompleteTransfer | CancelTransfer) and state.phase in (
                Phase.WAITING,
                Phase.RINGING,
            ):
                why = _WHY_NOT[Phase.TALKING]
            raise _refuse(command, why)
        new, effects, outcome = self._carry_out(state, command)
        log = LogEntry(command.what, command.by, outcome)
        return settled(state.phase, new, [log, *effects])

    def _carry_out(
        self, state: ConferenceState, command: Command
    ) -> tuple[ConferenceState, list[Effect], str]:
        match command:
            case RingTaker():
                return self._ring_taker(state, command)
            case Hold() | Resume():
                return self._hold(state, command, hold=isinstance(command, Hold))
            case StartWarmTransfer() | ColdTransfer():
                return self._transfer(state, command, warm=isinstance(command, StartWarmTransfer))
            case CompleteTransfer():
                return self._complete_transfer(state, command)
            case CancelTransfer():
                return self._cancel_transfer(state)
            case AddParty():
                return self._add_party(state, command)
            case RemoveParty():
                return self._remove_party(state, command)
            case EmergencyTransfer():
                return self._emergency_transfer(state, command)
            case ConfirmHandoff():
                return self._confirm_handoff(state, command)
            case EndCall():
                new, effects = end_call(state, "the call-taker ended the call", notify=False)
                return new, effects, "call ended"
            case WrapUp():
                return self._wrap_up(state, command)
        raise AssertionError(f"no handler for {command!r}")  # pragma: no cover

    def _ring_taker(self, state: ConferenceState, cmd: RingTaker) -> _Done:
        if state.taker:
            raise _refuse(cmd, f"{state.get_party(state.taker).title} is already on the call")
        if not is_token(cmd.to.staff_id):
            raise _refuse(cmd, "a call-taker needs a staff id")
        taker = self._new_party(state, cmd, cmd.to, Role.CALL_TAKER, f"taker-{cmd.to.staff_id}")
        taker = replace(taker, added_by="")
        state = replace(state.with_party(taker), taker=taker.label)
        return state, [self._create(taker)], f"ringing {taker.label}"

    def _hold(self, state: ConferenceState, cmd: Hold | Resume, *, hold: bool) -> _Done:
        _require_taker(state, cmd)
        party = _live_party(state, cmd, cmd.label)
        if party.label == state.taker:
            raise _refuse(cmd, "the call-taker cannot be put on hold")
        if party.is_pending:
            raise _refuse(cmd, f"{party.title} has not answered yet")
        if (party.state is PartyState.ON_HOLD) == hold:
            raise _refuse(cmd, f"{party.title} is {'already' if hold else 'not'} on hold")
        new_state = PartyState.ON_HOLD if hold else PartyState.JOINED
        state = state.with_party(replace(party, state=new_state))
        return state, [UpdateParticipant(party.label, hold)], f"{party.label} {new_state.value}"

    def _transfer(
        self, state: ConferenceState, cmd: StartWarmTransfer | ColdTransfer, *, warm: bool
    ) -> _Done:
        taker = _require_taker(state, cmd)
        for party in state.others():
            if party.label != taker.label and not party.is_over:
                raise _refuse(cmd, f"{party.title} is on the call: remove them first")
        base = "consult" if warm else "transfer"
        target = self._new_party(state, cmd, cmd.to, Role.CONSULTEE, base, numbered=True)
        state, effects = set_hold(state, CITIZEN, hold=True)
        state = replace(state.with_party(target), target=target.label)
        effects.append(self._create(target))
        if warm:
            return state, effects, f"consulting {target.label}, the caller on hold"
        # Cold: the call-taker is free at once; the citizen waits on hold for the target.
        state, remove = take_out(state, taker, "transferred")
        return replace(state, taker=""), [*effects, remove], f"handed over to {target.label}"

    def _complete_transfer(self, state: ConferenceState, cmd: CompleteTransfer) -> _Done:
        target = state.get_party(state.target)
        if target.is_pending:
            raise _refuse(cmd, f"{target.title} has not answered yet")
        taker = state.get_party(state.taker)
        state, effects = set_hold(state, CITIZEN, hold=False)  # the citizen meets them first
        state, remove = take_out(state, taker, "transferred")
        state = hand_over(state, target)
        return state, [*effects, remove], f"the caller is with {target.label}"

    def _cancel_transfer(self, state: ConferenceState) -> _Done:
        target = state.get_party(state.target)
        state, remove = take_out(state, target, "canceled")
        state, effects = set_hold(replace(state, target=""), CITIZEN, hold=False)
        return state, [remove, *effects], f"{target.label} taken out, the caller is back"

    def _add_party(self, state: ConferenceState, cmd: AddParty) -> _Done:
        taker = _require_taker(state, cmd)
        added = [p for p in state.others() if p.label != taker.label and not p.is_over]
        if len(added) >= self.policy.max_added_parties:
            limit = self.policy.max_added_parties
            raise _refuse(cmd, f"the call already has {len(added)} added parties (at most {limit})")
        party = self._new_party(state, cmd, cmd.to, Role.PARTY, "party", numbered=True)
        return state.with_party(party), [self._create(party)], f"ringing {party.label}"

    def _remove_party(self, state: ConferenceState, cmd: RemoveParty) -> _Done:
        _require_taker(state, cmd)
        party = _live_party(state, cmd, cmd.label)
        if party.label == CITIZEN:
            raise _refuse(cmd, "the caller cannot be removed: end the call instead")
        if party.label == state.taker:
            raise _refuse(cmd, "the call-taker leaves by transferring or ending the call")
        if party.label == state.target:
            return self._cancel_transfer(state)
        state, remove = take_out(state, party, "removed")
        return state, [remove], f"{party.label} removed"

    def _emergency_transfer(self, state: ConferenceState, cmd: EmergencyTransfer) -> _Done:
        _require_taker(state, cmd)
        if not is_token(cmd.line) or not cmd.address:
            raise _refuse(cmd, f"there is no number for the {cmd.line!r} line")
        for handoff in state.handoffs:
            line = state.get_party(handoff.label)
            if handoff.line == cmd.line and not line.is_over:
                raise _refuse(cmd, f"the {cmd.line} line is already on the call")
        effects: list[Effect] = []
        if state.target:  # an emergency does not wait for a consultation to end
            state, effects, _ = self._cancel_transfer(state)
        state, unhold = set_hold(state, CITIZEN, hold=False)  # the caller must talk to them
        state, create = self._dial_line(state, cmd.line, cmd.address, added_by=cmd.by)
        return state, [*effects, *unhold, create], f"three-way with the {cmd.line} line"

    def _confirm_handoff(self, state: ConferenceState, cmd: ConfirmHandoff) -> _Done:
        if not cmd.taken_by.strip():
            raise _refuse(cmd, "say who on the emergency side took the call over")
        open_ = [
            h for h in state.handoffs if not h.is_confirmed and state.get_party(h.label).is_present
        ]
        if not open_:
            raise _refuse(cmd, _no_open_handoff(state))
        handoff = replace(
            open_[-1], confirmed_by=cmd.by, taken_by=cmd.taken_by, confirmed_at=cmd.at
        )
        handoffs = tuple(handoff if h.label == handoff.label else h for h in state.handoffs)
        state = replace(state, handoffs=handoffs)
        outcome = f"the {handoff.line} line took over: {cmd.taken_by}"
        taker = state.find_party(state.taker) if state.taker else None
        if cmd.stay or taker is None or not taker.is_present:
            return state, [], outcome
        state, remove = take_out(state, taker, "handed off")
        return replace(state, taker=""), [remove], outcome + "; the call-taker left"

    def _wrap_up(self, state: ConferenceState, cmd: WrapUp) -> _Done:
        legs = [party for party in state.roster if party.staff_id == cmd.by]
        if not legs:
            raise _refuse(cmd, "you were not on this call")
        if any(not leg.is_over for leg in legs):
            raise _refuse(cmd, "you are still on the call: transfer it or end it first")
        if cmd.by in state.wrapped_up:
            raise _refuse(cmd, "you are already wrapping up this call")
        state = replace(state, wrapped_up=(*state.wrapped_up, cmd.by))
        return state, [StartWrapUp(cmd.by)], "after-call work"

    # -- events ------------------------------------------------------------------------
    def event(self, state: ConferenceState, event: Event) -> Outcome:
        """Apply one Twilio callback (or REST answer); never refused, see conference_events."""
        return on_event(state, event)

    # -- building blocks -----------------------------------------------------------------
    def _new_party(
        self,
        state: ConferenceState,
        cmd: Command,
        to: Target,
        role: Role,
        base: str,
        *,
        numbered: bool = False,
    ) -> Party:
        if not to.address:
            raise _refuse(cmd, "there is no number to call")
        if to.staff_id and not is_token(to.staff_id):
            raise _refuse(cmd, f"{to.staff_id!r} is not a staff id")
        return Party(
            label=state.fresh_label(base, numbered=numbered),
            role=role,
            state=PartyState.DIALING,
            address=to.address,
            name=to.name,
            staff_id=to.staff_id,
            added_by=cmd.by,
        )

    def _dial_line(
        self, state: ConferenceState, line: str, address: str, *, added_by: str
    ) -> tuple[ConferenceState, CreateParticipant]:
        label = state.fresh_label(f"emergency-{line}")
        party = Party(
            label, Role.EMERGENCY_LINE, PartyState.DIALING, address, line, added_by=added_by
        )
        handoff = Handoff(label, line, requested_by=added_by or "front-door")
        state = replace(state.with_party(party), handoffs=(*state.handoffs, handoff))
        return state, self._create(party)

    def _create(self, party: Party) -> CreateParticipant:
        start, end, early_media = LEG_SETTINGS[party.role]
        timeout = {
            Role.CALL_TAKER: self.policy.taker_ring_seconds,
            Role.EMERGENCY_LINE: self.policy.emergency_ring_seconds,
        }.get(party.role, self.policy.party_ring_seconds)
        return CreateParticipant(
            label=party.label,
            to=party.address,
            role=party.role,
            start_conference_on_enter=start,
            end_conference_on_exit=end,
            early_media=early_media,
            beep=False,
            timeout_seconds=timeout,
        )


_Done = tuple[ConferenceState, list[Effect], str]


def _refuse(command: Command, why: str) -> Refusal:
    return Refusal(command.what, f"cannot {command.verb}: {why}")


def _require_taker(state: ConferenceState, cmd: Command) -> Party:
    taker = state.find_party(state.taker) if state.taker else None
    if taker is None or not taker.is_present:
        raise _refuse(cmd, "no call-taker is on the call")
    return taker


def _live_party(state: ConferenceState, cmd: Command, label: str) -> Party:
    party = state.find_party(label)
    if party is None:
        raise _refuse(cmd, f"there is no participant {label!r} on this call")
    if party.is_over:
        raise _refuse(cmd, f"{party.title} has already left the call")
    return party


def _no_open_handoff(state: ConferenceState) -> str:
    if not state.handoffs:
        return "no emergency line was called"
    last = state.handoffs[-1]
    line = state.get_party(last.label)
    if last.is_confirmed:
        return f"the {last.line} line's hand-off was already confirmed by {last.confirmed_by}"
    if line.is_pending:
        return f"the {last.line} line has not answered yet"
    return f"the {last.line} line has left the call"
