"""One database session per webhook request, closed when the request ends."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from ivr.config import voice_config


def request_session() -> Session:
    session: Session | None = g.get("hotline_session")
    if session is None:
        session = g.hotline_session = voice_config().sessions()
    return session


def close_request_session(_error: BaseException | None = None) -> None:
    session: Session | None = g.pop("hotline_session", None)
    if session is not None:
        session.close()  # rolls back anything not committed


def init_request_sessions(app: Flask) -> None:
    app.teardown_appcontext(close_request_session)
