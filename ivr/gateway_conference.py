"""The conference half of the call gateway: Twilio's Participants and Conferences APIs.

Mixed into :class:`ivr.gateway.TwilioGateway` and :class:`ivr.gateway.ConsoleGateway`, which
supply the client, error translation and failure injection; callers use those classes and
the :class:`ivr.gateway.CallGateway` protocol, never this module's classes directly.

What Twilio accepts (its OpenAPI document, ``twilio_api_v2010.json``, and its docs):

- Participants *create* takes the conference's SID **or its friendly name** in the path
  (``ConferenceSid`` there has no pattern; Twilio's samples post to
  ``conferences('AgentConf12').participants``, and its Conference docs say a conference is
  created by ``<Dial><Conference>`` or by creating a participant): with a name, the party
  joins the in-progress conference of that name, or starts one. Participant update and
  delete need the ``CF...`` SID (pattern ``^CF[0-9a-fA-F]{32}$``); so does conference update
  by its description. A name there would fail, at worst as a 404 that reads as
  "participant gone", so it is refused here (``ValueError``) before anything is sent.
- A participant is addressed by its CallSid or by its label; non-URL-safe characters of a
  label must be percent-encoded in the path (twilio-python does not do it).
- ``Beep`` is a string (``true``, ``false``, ``onEnter``, ``onExit``), not a boolean.
- There is no ``HoldUrl`` on create: the hold music is chosen on each hold request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import quote

from twilio.base.exceptions import TwilioException

from tickets.phones import mask_number

if TYPE_CHECKING:
    from twilio.rest import Client

log = logging.getLogger("ivr.gateway")  # one logger for the whole gateway

T = TypeVar("T")

# The party's own call progress (``statusCallbackEvent`` of a participant).
PARTICIPANT_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
# The room's roster changes (``conferenceStatusCallbackEvent``); ``hold`` brings both
# participant-hold and participant-unhold. Twilio keeps the value of the first participant.
CONFERENCE_STATUS_EVENTS = ("start", "end", "join", "leave", "hold")
CONFERENCE_SID = re.compile(r"CF[0-9a-fA-F]{32}")
FRIENDLY_NAME_MAX = 128
RING_TIMEOUT_SECONDS = range(5, 601)  # Twilio's bounds for Participants create ``Timeout``


def check_conference_sid(conference_sid: str) -> None:
    """Refuse anything but a ``CF...`` SID (a friendly name would come back as a 404)."""
    if not CONFERENCE_SID.fullmatch(conference_sid or ""):
        raise ValueError(f"a conference SID (CF + 32 hex digits) is needed, not {conference_sid!r}")


def check_room(conference: str) -> None:
    if not conference or len(conference) > FRIENDLY_NAME_MAX:
        raise ValueError(f"conference must be 1-{FRIENDLY_NAME_MAX} characters: {conference!r}")


def check_label(label_or_call_sid: str) -> None:
    if not label_or_call_sid:
        raise ValueError("a participant label or CallSid is needed")


def check_ring(timeout_seconds: int, status_callback_events: Sequence[str]) -> None:
    if timeout_seconds not in RING_TIMEOUT_SECONDS:
        raise ValueError(f"timeout_seconds must be 5-600, not {timeout_seconds}")
    unknown = set(status_callback_events) - set(PARTICIPANT_STATUS_EVENTS)
    if unknown:
        raise ValueError(f"unknown participant status callback events: {sorted(unknown)}")


def _path(segment: str) -> str:
    return quote(segment, safe="")


class ConferenceGateway(Protocol):
    """The conference operations of :class:`ivr.gateway.CallGateway`.

    ``ParticipantGone`` (Twilio 20404) means the participant or the conference had already
    left: the state machine takes it as information, not as a failure. Arguments Twilio
    would refuse (a friendly name where a SID is needed, an empty label, a ring timeout
    outside 5-600 s, an unknown callback event) raise ``ValueError`` and send nothing.
    """

    def add_participant(
        self,
        conference: str,
        *,
        to: str,
        from_number: str,
        label: str,
        start_conference_on_enter: bool,
        end_conference_on_exit: bool,
        early_media: bool,
        beep: bool,
        timeout_seconds: int,
        status_callback: str,
        status_callback_events: Sequence[str],
        conference_status_callback: str,
    ) -> str:
        """Ring ``to`` (E.164 or ``client:identity``) into the room named ``conference`` (its
        friendly name, the citizen's CallSid; a ``CF...`` SID works too) as ``label``.

        Returns the new participant's CallSid."""
        ...

    def hold_participant(
        self, conference_sid: str, label_or_call_sid: str, *, hold: bool, hold_url: str | None
    ) -> None:
        """Put one participant on hold (hearing ``hold_url``, fetched with GET) or take them
        off it (``hold_url`` is then not sent)."""
        ...

    def remove_participant(self, conference_sid: str, label_or_call_sid: str) -> None:
        """Take a participant, ringing or joined, out of the conference (their call ends)."""
        ...

    def end_conference(self, conference_sid: str) -> None:
        """End the conference; every remaining participant is hung up."""
        ...


class TwilioConferenceOperations:
    """:class:`ConferenceGateway` over Twilio's REST API.

    The host class provides ``_client`` and ``_conference_request``: a context manager that
    turns twilio/requests errors into gateway errors (a 404 into ``ParticipantGone`` when
    ``missing_is_gone``) and logs the failure once.
    """

    _client: Client

    def _conference_request(
        self, operation: str, *, conference: str, label: str, missing_is_gone: bool
    ) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _send(self, operation: str, conference: str, label: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        with self._conference_request(
            operation, conference=conference, label=label, missing_is_gone=True
        ):
            result = call()
        log.info(
            "%s conference=%s label=%s ms=%.0f",
            operation,
            conference,
            label,
            (time.perf_counter() - started) * 1000,
        )
        return result

    def add_participant(
        self,
        conference: str,
        *,
        to: str,
        from_number: str,
        label: str,
        start_conference_on_enter: bool,
        end_conference_on_exit: bool,
        early_media: bool,
        beep: bool,
        timeout_seconds: int,
        status_callback: str,
        status_callback_events: Sequence[str],
        conference_status_callback: str,
    ) -> str:
        check_room(conference)
        check_label(label)
        check_ring(timeout_seconds, status_callback_events)
        started = time.perf_counter()
        with self._conference_request(
            "add_participant", conference=conference, label=label, missing_is_gone=False
        ):
            participant = self._client.conferences(_path(conference)).participants.create(
                from_=from_number,
                to=to,
                label=label,
                start_conference_on_enter=start_conference_on_enter,
                end_conference_on_exit=end_conference_on_exit,
                early_media=early_media,
                beep="true" if beep else "false",
                timeout=timeout_seconds,
                status_callback=status_callback,
                status_callback_method="POST",
                status_callback_event=list(status_callback_events),
                conference_status_callback=conference_status_callback,
                conference_status_callback_method="POST",
                conference_status_callback_event=list(CONFERENCE_STATUS_EVENTS),
            )
            call_sid = participant.call_sid
            if not call_sid:  # becomes a GatewayError like every other twilio error
                raise TwilioException("no call SID in the response")
        log.info(
            "add_participant conference=%s label=%s to=%s from=%s call=%s conference_sid=%s "
            "ms=%.0f",
            conference,
            label,
            mask_number(to),
            mask_number(from_number),
            call_sid,
            participant.conference_sid or "-",
            (time.perf_counter() - started) * 1000,
        )
        return call_sid

    def hold_participant(
        self, conference_sid: str, label_or_call_sid: str, *, hold: bool, hold_url: str | None
    ) -> None:
        check_conference_sid(conference_sid)
        check_label(label_or_call_sid)
        # GET: the default hold music is a static file (ivr/audio.py serves it to GET only).
        music = {"hold_url": hold_url, "hold_method": "GET"} if hold and hold_url else {}
        participant = self._client.conferences(conference_sid).participants(
            _path(label_or_call_sid)
        )
        operation = "hold_participant" if hold else "resume_participant"
        self._send(
            operation,
            conference_sid,
            label_or_call_sid,
            lambda: participant.update(hold=hold, **music),
        )

    def remove_participant(self, conference_sid: str, label_or_call_sid: str) -> None:
        check_conference_sid(conference_sid)
        check_label(label_or_call_sid)
        participant = self._client.conferences(conference_sid).participants(
            _path(label_or_call_sid)
        )
        self._send("remove_participant", conference_sid, label_or_call_sid, participant.delete)

    def end_conference(self, conference_sid: str) -> None:
        check_conference_sid(conference_sid)
        room = self._client.conferences(conference_sid)
        self._send("end_conference", conference_sid, "-", lambda: room.update(status="completed"))


# -- the console's records ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddedParticipant:
    call_sid: str
    conference: str
    to: str
    from_number: str
    label: str
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    early_media: bool
    beep: bool
    timeout_seconds: int
    status_callback: str
    status_callback_events: tuple[str, ...]
    conference_status_callback: str


@dataclass(frozen=True, slots=True)
class HoldChange:
    conference_sid: str
    label: str
    hold: bool
    hold_url: str | None


@dataclass(frozen=True, slots=True)
class RemovedParticipant:
    conference_sid: str
    label: str


class ConsoleConferenceOperations:
    """:class:`ConferenceGateway` that records and logs; the host class declares the lists
    and ``fail_next`` (see :class:`ivr.gateway.ConsoleGateway`)."""

    added: list[AddedParticipant]
    held: list[HoldChange]
    removed: list[RemovedParticipant]
    ended: list[str]

    def _maybe_fail(self) -> None:
        raise NotImplementedError

    def add_participant(
        self,
        conference: str,
        *,
        to: str,
        from_number: str,
        label: str,
        start_conference_on_enter: bool,
        end_conference_on_exit: bool,
        early_media: bool,
        beep: bool,
        timeout_seconds: int,
        status_callback: str,
        status_callback_events: Sequence[str],
        conference_status_callback: str,
    ) -> str:
        check_room(conference)
        check_label(label)
        check_ring(timeout_seconds, status_callback_events)
        self._maybe_fail()
        call_sid = "CA" + uuid.uuid4().hex
        self.added.append(
            AddedParticipant(
                call_sid=call_sid,
                conference=conference,
                to=to,
                from_number=from_number,
                label=label,
                start_conference_on_enter=start_conference_on_enter,
                end_conference_on_exit=end_conference_on_exit,
                early_media=early_media,
                beep=beep,
                timeout_seconds=timeout_seconds,
                status_callback=status_callback,
                status_callback_events=tuple(status_callback_events),
                conference_status_callback=conference_status_callback,
            )
        )
        log.info(
            "[console] would add_participant conference=%s label=%s to=%s from=%s: call=%s",
            conference,
            label,
            mask_number(to),
            mask_number(from_number),
            call_sid,
        )
        return call_sid

    def hold_participant(
        self, conference_sid: str, label_or_call_sid: str, *, hold: bool, hold_url: str | None
    ) -> None:
        check_conference_sid(conference_sid)
        check_label(label_or_call_sid)
        self._maybe_fail()
        # What Twilio would be sent: no hold music when resuming.
        music = hold_url if hold else None
        self.held.append(HoldChange(conference_sid, label_or_call_sid, hold, music))
        operation = "hold_participant" if hold else "resume_participant"
        log.info(
            "[console] would %s conference=%s label=%s",
            operation,
            conference_sid,
            label_or_call_sid,
        )

    def remove_participant(self, conference_sid: str, label_or_call_sid: str) -> None:
        check_conference_sid(conference_sid)
        check_label(label_or_call_sid)
        self._maybe_fail()
        self.removed.append(RemovedParticipant(conference_sid, label_or_call_sid))
        log.info(
            "[console] would remove_participant conference=%s label=%s",
            conference_sid,
            label_or_call_sid,
        )

    def end_conference(self, conference_sid: str) -> None:
        check_conference_sid(conference_sid)
        self._maybe_fail()
        self.ended.append(conference_sid)
        log.info("[console] would end_conference conference=%s label=-", conference_sid)
