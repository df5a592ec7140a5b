"""What a caller hears and does next, as plain data.

The flows return these; ``ivr`` renders them to TwiML. An ``Action`` names the next
stage and carries the flow state in its query parameters, which Twilio signs, so a
webhook needs no stored session to know where the caller is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Language(StrEnum):
    MANDARIN = "zh"
    TIBETAN = "bo"
    ENGLISH = "en"


class Stage(StrEnum):
    """The gather stages of the calls' conversations; each is a webhook path."""

    LANGUAGE = "language"
    MENU = "menu"
    PROGRESS = "progress"
    PROGRESS_RESULT = "progress-result"
    EMERGENCY = "emergency"
    EMERGENCY_UNREACHABLE = "emergency-unreachable"
    AFTER_CONFERENCE = "after-conference"
    CALLBACK_OFFER = "callback-offer"  # the queue's offer of a callback (issue 3)
    SURVEY = "survey"  # a satisfaction survey's answer (callflows.survey)


class WaitRoom(StrEnum):
    QUEUE = "queue"
    EMERGENCY = "emergency"


@dataclass(frozen=True, slots=True)
class Action:
    stage: Stage
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Say:
    prompt: str
    language: Language
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: int


@dataclass(frozen=True, slots=True)
class HoldMusic:
    """Music while waiting; the renderer picks the configured clip."""


@dataclass(frozen=True, slots=True)
class Gather:
    action: Action
    prompts: tuple[Say | Pause, ...]
    language: Language
    num_digits: int | None = 1
    timeout_seconds: int = 6
    finish_on_key: str = ""
    speech: bool = True
    hints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Redirect:
    action: Action


@dataclass(frozen=True, slots=True)
class JoinConference:
    """Put the caller in their own conference room and wait there."""

    room: str
    wait: WaitRoom
    language: Language
    after: Action
    params: Mapping[str, str] = field(default_factory=dict)  # carried to the wait URL


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


Step = Say | Pause | HoldMusic | Gather | Redirect | JoinConference | Hangup
