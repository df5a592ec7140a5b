"""Serving the recorded prompts (Tibetan, and any recording that replaces TTS)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, send_from_directory

from callflows.steps import Language
from ivr.config import voice_config
from ivr.twiml import HOLD_MUSIC_PATH

audio_bp = Blueprint("voice_audio", __name__)
STATIC = Path(__file__).resolve().parent / "static"
AUDIO_TYPES = {".mp3": "audio/mpeg", ".wav": "audio/wav"}


@audio_bp.get("/voice/audio/<language>/<name>")
def recording(language: str, name: str) -> Response:
    if language not in {lang.value for lang in Language} or Path(name).suffix not in AUDIO_TYPES:
        abort(404)
    folder = Path(voice_config().recordings_dir) / language
    return send_from_directory(folder, name, mimetype=AUDIO_TYPES[Path(name).suffix], max_age=3600)


@audio_bp.get(HOLD_MUSIC_PATH)
def hold_music() -> Response:
    """The default hold music: 30 s, so the wait room announces the position that often."""
    return send_from_directory(STATIC, "hold-music.mp3", mimetype="audio/mpeg", max_age=86400)
