"""Twilio's conference and participant callbacks as the conference machine's events.

Conference callbacks (``/voice/conference-status``) report the roster: a party joined,
left, was held or resumed, the room ended. Participant callbacks
(``/voice/participant-status?room=..&label=..``) report the call progress of a leg we
created: ringing, and how it ended when it never got in (no-answer, busy, failed,
canceled). ``initiated`` and ``in-progress`` say nothing the machine needs (the join
callback tells that the party is in).
"""

from __future__ import annotations

from callflows.conference_messages import (
    ConferenceEnded,
    Event,
    FailReason,
    ParticipantFailed,
    ParticipantHeld,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantResumed,
    ParticipantRinging,
)
from callflows.conference_roster import CITIZEN
from ivr.events import ConferenceEvent

_ROSTER_EVENTS: dict[str, type[ParticipantJoined | ParticipantLeft]] = {
    "participant-join": ParticipantJoined,
    "participant-leave": ParticipantLeft,
    "participant-hold": ParticipantHeld,  # type: ignore[dict-item]
    "participant-unhold": ParticipantResumed,  # type: ignore[dict-item]
}
_FAILURES = {reason.value: reason for reason in FailReason}


def conference_event(event: ConferenceEvent) -> Event | None:
    """The machine's event for a conference callback, or None (start, unknown events)."""
    if event.event == "conference-end":
        return ConferenceEnded(conference_sid=event.conference_sid)
    kind = _ROSTER_EVENTS.get(event.event)
    if kind is None:
        return None
    label = event.label or (CITIZEN if event.call_sid and event.call_sid == event.room else "")
    if not label:
        return None
    return kind(label, call_sid=event.call_sid, conference_sid=event.conference_sid)


def participant_event(label: str, call_sid: str, status: str) -> Event | None:
    """The machine's event for a leg's call status, or None when it says nothing new."""
    if not label:
        return None
    if status == "ringing":
        return ParticipantRinging(label, call_sid=call_sid)
    if status == "completed":
        return ParticipantLeft(label, call_sid=call_sid)
    reason = _FAILURES.get(status)
    if reason is not None:
        return ParticipantFailed(label, call_sid=call_sid, reason=reason)
    return None
