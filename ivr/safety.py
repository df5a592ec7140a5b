"""The safety net: whatever fails, the caller hears an apology and gets help.

A failing voice route answers the apology TwiML (in the caller's language, then a
call-taker, or the emergency line when the caller was in the emergency lane), and the
error is logged. If even rendering fails, a fixed document is served.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from flask import Response, request
from werkzeug.exceptions import HTTPException

from callflows.front_door import DEFAULT_EMERGENCY_LINE, EMERGENCY_KEYS, FlowState, emergency_wait
from callflows.steps import Language, Step
from ivr import emergency
from ivr.config import voice_config
from ivr.twiml import TWIML_CONTENT_TYPE

log = logging.getLogger(__name__)
View = TypeVar("View", bound=Callable[..., Response])

# Served only if the renderer itself fails: Mandarin apology, then hold for help.
LAST_RESORT_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Say language="cmn-CN" voice="Polly.Zhiyu">对不起，系统暂时出现故障，请稍后再拨。'
    "如遇紧急情况，请直接拨打110、119或120。</Say></Response>"
)


def twiml_response(steps: Iterable[Step], *, redirect_to: str | None = None) -> Response:
    xml = voice_config().renderer.render(steps, redirect_to=redirect_to)
    return Response(xml, status=200, content_type=TWIML_CONTENT_TYPE)


def caller_language() -> Language:
    try:
        return Language(request.args.get("lang", "zh"))
    except ValueError:
        return Language.MANDARIN


def emergency_line_in_request() -> str | None:
    """The emergency line the caller was being put through to, if any."""
    line = request.args.get("line")
    if line in EMERGENCY_KEYS.values():
        return line
    if request.path.endswith("/step/emergency"):
        return EMERGENCY_KEYS.get(request.values.get("Digits", ""), DEFAULT_EMERGENCY_LINE)
    error_url = request.values.get("ErrorUrl", "")
    if "/step/emergency" in error_url or "/wait/emergency" in error_url:
        return DEFAULT_EMERGENCY_LINE
    return None


def apology_response(*, dial: bool = True) -> Response:
    """Apologise in the caller's language, then a call-taker or the emergency line.

    ``dial``: ring the emergency line here (the error path, where nothing may be stored);
    the fallback route stores its webhook and rings the line itself.
    """
    config = voice_config()
    state = FlowState(request.values.get("CallSid", "")[:34], caller_language())
    line = emergency_line_in_request()
    turn = config.front_door.apology(state, line)
    if dial and line and state.call_sid:
        emergency.dial_without_records(state, line)
    return twiml_response(turn.steps)


def wait_fallback() -> Response:
    """Wait-room TwiML may only Say/Play/Pause/Redirect: keep the caller waiting."""
    steps = emergency_wait(caller_language())
    return twiml_response(steps, redirect_to=request.full_path)


def _answer_safely(fallback: Callable[[], Response]) -> Response:
    try:
        return fallback()
    except Exception:
        log.exception("the apology itself failed; serving the fixed document")
        return Response(LAST_RESORT_TWIML, status=200, content_type=TWIML_CONTENT_TYPE)


@overload
def safe_voice_route(view: View) -> View: ...
@overload
def safe_voice_route(*, fallback: Callable[[], Response]) -> Callable[[View], View]: ...


def safe_voice_route(view: Any = None, *, fallback: Callable[[], Response] | None = None) -> Any:
    """Wrap a voice view so that no exception reaches Twilio as an HTML 500."""

    def decorate(func: View) -> View:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                return func(*args, **kwargs)
            except HTTPException as error:
                if error.code and error.code < 500:
                    raise
                log.exception("voice route %s failed", request.path)
            except Exception:
                log.exception("voice route %s failed", request.path)
            return _answer_safely(fallback or apology_response)

        return wrapper  # type: ignore[return-value]

    return decorate(view) if view is not None else decorate
