"""Twilio's side of the hotline's outbound legs, for the local call simulator.

When the app adds a call-taker (or a consultee, a department, an emergency line) to a
caller's conference through the REST gateway, Twilio rings that phone and reports what
happens: the leg's call progress to the participant's ``StatusCallback``, and the room's
changes (participant-join/leave/hold/unhold, conference start/end) to the conference's
status callback, which is the one of the first participant: the caller's ``<Conference>``.
``SimulatedPhones`` watches a :class:`~ivr.gateway.ConsoleGateway` for those operations
and plays them out, each phone as told: answer, no answer, busy, fail, or answer and hang
up. Numbers not listed answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ivr.gateway import ConsoleGateway

Form = list[tuple[str, str]]
Notify = Callable[[str, str, Form], None]  # (absolute URL, kind, form)


class Phone(StrEnum):
    ANSWER = "answer"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAIL = "failed"
    HANG_UP = "hang-up"  # answers, then hangs up before the caller does
    RING = "ring"  # rings on until the caller gives up (or the hotline cancels it)


@dataclass
class _Leg:
    call_sid: str
    label: str
    to: str
    status_callback: str
    events: tuple[str, ...]
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    joined: bool = False
    left: bool = False
    sequence: int = 0


@dataclass
class RoomView:
    """The caller's conference as the simulator runs it (see ``ConferenceRoom``)."""

    name: str
    sid: str
    status_callback: str
    wanted_events: frozenset[str]
    caller_sid: str
    caller_label: str = ""
    started: bool = False
    ended: bool = False
    sequence: int = 0


@dataclass
class SimulatedPhones:
    gateway: ConsoleGateway
    phones: Mapping[str, Phone] = field(default_factory=dict)
    talk_seconds: int = 30
    # What happens while the caller talks (e.g. a test's console commands), in turn; each
    # gets the caller's CallSid, and what it asked of Twilio is played out before the next.
    while_connected: Sequence[Callable[[str], None]] = ()
    account_sid: str = "AC" + "0" * 32
    timestamp: Callable[[], str] = lambda: ""
    legs: dict[str, _Leg] = field(default_factory=dict)  # by label
    heard: list[str] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)

    def phone_for(self, to: str) -> Phone:
        return self.phones.get(to, Phone.ANSWER)

    def advance(self, room: RoomView, notify: Notify) -> list[str]:
        """Play out what the app asked Twilio since the last call; the lines the caller
        would notice (someone joined or left, the room ended)."""
        heard: list[str] = []
        for added in self._new("added", self.gateway.added):
            if added.conference == room.name:
                heard += self._ring(room, added, notify)
        for change in self._new("held", self.gateway.held):
            leg = self._leg_or_caller(room, change.label)
            if leg is not None and "hold" in room.wanted_events:
                kind = "participant-hold" if change.hold else "participant-unhold"
                notify(room.status_callback, "conference-event", self._event(room, kind, leg))
                heard.append(f"☎ {leg.label} {'on hold' if change.hold else 'back'}")
        for removed in self._new("removed", self.gateway.removed):
            leg = self.legs.get(removed.label)
            if leg is not None and not leg.left and leg.joined:
                heard += self._leave(room, leg, notify, "removed")
            elif leg is not None and not leg.left:  # still ringing: the call is cancelled
                leg.left = True
                self._progress(leg, "canceled", notify)
                heard.append(f"☎ {leg.label} stops ringing")
        for _ in self._new("ended", self.gateway.ended):
            heard += self.end_room(room, notify)
        return heard

    def hang_up_all(self, room: RoomView, notify: Notify) -> list[str]:
        """The caller left a room that ends on their exit: every other leg is dropped."""
        heard: list[str] = []
        for leg in list(self.legs.values()):
            if leg.joined and not leg.left:
                heard += self._leave(room, leg, notify, "conference ended")
        return heard

    def end_room(self, room: RoomView, notify: Notify) -> list[str]:
        heard = self.hang_up_all(room, notify)
        if room.started and not room.ended:
            room.ended = True
            if "end" in room.wanted_events:
                form = self._room_form(room, "conference-end")
                notify(room.status_callback, "conference-event", form)
            heard.append("☎ the conference ends")
        return heard

    def caller_left(self, room: RoomView) -> Form:
        caller = _Leg(room.caller_sid, room.caller_label, "", "", (), False, True, joined=True)
        return [
            *self._event(room, "participant-leave", caller),
            ("ParticipantCallStatus", "completed"),
            ("ReasonParticipantLeft", "participant_hung_up"),
        ]

    def someone_joined(self) -> bool:
        return any(leg.joined and not leg.left for leg in self.legs.values())

    # -- one leg -------------------------------------------------------------------------

    def _ring(self, room: RoomView, added, notify: Notify) -> list[str]:  # type: ignore[no-untyped-def]
        leg = _Leg(
            call_sid=added.call_sid,
            label=added.label,
            to=added.to,
            status_callback=added.status_callback,
            events=tuple(added.status_callback_events),
            start_conference_on_enter=added.start_conference_on_enter,
            end_conference_on_exit=added.end_conference_on_exit,
        )
        self.legs[leg.label] = leg
        phone = self.phone_for(leg.to)
        self._progress(leg, "initiated", notify)
        if phone in (Phone.BUSY, Phone.FAIL):
            self._progress(leg, phone.value, notify)
            return [f"☎ {leg.label} ({leg.to}) {phone.value}"]
        self._progress(leg, "ringing", notify)
        if phone is Phone.RING:
            return [f"☎ {leg.label} ({leg.to}) rings"]
        if phone is Phone.NO_ANSWER:
            self._progress(leg, "no-answer", notify)
            return [f"☎ {leg.label} ({leg.to}) does not answer"]
        self._progress(leg, "in-progress", notify, event="answered")
        leg.joined = True
        heard = [f"☎ {leg.label} ({leg.to}) answers and joins"]
        if leg.start_conference_on_enter and not room.started:
            room.started = True
            if "start" in room.wanted_events:
                form = self._room_form(room, "conference-start")
                notify(room.status_callback, "conference-event", form)
        if "join" in room.wanted_events:
            notify(
                room.status_callback, "conference-event", self._event(room, "participant-join", leg)
            )
        if phone is Phone.HANG_UP:
            heard += self._leave(room, leg, notify, "hangs up")
        return heard

    def _leave(self, room: RoomView, leg: _Leg, notify: Notify, why: str) -> list[str]:
        leg.left = True
        if "leave" in room.wanted_events:
            notify(
                room.status_callback,
                "conference-event",
                self._event(room, "participant-leave", leg),
            )
        self._progress(leg, "completed", notify)
        return [f"☎ {leg.label} leaves ({why})"]

    def _progress(self, leg: _Leg, status: str, notify: Notify, event: str | None = None) -> None:
        """The leg's own call-progress callback, if the app asked for this event."""
        wanted = event or status
        final = status in {"completed", "busy", "no-answer", "failed", "canceled"}
        if not leg.status_callback or (wanted not in leg.events and not final):
            return
        leg.sequence += 1
        form = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", leg.call_sid),
            ("CallStatus", status),
            ("Direction", "outbound-api"),
            ("To", leg.to),
            ("Called", leg.to),
            ("SequenceNumber", str(leg.sequence)),
            ("Timestamp", self.timestamp()),
            ("CallbackSource", "call-progress-events"),
        ]
        if final:
            form.append(("CallDuration", "0" if status != "completed" else "30"))
        notify(leg.status_callback, "participant-status", form)

    # -- forms ---------------------------------------------------------------------------

    def _room_form(self, room: RoomView, event: str) -> Form:
        room.sequence += 1
        return [
            ("AccountSid", self.account_sid),
            ("ConferenceSid", room.sid),
            ("FriendlyName", room.name),
            ("StatusCallbackEvent", event),
            ("SequenceNumber", str(room.sequence)),
            ("Timestamp", self.timestamp()),
        ]

    def _event(self, room: RoomView, event: str, leg: _Leg) -> Form:
        return [
            *self._room_form(room, event),
            ("CallSid", leg.call_sid),
            ("ParticipantLabel", leg.label),
            ("Muted", "false"),
            ("Hold", "true" if event == "participant-hold" else "false"),
            ("EndConferenceOnExit", str(leg.end_conference_on_exit).lower()),
            ("StartConferenceOnEnter", str(leg.start_conference_on_enter).lower()),
            ("Coaching", "false"),
        ]

    def _leg_or_caller(self, room: RoomView, label: str) -> _Leg | None:
        if label in self.legs:
            return self.legs[label]
        if label in (room.caller_label, room.caller_sid):
            return _Leg(room.caller_sid, room.caller_label, "", "", (), False, True, joined=True)
        return None

    def _new(self, name: str, items: list):  # type: ignore[no-untyped-def,type-arg]
        start = self._seen.get(name, 0)
        self._seen[name] = len(items)
        return items[start:]
