"""What the Twilio edge needs from the composition root, passed in once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from callflows.conference import ConferenceFlow, ConferencePolicy
from callflows.front_door import FrontDoor
from ivr.gateway import CallGateway
from ivr.twiml import HOLD_MUSIC_PATH, PromptAudio, TwimlRenderer
from routing.assignment import RoutingPolicy
from tickets.journal import Journal
from tickets.webhooks import StoreContext

EXTENSION_KEY = "hotline.ivr"


@dataclass(frozen=True)
class VoiceConfig:
    auth_token: str
    public_base_url: str
    hotline_number: str
    emergency_numbers: Mapping[str, str]
    sessions: sessionmaker[Session]
    gateway: CallGateway
    front_door: FrontDoor = field(default_factory=FrontDoor)
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    hold_music_url: str = ""
    recordings_dir: str = ""
    skip_signature_check: bool = False
    default_region: str = "CN"
    emergency_dial_attempts: int = 3
    journal_dir: str = "instance/journal"
    drain_in_background: bool = False  # a drainer stores the journal (JOURNAL_DRAIN)
    ring_timeout_seconds: int = 20  # a call-taker's phone rings this long (RING_TIMEOUT_SECONDS)
    language_wait_seconds: int = 60  # a caller waits this long for a busy speaker
    wrap_up_seconds: int = 30
    # A waiting caller is offered a callback once after this long in line (0: never).
    callback_offer_after_seconds: int = 120
    # Runs a routing decision at the given time (the worker's Huey task): when a wrap-up
    # ends, when a caller's wait for a speaker of their language is over. None: the
    # worker's minute sweep does it (tests, development without a worker).
    schedule_dispatch: Callable[[datetime], None] | None = None

    def url(self, path: str) -> str:
        """The absolute URL Twilio must call for ``path`` (and signs)."""
        return self.public_base_url + path

    @cached_property
    def renderer(self) -> TwimlRenderer:
        audio = PromptAudio(self.recordings_dir, self.public_base_url)
        hold_music = self.hold_music_url or self.url(HOLD_MUSIC_PATH)
        return TwimlRenderer(self.public_base_url, hold_music, audio)

    @property
    def hold_music(self) -> str:
        return self.hold_music_url or self.url(HOLD_MUSIC_PATH)

    @cached_property
    def conference_flow(self) -> ConferenceFlow:
        return ConferenceFlow(ConferencePolicy(taker_ring_seconds=self.ring_timeout_seconds))

    @cached_property
    def routing_policy(self) -> RoutingPolicy:
        return RoutingPolicy(language_wait=timedelta(seconds=self.language_wait_seconds))

    @cached_property
    def validator(self) -> RequestValidator:
        return RequestValidator(self.auth_token)

    @cached_property
    def store_context(self) -> StoreContext:
        return StoreContext(self.zone, self.emergency_numbers, self.default_region)

    @cached_property
    def journal(self) -> Journal:
        return Journal(self.journal_dir)

    def install(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self


def voice_config() -> VoiceConfig:
    config: VoiceConfig = current_app.extensions[EXTENSION_KEY]
    return config
