"""The conference machine's effects carried out through the call gateway (after the commit).

Each effect is one REST call. What Twilio answers comes back as what the machine
understands: 20404 (the participant or the room had already gone) as ``ParticipantGone``,
any other failure as ``OperationFailed``; a new leg's CallSid as ``LegPlaced`` so that the
room knows it (a ringing leg is hung up by its CallSid when the room is already over).
Nothing here touches the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

from callflows.conference_messages import (
    CreateParticipant,
    Effect,
    EndConference,
    Event,
    Operation,
    OperationFailed,
    ParticipantGone,
    RedirectCitizenToQueue,
    RemoveParticipant,
    UpdateParticipant,
)
from callflows.conference_roster import ConferenceState, Phase
from ivr.config import VoiceConfig
from ivr.gateway import GatewayError, GatewayUnavailable
from ivr.gateway import ParticipantGone as Gone
from ivr.gateway_conference import PARTICIPANT_STATUS_EVENTS

log = logging.getLogger(__name__)
PARTICIPANT_STATUS_PATH = "/voice/participant-status"
CONFERENCE_STATUS_PATH = "/voice/conference-status"
REQUEUE_PATH = "/voice/requeue"


@dataclass(frozen=True, slots=True)
class LegPlaced:
    label: str
    call_sid: str


@dataclass(frozen=True, slots=True)
class ProviderDown:
    """Twilio could not be reached (or asked us to slow down) when ringing ``label``."""

    label: str


Feedback = Event | LegPlaced | ProviderDown


def participant_status_url(config: VoiceConfig, room: str, label: str) -> str:
    return config.url(f"{PARTICIPANT_STATUS_PATH}?{urlencode({'room': room, 'label': label})}")


def requeue_url(config: VoiceConfig, language: str) -> str:
    return config.url(f"{REQUEUE_PATH}?{urlencode({'lang': language})}")


def carry_out(
    config: VoiceConfig, state: ConferenceState, effects: tuple[Effect, ...], language: str
) -> list[Feedback]:
    """Make the REST calls of ``effects`` in order; what the machine must hear back."""
    # A room the machine closed in this very step is still up until EndConference is sent;
    # a room closed by Twilio's own callback is gone: ringing legs are hung up instead.
    room_is_up = state.phase is not Phase.ENDED or any(
        isinstance(effect, EndConference) for effect in effects
    )
    feedback: list[Feedback] = []
    for effect in effects:
        match effect:
            case CreateParticipant():
                feedback += _create(config, state, effect)
            case UpdateParticipant():
                feedback += _hold(config, state, effect)
            case RemoveParticipant():
                feedback += _remove(config, state, effect, room_is_up=room_is_up)
            case EndConference():
                _end(config, state)
            case RedirectCitizenToQueue():
                _quietly(config, "redirect_call", state.call_sid, requeue_url(config, language))
    return feedback


def _create(config: VoiceConfig, state: ConferenceState, effect: CreateParticipant) -> list:
    try:
        leg = config.gateway.add_participant(
            state.room,
            to=effect.to,
            from_number=config.hotline_number,
            label=effect.label,
            start_conference_on_enter=effect.start_conference_on_enter,
            end_conference_on_exit=effect.end_conference_on_exit,
            early_media=effect.early_media,
            beep=effect.beep,
            timeout_seconds=effect.timeout_seconds,
            status_callback=participant_status_url(config, state.room, effect.label),
            status_callback_events=PARTICIPANT_STATUS_EVENTS,
            conference_status_callback=config.url(CONFERENCE_STATUS_PATH),
        )
    except GatewayUnavailable as error:
        log.error("could not add %s to %s: %s", effect.label, state.room, error)
        return [ProviderDown(effect.label)]
    except (GatewayError, ValueError) as error:
        log.error("could not add %s to %s: %s", effect.label, state.room, error)
        return [OperationFailed(effect.label, operation=Operation.CREATE, message=str(error))]
    return [LegPlaced(effect.label, leg)]


def _hold(config: VoiceConfig, state: ConferenceState, effect: UpdateParticipant) -> list:
    operation = Operation.HOLD if effect.hold else Operation.RESUME
    if not state.conference_sid:
        why = "the conference has not started yet"
        return [OperationFailed(effect.label, operation=operation, message=why)]
    try:
        config.gateway.hold_participant(
            state.conference_sid,
            effect.label,
            hold=effect.hold,
            hold_url=config.hold_music if effect.hold else None,
        )
    except Gone:
        return [ParticipantGone(effect.label, conference_sid=state.conference_sid)]
    except (GatewayError, ValueError) as error:
        return [OperationFailed(effect.label, operation=operation, message=str(error))]
    return []


def _remove(
    config: VoiceConfig, state: ConferenceState, effect: RemoveParticipant, *, room_is_up: bool
) -> list:
    if not (room_is_up and state.conference_sid):
        if effect.call_sid:  # a leg still ringing into a room that is over, or not yet known
            _quietly(config, "hang_up", effect.call_sid)
        return []
    try:
        config.gateway.remove_participant(state.conference_sid, effect.label)
    except Gone:
        if effect.call_sid:  # gone from the room; make sure its phone stops ringing too
            _quietly(config, "hang_up", effect.call_sid)
        return [ParticipantGone(effect.label, conference_sid=state.conference_sid)]
    except (GatewayError, ValueError) as error:
        if effect.call_sid:
            _quietly(config, "hang_up", effect.call_sid)
            return []
        return [OperationFailed(effect.label, operation=Operation.REMOVE, message=str(error))]
    return []


def _end(config: VoiceConfig, state: ConferenceState) -> None:
    if not state.conference_sid:  # the citizen leaving ends their room (endConferenceOnExit)
        _quietly(config, "hang_up", state.call_sid)
        return
    try:
        config.gateway.end_conference(state.conference_sid)
    except Gone:
        pass  # over already
    except (GatewayError, ValueError) as error:
        log.error("could not end the conference of %s: %s", state.call_sid, error)
        _quietly(config, "hang_up", state.call_sid)


def _quietly(config: VoiceConfig, operation: str, *args: str) -> None:
    """A best-effort REST call: a failure is logged, never raised (the callbacks follow)."""
    try:
        getattr(config.gateway, operation)(*args)
    except GatewayError as error:
        log.info("%s %s: %s", operation, args[0], error)
