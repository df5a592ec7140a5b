"""SMS from the app: the sender the settings choose, the sweep the worker runs
(``webapp.worker.deliver_sms``, every minute), and the hook that asks the worker for one
right after a commit that put a text in the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy.orm import sessionmaker

from ivr.sms import ConsoleSmsSender, TwilioSmsSender
from tickets.db import utcnow
from tickets.sms_delivery import SweepCounts, sweep
from tickets.sms_sender import SmsSender
from webapp.settings import Settings

log = logging.getLogger(__name__)
SMS_SENDER_KEY = "hotline.sms_sender"


def build_sms_sender(settings: Settings) -> SmsSender:
    """Twilio's Messages API when configured (through the messaging service when one is
    set, else from the sender number), else the console sender (development)."""
    if settings.sms_sender == "twilio":
        service = settings.sms_messaging_service_sid or None
        return TwilioSmsSender.from_settings(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token or None,
            api_key=settings.twilio_api_key or None,
            api_secret=settings.twilio_api_secret or None,
            api_base_url=settings.twilio_api_base_url,
            timeout_seconds=settings.twilio_timeout_seconds,
            from_number=None if service else settings.sms_from_number,
            messaging_service_sid=service,
            public_base_url=settings.public_base_url,
        )
    return ConsoleSmsSender()


# A callable that asks the worker for a sweep now; tests set it (default: the Huey task,
# except when HOTLINE_ENV=test).
DELIVER_SOON_KEY = "hotline.deliver_sms_soon"


def run_sweep(app: Flask, *, now_fn: Callable[[], datetime] = utcnow) -> SweepCounts:
    """One sweep with the app's database, SMS sender and settings."""
    settings: Settings = app.config["HOTLINE_SETTINGS"]
    sender: SmsSender = app.extensions[SMS_SENDER_KEY]
    sessions = sessionmaker(app.extensions["hotline.engine"], expire_on_commit=False)
    return sweep(
        sessions=sessions,
        sender=sender,
        now_fn=now_fn,
        floor_manager_number=settings.floor_manager_sms_number or None,
        zone=settings.zone,
    )


def deliver_sms_soon() -> None:
    """Call right after committing a transaction that scheduled an SMS (a work order was
    opened: the citizen's text with its number): the worker sends it within seconds
    instead of at its next minute. Never raises: the minute sweep is the safety net."""
    kick: Callable[[], object] | None = current_app.extensions.get(DELIVER_SOON_KEY)
    if kick is None:
        settings: Settings = current_app.config["HOTLINE_SETTINGS"]
        if settings.environment == "test":
            return
        kick = _enqueue_sweep
    try:
        kick()
    except Exception:
        log.exception("could not ask the worker to send SMS now; its minute sweep will")


def _enqueue_sweep() -> None:
    from webapp.worker import deliver_sms_now  # the worker module builds Huey: import late

    deliver_sms_now()
