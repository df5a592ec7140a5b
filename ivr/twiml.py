"""Rendering the flows' steps to TwiML with twilio's VoiceResponse.

Every Gather and Dial gets an absolute action URL on the public base, so the flow state
it carries is signed by Twilio on the way back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass, replace
from functools import cache
from pathlib import Path
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from twilio.twiml.voice_response import Dial, VoiceResponse
from twilio.twiml.voice_response import Gather as TwimlGather

from callflows.prompts import PROMPTS, prompt_text
from callflows.steps import (
    Action,
    Gather,
    Hangup,
    HoldMusic,
    JoinConference,
    Language,
    Pause,
    Redirect,
    Say,
    Step,
)

log = logging.getLogger(__name__)

TWIML_CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_TWIML_BYTES = 64_000
VOICES = {  # Twilio TTS voice and language per caller language (Tibetan: recordings)
    Language.MANDARIN: ("Polly.Zhiyu", "cmn-CN"),
    Language.ENGLISH: ("Polly.Joanna", "en-US"),
}
SPEECH_LANGUAGES = {Language.MANDARIN: "cmn-Hans-CN", Language.ENGLISH: "en-US"}
# The citizen joins first and Twilio keeps the first participant's events for the whole
# room; "hold" brings participant-hold and participant-unhold (see ivr.gateway_conference).
CONFERENCE_EVENTS = "start end join leave hold"
HOLD_MUSIC_PATH = "/voice/audio/hold-music.mp3"  # served by ivr.audio
ROOM_PLACEHOLDER = "room-of-this-call"
CACHE_SIZE = 2048


def stage_path(action: Action) -> str:
    query = urlencode(sorted(action.params.items()))
    return f"/voice/step/{action.stage.value}" + (f"?{query}" if query else "")


def wait_path(join: JoinConference) -> str:
    params = {"lang": join.language.value, **join.params}
    return f"/voice/wait/{join.wait.value}?{urlencode(sorted(params.items()))}"


def _cache_key(value: object) -> object:
    """A hashable twin of a step (their argument mappings are dicts).

    On every webhook: plain values return at once, and each step type's field names are
    looked up once.
    """
    kind = type(value)
    if kind in _PLAIN or isinstance(value, str | int):
        return value
    if kind is tuple:
        return tuple([_cache_key(item) for item in value])  # type: ignore[attr-defined]
    if isinstance(value, Mapping):
        return tuple(sorted((key, _cache_key(item)) for key, item in value.items()))
    if is_dataclass(value):
        return (kind, *[_cache_key(getattr(value, name)) for name in _field_names(kind)])
    return value


_PLAIN = frozenset({str, int, bool, float, type(None)})


@cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(each.name for each in fields(kind))


class PromptAudio:
    """Recorded prompts found under ``<recordings_dir>/<language>/<prompt>.mp3|.wav``.

    Scanned once at start-up; a Tibetan prompt with no recording falls back to Mandarin
    text-to-speech, logged once per prompt.
    """

    def __init__(self, recordings_dir: str, public_base_url: str) -> None:
        self._base = public_base_url
        self._files: dict[tuple[str, str], str] = {}
        self._warned: set[str] = set()
        root = Path(recordings_dir) if recordings_dir else None
        if root and root.is_dir():
            for path in sorted(root.glob("*/*")):
                if path.suffix in (".mp3", ".wav") and path.stem in PROMPTS:
                    self._files[(path.parent.name, path.stem)] = path.name

    def url_for(self, prompt: str, language: Language) -> str | None:
        name = self._files.get((language.value, prompt))
        return f"{self._base}/voice/audio/{language.value}/{name}" if name else None

    def note_fallback(self, prompt: str) -> None:
        if prompt not in self._warned:
            self._warned.add(prompt)
            log.warning("no Tibetan recording for prompt %r: speaking Mandarin instead", prompt)


class TwimlRenderer:
    def __init__(self, public_base_url: str, hold_music_url: str, audio: PromptAudio) -> None:
        self._base = public_base_url
        self._hold_music = hold_music_url
        self._audio = audio
        self._cache: dict[tuple, str] = {}

    def url(self, path: str) -> str:
        return self._base + path

    def render(self, steps: Iterable[Step], *, redirect_to: str | None = None) -> str:
        """The TwiML for ``steps``; documents that differ only in the room are built once.

        Building XML with VoiceResponse costs more than the rest of a webhook, and the
        same few documents are served all day: they are cached with the caller's room (their
        CallSid) left as a placeholder.
        """
        steps = tuple(steps)
        rooms = {step.room for step in steps if isinstance(step, JoinConference)}
        room = rooms.pop() if len(rooms) == 1 else None
        if room is not None:
            steps = tuple(
                replace(step, room=ROOM_PLACEHOLDER) if isinstance(step, JoinConference) else step
                for step in steps
            )
        try:
            xml = self._cached(_cache_key(steps), steps, redirect_to)
        except TypeError:  # an unhashable argument: render without the cache
            xml = self._render(steps, redirect_to)
        return xml.replace(ROOM_PLACEHOLDER, escape(room)) if room is not None else xml

    def _cached(self, key: tuple, steps: tuple[Step, ...], redirect_to: str | None) -> str:
        found = self._cache.get((key, redirect_to))
        if found is None:
            found = self._render(steps, redirect_to)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[(key, redirect_to)] = found
        return found

    def _render(self, steps: tuple[Step, ...], redirect_to: str | None) -> str:
        response = VoiceResponse()
        for step in steps:
            self._add(response, step)
        if redirect_to:
            response.redirect(self.url(redirect_to), method="POST")
        xml = response.to_xml()
        if len(xml.encode()) > MAX_TWIML_BYTES:
            raise ValueError("TwiML document over Twilio's 64 kB limit")
        return xml

    def _add(self, parent: VoiceResponse | TwimlGather, step: Step) -> None:
        if isinstance(step, Say):
            self._say(parent, step)
        elif isinstance(step, Pause):
            parent.pause(length=step.seconds)
        elif isinstance(step, HoldMusic):
            parent.play(self._hold_music)
        elif isinstance(step, Gather):
            self._gather(parent, step)
        elif isinstance(step, Redirect):
            parent.redirect(self.url(stage_path(step.action)), method="POST")
        elif isinstance(step, JoinConference):
            self._join(parent, step)
        elif isinstance(step, Hangup):
            parent.hangup()

    def _say(self, parent: VoiceResponse | TwimlGather, say: Say) -> None:
        if not say.args:
            audio_url = self._audio.url_for(say.prompt, say.language)
            if audio_url:
                parent.play(audio_url)
                return
        language = say.language
        if language not in VOICES:
            self._audio.note_fallback(say.prompt)
            language = Language.MANDARIN
        voice, code = VOICES[language]
        parent.say(prompt_text(say.prompt, language.value, say.args), voice=voice, language=code)

    def _gather(self, parent: VoiceResponse | TwimlGather, gather: Gather) -> None:
        action = self.url(stage_path(gather.action))
        options: dict[str, object] = {
            "action": action,
            "method": "POST",
            "input": "dtmf speech" if gather.speech else "dtmf",
            "timeout": gather.timeout_seconds,
            "action_on_empty_result": True,
            "finish_on_key": gather.finish_on_key,
        }
        if gather.num_digits is not None:
            options["num_digits"] = gather.num_digits
        if gather.speech:
            options["language"] = SPEECH_LANGUAGES.get(gather.language, "cmn-Hans-CN")
            options["speech_timeout"] = "auto"
            if gather.hints:
                options["hints"] = ",".join(gather.hints)
        twiml_gather = parent.gather(**options)  # type: ignore[union-attr]
        for prompt in gather.prompts:
            self._add(twiml_gather, prompt)
        # Belt and braces: should Twilio fall through the Gather, the action still runs.
        parent.redirect(action, method="POST")  # type: ignore[union-attr]

    def _join(self, parent: VoiceResponse | TwimlGather, join: JoinConference) -> None:
        dial = Dial(action=self.url(stage_path(join.after)), method="POST")
        dial.conference(
            join.room,
            wait_url=self.url(wait_path(join)),
            wait_method="POST",
            start_conference_on_enter=False,
            end_conference_on_exit=True,
            beep=False,
            participant_label="citizen",
            status_callback=self.url("/voice/conference-status"),
            status_callback_event=CONFERENCE_EVENTS,
            status_callback_method="POST",
        )
        parent.append(dial)  # type: ignore[union-attr]
