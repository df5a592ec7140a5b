"""``POST /console/calls/<call_sid>/<operation>``: the console's call buttons.

Each request (sent by ``console.js`` with the CSRF token in ``X-CSRFToken``) is checked
(the role, and that the call is the caller's own: they are its call-taker, or a party of
it), turned into one command of ``callflows.conference_messages`` and handed to
``ivr.conference_edge.run_command``, which runs the conference machine and its REST calls.
The answer is 204 (the event stream shows what changed), or JSON ``{"error": ...}``:
400 for input that makes no sense (an invalid phone number), 403 for a call that is not
theirs, 409 when the machine refuses the command now (its message as it is), 502 when
Twilio did not accept a request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from callflows import conference_messages as msg
from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import CallTakerState, Role, Staff
from tickets.phones import to_e164
from webapp.auth import db_session
from webapp.settings import Settings
from webapp.staff.live_snapshot import CALL_STATES, EMERGENCY_LINES, find_room_state

log = logging.getLogger(__name__)
OPERATOR_ROLES = (Role.CALL_TAKER, Role.FLOOR_MANAGER)


class BadInput(ValueError):
    """What the person typed cannot be used; the message says what to fix (HTTP 400)."""


@dataclass(frozen=True)
class Request:
    """One button press: who, which call, and the form's fields."""

    by: str  # the staff id, as the conference roster names staff
    call_sid: str
    form: Mapping[str, str]
    session: Session
    settings: Settings

    def field(self, name: str, *, required: bool = False, limit: int = 100) -> str:
        value = " ".join((self.form.get(name) or "").split())[:limit]
        if required and not value:
            raise BadInput(f"{name.replace('_', ' ')} is required")
        return value


def error(status: int, message: str) -> ResponseReturnValue:
    return jsonify(error=message), status


def is_my_call(staff: Staff, call_sid: str, *, session: Session) -> bool:
    """Whether the call is this person's to drive: the call-taker rung for it, on it or
    wrapping it up, or a member of staff on its roster (a colleague it was handed to)."""
    profile = staff.call_taker
    if profile is not None and profile.call_sid == call_sid and profile.state in CALL_STATES:
        return True
    room = find_room_state(session=session, call_sid=call_sid) or {}
    return any(
        isinstance(party, dict) and party.get("staff_id") == str(staff.id)
        for party in room.get("roster", ())
    )


def operate(call_sid: str, operation: str) -> ResponseReturnValue:
    build = BUILDERS.get(operation)
    if build is None:
        abort(404)
    session = db_session()
    staff = session.get(Staff, current_user.id)
    if staff is None or not is_my_call(staff, call_sid, session=session):
        log.warning("%s tried %s on call %s, not theirs", current_user.actor, operation, call_sid)
        return error(403, "This call is not yours.")
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    press = Request(str(staff.id), call_sid, request.form, session, settings)
    try:
        command = build(press)
    except BadInput as problem:
        return error(400, str(problem))
    session.close()  # the edge has its own session; hold no connection meanwhile
    return run(call_sid, command)


def run(call_sid: str, command: msg.Command) -> ResponseReturnValue:
    try:
        from ivr.conference_edge import run_command
    except ImportError:  # pragma: no cover - until the conference edge is in
        return error(503, "Call control is not available on this server yet.")
    from ivr.gateway import GatewayError

    try:
        run_command(call_sid, command)
    except msg.Refusal as refusal:
        log.info("%s refused on %s: %s", command.what, call_sid, refusal)
        return error(409, str(refusal))
    except GatewayError as failure:
        log.warning("%s on %s failed at the provider: %s", command.what, call_sid, failure)
        return error(
            502,
            f"The phone service did not carry this out ({command.verb}). "
            "Nothing changed; try again, or use another way.",
        )
    log.info("%s ran %s on %s", current_user.actor, command.what, call_sid)
    return "", 204


# -- the commands -------------------------------------------------------------------------


def _target(press: Request) -> msg.Target:
    """Whom to call: a colleague (``colleague``: a username) or a number (``number``)."""
    username = press.field("colleague", limit=64)
    if username:
        return _colleague(press, username)
    raw = press.field("number", limit=40)
    if not raw:
        raise BadInput("type a phone number or choose a colleague")
    number = to_e164(raw)
    if number is None:
        raise BadInput(f"{raw!r} is not a phone number; e.g. +8613900000009 or 0891-6312345")
    return msg.Target(number, name=press.field("name", limit=80))


def _colleague(press: Request, username: str) -> msg.Target:
    colleague = staff_store.find_staff(username, session=press.session)
    profile = colleague.call_taker if colleague else None
    if colleague is None or profile is None or not colleague.is_active:
        raise BadInput(f"there is no call-taker called {username!r}")
    if str(colleague.id) == press.by:
        raise BadInput("choose a colleague, not yourself")
    if profile.state is not CallTakerState.AVAILABLE:
        raise BadInput(f"{colleague.display_name} is not available now")
    address = profile.phone_number or (
        f"client:{profile.client_identity}" if profile.client_identity else ""
    )
    if not address:
        raise BadInput(f"{colleague.display_name} has no phone to ring")
    return msg.Target(address, name=colleague.display_name, staff_id=str(colleague.id))


def _label(press: Request) -> str:
    label = press.field("label", limit=60)
    return label or "citizen"


def _emergency(press: Request) -> msg.EmergencyTransfer:
    line = press.field("line", required=True, limit=16)
    if line not in EMERGENCY_LINES:
        raise BadInput(f"no emergency line called {line!r}")
    return msg.EmergencyTransfer(press.by, line, press.settings.emergency_numbers[line])


def _handoff(press: Request) -> msg.ConfirmHandoff:
    taken_by = press.field("taken_by", required=True, limit=120)
    stay = (press.form.get("stay") or "").lower() in {"1", "true", "on", "yes"}
    return msg.ConfirmHandoff(press.by, taken_by, utcnow(), stay=stay)


BUILDERS: dict[str, Callable[[Request], msg.Command]] = {
    "hold": lambda p: msg.Hold(p.by, _label(p)),
    "resume": lambda p: msg.Resume(p.by, _label(p)),
    "warm-transfer": lambda p: msg.StartWarmTransfer(p.by, _target(p)),
    "complete-transfer": lambda p: msg.CompleteTransfer(p.by),
    "cancel-transfer": lambda p: msg.CancelTransfer(p.by),
    "cold-transfer": lambda p: msg.ColdTransfer(p.by, _target(p)),
    "add-party": lambda p: msg.AddParty(p.by, _target(p)),
    "remove-party": lambda p: msg.RemoveParty(p.by, p.field("label", required=True, limit=60)),
    "emergency-transfer": _emergency,
    "confirm-handoff": _handoff,
    "end-call": lambda p: msg.EndCall(p.by),
    "wrap-up": lambda p: msg.WrapUp(p.by),
}
