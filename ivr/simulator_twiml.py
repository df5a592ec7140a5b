"""TwiML reading for the call simulator.

Checks a webhook answer the way Twilio does (2xx, XML content type, ``<Response>`` root),
turns ``<Say>``/``<Play>``/``<Pause>`` into readable "heard" lines, and interprets what the
simulated caller types: keys such as ``"12345#"``, ``""`` for silence or ``"speech:…"``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

DTMF_KEYS = frozenset("0123456789*#")
SPEECH_PREFIX = "speech:"
SPEECH_CONFIDENCE = "0.9"
TWIML_CONTENT_TYPES = frozenset({"text/xml", "application/xml"})
PROMPT_VERBS = frozenset({"Say", "Play", "Pause"})
CHARS_PER_SECOND = 4  # a TTS voice reads about four Chinese characters a second


class TwimlError(Exception):
    """The app's answer is not TwiML Twilio would execute."""


def parse_response(status: int, content_type: str, body: str) -> ET.Element:
    """The ``<Response>`` element of a webhook answer, or TwimlError saying what is wrong."""
    if not 200 <= status < 300:
        hint = " (Twilio does not follow HTTP redirects here)" if 300 <= status < 400 else ""
        raise TwimlError(f"HTTP {status}{hint}")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime not in TWIML_CONTENT_TYPES:
        raise TwimlError(f"content type {content_type or '(none)'!r} is not text/xml")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        raise TwimlError(f"body is not XML: {error}") from error
    if root.tag != "Response":
        raise TwimlError(f"root element is <{root.tag}>, not <Response>")
    return root


def text_of(element: ET.Element) -> str:
    """The element's text with SSML children flattened and whitespace collapsed."""
    return " ".join("".join(element.itertext()).split())


def int_attr(element: ET.Element, name: str, default: int) -> int:
    try:
        return int(element.get(name, default))
    except ValueError:
        return default


def _loop_suffix(element: ET.Element) -> tuple[str, int]:
    loop = int_attr(element, "loop", 1)
    if loop == 0:
        return " (repeats)", 1
    return (f" ×{loop}", loop) if loop > 1 else ("", 1)


def say_line(element: ET.Element) -> tuple[str, int]:
    """``🔊 (cmn-CN, Polly.Zhiyu) 欢迎…`` and the seconds it takes to say."""
    text = text_of(element)
    labels = [v for v in (element.get("language"), element.get("voice")) if v]
    label = f"({', '.join(labels)}) " if labels else ""
    suffix, loops = _loop_suffix(element)
    seconds = max(1, math.ceil(len(text) / CHARS_PER_SECOND)) * loops
    return f"🔊 {label}{text}{suffix}", seconds


def play_line(element: ET.Element) -> tuple[str, int]:
    digits = element.get("digits")
    if digits:
        return f"♪ plays DTMF tones {digits}", 1
    suffix, loops = _loop_suffix(element)
    return f"♪ {text_of(element)}{suffix}", loops


def pause_line(element: ET.Element) -> tuple[str, int]:
    seconds = max(0, int_attr(element, "length", 1))
    return f"… (pause {seconds}s)", seconds


def prompt_line(element: ET.Element) -> tuple[str, int]:
    """The heard line and duration of a ``<Say>``, ``<Play>`` or ``<Pause>``."""
    if element.tag == "Say":
        return say_line(element)
    if element.tag == "Play":
        return play_line(element)
    return pause_line(element)


@dataclass(frozen=True, slots=True)
class CallerInput:
    """One turn of the simulated caller: keys pressed, words said, or silence."""

    keys: str = ""
    speech: str = ""

    @property
    def silent(self) -> bool:
        return not self.keys and not self.speech

    def describe(self) -> str:
        if self.speech:
            return f"says “{self.speech}”"
        return f"presses {self.keys}" if self.keys else "stays silent"


def parse_input(raw: str) -> CallerInput:
    """``"1"``, ``"12345#"``, ``""`` (silence) or ``"speech:着火了"``; ValueError otherwise."""
    if raw.startswith(SPEECH_PREFIX):
        return CallerInput(speech=raw[len(SPEECH_PREFIX) :].strip())
    keys = "".join(raw.split())
    bad = sorted({key for key in keys if key not in DTMF_KEYS})
    if bad:
        raise ValueError(
            f"input {raw!r}: {''.join(bad)!r} is not a phone key "
            f"(use 0-9, * and #, an empty string for silence, or {SPEECH_PREFIX}text)"
        )
    return CallerInput(keys=keys)


@dataclass(frozen=True, slots=True)
class GatherSpec:
    """The ``<Gather>`` attributes the simulator honours, with Twilio's defaults."""

    action: str | None
    method: str
    num_digits: int | None
    finish_on_key: str
    timeout: int
    accepts_dtmf: bool
    accepts_speech: bool
    action_on_empty_result: bool

    @classmethod
    def from_element(cls, element: ET.Element) -> GatherSpec:
        modes = element.get("input", "dtmf").split()
        num_digits = int_attr(element, "numDigits", 0)
        return cls(
            action=element.get("action") or None,
            method=element.get("method", "POST").upper(),
            num_digits=num_digits if num_digits > 0 else None,
            finish_on_key=element.get("finishOnKey", "#"),
            timeout=max(1, int_attr(element, "timeout", 5)),
            accepts_dtmf="dtmf" in modes,
            accepts_speech="speech" in modes,
            action_on_empty_result=element.get("actionOnEmptyResult", "false").lower() == "true",
        )


def collect_digits(keys: str, num_digits: int | None, finish_on_key: str) -> tuple[str, str]:
    """``(Digits, FinishedOnKey)``: stop at finishOnKey (not sent) or after numDigits keys."""
    digits = ""
    for key in keys:
        if finish_on_key and key == finish_on_key:
            return digits, key
        digits += key
        if num_digits is not None and len(digits) >= num_digits:
            break
    return digits, ""


def gather_result(spec: GatherSpec, said: CallerInput) -> list[tuple[str, str]] | None:
    """The parameters Twilio adds to the action request, or None for an empty result.

    Input the Gather does not listen for (keys to ``input="speech"``, words to
    ``input="dtmf"``) counts as silence, as on a real call.
    """
    if said.speech and spec.accepts_speech:
        return [("SpeechResult", said.speech), ("Confidence", SPEECH_CONFIDENCE)]
    if said.keys and spec.accepts_dtmf:
        digits, finished_on_key = collect_digits(said.keys, spec.num_digits, spec.finish_on_key)
        if digits:
            return [("Digits", digits), ("FinishedOnKey", finished_on_key)]
    return None


_CONFERENCE_EVENTS = {
    "start": "conference-start",
    "end": "conference-end",
    "join": "participant-join",
    "leave": "participant-leave",
}


@dataclass(slots=True)
class ConferenceRoom:
    """A ``<Dial><Conference>`` as Twilio runs it for a caller who is alone in the room.

    The conference starts when the caller joins only if ``startConferenceOnEnter`` is true
    (the default); Twilio plays the ``waitUrl`` only while it has not started.
    Without ``statusCallbackEvent`` the simulator reports ``join`` and ``leave``.
    """

    name: str
    sid: str
    element: ET.Element
    sequence: int = 0

    @property
    def starts_on_enter(self) -> bool:
        return self.element.get("startConferenceOnEnter", "true").lower() != "false"

    def wants(self, event: str) -> bool:
        if not self.element.get("statusCallback"):
            return False
        declared = self.element.get("statusCallbackEvent", "join leave")
        return event in declared.replace(",", " ").split()

    def event_form(
        self, event: str, *, account_sid: str, call_sid: str, timestamp: str
    ) -> list[tuple[str, str]]:
        """Twilio's conference status callback parameters for ``start|end|join|leave``."""
        self.sequence += 1
        form = [
            ("AccountSid", account_sid),
            ("ConferenceSid", self.sid),
            ("FriendlyName", self.name),
            ("StatusCallbackEvent", _CONFERENCE_EVENTS[event]),
            ("SequenceNumber", str(self.sequence)),
            ("Timestamp", timestamp),
        ]
        if event in ("join", "leave"):
            form += self._participant(call_sid)
        if event == "leave":
            form += [("ParticipantCallStatus", "completed")]
            form += [("ReasonParticipantLeft", "participant_hung_up")]
        if event == "end":
            ends = self.element.get("endConferenceOnExit", "false").lower() == "true"
            reason = "participant-with-end-conference-on-exit-left" if ends else None
            form += [("CallSidEndingConference", call_sid)]
            form += [("ReasonConferenceEnded", reason or "last-participant-left")]
        return form

    def _participant(self, call_sid: str) -> list[tuple[str, str]]:
        attrs = self.element.attrib
        form = [
            ("CallSid", call_sid),
            ("Muted", attrs.get("muted", "false")),
            ("Hold", "false"),
            ("EndConferenceOnExit", attrs.get("endConferenceOnExit", "false")),
            ("StartConferenceOnEnter", attrs.get("startConferenceOnEnter", "true")),
            ("Coaching", (attrs.get("coach") and "true") or "false"),
        ]
        if attrs.get("participantLabel"):
            form.append(("ParticipantLabel", attrs["participantLabel"]))
        return form
