"""The voice webhooks: the only door Twilio knocks on.

Every route is signed (403 otherwise), records what Twilio sent once, asks the front
door what the caller hears next, and answers TwiML. Any failure on the way becomes the
apology TwiML of ``ivr.safety``, never an HTML error page.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, request
from sqlalchemy.orm import Session

from callflows.front_door import (
    CallerInput,
    FlowState,
    Intent,
    ProgressInfo,
    emergency_wait,
    queue_wait,
)
from callflows.steps import Stage, WaitRoom
from ivr import callback_legs, callback_offer, emergency, order_conference
from ivr.conference_callbacks import conference_event, participant_event
from ivr.conference_edge import handle_event
from ivr.config import voice_config
from ivr.events import CallStatusEvent, ConferenceEvent
from ivr.persist import persist, webhook_from_request
from ivr.request_session import request_session
from ivr.safety import (
    apology_response,
    caller_language,
    emergency_line_in_request,
    safe_voice_route,
    twiml_response,
    wait_fallback,
)
from ivr.signature import is_signed_by_twilio
from tickets import work_orders
from tickets.phones import mask_number, parse_caller

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")
METHODS = ["GET", "POST"]
# The host-first rooms (``ivr.order_conference``) by the ``leg`` of their status callbacks.
HOST_FIRST = {kind.leg_role: kind for kind in (order_conference.ORDER, callback_legs.CALLBACK)}


@bp.before_request
def require_twilio_signature() -> None:
    config = voice_config()
    if config.skip_signature_check:
        return
    # The request itself, not its proxy: the check reads it a dozen times, on every webhook.
    this_request = request._get_current_object()  # type: ignore[attr-defined]
    if not is_signed_by_twilio(this_request, config.validator, config.public_base_url):
        log.warning("rejected unsigned or forged request to %s", request.path)
        abort(403)


def _flow_state() -> FlowState:
    args = request.args
    try:
        attempt = min(max(int(args.get("try", "1")), 1), 9)
    except ValueError:
        attempt = 1
    return FlowState(
        call_sid=request.values.get("CallSid", "")[:34],
        language=caller_language(),
        attempt=attempt,
        order_number=args.get("order", "")[:20],
        line=args.get("line", "")[:16],
    )


def _session() -> Session:
    return request_session()


@bp.route("/incoming", methods=METHODS)
@safe_voice_route
def incoming() -> Response:
    config = voice_config()
    call_sid = request.values.get("CallSid", "")[:34]
    if not call_sid:
        abort(400, "CallSid is required")
    persist(webhook_from_request("incoming", is_new_call=True, step="greeting"))
    caller = parse_caller(request.values.get("From"), config.default_region)
    log.info("incoming call %s from %s", call_sid, mask_number(caller.number or caller.kind.value))
    return twiml_response(config.front_door.start(call_sid).steps)


@bp.route("/step/<stage>", methods=METHODS)
@safe_voice_route
def step(stage: str) -> Response:
    config = voice_config()
    state = _flow_state()
    if not state.call_sid:
        abort(400, "CallSid is required")
    try:
        current = Stage(stage)
    except ValueError:
        return apology_response()
    given = CallerInput.parse(request.values.get("Digits"), request.values.get("SpeechResult"))
    turn = config.front_door.handle(current, state, given, _progress_lookup)
    hook = webhook_from_request(
        f"step:{current.value}",
        step=turn.path,
        language=turn.language.value if turn.language else None,
        intent=turn.intent.value if turn.intent else None,
        enters_queue=turn.queue,
        emergency_line=turn.emergency_line,
        extra={"lang": state.language.value},
    )
    # The emergency lane's REST call reads the work order this webhook opens: store now.
    stored = persist(hook, now=bool(turn.emergency_line))
    if turn.emergency_line and stored is not False:
        emergency.dial_line(state, turn.emergency_line, recorded=stored is True)
    return twiml_response(turn.steps)


def _progress_lookup(number: str) -> ProgressInfo | None:
    config = voice_config()
    caller = parse_caller(request.values.get("From"), config.default_region)
    found = work_orders.find_progress_for_caller(
        session=_session(), number=number, caller_number=caller.number
    )
    if found is None:
        return None
    due = found.due_at.astimezone(config.zone).strftime("%Y-%m-%d") if found.due_at else "-"
    return ProgressInfo(found.number, found.state, found.department or "-", due)


@bp.route("/wait/<room>", methods=METHODS)
@safe_voice_route(fallback=wait_fallback)
def wait(room: str) -> Response:
    if room not in {wait_room.value for wait_room in WaitRoom}:
        abort(404)
    state = _flow_state()
    persist(webhook_from_request(f"wait:{room}"))
    session = _session()
    if room == WaitRoom.EMERGENCY.value:
        retry = emergency.retry_if_not_dialed(session, state, request.args.get("line", ""))
        session.rollback()
        if retry:
            retry()
        return twiml_response(emergency_wait(state.language), redirect_to=request.full_path)
    # The position, and once per call the callback offer (a REST redirect out of the room:
    # a wait room cannot gather keys), see ivr.callback_offer.
    position = callback_offer.wait_round(voice_config(), state) or 1
    return twiml_response(queue_wait(state.language, position), redirect_to=request.full_path)


@bp.route("/callback-offer", methods=METHODS)
@safe_voice_route
def callback_offer_prompt() -> Response:
    """Where the queue's callback offer redirects a waiting caller's call (REST)."""
    config = voice_config()
    state = _flow_state()
    turn = config.front_door.callback_offer(state)
    persist(webhook_from_request("callback-offer", step=turn.path))
    return twiml_response(turn.steps)


# More specific than /step/<stage>, so it wins: the answer needs the database.
@bp.route(f"/step/{Stage.CALLBACK_OFFER.value}", methods=METHODS)
@safe_voice_route
def callback_offer_answer() -> Response:
    """1: a callback task in the caller's place, then goodbye; else back to their room."""
    config = voice_config()
    state = _flow_state()
    if not state.call_sid:
        abort(400, "CallSid is required")
    given = CallerInput.parse(request.values.get("Digits"), request.values.get("SpeechResult"))
    turn = callback_offer.answer(config, state, config.front_door.on_callback_offer(state, given))
    hook = webhook_from_request(
        f"step:{Stage.CALLBACK_OFFER.value}",
        step=turn.path,
        enters_queue=turn.queue,
        extra={"lang": state.language.value},
    )
    persist(hook, now=True)  # back in the queue: routing decides at once
    return twiml_response(turn.steps)


@bp.route("/status", methods=METHODS)
@safe_voice_route(fallback=lambda: twiml_response(()))
def status() -> Response:
    event = CallStatusEvent.parse(request.values)
    status_value = event.status.value if event.status else None
    hook = webhook_from_request(
        "status",
        event.call_sid,
        "status",
        event.sequence_number,
        status_value,
        sequence_number=event.sequence_number,
        status=status_value,
        status_at=event.at.isoformat(),
        duration_seconds=event.duration_seconds,
        leaves_queue=bool(event.status and event.status.is_final),
    )
    emergency_leg = request.args.get("leg") == "emergency"
    host_first = HOST_FIRST.get(request.args.get("leg", ""))  # an order's room, a callback
    stored = persist(hook, now=emergency_leg or host_first is not None)
    if stored and emergency_leg:
        session = _session()
        follow_up = emergency.on_leg_status(session, event, request.args)
        session.commit()
        if follow_up:
            follow_up()
    elif stored is not None and host_first is not None:
        # A retry too (stored is False): the room's one decision event makes it act once,
        # and a callback's moves are conditional on where the task and call-taker stand.
        session = _session()
        follow_up = order_conference.on_leg_status(session, event, request.args, host_first)
        session.commit()
        if follow_up:  # dial the others, after the commit
            follow_up()
    return twiml_response(())


@bp.route("/conference-status", methods=METHODS)
@safe_voice_route(fallback=lambda: twiml_response(()))
def conference_status() -> Response:
    """Roster changes of a citizen's room: stored once, then applied to its conference."""
    event = ConferenceEvent.parse(request.values)
    hook = webhook_from_request(
        "conference",
        event.conference_sid,
        event.event,
        event.call_sid,
        event.sequence_number,
        sequence_number=event.sequence_number,
        status_at=event.at.isoformat(),
    )
    change = conference_event(event)
    # Stored in the request: the state of the call follows from it (never the hot path).
    if persist(hook, now=True) and change is not None and event.room:
        handle_event(event.room, change)
    return twiml_response(())


@bp.route("/participant-status", methods=METHODS)
@safe_voice_route(fallback=lambda: twiml_response(()))
def participant_status() -> Response:
    """Call progress of a leg we added to a room (``room`` and ``label`` are ours, signed)."""
    room = request.args.get("room", "")[:34]
    label = request.args.get("label", "")[:64]
    leg = request.values.get("CallSid", "")[:34]
    status_value = request.values.get("CallStatus", "")[:20].strip().lower()
    hook = webhook_from_request(
        "participant",
        leg,
        "participant",
        status_value,
        sequence_number=_sequence_number(),
        extra={"room": room, "label": label},
    )
    change = participant_event(label, leg, status_value)
    if persist(hook, now=True) and change is not None and room:
        handle_event(room, change)
    return twiml_response(())


@bp.route("/requeue", methods=METHODS)
@safe_voice_route
def requeue() -> Response:
    """A caller left alone in a started room comes back to the queue (a new room)."""
    config = voice_config()
    state = _flow_state()
    turn = config.front_door.queue(state, Intent.OPERATOR, "requeue")
    hook = webhook_from_request(
        "requeue", step="requeue", enters_queue=True, extra={"lang": state.language.value}
    )
    persist(hook, now=True)
    return twiml_response(turn.steps)


def _sequence_number() -> int | None:
    value = request.values.get("SequenceNumber", "")
    return int(value) if value.isdigit() and len(value) < 10 else None


@bp.route("/fallback", methods=METHODS)
@safe_voice_route
def fallback() -> Response:
    """Twilio's Fallback URL: our Voice URL failed, so apologise and get help."""
    line = emergency_line_in_request()
    state = FlowState(request.values.get("CallSid", "")[:34], caller_language())
    hook = webhook_from_request(
        "fallback",
        step="fallback",
        intent="emergency" if line else "operator",
        enters_queue=line is None,
        emergency_line=line,
        extra={"lang": state.language.value},
    )
    stored = persist(hook, now=line is not None)
    log.error(
        "Twilio used the fallback URL: error %s at %s",
        request.values.get("ErrorCode"),
        request.values.get("ErrorUrl", "")[:200],
    )
    if line and state.call_sid and stored is not False:
        emergency.dial_line(state, line, recorded=stored is True)
    return apology_response(dial=False)
