"""What goes into the conference machine and what comes out of it, as plain data.

- **Commands** come from the console (``by`` is the staff id of who pressed the button) or
  from routing (``RingTaker``). An illegal one raises :class:`Refusal` with a sentence the
  console can show as it is.
- **Events** come from Twilio: conference status callbacks (join, leave, hold, unhold, end),
  participant call-status callbacks (ringing, no-answer, busy, failed, canceled) and what
  the REST API answered (``ParticipantGone`` for 20404, ``OperationFailed`` otherwise).
  They may come late, twice or out of order; the machine never refuses one.
- **Effects** are what the edge does next, in order: Twilio REST calls, console
  notifications, and a ``LogEntry`` for the call's history.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, NamedTuple

from callflows.conference_roster import CITIZEN, ConferenceState, Role


class Refusal(Exception):
    """A command that cannot be carried out now; ``str(refusal)`` is for the console."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what  # the command's log name, so the edge can log the refusal too
        self.message = message


@dataclass(frozen=True, slots=True)
class Target:
    """Whom to call: a colleague, a department's number, any number the role allows."""

    address: str  # E.164 number or client:identity
    name: str = ""  # shown to staff and used in messages instead of the number
    staff_id: str = ""  # set for a colleague: they can take the call over


# -- commands -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RingTaker:
    by: str  # "routing"
    to: Target  # staff_id is required
    what: ClassVar[str] = "ring-call-taker"
    verb: ClassVar[str] = "ring a call-taker"


@dataclass(frozen=True, slots=True)
class Hold:
    by: str
    label: str = CITIZEN
    what: ClassVar[str] = "hold"
    verb: ClassVar[str] = "put a party on hold"


@dataclass(frozen=True, slots=True)
class Resume:
    by: str
    label: str = CITIZEN
    what: ClassVar[str] = "resume"
    verb: ClassVar[str] = "take a party off hold"


@dataclass(frozen=True, slots=True)
class StartWarmTransfer:
    by: str
    to: Target
    what: ClassVar[str] = "warm-transfer"
    verb: ClassVar[str] = "start a warm transfer"


@dataclass(frozen=True, slots=True)
class CompleteTransfer:
    by: str
    what: ClassVar[str] = "complete-transfer"
    verb: ClassVar[str] = "complete a transfer"


@dataclass(frozen=True, slots=True)
class CancelTransfer:
    by: str
    what: ClassVar[str] = "cancel-transfer"
    verb: ClassVar[str] = "cancel a transfer"


@dataclass(frozen=True, slots=True)
class ColdTransfer:
    by: str
    to: Target
    what: ClassVar[str] = "cold-transfer"
    verb: ClassVar[str] = "transfer the call"


@dataclass(frozen=True, slots=True)
class AddParty:
    by: str
    to: Target
    what: ClassVar[str] = "add-party"
    verb: ClassVar[str] = "add a party"


@dataclass(frozen=True, slots=True)
class RemoveParty:
    by: str
    label: str
    what: ClassVar[str] = "remove-party"
    verb: ClassVar[str] = "remove a party"


@dataclass(frozen=True, slots=True)
class EmergencyTransfer:
    by: str
    line: str  # fire, medical, police, traffic, utility
    address: str  # the line's number, from configuration
    what: ClassVar[str] = "emergency-transfer"
    verb: ClassVar[str] = "transfer to the emergency line"


@dataclass(frozen=True, slots=True)
class ConfirmHandoff:
    by: str
    taken_by: str  # the emergency operator who took the call over
    at: datetime
    stay: bool = False  # by default the call-taker leaves the call once it is handed off
    what: ClassVar[str] = "confirm-handoff"
    verb: ClassVar[str] = "confirm the hand-off"


@dataclass(frozen=True, slots=True)
class EndCall:
    by: str
    what: ClassVar[str] = "end-call"
    verb: ClassVar[str] = "end the call"


@dataclass(frozen=True, slots=True)
class WrapUp:
    by: str
    what: ClassVar[str] = "wrap-up"
    verb: ClassVar[str] = "wrap up"


Command = (
    RingTaker
    | Hold
    | Resume
    | StartWarmTransfer
    | CompleteTransfer
    | CancelTransfer
    | ColdTransfer
    | AddParty
    | RemoveParty
    | EmergencyTransfer
    | ConfirmHandoff
    | EndCall
    | WrapUp
)


# -- events ---------------------------------------------------------------------------


class FailReason(StrEnum):
    """Twilio's final call statuses for a leg that never got into the conference."""

    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"


class Operation(StrEnum):
    """The REST request an ``OperationFailed`` is about."""

    CREATE = "create"
    HOLD = "hold"
    RESUME = "resume"
    REMOVE = "remove"
    END = "end"
    REDIRECT = "redirect"


@dataclass(frozen=True, slots=True)
class ParticipantEvent:
    label: str
    _: KW_ONLY
    call_sid: str = ""  # the party's call, when the callback names it
    conference_sid: str = ""  # set on conference callbacks: tells a requeued call's rooms apart


@dataclass(frozen=True, slots=True)
class ParticipantRinging(ParticipantEvent):
    what: ClassVar[str] = "participant-ringing"


@dataclass(frozen=True, slots=True)
class ParticipantJoined(ParticipantEvent):
    what: ClassVar[str] = "participant-join"


@dataclass(frozen=True, slots=True)
class ParticipantLeft(ParticipantEvent):
    what: ClassVar[str] = "participant-leave"


@dataclass(frozen=True, slots=True)
class ParticipantHeld(ParticipantEvent):
    what: ClassVar[str] = "participant-hold"


@dataclass(frozen=True, slots=True)
class ParticipantResumed(ParticipantEvent):
    what: ClassVar[str] = "participant-unhold"


@dataclass(frozen=True, slots=True)
class ParticipantFailed(ParticipantEvent):
    reason: FailReason
    detail: str = ""
    what: ClassVar[str] = "participant-failed"


@dataclass(frozen=True, slots=True)
class ParticipantGone(ParticipantEvent):
    """The REST API answered 20404: the participant had already left. Information only."""

    what: ClassVar[str] = "participant-gone"


@dataclass(frozen=True, slots=True)
class OperationFailed(ParticipantEvent):
    """A REST request for ``label`` failed for good (the edge has done its retries)."""

    operation: Operation
    message: str
    what: ClassVar[str] = "operation-failed"


@dataclass(frozen=True, slots=True)
class ConferenceEnded:
    _: KW_ONLY
    conference_sid: str = ""
    what: ClassVar[str] = "conference-end"


Event = (
    ParticipantRinging
    | ParticipantJoined
    | ParticipantLeft
    | ParticipantHeld
    | ParticipantResumed
    | ParticipantFailed
    | ParticipantGone
    | OperationFailed
    | ConferenceEnded
)


# -- effects --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateParticipant:
    """Participants API create, into the citizen's room, with the shared status callback."""

    label: str
    to: str
    role: Role
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    early_media: bool
    beep: bool
    timeout_seconds: int


@dataclass(frozen=True, slots=True)
class UpdateParticipant:
    """Hold or resume one participant; on hold they hear the configured hold music."""

    label: str
    hold: bool


@dataclass(frozen=True, slots=True)
class RemoveParticipant:
    """Participants API delete by label (ringing or joined). When the conference is
    already over, the edge hangs up ``call_sid`` instead, if it is known."""

    label: str
    call_sid: str = ""


@dataclass(frozen=True, slots=True)
class EndConference:
    """Conference update ``status=completed``; every remaining participant is hung up."""


@dataclass(frozen=True, slots=True)
class RedirectCitizenToQueue:
    """The citizen is alone in a started conference: redirect their call to the queue
    TwiML, which puts them back in a (new) room named after their CallSid."""

    reason: str
    is_emergency: bool = False  # an emergency call goes before everyone


@dataclass(frozen=True, slots=True)
class NotifyTaker:
    staff_id: str
    message: str


@dataclass(frozen=True, slots=True)
class TakerMissedCall:
    """The call-taker rung for this call did not answer: routing marks them away and
    rings the next one."""

    staff_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StartWrapUp:
    staff_id: str


@dataclass(frozen=True, slots=True)
class LogEntry:
    what: str
    who: str
    outcome: str


Effect = (
    CreateParticipant
    | UpdateParticipant
    | RemoveParticipant
    | EndConference
    | RedirectCitizenToQueue
    | NotifyTaker
    | TakerMissedCall
    | StartWrapUp
    | LogEntry
)


class Outcome(NamedTuple):
    """What the machine answers to a command or an event: unpack it as ``state, effects``."""

    state: ConferenceState
    effects: tuple[Effect, ...]
