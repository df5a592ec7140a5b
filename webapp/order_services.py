"""What every page that moves a work order needs from the app: the configured working-day
clocks, the acting person as a ``tickets.order_flow.Actor``, and one way to turn the
lifecycle's refusals into answers (409 with the machine's message, 404 for an order that
is not the department's, 409 when someone else changed the order first)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from flask import abort, current_app
from flask_login import current_user
from sqlalchemy.orm.exc import StaleDataError

from tickets.models import Role
from tickets.order_clocks import ConfiguredClocks
from tickets.order_flow import Actor, IllegalMove, NotYours
from webapp.auth import db_session
from webapp.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
CLOCKS_KEY = "hotline.order_clocks"


def order_clocks() -> ConfiguredClocks:
    """The clocks configured for this app (the calendar and limit files are read once)."""
    clocks = current_app.extensions.get(CLOCKS_KEY)
    if clocks is None:
        settings: Settings = current_app.config["HOTLINE_SETTINGS"]
        clocks = current_app.extensions[CLOCKS_KEY] = ConfiguredClocks.from_files(
            zone=settings.zone,
            limits_file=settings.clock_limits_file,
            overrides_file=settings.calendar_overrides_file,
            office_hours=settings.office_hours,
        )
    return clocks


def actor_as(role: Role) -> Actor:
    """The logged-in person acting in ``role`` (which they must hold: the route checks)."""
    return Actor(current_user.actor, role.value, current_user.department_code)


def first_role(*roles: Role) -> Role:
    """The first of ``roles`` the logged-in person holds (routes that several roles use
    record the one the person acted in)."""
    for role in roles:
        if current_user.has_role(role):
            return role
    abort(403)


class Refused(Exception):
    """A move that was refused, with the HTTP status and the message for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def attempt(move: Callable[[], T]) -> T:
    """Run a lifecycle move; ``Refused`` (409/404) instead of the store's exceptions.

    The caller rolls back on ``Refused`` and commits otherwise.
    """
    try:
        return move()
    except NotYours:
        raise Refused(404, "No such work order.") from None
    except IllegalMove as refusal:
        raise Refused(409, _sentence(str(refusal))) from None
    except StaleDataError:
        log.info("a work order changed under %s; nothing was written", current_user.actor)
        raise Refused(
            409, "Someone else changed this work order just now. Reload it and try again."
        ) from None


def commit_move(move: Callable[[], T]) -> T:
    """``attempt`` the move, then commit it; a refused move is rolled back (nothing is
    written) and its ``Refused`` raised for the page to show."""
    session = db_session()
    try:
        result = attempt(move)
    except Refused:
        session.rollback()
        raise
    session.commit()
    return result


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."
