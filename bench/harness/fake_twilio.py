"""Twilio's REST API as far as the routing burst needs it, in a process of its own.

The hotline runs with its real ``TwilioGateway`` pointed here (``TWILIO_API_BASE_URL``);
this server answers the Participants create, the Conference update (end), the participant
update/delete and the Calls update with what twilio-python needs, and prints one JSON line
per request on stdout: the operation, the wall-clock time (``time.time()``) at which the
request reached it, and its parameters. A process of its own so that the bench's threads
(which play the callers and the phones) never delay those timestamps.

    python bench/harness/fake_twilio.py PORT
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

ACCOUNT = r"/2010-04-01/Accounts/(?P<account>AC\w+)"
CONFERENCE = ACCOUNT + r"/Conferences/(?P<room>[^/]+)"
PARTICIPANT = CONFERENCE + r"/Participants/(?P<label>[^/]+)\.json$"
ROUTES = [
    ("add", "POST", re.compile(CONFERENCE + r"/Participants\.json$")),
    ("participant", "POST", re.compile(PARTICIPANT)),
    ("remove", "DELETE", re.compile(PARTICIPANT)),
    ("end", "POST", re.compile(CONFERENCE + r"\.json$")),
    ("call", "POST", re.compile(ACCOUNT + r"/Calls/(?P<call>CA\w+)\.json$")),
]
_out = threading.Lock()


def emit(record: dict) -> None:
    line = json.dumps(record)
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as twilio-python's pooled session expects

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode())) if length else {}
        path = self.path.split("?", 1)[0]
        route = next(
            (
                (name, found)
                for name, verb, pattern in ROUTES
                if verb == method and (found := pattern.match(path))
            ),
            None,
        )
        if route is None:
            emit({"op": "unknown", "t": arrived, "method": method, "path": path})
            self._reply(404, {"code": 20404, "message": "not found", "status": 404})
            return
        operation, found = route
        params = {key: unquote(value) for key, value in found.groupdict().items()}
        account = params.pop("account")
        record = {"op": operation, "t": arrived, **params}
        body: dict = {"account_sid": account}
        status = 200
        if operation == "add":
            call_sid = "CA" + uuid.uuid4().hex
            record.update(
                call_sid=call_sid,
                label=form.get("Label", ""),
                to=form.get("To", ""),
                status_callback=form.get("StatusCallback", ""),
                conference_status_callback=form.get("ConferenceStatusCallback", ""),
            )
            body.update(call_sid=call_sid, label=form.get("Label"), status="queued")
            body.update(conference_sid=None, start_conference_on_enter=True, hold=False)
            status = 201
        elif operation == "end":
            body.update(sid=params["room"], status="completed")
        elif operation == "call":
            body.update(sid=params["call"], status=form.get("Status", "in-progress"))
        elif operation == "participant":
            body.update(call_sid="CA" + "0" * 32, label=params["label"], hold=True)
            record.update(form=form)
        emit(record)
        if operation == "remove":
            self._reply(204, None)
        else:
            self._reply(status, body)

    def _reply(self, status: int, body: dict | None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    emit({"op": "ready", "t": time.time()})
    server.serve_forever()


if __name__ == "__main__":
    main()
