"""The Twilio edge: signature checks, TwiML rendering, the REST gateway, the simulator.

The only package that imports ``twilio``. See README.md beside this file.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from ivr.audio import audio_bp
from ivr.config import VoiceConfig
from ivr.request_session import init_request_sessions
from ivr.sms_inbound import bp as sms_inbound_bp
from ivr.sms_status import bp as sms_status_bp
from ivr.survey_voice import bp as survey_voice_bp
from ivr.voice import bp as voice_bp


def init_voice(app: Flask, config: VoiceConfig) -> tuple[Blueprint, ...]:
    """Mount the voice webhooks and the prompt recordings on ``app``; the blueprints
    mounted (Twilio's door: signed requests that carry no cookie and no CSRF token)."""
    config.install(app)
    init_request_sessions(app)
    app.register_blueprint(voice_bp)
    app.register_blueprint(audio_bp)
    app.register_blueprint(sms_status_bp)
    app.register_blueprint(sms_inbound_bp)
    app.register_blueprint(survey_voice_bp)
    return voice_bp, audio_bp, sms_status_bp, sms_inbound_bp, survey_voice_bp
