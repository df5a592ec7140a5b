"""The front door of PRODUCT.md ("The inbound call"): language, main menu, work-order
progress and the emergency lane, as a pure state machine.

Each stage is a function of the flow state (carried in the signed action URL) and the
caller's input; it returns a ``Turn``: the steps the caller hears and what the edge must
record (language, intent, queue entry, emergency line). Nothing here does I/O; the one
look-up it needs (a work order's progress) is a function passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from callflows import speech
from callflows.prompts import LINE_NAMES, STATE_NAMES
from callflows.steps import (
    Action,
    Gather,
    Hangup,
    HoldMusic,
    JoinConference,
    Language,
    Pause,
    Say,
    Stage,
    Step,
    WaitRoom,
)

LANGUAGE_TRIES = 2  # asked again once, then Mandarin
MENU_TRIES = 3  # at most three tries in all, then a call-taker
PROGRESS_TRIES = 3
OPTIONS_TRIES = 2
EMERGENCY_KEYS = {"1": "fire", "2": "medical", "3": "police", "4": "traffic", "5": "utility"}
DEFAULT_EMERGENCY_LINE = "police"  # 110 coordinates the other services in China
SHORT_NUMBERS = {"fire": "119", "medical": "120", "police": "110", "traffic": "122"}
# Words that ask for a callback at the queue's offer (speech beside the key 1).
CALLBACK_WORDS = ("回电", "回拨", "打回来", "call me back", "callback", "call back")
CALLBACK_OFFER_TIMEOUT_SECONDS = 8
MAX_DIGITS = 40
ORDER_NUMBER = re.compile(r"\d{6,20}")
_KEYS = re.compile(r"[0-9*#]*")


class FrontDoorMode(StrEnum):
    MENU = "menu"
    DIRECT = "direct"


class Intent(StrEnum):
    CONSULTATION = "consultation"
    COMPLAINT = "complaint"
    HELP = "help"
    PROGRESS = "progress"
    OPERATOR = "operator"
    EMERGENCY = "emergency"


MENU_INTENTS = {"1": Intent.CONSULTATION, "2": Intent.COMPLAINT, "3": Intent.HELP}


@dataclass(frozen=True, slots=True)
class CallerInput:
    """What the caller keyed or said, cleaned: garbage keys become ``is_garbage``."""

    digits: str = ""
    speech: str = ""
    is_garbage: bool = False

    @classmethod
    def parse(cls, digits: str | None, speech_result: str | None) -> CallerInput:
        raw = (digits or "").strip()
        clean_speech = speech.normalise(speech_result or "")
        if len(raw) > MAX_DIGITS or not _KEYS.fullmatch(raw):
            return cls(digits="", speech=clean_speech, is_garbage=True)
        return cls(digits=raw, speech=clean_speech)

    @property
    def is_silent(self) -> bool:
        return not self.digits and not self.speech and not self.is_garbage


@dataclass(frozen=True, slots=True)
class FlowState:
    call_sid: str
    language: Language = Language.MANDARIN
    attempt: int = 1
    order_number: str = ""
    line: str = ""

    def action(self, stage: Stage, attempt: int = 1, **extra: str) -> Action:
        params = {"lang": self.language.value, "try": str(attempt), **extra}
        return Action(stage, params)


@dataclass(frozen=True, slots=True)
class ProgressInfo:
    number: str
    state: str
    department: str
    due: str


@dataclass(frozen=True, slots=True)
class Turn:
    steps: tuple[Step, ...]
    path: str
    language: Language | None = None
    intent: Intent | None = None
    queue: bool = False
    emergency_line: str | None = None
    callback_request: bool = False  # the caller asked to be called back (the queue's offer)


ProgressLookup = Callable[[str], ProgressInfo | None]


@dataclass(frozen=True, slots=True)
class FrontDoor:
    mode: FrontDoorMode = FrontDoorMode.MENU

    # -- entry -------------------------------------------------------------
    def start(self, call_sid: str) -> Turn:
        state = FlowState(call_sid)
        return Turn((self._language_gather(state, 1),), path="greeting")

    def handle(
        self, stage: Stage, state: FlowState, given: CallerInput, lookup: ProgressLookup
    ) -> Turn:
        if stage is Stage.LANGUAGE:
            return self._on_language(state, given)
        if stage is Stage.MENU:
            return self._on_menu(state, given)
        if stage is Stage.PROGRESS:
            return self._on_progress_number(state, given, lookup)
        if stage is Stage.PROGRESS_RESULT:
            return self._on_progress_options(state, given, lookup)
        if stage is Stage.EMERGENCY:
            return self._on_emergency(state, given)
        if stage is Stage.EMERGENCY_UNREACHABLE:
            return self.emergency_unreachable(state)
        if stage is Stage.CALLBACK_OFFER:
            return self.on_callback_offer(state, given)
        return self.after_conference(state)

    # -- stages ------------------------------------------------------------
    def _on_language(self, state: FlowState, given: CallerInput) -> Turn:
        line = speech.emergency_line_in(given.speech) if given.speech else None
        cries_for_help = bool(given.speech) and speech.menu_choice_in(given.speech) == "9"
        if given.digits == "9" or line or cries_for_help:
            return self._emergency_entry(state, line, "language")
        chosen = {"1": Language.MANDARIN, "2": Language.TIBETAN, "3": Language.ENGLISH}.get(
            given.digits
        ) or (speech.language_in(given.speech) if given.speech else None)
        if chosen is None and state.attempt < LANGUAGE_TRIES:
            retry = (Say("invalid_input", state.language), self._language_gather(state, 2))
            return Turn(retry, path=f"language:retry{state.attempt}")
        label = f"language:{chosen.value}" if chosen else "language:default"
        chosen_state = replace(state, language=chosen or Language.MANDARIN, attempt=1)
        if self.mode is FrontDoorMode.DIRECT:
            return replace(
                self.queue(chosen_state, Intent.OPERATOR, label), language=chosen_state.language
            )
        return Turn(
            (self._menu_gather(chosen_state, 1),), path=label, language=chosen_state.language
        )

    def _on_menu(self, state: FlowState, given: CallerInput) -> Turn:
        key = given.digits
        line = None
        if not key and given.speech:
            line = speech.emergency_line_in(given.speech)
            key = speech.menu_choice_in(given.speech) or ""
        if line or key == "9":
            return self._emergency_entry(state, line, "menu")
        if key in MENU_INTENTS:
            return self.queue(state, MENU_INTENTS[key], f"menu:{key}")
        if key == "0":
            return self.queue(state, Intent.OPERATOR, "menu:0")
        if key == "4":
            return Turn((self._progress_gather(state, 1),), path="menu:4", intent=Intent.PROGRESS)
        if key == "*":
            return Turn((self._menu_gather(state, state.attempt),), path="menu:repeat")
        if state.attempt >= MENU_TRIES:
            return self.queue(state, Intent.OPERATOR, "menu:gave-up")
        retry = (Say("invalid_input", state.language), self._menu_gather(state, state.attempt + 1))
        return Turn(retry, path=f"menu:retry{state.attempt}")

    def _on_progress_number(
        self, state: FlowState, given: CallerInput, lookup: ProgressLookup
    ) -> Turn:
        if given.digits == "9":
            return self._emergency_entry(state, None, "progress")
        if given.digits == "0":
            return self.queue(state, Intent.PROGRESS, "progress:0")
        if ORDER_NUMBER.fullmatch(given.digits):
            return self._read_progress(state, given.digits, lookup, "progress:number")
        if state.attempt >= PROGRESS_TRIES:
            return self.queue(state, Intent.PROGRESS, "progress:gave-up")
        retry = (
            Say("invalid_input", state.language),
            self._progress_gather(state, state.attempt + 1),
        )
        return Turn(retry, path=f"progress:retry{state.attempt}")

    def _on_progress_options(
        self, state: FlowState, given: CallerInput, lookup: ProgressLookup
    ) -> Turn:
        key = given.digits or _options_choice_in(given.speech)
        if key == "9" or (given.speech and speech.emergency_line_in(given.speech)):
            line = speech.emergency_line_in(given.speech) if given.speech else None
            return self._emergency_entry(state, line, "progress")
        if key == "1" and ORDER_NUMBER.fullmatch(state.order_number):
            return self._read_progress(state, state.order_number, lookup, "progress:again")
        if key == "0":
            return self.queue(state, Intent.PROGRESS, "progress:0")
        if state.attempt >= OPTIONS_TRIES:
            return Turn((Say("goodbye", state.language), Hangup()), path="progress:goodbye")
        options = self._options_gather(state, state.attempt + 1)
        return Turn(
            (Say("invalid_input", state.language), options),
            path=f"progress:options-retry{state.attempt}",
        )

    def _on_emergency(self, state: FlowState, given: CallerInput) -> Turn:
        line = EMERGENCY_KEYS.get(given.digits)
        if line is None and given.speech:
            line = speech.emergency_line_in(given.speech)
        if line:
            return self.emergency(state, line, f"emergency:{line}")
        if given.digits == "0":
            return self.queue(state, Intent.OPERATOR, "emergency:0")
        if given.digits == "*":
            return Turn((self._emergency_gather(state, state.attempt),), path="emergency:repeat")
        if state.attempt >= MENU_TRIES:
            return self.emergency(state, DEFAULT_EMERGENCY_LINE, "emergency:default")
        retry = (
            Say("invalid_input", state.language),
            self._emergency_gather(state, state.attempt + 1),
        )
        return Turn(retry, path=f"emergency:retry{state.attempt}")

    # -- outcomes ----------------------------------------------------------
    def queue(self, state: FlowState, intent: Intent, path: str) -> Turn:
        """Into the caller's own conference room to wait for a call-taker."""
        steps = (Say("to_call_taker", state.language), self._join(state, WaitRoom.QUEUE))
        return Turn(steps, path=path, intent=intent, queue=True)

    def emergency(self, state: FlowState, line: str, path: str) -> Turn:
        """Join the caller at once with the emergency line, in their own room."""
        steps = (
            Say("emergency_connecting", state.language, {"line": _line_name(line, state.language)}),
            self._join(state, WaitRoom.EMERGENCY, line=line),
        )
        return Turn(steps, path=path, intent=Intent.EMERGENCY, emergency_line=line)

    def apology(self, state: FlowState, emergency_line: str | None) -> Turn:
        """What a caller hears when something failed on our side."""
        if emergency_line:
            name = (
                LINE_NAMES[emergency_line].get(state.language.value)
                or LINE_NAMES[emergency_line]["zh"]
            )
            steps = (
                Say("apology_emergency", state.language, {"line": name}),
                self._join(state, WaitRoom.EMERGENCY, line=emergency_line),
            )
            return Turn(
                steps,
                path="apology:emergency",
                emergency_line=emergency_line,
                intent=Intent.EMERGENCY,
            )
        steps = (Say("apology", state.language), self._join(state, WaitRoom.QUEUE))
        return Turn(steps, path="apology:queue", intent=Intent.OPERATOR, queue=True)

    def emergency_unreachable(self, state: FlowState) -> Turn:
        """Every dial of the emergency line failed: say the short number, then a person."""
        line = state.line if state.line in LINE_NAMES else DEFAULT_EMERGENCY_LINE
        args = {"line": _line_name(line, state.language)}
        # The utility lines have no short number to dial: only the call-taker is offered.
        if line in SHORT_NUMBERS:
            prompt, args["short_number"] = "emergency_unreachable", SHORT_NUMBERS[line]
        else:
            prompt = "utility_unreachable"
        steps = (
            Say(prompt, state.language, args),
            self._join(state, WaitRoom.QUEUE),
        )
        return Turn(
            steps, path=f"emergency:unreachable-{line}", intent=Intent.EMERGENCY, queue=True
        )

    def after_conference(self, state: FlowState) -> Turn:
        return Turn((Say("goodbye", state.language), Hangup()), path="ended")

    # -- the queue's callback offer (PRODUCT.md, "The inbound call" point 5) --------------
    def callback_offer(self, state: FlowState) -> Turn:
        """Out of the wait room for a moment (a wait room cannot gather keys): 1 leaves a
        callback request, anything else or silence keeps the caller's place."""
        gather = Gather(
            state.action(Stage.CALLBACK_OFFER),
            (Say("callback_offer", state.language),),
            state.language,
            timeout_seconds=CALLBACK_OFFER_TIMEOUT_SECONDS,
            hints=CALLBACK_WORDS,
        )
        return Turn((gather,), path="callback-offer")

    def on_callback_offer(self, state: FlowState, given: CallerInput) -> Turn:
        said = given.speech.lower()
        if given.digits == "1" or (not given.digits and any(w in said for w in CALLBACK_WORDS)):
            steps = (Say("callback_confirmed", state.language), Hangup())
            return Turn(steps, path="callback-offer:1", callback_request=True)
        # Back into the caller's own room, as the requeue does; the place in line is kept
        # by the edge (the first queue entry counts). The intent is not touched.
        steps = (Say("callback_keep_place", state.language), self._join(state, WaitRoom.QUEUE))
        return Turn(steps, path="callback-offer:stay", queue=True)

    # -- building blocks ---------------------------------------------------
    def _emergency_entry(self, state: FlowState, line: str | None, where: str) -> Turn:
        if line:
            return replace(
                self.emergency(state, line, f"{where}:speech-{line}"), language=state.language
            )
        gather = self._emergency_gather(replace(state, attempt=1), 1)
        return Turn((gather,), path=f"{where}:9", intent=Intent.EMERGENCY, language=state.language)

    def _join(self, state: FlowState, room: WaitRoom, **params: str) -> JoinConference:
        return JoinConference(
            room=state.call_sid,
            wait=room,
            language=state.language,
            after=state.action(Stage.AFTER_CONFERENCE),
            params=params,
        )

    def _language_gather(self, state: FlowState, attempt: int) -> Gather:
        prompts = (
            Say("welcome", Language.MANDARIN),
            Say("choose_tibetan", Language.TIBETAN),
            Say("choose_english", Language.ENGLISH),
        )
        hints = speech.hints_for({"lang": ("普通话", "藏语", "英语")})
        return Gather(
            state.action(Stage.LANGUAGE, attempt),
            prompts,
            Language.MANDARIN,
            hints=hints + speech.hints_for(speech.EMERGENCY_WORDS),
        )

    def _menu_gather(self, state: FlowState, attempt: int) -> Gather:
        return Gather(
            state.action(Stage.MENU, attempt),
            (Say("main_menu", state.language),),
            state.language,
            hints=speech.hints_for(speech.MENU_WORDS) + speech.hints_for(speech.EMERGENCY_WORDS),
        )

    def _progress_gather(self, state: FlowState, attempt: int) -> Gather:
        return Gather(
            state.action(Stage.PROGRESS, attempt),
            (Say("progress_enter_number", state.language),),
            state.language,
            num_digits=None,
            timeout_seconds=10,
            finish_on_key="#",
            speech=False,
        )

    def _options_gather(self, state: FlowState, attempt: int) -> Gather:
        return Gather(
            state.action(Stage.PROGRESS_RESULT, attempt, order=state.order_number),
            (Say("progress_options", state.language),),
            state.language,
            hints=speech.hints_for(speech.OPTION_WORDS) + speech.hints_for(speech.MENU_WORDS),
        )

    def _emergency_gather(self, state: FlowState, attempt: int) -> Gather:
        return Gather(
            state.action(Stage.EMERGENCY, attempt),
            (Say("emergency_menu", state.language),),
            state.language,
            hints=speech.hints_for(speech.EMERGENCY_WORDS),
        )

    def _read_progress(
        self, state: FlowState, number: str, lookup: ProgressLookup, path: str
    ) -> Turn:
        info = lookup(number)
        if info is None:
            steps = (Say("progress_not_found", state.language), self._join(state, WaitRoom.QUEUE))
            return Turn(steps, path=f"{path}:not-found", intent=Intent.PROGRESS, queue=True)
        lang = state.language.value
        names = STATE_NAMES.get(info.state, {})
        state_name = names.get(lang) or names.get("zh") or info.state
        args = {
            "number": " ".join(info.number),
            "state": state_name,
            "department": info.department,
            "due": info.due,
        }
        options = self._options_gather(replace(state, order_number=number), 1)
        return Turn(
            (Say("progress_status", state.language, args), options),
            path=f"{path}:read",
            intent=Intent.PROGRESS,
        )


def _options_choice_in(said: str) -> str:
    """The key the caller's words stand for after hearing an order's status."""
    if not said:
        return ""
    choice = speech.option_choice_in(said) or speech.menu_choice_in(said)
    return choice if choice in ("1", "0", "9") else ""


def _line_name(line: str, language: Language) -> str:
    names = LINE_NAMES[line]
    return names.get(language.value) or names["zh"]


def queue_wait(language: Language, position: int) -> tuple[Step, ...]:
    """What a waiting caller hears each round in the wait room (about 30 s)."""
    if position <= 1:
        return (Say("queue_next", language), HoldMusic())
    return (Say("queue_position", language, {"position": str(position - 1)}), HoldMusic())


def callback_offer_due(
    queued_at: datetime | None,
    now: datetime,
    after_seconds: int,
    *,
    already_offered: bool,
    is_waiting: bool,
) -> bool:
    """Whether a caller in the wait room is offered a callback now: once per call, after
    ``after_seconds`` in line (0: never), and only while nobody is rung or on the call for
    them (``is_waiting``)."""
    if after_seconds <= 0 or already_offered or not is_waiting or queued_at is None:
        return False
    return now - queued_at >= timedelta(seconds=after_seconds)


def emergency_wait(language: Language) -> tuple[Step, ...]:
    return (Say("emergency_hold", language), Pause(5))
