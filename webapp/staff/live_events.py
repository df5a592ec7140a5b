"""``GET /console/events``: the call-taker's screen as server-sent events.

One stream per open console. It polls the database (every ``CONSOLE_POLL_SECONDS``,
0.3 s by default; a handful of primary-key reads, the screen pop once per call) and sends
the snapshot of ``live_snapshot`` as ``event: snapshot`` when it differs from the last one
sent, a comment line as heartbeat every ``CONSOLE_HEARTBEAT_SECONDS`` (15 s) so that proxies
keep the connection, and ends after ``CONSOLE_STREAM_SECONDS`` (240 s); ``retry:`` tells the
browser's EventSource to reconnect two seconds later, when it gets a fresh snapshot at
once. Nothing is held between polls but the last snapshot: no database connection, no
request context, so a stream costs one thread (the ``console`` process runs gunicorn's
threaded workers; the sync ``web`` workers must never serve this).

When the login stops being valid (account closed, password changed) the stream sends
``event: logout`` and ends; the page then goes to the login form.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import CallTaker, CallTakerState
from webapp.auth import SESSIONS_KEY
from webapp.staff.live_dispatch import dispatch_after_commit
from webapp.staff.live_snapshot import ScreenPopCache, Viewer, build_snapshot

log = logging.getLogger(__name__)

DEFAULTS = {
    "CONSOLE_POLL_SECONDS": 0.3,
    "CONSOLE_HEARTBEAT_SECONDS": 15.0,
    "CONSOLE_STREAM_SECONDS": 240.0,
    "CONSOLE_RETRY_MILLISECONDS": 2000,
}


def _setting(app: Flask, name: str) -> float:
    return float(app.config.get(name, DEFAULTS[name]))


def events() -> ResponseReturnValue:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    viewer = Viewer(current_user.id, current_user.session_token, frozenset(current_user.roles))
    stream = _stream(app, viewer, app.extensions[SESSIONS_KEY])
    return Response(
        stream,
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        },
    )


def _stream(app: Flask, viewer: Viewer, sessions: sessionmaker[Session]) -> Iterator[str]:
    poll = _setting(app, "CONSOLE_POLL_SECONDS")
    heartbeat = _setting(app, "CONSOLE_HEARTBEAT_SECONDS")
    lifetime = _setting(app, "CONSOLE_STREAM_SECONDS")
    yield f"retry: {int(_setting(app, 'CONSOLE_RETRY_MILLISECONDS'))}\n\n"
    cache = ScreenPopCache()
    last_sent: str | None = None
    started = last_write = time.monotonic()
    while True:
        try:
            snapshot = _read(app, viewer, sessions, cache)
        except Exception:
            # The database is away or the state unreadable: end this stream; the browser
            # comes back after ``retry`` and gets a full snapshot.
            log.exception("console stream for staff:%s stopped", viewer.staff_id)
            yield "event: problem\ndata: {}\n\n"
            return
        if snapshot is None:
            yield "event: logout\ndata: {}\n\n"
            return
        now = time.monotonic()
        text = json.dumps(snapshot, sort_keys=True, ensure_ascii=False)
        if text != last_sent:
            last_sent = text
            last_write = now
            yield _event("snapshot", {**snapshot, "server_time": utcnow().isoformat()})
        elif now - last_write >= heartbeat:
            last_write = now
            yield ": keep-alive\n\n"
        if now - started >= lifetime:
            return
        time.sleep(poll)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _read(
    app: Flask, viewer: Viewer, sessions: sessionmaker[Session], cache: ScreenPopCache
) -> dict[str, Any] | None:
    with sessions() as session:
        if _end_wrap_up_if_over(viewer, session=session):
            with app.app_context():
                dispatch_after_commit(viewer.staff_id)
        return build_snapshot(viewer, session=session, cache=cache)


def _end_wrap_up_if_over(viewer: Viewer, *, session: Session) -> bool:
    """The call-taker's wrap-up time is up: they are available again (and the next caller
    is offered to them). Row-locked, so two open consoles end it once."""
    now = utcnow()
    due = session.scalar(
        select(CallTaker.staff_id).where(
            CallTaker.staff_id == viewer.staff_id,
            CallTaker.state == CallTakerState.WRAP_UP,
            CallTaker.wrap_up_until <= now,
        )
    )
    if due is None:
        return False
    profile = session.scalars(
        select(CallTaker)
        .where(CallTaker.staff_id == viewer.staff_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()
    if profile is None or not staff_store.end_wrap_up_if_over(profile, session=session, now=now):
        session.rollback()
        return False
    session.commit()
    return True
