"""Twilio's Calls API and the citizens' phones, for the survey benchmark, in a process of its own.

The hotline's workers place survey calls with their real ``TwilioSurveyCaller`` pointed
here (``TWILIO_API_BASE_URL``). This server answers what twilio-python needs:

- ``POST .../Calls.json``: the create. 201 with a new CallSid, or, for a fraction of the
  creates (``--fail-rate``), HTTP 500 *after* the call was created, as a Twilio edge that
  lost its answer does: the hotline must find that call again (``find_placed``) and not
  call the citizen twice.
- ``GET .../Calls.json``: the list, newest first, with the ``To``, ``From``, ``Status``,
  ``StartTime``/``StartTime>``/``StartTime<`` filters and pages (``PageSize``, ``Page``).
- ``GET``/``POST .../Calls/{sid}.json``: fetch, and update (``Status=completed`` hangs up).
- ``GET /_bench/state``: for the benchmark: creates so far and calls still being played.

Then it plays each call as Twilio and the citizen's phone would, in a thread pool (one
request at a time per call, timers in between): the status callbacks the create asked for
(``initiated``, ``ringing``, ``in-progress`` for ``answered``, then the final one), the
answer webhook (the create's ``Url``, with ``AnsweredBy`` from answering-machine
detection), the survey's Gathers answered with keys, all signed with the servers' auth
token (``deliveries.py``) and each with a fresh ``I-Twilio-Idempotency-Token``. Most calls
are answered by a person who presses 1, 1, 1; some press 1, 2, 3 (to the reviewer); a few
are answered by a machine (hung up on) or not at all (``no-answer``). A call whose create
answered 500 is held ``queued`` for ``--hold`` seconds first (Twilio's queue), so that
the hotline's reconciliation has something to find; then a person answers it.

One JSON line per event on stdout: ``create`` (wall-clock ``t`` at arrival, the attempt key
from the status callback URL, the HTTP status answered), ``list``, ``fetch``, ``update``,
``played`` (per call: disposition, keys pressed, webhooks posted and any that failed).

    python -m harness.fake_calls PORT [--fail-rate 0.003] [--seed N] ...   (cwd: bench/)
"""

from __future__ import annotations

import argparse
import base64
import heapq
import itertools
import json
import random
import re
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from .deliveries import Delivery, post
from .tools import AUTH_TOKEN

ACCOUNT = r"/2010-04-01/Accounts/(?P<account>AC\w+)"
CALLS = re.compile(ACCOUNT + r"/Calls\.json$")
CALL = re.compile(ACCOUNT + r"/Calls/(?P<sid>CA\w+)\.json$")
FINAL = {"completed", "busy", "no-answer", "failed", "canceled"}
# What the citizens do (the rest: a person who presses 1, 1, 1).
MACHINE_SHARE = 0.02  # answering machine (AnsweredBy=machine_start): the hotline hangs up
NO_ANSWER_SHARE = 0.02  # nobody picks up: no-answer after the ring
REVIEW_SHARE = 0.10  # a person who presses 1, 2, 3 (partly solved, dissatisfied: reviewer)

_out = threading.Lock()


def emit(record: dict[str, Any]) -> None:
    line = json.dumps(record)
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def rfc2822(moment: float | None) -> str | None:
    if moment is None:
        return None
    return format_datetime(datetime.fromtimestamp(moment, UTC), usegmt=True)


def split_url(url: str) -> tuple[str, str]:
    """``(scheme://host:port, /path?query)`` of an absolute URL."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    return base, url[len(base) :]


@dataclass
class FakeCall:
    sid: str
    account: str
    to: str
    from_: str
    url: str
    status_url: str
    events: set[str]
    attempt: str
    disposition: str  # human, review, machine_start, no-answer
    created: float
    status: str = "queued"
    start: float | None = None
    end: float | None = None
    answered_by: str | None = None
    sequence: int = 0
    webhooks: int = 0
    errors: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    hung_up: bool = False

    def as_json(self) -> dict[str, Any]:
        duration = None if self.end is None or self.start is None else int(self.end - self.start)
        return {
            "sid": self.sid,
            "account_sid": self.account,
            "parent_call_sid": None,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "phone_number_sid": None,
            "status": self.status,
            "direction": "outbound-api",
            "answered_by": self.answered_by,
            "api_version": "2010-04-01",
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(time.time()),
            "start_time": rfc2822(self.start),
            "end_time": rfc2822(self.end),
            "duration": None if duration is None else str(duration),
            "price": None,
            "price_unit": "USD",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": f"/2010-04-01/Accounts/{self.account}/Calls/{self.sid}.json",
            "subresource_uris": {},
        }


@dataclass
class Options:
    fail_rate: float = 0.003
    hold_s: float = 150.0
    ring_s: float = 0.5
    think_s: float = 0.2
    threads: int = 48
    seed: int = 12345


class Phones:
    """The calls created so far, and the timers and threads that play them."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.lock = threading.Lock()
        self.calls: dict[str, FakeCall] = {}
        self.order: list[str] = []  # creation order
        self.creates = 0
        self.playing = 0  # calls created and not yet played out
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._tick = itertools.count()
        self._wake = threading.Condition(self.lock)
        self._pool = ThreadPoolExecutor(max_workers=options.threads)
        threading.Thread(target=self._timer_loop, daemon=True).start()

    # -- timers ---------------------------------------------------------------------------

    def later(self, delay: float, step: Callable[[], None]) -> None:
        with self._wake:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._tick), step))
            self._wake.notify()

    def _timer_loop(self) -> None:
        while True:
            with self._wake:
                while not self._timers or self._timers[0][0] > time.monotonic():
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._wake.wait(timeout)
                _, _, step = heapq.heappop(self._timers)
            self._pool.submit(self._run, step)

    @staticmethod
    def _run(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as error:  # a bug of the stand-in: say so, never hang the run
            emit({"op": "bug", "t": time.time(), "error": f"{type(error).__name__}: {error}"})

    # -- the REST side --------------------------------------------------------------------

    def create(self, account: str, form: dict[str, list[str]], arrived: float) -> tuple[int, Any]:
        def one(name: str) -> str:
            return (form.get(name) or [""])[0]

        to, from_, url = one("To"), one("From"), one("Url")
        if not to or not from_ or not url:
            return 400, {"code": 21201, "message": "To, From and Url are required", "status": 400}
        status_url = one("StatusCallback")
        attempt = (parse_qs(urlsplit(status_url).query).get("attempt") or [""])[0]
        with self.lock:
            fail = self.rng.random() < self.options.fail_rate
            draw = self.rng.random()
            if fail:
                disposition = "human"  # held in the queue, then a person answers
            elif draw < MACHINE_SHARE:
                disposition = "machine_start"
            elif draw < MACHINE_SHARE + NO_ANSWER_SHARE:
                disposition = "no-answer"
            elif draw < MACHINE_SHARE + NO_ANSWER_SHARE + REVIEW_SHARE:
                disposition = "review"
            else:
                disposition = "human"
            call = FakeCall(
                sid="CA" + uuid.uuid4().hex,
                account=account,
                to=to,
                from_=from_,
                url=url,
                status_url=status_url,
                events=set(form.get("StatusCallbackEvent") or ["completed"]),
                attempt=attempt,
                disposition=disposition,
                created=arrived,
            )
            self.calls[call.sid] = call
            self.order.append(call.sid)
            self.creates += 1
            self.playing += 1
        emit(
            {
                "op": "create",
                "t": arrived,
                "sid": call.sid,
                "attempt": attempt,
                "to": to,
                "http": 500 if fail else 201,
                "disposition": disposition,
                "machine_detection": one("MachineDetection"),
            }
        )
        hold = self.options.hold_s if fail else 0.05
        self.later(hold, lambda: self._progress(call, "initiated"))
        if fail:
            return 500, {"code": 20500, "message": "Internal Server Error", "status": 500}
        return 201, call.as_json()

    def listing(self, query: dict[str, str], path: str) -> dict[str, Any]:
        size = max(1, min(int(query.get("PageSize") or 50), 1000))
        page = max(0, int(query.get("Page") or 0))
        after = _when(query.get("StartTime>"))
        before = _when(query.get("StartTime<"))
        on = _when(query.get("StartTime"))
        with self.lock:
            found = []
            for sid in reversed(self.order):  # newest first
                call = self.calls[sid]
                if query.get("To") and call.to != query["To"]:
                    continue
                if query.get("From") and call.from_ != query["From"]:
                    continue
                if query.get("Status") and call.status != query["Status"]:
                    continue
                if after or before or on:  # a call still queued has no start time
                    if call.start is None:
                        continue
                    started = datetime.fromtimestamp(call.start, UTC)
                    if after and not started > after:
                        continue
                    if before and not started < before:
                        continue
                    if on and started.date() != on.date():
                        continue
                found.append(call.as_json())
        chunk = found[page * size : (page + 1) * size]
        more = (page + 1) * size < len(found)
        keep = {k: v for k, v in query.items() if k not in ("Page", "PageToken")}

        def uri(number: int) -> str:
            return path + "?" + urlencode({**keep, "PageSize": size, "Page": number})

        return {
            "calls": chunk,
            "page": page,
            "page_size": size,
            "start": page * size,
            "end": page * size + max(len(chunk) - 1, 0),
            "uri": uri(page),
            "first_page_uri": uri(0),
            "previous_page_uri": uri(page - 1) if page else None,
            "next_page_uri": uri(page + 1) if more else None,
        }

    def find(self, sid: str) -> FakeCall | None:
        with self.lock:
            return self.calls.get(sid)

    def state(self) -> dict[str, int]:
        with self.lock:
            return {"creates": self.creates, "playing": self.playing}

    # -- the phone's side ----------------------------------------------------------------

    def _deliver(self, call: FakeCall, url: str, form: list[tuple[str, str]], what: str) -> str:
        base, path = split_url(url)
        try:
            status, body = post(base, Delivery(path, form), str(uuid.uuid4()), timeout=60.0)
        except OSError as error:
            status, body = 0, f"{type(error).__name__}: {error}"
        call.webhooks += 1
        if status != 200:
            call.errors.append(f"{what}: HTTP {status} {body[:120]}")
        return body if status == 200 else ""

    def _form(self, call: FakeCall, **extra: str) -> list[tuple[str, str]]:
        form = [
            ("AccountSid", call.account),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", call.sid),
            ("CallStatus", call.status),
            ("Called", call.to),
            ("Caller", call.from_),
            ("Direction", "outbound-api"),
            ("From", call.from_),
            ("To", call.to),
        ]
        return form + list(extra.items())

    def _callback(self, call: FakeCall, event: str) -> None:
        """The status callback of ``event`` (initiated, ringing, answered, completed)."""
        if event not in call.events or not call.status_url:
            return
        call.sequence += 1
        extra = {
            "SequenceNumber": str(call.sequence),
            "Timestamp": rfc2822(time.time()) or "",
            "CallbackSource": "call-progress-events",
        }
        if call.status in FINAL:
            duration = 0 if call.start is None else max(int((call.end or 0) - call.start), 1)
            extra["CallDuration"] = str(duration)
        if call.answered_by:
            extra["AnsweredBy"] = call.answered_by
        self._deliver(call, call.status_url, self._form(call, **extra), f"status {call.status}")

    def _progress(self, call: FakeCall, status: str) -> None:
        if call.hung_up:
            return self._finish(call, "completed")
        call.status = status
        self._callback(call, status)
        if status == "initiated":
            self.later(0.05, lambda: self._progress(call, "ringing"))
        elif status == "ringing":
            self.later(self.options.ring_s, lambda: self._pick_up(call))

    def _pick_up(self, call: FakeCall) -> None:
        if call.hung_up or call.disposition == "no-answer":
            return self._finish(call, "completed" if call.hung_up else "no-answer")
        call.status, call.start = "in-progress", time.time()
        call.answered_by = "machine_start" if call.disposition == "machine_start" else "human"
        self._callback(call, "answered")
        keys = ["1", "2", "3"] if call.disposition == "review" else ["1", "1", "1"]
        twiml = self._deliver(call, call.url, self._form(call, AnsweredBy=call.answered_by), "url")
        self._follow(call, twiml, keys)

    def _follow(self, call: FakeCall, twiml: str, keys: list[str]) -> None:
        """Do what the TwiML says: answer a Gather with the next key, follow a Redirect,
        else (Hangup, or the end of the document) the call ends."""
        try:
            root = ET.fromstring(twiml) if twiml else None
        except ET.ParseError:
            call.errors.append(f"not TwiML: {twiml[:120]}")
            root = None
        gather = root.find("Gather") if root is not None else None
        redirect = root.find("Redirect") if root is not None else None
        if call.hung_up or root is None or (gather is None and redirect is None):
            return self._finish(call, "completed")
        if len(call.keys) > 12:
            call.errors.append("more than 12 steps: hung up")
            return self._finish(call, "completed")
        if gather is not None:
            key = keys[len(call.keys)] if len(call.keys) < len(keys) else "1"
            action = gather.get("action") or call.url

            def press() -> None:
                call.keys.append(key)
                body = self._deliver(call, action, self._form(call, Digits=key), "gather")
                self._follow(call, body, keys)

            self.later(self.options.think_s, press)
            return None
        target = (redirect.text or "").strip() if redirect is not None else ""

        def redirected() -> None:
            call.keys.append("redirect")
            self._follow(call, self._deliver(call, target, self._form(call), "redirect"), keys)

        self.later(0.0, redirected)
        return None

    def _finish(self, call: FakeCall, status: str) -> None:
        call.status, call.end = status, time.time()
        self._callback(call, "completed")
        with self.lock:
            self.playing -= 1
        emit(
            {
                "op": "played",
                "t": call.end,
                "sid": call.sid,
                "attempt": call.attempt,
                "disposition": call.disposition,
                "status": status,
                "answered_by": call.answered_by,
                "answered_at": call.start,
                "keys": call.keys,
                "webhooks": call.webhooks,
                "errors": call.errors,
            }
        )

    def hang_up(self, call: FakeCall, status: str) -> None:
        call.hung_up = True
        if call.status == "queued" and status == "canceled":
            call.status = "canceled"


def _when(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        day = date.fromisoformat(raw[:10])
        return datetime(day.year, day.month, day.day, tzinfo=UTC)


def handler_for(phones: Phones) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as twilio-python's pooled session expects

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _authorised(self, account: str) -> bool:
            header = self.headers.get("Authorization", "")
            wanted = "Basic " + base64.b64encode(f"{account}:{AUTH_TOKEN}".encode()).decode()
            return header == wanted

        def _handle(self, method: str) -> None:
            arrived = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = parse_qs(raw, keep_blank_values=True)
            path, _, query_text = self.path.partition("?")
            query = dict(parse_qsl(query_text, keep_blank_values=True))
            if path == "/_bench/state":
                return self._reply(200, phones.state())
            found = CALLS.match(path) or CALL.match(path)
            if found is None:
                emit({"op": "unknown", "t": arrived, "method": method, "path": path})
                return self._reply(404, {"code": 20404, "message": "not found", "status": 404})
            if not self._authorised(found["account"]):
                return self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
            if found.re is CALLS and method == "POST":
                status, body = phones.create(found["account"], form, arrived)
                return self._reply(status, body)
            if found.re is CALLS:
                body = phones.listing(query, path)
                sids = [call["sid"] for call in body["calls"]]
                emit({"op": "list", "t": arrived, "query": query, "sids": sids})
                return self._reply(200, body)
            call = phones.find(found["sid"])
            if call is None:
                return self._reply(404, {"code": 20404, "message": "no such call", "status": 404})
            if method == "POST":
                wanted = (form.get("Status") or [""])[0]
                if wanted in ("completed", "canceled"):
                    phones.hang_up(call, wanted)
                emit({"op": "update", "t": arrived, "sid": call.sid, "status": wanted})
            else:
                emit({"op": "fetch", "t": arrived, "sid": call.sid})
            return self._reply(200, call.as_json())

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--fail-rate", type=float, default=Options.fail_rate)
    parser.add_argument("--hold", type=float, default=Options.hold_s)
    parser.add_argument("--ring", type=float, default=Options.ring_s)
    parser.add_argument("--think", type=float, default=Options.think_s)
    parser.add_argument("--threads", type=int, default=Options.threads)
    parser.add_argument("--seed", type=int, default=Options.seed)
    args = parser.parse_args(argv)
    options = Options(args.fail_rate, args.hold, args.ring, args.think, args.threads, args.seed)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(Phones(options)))
    server.daemon_threads = True
    emit({"op": "ready", "t": time.time()})
    server.serve_forever()


if __name__ == "__main__":
    main()
