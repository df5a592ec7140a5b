"""The citizen's side of an outbound survey call, for the local call simulator.

The worker places a survey call through the REST gateway with the attempt's key in its
URLs; with no Twilio around, ``survey_call`` plays what Twilio and the citizen's phone do
next: Twilio fetches ``/voice/survey/start?attempt=<key>`` when the phone answers (signed,
with ``AnsweredBy`` from answering-machine detection), the citizen answers each Gather from
a script (keys, ``speech:…``, ``""`` for silence) and hangs up when it runs out, and Twilio
posts the call's final status to ``/voice/survey-status?attempt=<key>``. A phone that is
not answered (``no-answer``, ``busy``, ``failed``) only gets the status callback::

    transcript = survey_call(sim, "att-1", to_number="+8613800000001", inputs=["1", "1", "1"])
"""

from __future__ import annotations

import sys
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TextIO
from urllib.parse import urlencode

from ivr.simulator import CallSimulator, CallTranscript
from ivr.simulator_transcript import CALLER, CallState, Doc
from ivr.simulator_twiml import parse_input

START_PATH = "/voice/survey/start"
STATUS_PATH = "/voice/survey-status"
HUMAN = "human"
MACHINE_ANSWERS = ("machine_start", "machine_end_beep", "machine_end_silence", "fax")
NOT_ANSWERED = ("no-answer", "busy", "failed")


def survey_call(
    simulator: CallSimulator,
    attempt_key: str,
    *,
    to_number: str,
    from_number: str = "+868916312345",
    inputs: Sequence[str] = (),
    answered_by: str = HUMAN,
    phone: str = "answer",
    on_heard: Callable[[str], None] | None = None,
    call_sid: str | None = None,
) -> CallTranscript:
    """Play one outbound survey call to ``to_number`` and return its transcript.

    ``inputs`` answer the Gathers in turn; when they run out the citizen hangs up (a
    hang-up midway is a short script). ``answered_by``: ``human`` or a machine
    (``machine_start``...). ``phone``: ``answer``, or ``no-answer``/``busy``/``failed``
    (then only the final status is sent). A bad input raises ValueError before any request.
    """
    if isinstance(inputs, str):
        raise TypeError("inputs must be a list, e.g. ['1', 'speech:解决了', '']")
    if phone != "answer" and phone not in NOT_ANSWERED:
        raise ValueError(f"phone must be answer or one of {', '.join(NOT_ANSWERED)}")
    scripted = deque(parse_input(raw) for raw in inputs)
    sid = call_sid or "CA" + uuid.uuid4().hex
    base = [
        ("AccountSid", simulator.account_sid),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", sid),
        ("Called", to_number),
        ("Caller", from_number),
        ("Direction", "outbound-api"),
        ("From", from_number),
        ("To", to_number),
    ]
    call = CallState(CallTranscript(sid), base, scripted, False, on_heard)
    query = "?" + urlencode({"attempt": attempt_key})
    if phone == "answer":
        call.call_status = "in-progress"
        call.answered = True
        call.hear(f"☎ {to_number} answers ({answered_by})")
        url = simulator.public_base_url + START_PATH + query
        step = simulator._goto(call, url, "voice", [("AnsweredBy", answered_by)])
        while isinstance(step, Doc):
            step = simulator._run(call, step)
        status, duration = "completed", call.seconds
    else:
        call.hear(f"☎ {to_number}: {phone}")
        call.end(phone)
        status, duration = phone, 0
    transcript = call.transcript
    transcript.call_status, transcript.duration = status, duration
    form = [
        *base,
        ("CallStatus", status),
        ("CallDuration", str(duration)),
        ("SequenceNumber", str(call.status_sequence)),
        ("Timestamp", format_datetime(datetime.now(UTC))),
        ("CallbackSource", "call-progress-events"),
    ]
    if phone == "answer":
        form.append(("AnsweredBy", answered_by))
    status_url = simulator.public_base_url + STATUS_PATH + query
    simulator._notify(call, status_url, "status", form, counted=False)
    return transcript


def run_survey_cli(
    simulator: CallSimulator,
    attempt_key: str,
    *,
    to_number: str,
    inputs: Sequence[str] = (),
    answered_by: str = HUMAN,
    out: TextIO | None = None,
) -> int:
    """Print the survey call as it happens; 0 without errors, 1 with, 2 for a bad input."""
    stream = out if out is not None else sys.stdout

    def show(line: str) -> None:
        print(line, file=stream, flush=True)

    try:
        for raw in inputs:
            parse_input(raw)
    except ValueError as error:
        show(f"✖ {error}")
        return 2
    show(f"📞 survey call {attempt_key} → {to_number} via {simulator.public_base_url}")
    transcript = survey_call(
        simulator,
        attempt_key,
        to_number=to_number,
        inputs=inputs,
        answered_by=answered_by,
        on_heard=show,
    )
    if transcript.ended_by == "caller":
        show(f"{CALLER}(the script ran out: the citizen hung up)")
    show(
        f"— {transcript.call_sid}: ended by {transcript.ended_by}, {transcript.call_status} "
        f"after {transcript.duration}s, {len(transcript.requests)} requests, "
        f"{len(transcript.errors)} errors"
    )
    for error in transcript.errors:
        show(f"  ✖ {error}")
    return 0 if transcript.ok else 1
