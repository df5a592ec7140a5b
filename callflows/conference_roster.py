"""The state of one citizen's conference: who is in it, in what state, and the phase.

Every citizen call lives in its own conference, named after the citizen's CallSid. Each
party is known by its participant label (Twilio's ``participantLabel``, which the
Participants REST API accepts in place of a CallSid). Labels are never reused within a call,
so a late callback about an earlier leg can never touch a later one.

The state is immutable and turns into a JSON-able dict and back: the edge keeps it in a
database row, keyed by the citizen's CallSid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

CITIZEN = "citizen"  # the citizen's label, as ivr/twiml.py sets it in <Conference>
STATE_VERSION = 1
_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,40}")  # safe in a label and in a REST URL path


class Role(StrEnum):
    CITIZEN = "citizen"
    CALL_TAKER = "call_taker"
    CONSULTEE = "consultee"  # the target of a transfer, warm or cold
    PARTY = "party"  # a third, fourth ... party added to the call
    EMERGENCY_LINE = "emergency_line"


class PartyState(StrEnum):
    DIALING = "dialing"  # the create request was sent
    RINGING = "ringing"
    JOINED = "joined"
    ON_HOLD = "on_hold"  # joined, and hearing hold music
    LEFT = "left"  # was in the conference (or was taken out by us)
    FAILED = "failed"  # never got in: no-answer, busy, failed, canceled


PENDING = frozenset({PartyState.DIALING, PartyState.RINGING})
PRESENT = frozenset({PartyState.JOINED, PartyState.ON_HOLD})
OVER = frozenset({PartyState.LEFT, PartyState.FAILED})


class Phase(StrEnum):
    WAITING = "waiting"  # the citizen alone in the wait room, nobody being rung
    RINGING = "ringing"  # the citizen in the wait room while a call-taker (or line) rings
    TALKING = "talking"  # the citizen with at least one other party
    CONSULTING = "consulting"  # the citizen on hold while the call-taker consults
    TRANSFERRING = "transferring"  # the citizen on hold, alone, while someone is rung
    ENDED = "ended"


ROLE_TITLES = {
    Role.CITIZEN: "the caller",
    Role.CALL_TAKER: "the call-taker",
    Role.CONSULTEE: "the consulted party",
    Role.PARTY: "the added party",
    Role.EMERGENCY_LINE: "the emergency line",
}


def is_token(text: str) -> bool:
    """A staff id or line name that can go into a participant label."""
    return bool(_TOKEN.fullmatch(text))


@dataclass(frozen=True, slots=True)
class Party:
    label: str
    role: Role
    state: PartyState
    address: str = ""  # E.164 number or client:identity; empty for the citizen
    name: str = ""  # what staff see: a department, a colleague, a line
    staff_id: str = ""  # set when the party is a member of staff
    added_by: str = ""  # the staff member who brought them in (told of their fate)
    reason: str = ""  # why the party left or failed
    call_sid: str = ""  # the party's call, once a callback has named it

    @property
    def title(self) -> str:
        """How messages name the party: never by phone number (personal data)."""
        return self.name or ROLE_TITLES[self.role]

    @property
    def is_pending(self) -> bool:
        return self.state in PENDING

    @property
    def is_present(self) -> bool:
        return self.state in PRESENT

    @property
    def is_over(self) -> bool:
        return self.state in OVER

    def to_dict(self) -> dict[str, str]:
        data = {"label": self.label, "role": self.role.value, "state": self.state.value}
        for key in ("address", "name", "staff_id", "added_by", "reason", "call_sid"):
            if value := getattr(self, key):
                data[key] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Party:
        return cls(
            label=_text(data, "label"),
            role=Role(data["role"]),
            state=PartyState(data["state"]),
            **{
                key: _text(data, key, "")
                for key in ("address", "name", "staff_id", "added_by", "reason", "call_sid")
            },
        )


@dataclass(frozen=True, slots=True)
class Handoff:
    """The emergency hand-off receipt of PRODUCT.md: who took it over, and when."""

    label: str  # the emergency line's leg
    line: str  # fire, medical, police, traffic, utility
    requested_by: str
    confirmed_by: str = ""
    taken_by: str = ""  # the emergency side's operator, as they gave their name or number
    confirmed_at: datetime | None = None

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "label": self.label,
            "line": self.line,
            "requested_by": self.requested_by,
            "confirmed_by": self.confirmed_by,
            "taken_by": self.taken_by,
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Handoff:
        at = data.get("confirmed_at")
        return cls(
            label=_text(data, "label"),
            line=_text(data, "line"),
            requested_by=_text(data, "requested_by", ""),
            confirmed_by=_text(data, "confirmed_by", ""),
            taken_by=_text(data, "taken_by", ""),
            confirmed_at=datetime.fromisoformat(at) if at else None,
        )


@dataclass(frozen=True, slots=True)
class ConferenceState:
    call_sid: str  # the citizen's call, and the conference's name
    phase: Phase = Phase.WAITING
    roster: tuple[Party, ...] = ()
    taker: str = ""  # label of the call-taker in charge (ringing or present)
    target: str = ""  # label of the transfer target while a transfer runs
    started: bool = False  # another party has joined: the wait music is over
    conference_sid: str = ""  # the Twilio conference the callbacks are about
    retired_conference_sids: tuple[str, ...] = ()  # earlier rooms (before a requeue)
    handoffs: tuple[Handoff, ...] = ()
    wrapped_up: tuple[str, ...] = ()  # staff ids who went to after-call work
    requeued: int = 0  # times the citizen was sent back to the queue

    @property
    def room(self) -> str:
        return self.call_sid

    @property
    def citizen(self) -> Party:
        return self.get_party(CITIZEN)

    def find_party(self, label: str) -> Party | None:
        return next((party for party in self.roster if party.label == label), None)

    def get_party(self, label: str) -> Party:
        party = self.find_party(label)
        if party is None:
            raise KeyError(f"no participant labelled {label!r} on call {self.call_sid}")
        return party

    def others(self) -> tuple[Party, ...]:
        """Everyone but the citizen."""
        return tuple(party for party in self.roster if party.label != CITIZEN)

    def with_party(self, party: Party) -> ConferenceState:
        """The state with ``party`` replaced (same label) or added at the end."""
        if self.find_party(party.label) is None:
            return replace(self, roster=(*self.roster, party))
        roster = tuple(party if p.label == party.label else p for p in self.roster)
        return replace(self, roster=roster)

    def fresh_label(self, base: str, *, numbered: bool = False) -> str:
        """``base`` (or ``base-1`` when numbered), else the next free ``base-<n>``."""
        taken = {party.label for party in self.roster}
        if not numbered and base not in taken:
            return base
        n = 1 if numbered else 2
        while f"{base}-{n}" in taken:
            n += 1
        return f"{base}-{n}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "call_sid": self.call_sid,
            "phase": self.phase.value,
            "roster": [party.to_dict() for party in self.roster],
            "taker": self.taker,
            "target": self.target,
            "started": self.started,
            "conference_sid": self.conference_sid,
            "retired_conference_sids": list(self.retired_conference_sids),
            "handoffs": [handoff.to_dict() for handoff in self.handoffs],
            "wrapped_up": list(self.wrapped_up),
            "requeued": self.requeued,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConferenceState:
        """Rebuild a stored state; ``ValueError`` when it is not one this code wrote."""
        try:
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            state = cls(
                call_sid=_text(data, "call_sid"),
                phase=Phase(data["phase"]),
                roster=tuple(Party.from_dict(item) for item in data["roster"]),
                taker=_text(data, "taker", ""),
                target=_text(data, "target", ""),
                started=bool(data.get("started", False)),
                conference_sid=_text(data, "conference_sid", ""),
                retired_conference_sids=tuple(data.get("retired_conference_sids", ())),
                handoffs=tuple(Handoff.from_dict(item) for item in data.get("handoffs", ())),
                wrapped_up=tuple(data.get("wrapped_up", ())),
                requeued=int(data.get("requeued", 0)),
            )
            if state.find_party(CITIZEN) is None:
                raise ValueError("the roster has no citizen")
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"not a stored conference state: {error}") from error
        return state


def _text(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default) if default is not None else data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value
