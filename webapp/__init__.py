"""The composition root: builds the Flask app from settings and wires the parts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import ExitStack
from datetime import datetime

from flask import Blueprint, Flask, Response, g, jsonify, request
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from callflows.front_door import FrontDoor
from ivr import init_voice
from ivr.config import VoiceConfig
from ivr.gateway import CallGateway, ConsoleGateway, TwilioGateway
from tickets.db import make_engine, writes_first
from webapp.api import register_api
from webapp.auth import init_auth
from webapp.directory import register_directory_pages
from webapp.dispatching import SERVICE_KEY, RecommenderService
from webapp.orders import register_order_pages
from webapp.portal import register_portal_pages
from webapp.settings import Settings, load_settings
from webapp.sms import SMS_SENDER_KEY, build_sms_sender
from webapp.staff import register_staff_pages
from webapp.surveys import SURVEY_CALLER_KEY, build_survey_caller

log = logging.getLogger(__name__)


def build_gateway(settings: Settings) -> CallGateway:
    """Twilio's REST API when configured, else the console gateway (development)."""
    if settings.gateway == "twilio":
        return TwilioGateway.from_settings(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token or None,
            api_key=settings.twilio_api_key or None,
            api_secret=settings.twilio_api_secret or None,
            api_base_url=settings.twilio_api_base_url,
            timeout_seconds=settings.twilio_timeout_seconds,
        )
    return ConsoleGateway()


def schedule_dispatch(at: datetime) -> None:
    """A routing decision by the worker at ``at`` (a wrap-up ends, a language wait is over;
    tests go without: they call the job or the sweep)."""
    from webapp.worker import dispatch_queue  # the worker module builds an app: import late

    dispatch_queue.schedule(eta=at)


def people_first(app: Flask, webhooks: Iterable[Blueprint]) -> None:
    """A person's request (staff pages, the console, the API) writes before the webhooks
    and background jobs waiting for the database (``tickets.db.writes_first``)."""
    twilio = {blueprint.name for blueprint in webhooks}

    @app.before_request
    def _first() -> None:
        if request.blueprint not in twilio:
            stack = ExitStack()
            stack.enter_context(writes_first())
            g.writes_first = stack

    @app.teardown_request
    def _done(_error: BaseException | None = None) -> None:
        stack: ExitStack | None = g.pop("writes_first", None)
        if stack is not None:
            stack.close()


def create_app(settings: Settings | None = None, *, gateway: CallGateway | None = None) -> Flask:
    settings = settings or load_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=256 * 1024,
        HOTLINE_SETTINGS=settings,
    )
    app.url_map.strict_slashes = False  # a trailing slash must not turn into a redirect
    if settings.skip_signature_check:
        log.warning(
            "!!! TWILIO_SKIP_SIGNATURE is on: webhooks are NOT authenticated. "
            "Never run like this where the internet can reach the app. !!!"
        )
    engine = make_engine(settings.database_url)
    app.extensions["hotline.engine"] = engine
    app.extensions[SMS_SENDER_KEY] = build_sms_sender(settings)  # tests may replace it
    app.extensions[SURVEY_CALLER_KEY] = build_survey_caller(settings)  # tests may replace it
    sessions = sessionmaker(engine, expire_on_commit=False)
    twilio_blueprints = init_voice(
        app,
        VoiceConfig(
            auth_token=settings.webhook_auth_token,
            public_base_url=settings.public_base_url,
            hotline_number=settings.hotline_number,
            emergency_numbers=settings.emergency_numbers,
            sessions=sessions,
            gateway=gateway or build_gateway(settings),
            front_door=FrontDoor(settings.front_door_mode),
            zone=settings.zone,
            hold_music_url=settings.hold_music_url,
            recordings_dir=settings.recordings_dir,
            journal_dir=settings.journal_dir,
            drain_in_background=settings.journal_drain == "background",
            skip_signature_check=settings.skip_signature_check,
            ring_timeout_seconds=settings.ring_timeout_seconds,
            language_wait_seconds=settings.language_wait_seconds,
            wrap_up_seconds=settings.wrap_up_seconds,
            callback_offer_after_seconds=settings.callback_offer_after_seconds,
            schedule_dispatch=None if settings.environment == "test" else schedule_dispatch,
        ),
    )
    init_auth(app, settings, sessions, csrf_exempt=twilio_blueprints)
    people_first(app, twilio_blueprints)
    app.extensions[SERVICE_KEY] = RecommenderService(sessions)
    register_staff_pages(app)
    register_directory_pages(app)
    register_order_pages(app)
    register_portal_pages(app)
    register_api(app)

    if settings.environment != "test":
        # Load the job queue now rather than in the first request that schedules a job:
        # Huey and the worker's modules cost each process about a second of CPU, which
        # would land in the middle of the first burst of calls.
        import webapp.worker  # noqa: F401

    @app.get("/healthz")
    def healthz() -> Response:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return jsonify(status="ok")

    return app
