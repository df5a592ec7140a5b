"""The baselines that ``bench/webhooks.py`` measures the hotline against.

``app`` is the bare WSGI app of the issue: it reads the request body (as any real app
must) and answers a fixed TwiML string, the same document the hotline answers to a caller
pressing 1 at the main menu. It costs what gunicorn's sync worker costs, nothing more.

``create(level)`` builds the "ladder" of the issue, one layer more per level, so that the
price of each layer is measured under the same gunicorn settings (``--ladder``):

* ``flask``  Flask routes the POST and renders the answer with twilio's VoiceResponse;
* ``signed`` plus twilio's RequestValidator on the form (as Twilio signs it);
* ``raw``    plus one raw INSERT of the event (sqlite3 or psycopg, no SQLAlchemy) and commit;
* ``orm``    plus one SQLAlchemy ORM insert of ``tickets.models.CallEvent`` and commit.

The database levels read ``DATABASE_URL`` and write to the ``call_events`` table that
``hotline migrate`` creates, with the same SQLite pragmas as ``tickets.db.make_engine``.
Loaded by gunicorn as ``bare_app:app`` or ``bare_app:create('orm')`` (``--pythonpath bench``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

MENU_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Say language="cmn-CN" voice="Polly.Zhiyu">正在为您转接人工服务，请稍候。</Say>'
    '<Dial action="http://127.0.0.1:5000/voice/step/after-conference?lang=zh&amp;try=1" '
    'method="POST"><Conference beep="false" endConferenceOnExit="true" '
    'participantLabel="citizen" startConferenceOnEnter="false" '
    'statusCallback="http://127.0.0.1:5000/voice/conference-status" '
    'statusCallbackEvent="start end join leave" statusCallbackMethod="POST" '
    'waitMethod="POST" waitUrl="http://127.0.0.1:5000/voice/wait/queue?lang=zh">'
    "CA11111111111111111111111111111111</Conference></Dial></Response>"
).encode()
HEADERS = [
    ("Content-Type", "text/xml; charset=utf-8"),
    ("Content-Length", str(len(MENU_TWIML))),
]
LEVELS = ("flask", "signed", "raw", "orm")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The bare WSGI app: read the body, answer the fixed TwiML."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", HEADERS)
    return [MENU_TWIML]


def _event_writer(level: str) -> Callable[[str | None, str | None, dict[str, Any]], None]:
    """One insert + commit per call, raw driver or ORM, on DATABASE_URL."""
    url = os.environ["DATABASE_URL"]
    if level == "orm":
        from sqlalchemy.orm import sessionmaker

        from tickets.db import make_engine
        from tickets.models import CallEvent

        sessions = sessionmaker(make_engine(url), expire_on_commit=False)

        def write_orm(call_sid: str | None, key: str | None, params: dict[str, Any]) -> None:
            with sessions() as session:
                session.add(
                    CallEvent(
                        call_sid=call_sid,
                        kind="step:menu",
                        dedupe_key=key,
                        received_at=datetime.now(UTC),
                        params=params,
                    )
                )
                session.commit()

        return write_orm

    if url.startswith("sqlite:///"):
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=15)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        sql = (
            "INSERT INTO call_events (call_sid, kind, dedupe_key, received_at, params) "
            "VALUES (?, 'step:menu', ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING"
        )

        def write_sqlite(call_sid: str | None, key: str | None, params: dict[str, Any]) -> None:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            connection.execute(sql, (call_sid, key, now, json.dumps(params)))
            connection.commit()

        return write_sqlite

    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    holder: dict[str, Any] = {}  # connected lazily: gunicorn forks after import
    sql_pg = (
        "INSERT INTO call_events (call_sid, kind, dedupe_key, received_at, params) "
        "VALUES (%s, 'step:menu', %s, now(), %s::jsonb) ON CONFLICT (dedupe_key) DO NOTHING"
    )

    def write_pg(call_sid: str | None, key: str | None, params: dict[str, Any]) -> None:
        connection = holder.get("c")
        if connection is None:
            connection = holder["c"] = psycopg.connect(conninfo)
        with connection.cursor() as cursor:
            cursor.execute(sql_pg, (call_sid, key, json.dumps(params)))
        connection.commit()

    return write_pg


def create(level: str = "flask") -> Any:
    """The ladder app at ``level`` (see the module docstring)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    from flask import Flask, Response, abort, request
    from twilio.request_validator import RequestValidator
    from twilio.twiml.voice_response import Dial, VoiceResponse

    ladder = Flask(__name__)
    token = os.environ.get("TWILIO_AUTH_TOKEN") or "development-auth-token"
    base_url = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    validator = RequestValidator(token)
    write = _event_writer(level) if level in ("raw", "orm") else None
    checks_signature = level != "flask"

    @ladder.route("/voice/<kind>", methods=["GET", "POST"])
    @ladder.route("/voice/<kind>/<stage>", methods=["GET", "POST"])
    def voice(kind: str, stage: str = "") -> Response:
        if checks_signature:
            query = request.query_string.decode("latin-1")
            url = base_url + request.path + (f"?{query}" if query else "")
            signature = request.headers.get("X-Twilio-Signature", "")
            if not validator.validate(url, request.form, signature):
                abort(403)
        if write is not None and stage:
            params = {key: request.form.get(key) for key in request.form}
            write(
                request.form.get("CallSid"),
                request.headers.get("I-Twilio-Idempotency-Token"),
                params,
            )
        response = VoiceResponse()
        response.say("正在为您转接人工服务，请稍候。", voice="Polly.Zhiyu", language="cmn-CN")
        dial = Dial(action=base_url + "/voice/step/after-conference?lang=zh&try=1", method="POST")
        dial.conference(
            request.form.get("CallSid", "room"),
            wait_url=base_url + "/voice/wait/queue?lang=zh",
            wait_method="POST",
            start_conference_on_enter=False,
            end_conference_on_exit=True,
            beep=False,
            participant_label="citizen",
            status_callback=base_url + "/voice/conference-status",
            status_callback_event="start end join leave",
            status_callback_method="POST",
        )
        response.append(dial)
        return Response(response.to_xml(), content_type="text/xml; charset=utf-8")

    return ladder
