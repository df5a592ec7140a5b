"""What a simulated call leaves behind (transcript, requests) and its working state.

Used by :mod:`ivr.simulator`; ``CallTranscript`` and ``RequestRecord`` are re-exported there.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from ivr.simulator_twiml import CallerInput

CALLER = "👤 "  # heard lines starting with this describe the caller, not the app


@dataclass
class RequestRecord:
    """One request the simulator made, and the app's answer."""

    path: str
    form: list[tuple[str, str]]
    status: int  # 0 when the request got no HTTP answer
    body: str
    kind: str = "voice"  # voice, gather, redirect, dial-action, wait, conference-event, status
    headers: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.form if key == name), None)


@dataclass
class CallTranscript:
    """Everything one simulated call heard, sent and got wrong."""

    call_sid: str
    heard: list[str] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ended_by: str = ""  # hangup, reject, end, caller, conference, enqueue, error
    call_status: str = "completed"
    duration: int = 0  # simulated seconds

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        return "\n".join(self.heard)

    def said(self, substring: str) -> bool:
        """Whether the app (not the caller) made the caller hear ``substring``."""
        return any(substring in line for line in self.heard if not line.startswith(CALLER))


class Doc(NamedTuple):
    """A TwiML document and the path it was fetched from."""

    root: ET.Element
    path: str


class Flow(Enum):
    """What to do after a verb when it does not lead to a new document."""

    CONTINUE = "continue"
    END = "end"


@dataclass
class CallState:
    """The simulator's working state for one call."""

    transcript: CallTranscript
    base: list[tuple[str, str]]
    inputs: deque[CallerInput]
    interactive: bool
    on_heard: Callable[[str], None] | None
    call_status: str = "ringing"
    steps: int = 0
    seconds: int = 0
    answered: bool = False
    status_sequence: int = 0

    def hear(self, line: str, seconds: int = 0) -> None:
        self.transcript.heard.append(line)
        self.seconds += seconds
        if self.on_heard is not None:
            self.on_heard(line)

    def params(self, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        return [*self.base, ("CallStatus", self.call_status), *extra]

    def end(self, ended_by: str) -> Flow:
        self.transcript.ended_by = ended_by
        return Flow.END

    def fail(self, message: str) -> Flow:
        self.transcript.errors.append(message)
        self.hear(f"✖ application error: {message}")
        return self.end("error")
