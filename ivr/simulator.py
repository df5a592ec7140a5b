"""Local call simulator: plays Twilio's part of an inbound phone call against the hotline app.

A new user can hear the hotline work without a Twilio account, and tests can walk
multi-step calls. The simulator posts Twilio's signed webhooks (``X-Twilio-Signature``,
``I-Twilio-Idempotency-Token``) to the voice routes, follows the TwiML they answer
(Say, Play, Pause, Gather, Redirect, Dial with Number or Conference, Enqueue, Hangup,
Reject) and records what the caller hears::

    sim = CallSimulator(WsgiTransport(app), auth_token="…", public_base_url="https://x.example")
    transcript = sim.call("+8613800000000", "12345", inputs=["1", "speech:着火了", ""])
    assert transcript.said("欢迎")

The app must emit absolute action/redirect URLs on ``public_base_url``.
"""

from __future__ import annotations

import sys
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TextIO

import phonenumbers
from twilio.request_validator import RequestValidator
from werkzeug.urls import iri_to_uri

from ivr.simulator_phones import RoomView, SimulatedPhones
from ivr.simulator_transcript import (
    CALLER,
    CallState,
    CallTranscript,
    Doc,
    Flow,
    RequestRecord,
)
from ivr.simulator_transport import (
    HttpTransport,
    Transport,
    TransportError,
    TransportResponse,
    WsgiTransport,
)
from ivr.simulator_twiml import (
    PROMPT_VERBS,
    CallerInput,
    ConferenceRoom,
    GatherSpec,
    TwimlError,
    gather_result,
    parse_input,
    parse_response,
    prompt_line,
    text_of,
)

__all__ = [
    "CallSimulator",
    "CallTranscript",
    "HttpTransport",
    "RequestRecord",
    "WsgiTransport",
    "make_simulator",
    "run_cli",
]

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
USER_AGENT = "TwilioProxy/1.1"
INPUT_PROMPT = "⌨  keys (1, 12345#), speech:文字, Enter = silence, q = hang up > "
HANG_UP_WORDS = frozenset({"q", "quit", "hangup"})


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _country(number: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None)) or ""
    except phonenumbers.NumberParseException:
        return ""


def _timestamp() -> str:
    return format_datetime(datetime.now(UTC))


class CallSimulator:
    """Plays Twilio's side of inbound calls against the app behind ``transport``."""

    def __init__(
        self,
        transport: Transport,
        *,
        auth_token: str,
        public_base_url: str,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        voice_path: str = "/voice/incoming",
        status_path: str | None = "/voice/status",
        max_steps: int = 60,
        wait_loops: int = 2,
        read_input: Callable[[str], str] = input,
        phones: SimulatedPhones | None = None,
    ) -> None:
        self.transport = transport
        self.public_base_url = public_base_url.rstrip("/")
        self.account_sid = account_sid
        self.voice_path = voice_path
        self.status_path = status_path
        self.max_steps = max_steps
        self.wait_loops = wait_loops
        self.read_input = read_input
        self.phones = phones  # the outbound legs the app asks for, played as Twilio would
        self._validator = RequestValidator(auth_token)

    # -- the call -----------------------------------------------------------------------

    def call(
        self,
        from_number: str,
        to_number: str,
        inputs: Iterable[str] = (),
        interactive: bool = False,
        *,
        on_heard: Callable[[str], None] | None = None,
    ) -> CallTranscript:
        """Simulate one inbound call and return its transcript.

        ``inputs`` answer the Gathers in turn: keys (``"1"``, ``"12345#"``), ``""`` for
        silence or ``"speech:text"``. When they run out the caller hangs up, or with
        ``interactive`` the next answers are read with ``read_input``. A bad input raises
        ValueError before any request is made.
        """
        if isinstance(inputs, str):
            raise TypeError("inputs must be a list of inputs, e.g. ['1', '12345#']")
        scripted = deque(parse_input(raw) for raw in inputs)
        sid = _sid("CA")
        base = self._base_params(sid, from_number, to_number)
        call = CallState(CallTranscript(sid), base, scripted, interactive, on_heard)
        step: Doc | Flow = self._goto(call, self.public_base_url + self.voice_path, "voice")
        call.call_status = "in-progress"
        while isinstance(step, Doc):
            step = self._run(call, step)
        self._send_status_callback(call)
        return call.transcript

    def _base_params(self, sid: str, from_number: str, to_number: str) -> list[tuple[str, str]]:
        from_country, to_country = _country(from_number), _country(to_number)
        return [
            ("AccountSid", self.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", sid),
            ("Called", to_number),
            ("CalledCountry", to_country),
            ("Caller", from_number),
            ("CallerCountry", from_country),
            ("Direction", "inbound"),
            ("From", from_number),
            ("FromCountry", from_country),
            ("To", to_number),
            ("ToCountry", to_country),
        ]

    def _run(self, call: CallState, doc: Doc) -> Doc | Flow:
        for verb in doc.root:
            if verb.tag != "Reject":
                call.answered = True
            step = self._verb(call, verb, doc)
            if step is not Flow.CONTINUE:
                return step
        return call.end("end")

    def _verb(self, call: CallState, verb: ET.Element, doc: Doc) -> Doc | Flow:
        tag = verb.tag
        if tag in PROMPT_VERBS:
            call.hear(*prompt_line(verb))
            return Flow.CONTINUE
        if tag == "Gather":
            return self._gather(call, verb, doc)
        if tag == "Redirect":
            if verb.get("method", "POST").upper() != "POST":
                return call.fail("<Redirect method=GET> is not supported by the simulator")
            return self._goto(call, text_of(verb), "redirect")
        if tag == "Dial":
            return self._dial(call, verb)
        if tag == "Hangup":
            call.hear("☎ (the line hangs up)")
            return call.end("hangup")
        if tag == "Reject":
            return self._reject(call, verb)
        if tag == "Enqueue":
            call.hear(f"☎ waits in queue {text_of(verb)}", 1)
            return call.end("enqueue")
        call.hear(f"(the simulator skips <{tag}>)")
        return Flow.CONTINUE

    def _reject(self, call: CallState, verb: ET.Element) -> Flow:
        reason = verb.get("reason", "rejected")
        call.hear(f"☎ call rejected ({reason})")
        if not call.answered:  # only a first <Reject> leaves the call unanswered
            call.call_status = "busy" if reason == "busy" else "no-answer"
        return call.end("reject")

    # -- Gather ---------------------------------------------------------------------------

    def _gather(self, call: CallState, verb: ET.Element, doc: Doc) -> Doc | Flow:
        spec = GatherSpec.from_element(verb)
        if spec.method != "POST":
            return call.fail(f"<Gather method={spec.method}> is not supported by the simulator")
        for child in verb:
            if child.tag in PROMPT_VERBS:
                call.hear(*prompt_line(child))
            else:
                call.hear(f"(the simulator skips <{child.tag}> nested in <Gather>)")
        said = self._next_input(call)
        if said is None:
            call.hear(CALLER + "hangs up")
            return call.end("caller")
        result = gather_result(spec, said)
        ignored = (
            " (the Gather takes nothing from this)" if result is None and not said.silent else ""
        )
        waited = spec.timeout if result is None or not _finished(spec, result) else 0
        call.hear(f"{CALLER}{said.describe()}{ignored}", len(said.keys or said.speech) + waited)
        if result is None and not spec.action_on_empty_result:
            return Flow.CONTINUE
        action = spec.action or self.public_base_url + doc.path  # default: this document
        return self._goto(call, action, "gather", result or ())

    def _next_input(self, call: CallState) -> CallerInput | None:
        if call.inputs:
            return call.inputs.popleft()
        if not call.interactive:
            return None
        prompt = INPUT_PROMPT
        while True:
            try:
                raw = self.read_input(prompt)
            except EOFError:
                return None
            if raw.strip().lower() in HANG_UP_WORDS:
                return None
            try:
                return parse_input(raw)
            except ValueError as error:
                prompt = f"{error}\n> "

    # -- Dial -----------------------------------------------------------------------------

    def _dial(self, call: CallState, verb: ET.Element) -> Doc | Flow:
        conference = verb.find("Conference")
        if conference is not None:
            return self._conference(call, verb, conference)
        call.hear(f"☎ dials {_dial_target(verb)}", 1)
        action = verb.get("action")
        if not action:
            return Flow.CONTINUE
        return self._goto(call, action, "dial-action", [("DialCallStatus", "completed")])

    def _conference(self, call: CallState, dial: ET.Element, conference: ET.Element) -> Doc | Flow:
        room = ConferenceRoom(text_of(conference), _sid("CF"), conference)
        call.hear(f"☎ joins conference {room.name}", 1)
        self._conference_event(call, room, "join")
        if self.phones is not None and not room.starts_on_enter:
            return self._live_room(call, dial, room, self.phones)
        if room.starts_on_enter:  # alone in the room: it starts, so no hold music
            self._conference_event(call, room, "start")
            call.hear("(the conference starts; the caller is alone in it)")
        else:
            self._hold_music(call, room)
        call.hear(CALLER + "hangs up in the conference")
        call.call_status = "completed"
        self._conference_event(call, room, "leave")
        if room.starts_on_enter:
            self._conference_event(call, room, "end")
        action = dial.get("action")
        if action:  # Twilio requests it when the caller hangs up, and ignores its TwiML
            form = call.params([("DialCallStatus", "completed")])
            self._notify(call, action, "dial-action", form)
        return call.end("conference")

    def _live_room(
        self, call: CallState, dial: ET.Element, room: ConferenceRoom, phones: SimulatedPhones
    ) -> Doc | Flow:
        """Wait in the room while the app rings people into it; talk once someone joins.

        The caller leaves when the app redirects their call (Twilio takes it out of the
        room), or hangs up after talking (``talk_seconds``) or after ``wait_loops`` rounds of
        hold music with nobody joining.
        """
        view = RoomView(
            name=room.name,
            sid=room.sid,
            status_callback=room.element.get("statusCallback", ""),
            wanted_events=frozenset(
                room.element.get("statusCallbackEvent", "join leave").replace(",", " ").split()
            ),
            caller_sid=call.transcript.call_sid,
            caller_label=room.element.get("participantLabel", ""),
            sequence=room.sequence,
        )

        def notify(url: str, kind: str, form: list[tuple[str, str]]) -> None:
            self._notify(call, url, kind, form, counted=False)

        redirects_seen = len(phones.gateway.redirected)
        for _ in range(self.wait_loops + 1):
            for line in phones.advance(view, notify):
                call.hear(line, 1)
            redirect = self._redirect_of(call, phones, redirects_seen)
            if redirect is not None:
                return self._leave_room_for(call, view, phones, notify, redirect)
            if phones.someone_joined():
                call.hear("👤 talks with the call-taker", phones.talk_seconds)
                for action in phones.while_connected:  # e.g. the call-taker's console
                    action(call.transcript.call_sid)
                    for line in phones.advance(view, notify):
                        call.hear(line, 1)
                    redirect = self._redirect_of(call, phones, redirects_seen)
                    if redirect is not None:
                        return self._leave_room_for(call, view, phones, notify, redirect)
                    if not phones.someone_joined():
                        break
                break
            self._hold_music(call, room, loops=1)
        call.hear(CALLER + "hangs up in the conference")
        call.call_status = "completed"
        if "leave" in view.wanted_events:
            notify(view.status_callback, "conference-event", phones.caller_left(view))
        for line in phones.advance(view, notify):  # what the app does about it
            call.hear(line)
        for line in phones.end_room(view, notify):  # the caller's exit ends the room
            call.hear(line)
        action = dial.get("action")
        if action:
            self._notify(
                call, action, "dial-action", call.params([("DialCallStatus", "completed")])
            )
        return call.end("conference")

    def _redirect_of(self, call: CallState, phones: SimulatedPhones, seen: int) -> str | None:
        for redirect in phones.gateway.redirected[seen:]:
            if redirect.call_sid == call.transcript.call_sid:
                return redirect.url
        return None

    def _leave_room_for(
        self,
        call: CallState,
        view: RoomView,
        phones: SimulatedPhones,
        notify: Callable[[str, str, list[tuple[str, str]]], None],
        url: str,
    ) -> Doc | Flow:
        """The app moved the caller's call to new TwiML: out of the room, on to ``url``."""
        call.hear("☎ the hotline moves the call on", 1)
        if "leave" in view.wanted_events:
            notify(view.status_callback, "conference-event", phones.caller_left(view))
        for line in phones.end_room(view, notify):
            call.hear(line)
        return self._goto(call, url, "redirect")

    def _conference_event(self, call: CallState, room: ConferenceRoom, event: str) -> None:
        if room.wants(event):
            form = room.event_form(
                event,
                account_sid=self.account_sid,
                call_sid=call.transcript.call_sid,
                timestamp=_timestamp(),
            )
            self._notify(call, room.element.get("statusCallback", ""), "conference-event", form)

    def _hold_music(self, call: CallState, room: ConferenceRoom, loops: int | None = None) -> None:
        """Play the conference waitUrl ``wait_loops`` times (Say/Play/Pause, Redirect)."""
        url = room.element.get("waitUrl")
        if url is None:
            call.hear("♪ (Twilio's default hold music)")
            return
        for _ in range(self.wait_loops if loops is None else loops):
            try:
                doc = self._load(call, url, "wait", [("FriendlyName", room.name)])
            except TwimlError as error:
                call.transcript.errors.append(str(error))
                return
            url = self._play_wait_twiml(call, doc.root, url)

    def _play_wait_twiml(self, call: CallState, root: ET.Element, url: str) -> str:
        for verb in root:
            if verb.tag in PROMPT_VERBS:
                call.hear(*prompt_line(verb))
            elif verb.tag == "Redirect":
                return text_of(verb)
            else:
                call.hear(f"(<{verb.tag}> is not allowed in a conference waitUrl)")
        return url

    # -- requests -------------------------------------------------------------------------

    def _goto(
        self, call: CallState, url: str, kind: str, extra: Sequence[tuple[str, str]] = ()
    ) -> Doc | Flow:
        """Fetch the TwiML at the absolute ``url`` to run next; fail the call if it is bad."""
        try:
            return self._load(call, url, kind, extra)
        except TwimlError as error:
            return call.fail(str(error))

    def _load(
        self, call: CallState, url: str, kind: str, extra: Sequence[tuple[str, str]] = ()
    ) -> Doc:
        path = self._path_of(url, kind)
        response = self._send(call, path, kind, call.params(extra))
        try:
            return Doc(parse_response(*response), path)
        except TwimlError as error:
            raise TwimlError(f"{kind} {path}: {error}") from error

    def _notify(
        self,
        call: CallState,
        url: str,
        kind: str,
        form: list[tuple[str, str]],
        counted: bool = True,
    ) -> None:
        """POST a callback whose answer Twilio ignores unless it is not 2xx."""
        try:
            path = self._path_of(url, kind)
            status = self._send(call, path, kind, form, counted).status
        except TwimlError as error:
            call.transcript.errors.append(str(error))
            return
        if not 200 <= status < 300:
            call.transcript.errors.append(f"{kind} {path}: HTTP {status}")

    def _send(
        self,
        call: CallState,
        path: str,
        kind: str,
        form: list[tuple[str, str]],
        counted: bool = True,
    ) -> TransportResponse:
        if counted:
            if call.steps >= self.max_steps:
                raise TwimlError(f"{kind} {path}: too many steps (max_steps={self.max_steps})")
            call.steps += 1
        headers = self._headers(path, form)
        record = RequestRecord(path, form, 0, "", kind, headers)
        call.transcript.requests.append(record)
        try:
            response = self.transport.post(path, form, headers)
        except TransportError as error:
            record.body = str(error)
            raise TwimlError(f"{kind} {path}: {error}") from error
        record.status, record.body = response.status, response.body
        return response

    def _headers(self, path: str, form: list[tuple[str, str]]) -> dict[str, str]:
        signature = self._validator.compute_signature(self.public_base_url + path, dict(form))
        return {
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
        }

    def _path_of(self, url: str, kind: str) -> str:
        """``/path?query`` of an absolute URL on the public base; TwimlError otherwise."""
        url = iri_to_uri(url)  # Twilio requests non-ASCII URLs percent-encoded
        rest = url[len(self.public_base_url) :] if url.startswith(self.public_base_url) else None
        if rest is None or (rest and rest[0] not in "/?"):
            raise TwimlError(
                f"{kind}: URL {url!r} is not on the public base URL {self.public_base_url} "
                "(the app must emit absolute URLs on its own base)"
            )
        return rest if rest.startswith("/") else "/" + rest

    def _send_status_callback(self, call: CallState) -> None:
        transcript = call.transcript
        rejected = call.call_status in {"busy", "no-answer"}
        transcript.call_status = call.call_status if rejected else "completed"
        transcript.duration = 0 if rejected else call.seconds
        if self.status_path is None:
            return
        form = [
            *call.base,
            ("CallStatus", transcript.call_status),
            ("CallDuration", str(transcript.duration)),
            ("SequenceNumber", str(call.status_sequence)),
            ("Timestamp", _timestamp()),
            ("CallbackSource", "call-progress-events"),
        ]
        call.status_sequence += 1
        self._notify(call, self.public_base_url + self.status_path, "status", form, counted=False)


def _finished(spec: GatherSpec, result: Sequence[tuple[str, str]]) -> bool:
    """Whether the Gather ended before its timeout (finishOnKey, numDigits or speech)."""
    values = dict(result)
    if "Digits" not in values:
        return True
    return bool(values["FinishedOnKey"]) or len(values["Digits"]) == spec.num_digits


_NOUN_LABELS = {"Number": "", "Sip": "", "Client": "client:", "Queue": "queue "}


def _dial_target(dial: ET.Element) -> str:
    """``+8610…``, ``client:alice`` or ``queue support`` (comma-separated if several)."""
    nouns = [_NOUN_LABELS.get(noun.tag, noun.tag + " ") + text_of(noun) for noun in dial]
    return ", ".join(nouns) or text_of(dial)


def make_simulator(
    *,
    auth_token: str,
    public_base_url: str,
    url: str | None = None,
    app: Any = None,
    **options: Any,
) -> CallSimulator:
    """A simulator over HTTP when ``url`` is given, else in process over the WSGI ``app``."""
    if url:
        transport: Transport = HttpTransport(url)
    elif app is not None:
        transport = WsgiTransport(app)
    else:
        raise ValueError("give the server url or the WSGI app to call")
    return CallSimulator(
        transport, auth_token=auth_token, public_base_url=public_base_url, **options
    )


def run_cli(
    simulator: CallSimulator,
    from_number: str,
    to_number: str,
    inputs: Sequence[str] = (),
    interactive: bool = False,
    out: TextIO | None = None,
) -> int:
    """Print the call as it happens, then a summary line and the errors.

    Returns an exit status: 0 for a call without errors, 1 when it had errors, 2 when an
    input is not valid (nothing is sent then).
    """
    stream = out if out is not None else sys.stdout

    def show(line: str) -> None:
        print(line, file=stream, flush=True)

    try:
        for raw in inputs:
            parse_input(raw)
    except ValueError as error:
        show(f"✖ {error}")
        return 2
    show(f"📞 {from_number} → {to_number} via {simulator.public_base_url}")
    transcript = simulator.call(from_number, to_number, inputs, interactive, on_heard=show)
    show(
        f"— {transcript.call_sid}: ended by {transcript.ended_by}, {transcript.call_status} "
        f"after {transcript.duration}s, {len(transcript.requests)} requests, "
        f"{len(transcript.errors)} errors"
    )
    for error in transcript.errors:
        show(f"  ✖ {error}")
    return 0 if transcript.ok else 1
