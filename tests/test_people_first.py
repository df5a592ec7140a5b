"""A person's request writes before the webhooks waiting for the database; Twilio's
webhooks and what runs outside a request do not jump the queue."""

from __future__ import annotations

from flask import Blueprint, Flask

from tickets import sqlite_writer_lock
from webapp import people_first


def test_staff_requests_write_first_and_webhooks_wait_their_turn() -> None:
    app = Flask(__name__)
    hooks = Blueprint("hooks", __name__)

    @hooks.post("/voice/status")
    def status() -> str:
        return str(sqlite_writer_lock._urgent.get())

    @app.post("/console/state")
    def console() -> str:
        return str(sqlite_writer_lock._urgent.get())

    app.register_blueprint(hooks)
    people_first(app, [hooks])
    client = app.test_client()

    assert client.post("/console/state").text == "True"
    assert client.post("/voice/status").text == "False"
    assert not sqlite_writer_lock._urgent.get()  # nothing left behind after the request
