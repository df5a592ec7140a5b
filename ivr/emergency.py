"""The emergency lane's outbound leg: ring the chosen line into the caller's room.

The caller waits in their own conference (named after their CallSid) while the hotline
places a call to the emergency line that joins the same room. The REST call runs after
the webhook's commit; if it fails, the wait room retries, and after the last attempt the
caller is told to dial the short number and is put through to a call-taker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from callflows.conference_messages import FailReason, LogEntry, Outcome, ParticipantFailed
from callflows.conference_roster import Phase
from callflows.front_door import FlowState
from callflows.steps import Language
from ivr import conference_edge, dispatch
from ivr.config import VoiceConfig, voice_config
from ivr.events import CallStatusEvent
from ivr.gateway import GatewayError
from tickets import calls, conferences, work_orders
from tickets.db import utcnow
from tickets.events import record_event
from tickets.models import CallDirection, CallStatus
from tickets.phones import Caller, CallerKind, mask_number

log = logging.getLogger(__name__)
LEG_LABEL = "emergency-line"
REDIAL_AFTER = timedelta(seconds=8)


def dial_line(state: FlowState, line: str, *, recorded: bool) -> None:
    """Ring the emergency line into the caller's room (after the webhook is stored).

    ``recorded`` is False when the database was down and the webhook was journaled: the
    line is rung all the same, and the leg is known from its status callbacks.
    """
    if recorded:
        config = voice_config()
        _dial(config, state, line, attempt=1)
        _bring_in_a_call_taker(config, state, line)
    else:
        dial_without_records(state, line)


def _bring_in_a_call_taker(config: VoiceConfig, state: FlowState, line: str) -> None:
    """The three-way of PRODUCT.md: the first free call-taker joins the caller and the
    line; nobody free: the line alone (an emergency caller never waits)."""
    call_sid = state.call_sid
    flow = config.conference_flow
    address = config.emergency_numbers[line]
    opened = LogEntry("emergency-lane", "front-door", f"ringing the {line} line")
    try:
        # The room starts with the line dialling: this module dials it (with its retries).
        conference_edge.drive(
            config,
            call_sid,
            lambda room: Outcome(room, (opened,)),
            initial=lambda: flow.start_emergency(call_sid, line, address).state,
        )
        if dispatch.ring_first_free_taker(config, call_sid, state.language.value) is None:
            conference_edge.note(
                config, call_sid, "emergency-no-taker", "routing", "no call-taker free"
            )
    except Exception:
        log.exception("could not bring a call-taker into the emergency call %s", call_sid)


def leg_label(line: str) -> str:
    """The line's participant label, as the conference machine names it."""
    return f"emergency-{line}"


def retry_if_not_dialed(session: Session, state: FlowState, line: str) -> Callable[[], None] | None:
    """From the wait room: dial again when no leg was placed for a while."""
    config = voice_config()
    order = work_orders.find_emergency_order(session=session, call_sid=state.call_sid)
    if order is None or order.emergency_leg_sid or order.emergency_line is None:
        return None
    if utcnow() - order.emergency_requested_at < REDIAL_AFTER:  # type: ignore[operator]
        return None
    failures = calls.count_events(
        session=session, call_sid=state.call_sid, kind="emergency-dial-failed"
    )
    if failures >= config.emergency_dial_attempts:
        return lambda: _give_up(config, state, order.emergency_line or line)
    return lambda: _dial(config, state, order.emergency_line or line, failures + 1)


def on_leg_status(
    session: Session, event: CallStatusEvent, args: Mapping[str, str]
) -> Callable[[], None] | None:
    """The emergency leg rang, answered or failed."""
    config = voice_config()
    parent = args.get("parent", "")[:34]
    line = args.get("line", "")
    if event.status is CallStatus.IN_PROGRESS:
        work_orders.note_emergency_connected(session=session, parent_call_sid=parent, at=event.at)
        return None
    if (
        event.status
        in (CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED)
        and line in config.emergency_numbers
    ):
        attempt = _int(args.get("try"), 1)
        state = FlowState(parent, _language(args.get("lang")))
        if attempt >= config.emergency_dial_attempts:
            return lambda: _give_up(config, state, line)
        return lambda: _dial(config, state, line, attempt + 1)
    return None


def dial_without_records(state: FlowState, line: str) -> None:
    """The apology path: ring the line even when the database is not answering."""
    config = voice_config()
    try:
        config.gateway.join_conference(**_leg_arguments(config, state, line, 1))
    except Exception:
        log.exception("could not dial the %s line for %s", line, state.call_sid)


def _leg_arguments(config: VoiceConfig, state: FlowState, line: str, attempt: int) -> dict:
    parent = state.call_sid
    query = urlencode(
        {
            "leg": "emergency",
            "parent": parent,
            "line": line,
            "try": attempt,
            "lang": state.language.value,
        }
    )
    return {
        "to_number": config.emergency_numbers[line],
        "from_number": config.hotline_number,
        "room": parent,
        "label": leg_label(line),
        "status_callback_url": config.url(f"/voice/status?{query}"),
        "start_conference_on_enter": True,
        # The line hanging up must not drop the caller (callflows.conference decides).
        "end_conference_on_exit": False,
    }


def _dial(config: VoiceConfig, state: FlowState, line: str, attempt: int) -> None:
    parent = state.call_sid
    arguments = _leg_arguments(config, state, line, attempt)
    try:
        leg_sid = config.gateway.join_conference(**arguments)
    except GatewayError as error:
        log.error(
            "dialling the %s line for %s failed (attempt %d): %s", line, parent, attempt, error
        )
        _note(
            config,
            parent,
            "emergency-dial-failed",
            {"line": line, "attempt": attempt, "error": str(error)[:300]},
        )
        return
    log.info("emergency leg %s to %s for %s", leg_sid, mask_number(arguments["to_number"]), parent)
    with config.sessions.begin() as session:
        calls.register_call(
            session=session,
            call_sid=leg_sid,
            caller=Caller(CallerKind.NUMBER, number=config.hotline_number),
            to_number=arguments["to_number"],
            status=CallStatus.QUEUED,
            direction=CallDirection.OUTBOUND,
            parent_call_sid=parent,
            leg_role=LEG_LABEL,
        )
        work_orders.note_emergency_dialed(session=session, call_sid=parent, leg_sid=leg_sid)
        record_event(
            session=session,
            kind="emergency-dialed",
            call_sid=parent,
            params={"leg_sid": leg_sid, "line": line, "attempt": attempt},
            dedupe_key=None,
        )


def _give_up(config: VoiceConfig, state: FlowState, line: str) -> None:
    """Tell the caller to dial the short number and bring in a call-taker (unless one is
    with them already: then they stay together)."""
    if _taker_stays_with_caller(config, state.call_sid, line):
        _note(config, state.call_sid, "emergency-unreachable", {"line": line})
        return
    query = urlencode({"lang": state.language.value, "line": line})
    try:
        config.gateway.redirect_call(
            state.call_sid, config.url(f"/voice/step/emergency-unreachable?{query}")
        )
    except GatewayError as error:
        log.error("could not redirect %s after the %s line failed: %s", state.call_sid, line, error)
    _note(config, state.call_sid, "emergency-unreachable", {"line": line})


def _taker_stays_with_caller(config: VoiceConfig, call_sid: str, line: str) -> bool:
    """Tell the room the line failed for good; True when a call-taker is with the caller."""
    try:
        failed = ParticipantFailed(leg_label(line), reason=FailReason.FAILED, detail="gave up")
        conference_edge.handle_event_with(config, call_sid, failed)
        with config.sessions() as session:
            room = conferences.find_room(session=session, call_sid=call_sid)
            return room is not None and room.phase == Phase.TALKING.value
    except Exception:
        log.exception("could not tell the room of %s that the line failed", call_sid)
        return False


def _note(config: VoiceConfig, call_sid: str, kind: str, params: dict) -> None:
    try:
        with config.sessions.begin() as session:
            record_event(
                session=session, kind=kind, call_sid=call_sid, params=params, dedupe_key=None
            )
    except Exception:
        log.exception("could not record %s for %s", kind, call_sid)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


def _language(value: str | None) -> Language:
    try:
        return Language(value or "zh")
    except ValueError:
        return Language.MANDARIN
