"""The queue's callback offer at the Twilio edge (PRODUCT.md, "The inbound call" point 5).

A conference wait room may only Say, Play, Pause and Redirect (Twilio error 13238), so the
offer cannot be made in it. Instead, once a waiting caller has been in line for
``CALLBACK_OFFER_AFTER_SECONDS`` and nobody is rung for them, the wait room's round
(``offer_if_due``) takes them out of the queue and redirects their call by REST, once, to
the offer (``/voice/callback-offer``: a Gather). Pressing 1 leaves a callback task in their
place in line and ends the call; anything else puts them back in their room, place kept.

Telling the hotline's move from a hang-up: before the redirect, in one transaction, the
call is marked as hearing the offer (``calls.start_callback_offer``: out of the queue, not
abandoned) and the room's conference is retired, exactly as the conference machine does
before it sends a caller back to the queue (``_requeue``). The participant-leave and
conference-end Twilio then sends are about a retired conference, which the machine ignores,
so they never read as "the caller hung up while waiting". Back in the queue, the caller's
join starts the room again under a new conference, as after a requeue. A caller who hangs
up while hearing the offer is abandoned all the same (``calls.leave_queue``, on the call's
final status).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from callflows.conference_messages import LogEntry, Outcome
from callflows.conference_roster import ConferenceState, Phase
from callflows.front_door import CallerInput, FlowState, Turn, callback_offer_due
from ivr.conference_edge import drive
from ivr.config import VoiceConfig
from ivr.gateway import GatewayError
from tickets import callbacks, calls, conferences
from tickets.db import utcnow

log = logging.getLogger(__name__)

OFFER_PATH = "/voice/callback-offer"
ACTOR = "system:queue"


class _NotNow(Exception):
    """The room is not waiting quietly for a call-taker: no offer this round."""


def offer_url(config: VoiceConfig, language: str) -> str:
    return config.url(f"{OFFER_PATH}?{urlencode({'lang': language})}")


def wait_round(config: VoiceConfig, state: FlowState, *, now: datetime | None = None) -> int | None:
    """One round of the wait room: the caller's place in the queue (None: not waiting),
    and the callback offer when it is due (the REST redirect follows the commit)."""
    now = now or utcnow()
    with config.sessions() as session:
        place = calls.place_in_line(session=session, call_sid=state.call_sid)
        due = callback_offer_due(
            place.queued_at if place else None,
            now,
            config.callback_offer_after_seconds,
            already_offered=False,
            is_waiting=place is not None,
        )
        if due:  # by the clock: only now is the call's own row read
            call = calls.find_call(session=session, call_sid=state.call_sid)
            due = call is not None and call.callback_offered_at is None
        session.rollback()
    if due:
        make_offer(config, state, now=now)  # the redirect replaces this round's TwiML
    return place.position if place else None


def make_offer(config: VoiceConfig, state: FlowState, *, now: datetime) -> bool:
    """Out of the queue and the room, then the redirect; False when it was not made."""
    call_sid = state.call_sid

    def take_out_of_queue(session: Session) -> bool:
        return calls.start_callback_offer(session=session, call_sid=call_sid, at=now)

    def retire_room(room: ConferenceState) -> Outcome:
        if room.phase is not Phase.WAITING or room.taker or not room.conference_sid:
            # Rung for meanwhile, or the room's conference is not known yet (its join
            # callback is late): its leave could not be told apart. The next round.
            raise _NotNow
        retired = (*room.retired_conference_sids, room.conference_sid)
        moved = replace(room, conference_sid="", retired_conference_sids=retired)
        why = "moved out of the room to hear the callback offer"
        return Outcome(moved, (LogEntry("callback-offer", ACTOR, why),))

    try:
        if not drive(config, call_sid, retire_room, prepare=take_out_of_queue):
            return False
    except _NotNow:
        return False
    try:
        config.gateway.redirect_call(call_sid, offer_url(config, state.language.value))
    except GatewayError as error:
        log.error("could not redirect %s to the callback offer: %s", call_sid, error)
        _undo(config, call_sid)
        return False
    log.info("callback offer: %s redirected out of the wait room", call_sid)
    return True


def _undo(config: VoiceConfig, call_sid: str) -> None:
    """The redirect failed: the caller is still in the room, and waits on."""

    def restore(session: Session) -> bool:
        calls.cancel_callback_offer(session=session, call_sid=call_sid)
        return True

    def unretire(room: ConferenceState) -> Outcome:
        if room.conference_sid or not room.retired_conference_sids:
            return Outcome(room, ())
        *earlier, last = room.retired_conference_sids
        back = replace(room, conference_sid=last, retired_conference_sids=tuple(earlier))
        return Outcome(back, (LogEntry("callback-offer", ACTOR, "not made: stays in the room"),))

    try:
        drive(config, call_sid, unretire, prepare=restore)
    except Exception:
        log.exception("could not put %s back in the queue after a failed offer", call_sid)


def answer(config: VoiceConfig, state: FlowState, turn: Turn) -> Turn:
    """Store what the caller answered; the turn they hear (``turn``, or back to the room
    when a call-taker was rung for them meanwhile, so nobody is left waiting alone)."""
    now = utcnow()
    with config.sessions.begin() as session:
        room = conferences.find_room(session=session, call_sid=state.call_sid)
        served = room is not None and room.phase != conferences.WAITING
        requested = turn.callback_request and not served
        answered = calls.answer_callback_offer(
            session=session, call_sid=state.call_sid, requested=requested, at=now
        )
        if answered is None and requested:  # no offer was open: only a retry finds a task
            found = callbacks.find_task_for_call(session=session, call_sid=state.call_sid)
            requested = found is not None
    if turn.callback_request and not requested:
        log.info("%s asked for a callback, but a call-taker is on the way", state.call_sid)
        return config.front_door.on_callback_offer(state, CallerInput())
    return turn
