"""The console in a real browser (Playwright driving Debian's Chromium, headless).

The app runs in this process under werkzeug's threaded server (the console's event stream
holds a thread, as under the ``console`` process's gthread workers), with the console
gateway, so the test sees every REST operation the buttons cause. Twilio's side (the
citizen's call through the front door into the queue, and the participant callbacks when
a phone answers) is posted by the test, signed, through the same app object.

Skipped only when Chromium is not installed; CI installs it (``.ci/run``) and sets
``REQUIRE_BROWSER=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from email.utils import format_datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from ivr.gateway import ConsoleGateway
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL
from tests.support.orders import import_demo_directory
from tests.support.staff import PASSWORD, add_staff
from tests.support.webhooks import TwilioSender, call_params, new_call_sid
from tickets.db import utcnow
from tickets.models import CallEvent, CallTakerState, Staff, WorkOrder
from webapp import create_app
from webapp.settings import Settings

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CALLER = "+8613800000001"
CONSULTED = "+8613900000009"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("REQUIRE_BROWSER"),
        reason="Chromium is not installed (apt-get install chromium); CI installs it",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
expect = sync_api.expect


def wait_for(what: str, predicate: Callable[[], Any], seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def live_app(settings: Settings) -> Iterator[tuple[Flask, ConsoleGateway, str]]:
    gateway = ConsoleGateway()
    app = create_app(settings, gateway=gateway)
    # A quick heartbeat: a stream notices at its next write that the browser has gone.
    app.config.update(
        CONSOLE_POLL_SECONDS=0.1, CONSOLE_STREAM_SECONDS=60, CONSOLE_HEARTBEAT_SECONDS=0.3
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console-server", daemon=True)
    thread.start()
    try:
        yield app, gateway, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        # The request threads are daemons the server does not join: wait for the event
        # streams to end before the engine goes, so no connection is left open.
        wait_for("the event streams to end", lambda: not _request_threads(), seconds=15)
        app.extensions["hotline.engine"].dispose()


def _request_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


@pytest.fixture
def page() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.fail("REQUIRE_BROWSER is set but Chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(locale="en-GB", timezone_id="Asia/Shanghai")
        context.set_default_timeout(10_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


class Twilio:
    """Twilio's half of the call: signed webhooks, in the order Twilio sends them."""

    def __init__(self, app: Flask) -> None:
        self.sender = TwilioSender(app.test_client(), AUTH_TOKEN, PUBLIC_BASE_URL)
        self.conference_sid = "CF" + uuid.uuid4().hex
        self.sequence = 0

    def post(self, url: str, params: dict[str, str]) -> ET.Element:
        path = url.removeprefix(PUBLIC_BASE_URL)
        response = self.sender.post(path, params)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return ET.fromstring(response.get_data(as_text=True))

    def call_into_the_queue(self, call_sid: str) -> None:
        """Mandarin (1), complaint (2): the caller waits in their room for a call-taker."""
        params = call_params(call_sid, CALLER)
        twiml = self.post("/voice/incoming", params)
        for key in ("1", "2"):
            gather = twiml.find(".//Gather")
            assert gather is not None, ET.tostring(twiml)
            twiml = self.post(gather.attrib["action"], {**params, "Digits": key})
        room = twiml.find(".//Conference")
        assert room is not None and room.text == call_sid, ET.tostring(twiml)
        self.conference(call_sid, "participant-join", call_sid, "citizen")

    def conference(self, room: str, event: str, leg_sid: str, label: str) -> None:
        self.sequence += 1
        self.post(
            "/voice/conference-status",
            {
                "AccountSid": "AC" + "1" * 32,
                "ConferenceSid": self.conference_sid,
                "FriendlyName": room,
                "StatusCallbackEvent": event,
                "CallSid": leg_sid,
                "ParticipantLabel": label,
                "SequenceNumber": str(self.sequence),
                "Timestamp": format_datetime(utcnow(), usegmt=True),
            },
        )

    def answer(self, room: str, leg: Any) -> None:
        """The leg's phone rings, is answered, and the party joins the room."""
        self.post(leg.status_callback, {**call_params(leg.call_sid), "CallStatus": "ringing"})
        self.conference(room, "participant-join", leg.call_sid, leg.label)


def test_a_call_taker_takes_a_call_and_warm_transfers_it_from_the_browser(
    live_app: tuple[Flask, ConsoleGateway, str], page: Any, db: Session
) -> None:
    app, gateway, base = live_app
    taker = add_staff(db, "wang", phone_number="+8613900000003", display_name="Wang Fang")
    twilio = Twilio(app)

    # Log in and go available.
    page.goto(f"{base}/login")
    page.fill('input[name="username"]', "wang")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    expect(page).to_have_url(f"{base}/console")
    page.click("#go-available")
    expect(page.locator("#my-state")).to_have_text("Available")
    expect(page.locator("#live-indicator")).to_have_text("live")

    # A citizen calls; routing rings the call-taker: the screen shows it, no reload.
    page.evaluate("window.__sameDocument = true")
    call_sid = new_call_sid()
    twilio.call_into_the_queue(call_sid)
    taker_leg = wait_for("the call-taker's leg", lambda: gateway.added and gateway.added[-1])
    assert taker_leg.label == f"taker-{taker.id}"
    assert taker_leg.to == "+8613900000003"
    expect(page.locator("#my-state")).to_have_text("Ringing")
    expect(page.locator("#call-caller")).to_have_text(CALLER)
    expect(page.locator("#call-intent")).to_contain_text("Complaint")
    expect(page.locator("#call-language")).to_contain_text("Mandarin")

    # The call-taker's phone answers.
    twilio.answer(call_sid, taker_leg)
    expect(page.locator("#my-state")).to_have_text("On a call")
    expect(page.locator("#call-phase")).to_have_text("talking")
    expect(page.locator("#call-timer")).to_have_text("0:01", timeout=5_000)

    # Warm transfer to a number: the caller is held, the number rung.
    page.fill("#target-number", "139 0000 0009")
    page.click('button[data-op="warm-transfer"]')
    consult = wait_for("the consulted leg", lambda: gateway.added[-1].label == "consult-1")
    consult = gateway.added[-1]
    assert consult.to == CONSULTED
    expect(page.locator("#call-phase")).to_have_text("consulting (caller on hold)")
    expect(page.locator("#consult-ops")).to_be_visible()
    expect(page.locator("#handoff-form")).to_be_hidden()  # no emergency line was called
    expect(page.locator('#parties tr[data-label="citizen"]')).to_have_attribute(
        "data-state", "on_hold"
    )
    expect(page.locator('#parties tr[data-label="consult-1"]')).to_have_attribute(
        "data-state", "dialing"
    )

    # Completing before they answer is refused, with the machine's words on the page.
    page.click('button[data-op="complete-transfer"]')
    expect(page.locator("#call-message")).to_have_text(
        "cannot complete a transfer: the consulted party has not answered yet"
    )

    # They answer; the call-taker completes the transfer and leaves the call.
    twilio.answer(call_sid, consult)
    expect(page.locator('#parties tr[data-label="consult-1"]')).to_have_attribute(
        "data-state", "joined"
    )
    page.click('button[data-op="complete-transfer"]')
    wait_for("the call-taker's leg removed", lambda: gateway.removed)
    twilio.conference(call_sid, "participant-leave", taker_leg.call_sid, taker_leg.label)
    expect(page.locator("#my-state")).to_have_text("Wrap-up")
    expect(page.locator('#parties tr[data-label="citizen"]')).to_have_attribute(
        "data-state", "joined"
    )
    assert page.evaluate("window.__sameDocument") is True  # never reloaded

    # What Twilio was asked, and what the call's history says.
    assert [(h.label, h.hold) for h in gateway.held] == [("citizen", True), ("citizen", False)]
    assert [r.label for r in gateway.removed] == [taker_leg.label]
    db.expire_all()
    kinds = db.scalars(
        select(CallEvent.kind).where(CallEvent.call_sid == call_sid).order_by(CallEvent.id)
    ).all()
    for kind in (
        "conference:ring-call-taker",
        "conference:warm-transfer",
        "conference:refused",
        "conference:complete-transfer",
    ):
        assert kind in kinds, kinds
    who = db.scalars(
        select(CallEvent.params).where(
            CallEvent.call_sid == call_sid, CallEvent.kind == "conference:complete-transfer"
        )
    ).one()
    assert who["who"] == str(taker.id)
    profile = db.get(Staff, taker.id).call_taker
    assert profile.state is CallTakerState.WRAP_UP


def test_a_call_taker_records_a_call_and_dispatches_it_from_the_suggestions(
    live_app: tuple[Flask, ConsoleGateway, str], page: Any, db: Session
) -> None:
    app, gateway, base = live_app
    import_demo_directory(db)
    taker = add_staff(db, "wang", phone_number="+8613900000003", display_name="Wang Fang")
    twilio = Twilio(app)
    page.goto(f"{base}/login")
    page.fill('input[name="username"]', "wang")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.click("#go-available")
    expect(page.locator("#live-indicator")).to_have_text("live")
    call_sid = new_call_sid()
    twilio.call_into_the_queue(call_sid)
    taker_leg = wait_for("the call-taker's leg", lambda: gateway.added and gateway.added[-1])
    twilio.answer(call_sid, taker_leg)
    expect(page.locator("#my-state")).to_have_text("On a call")

    # The call-taker writes the order down; the three suggestions appear under the form.
    page.select_option("#kind", "complaint")
    page.fill("#summary", "楼房外墙瓷砖掉下来了，差点砸到人")
    page.fill("#district", "城关区")
    page.click('#work-order-form button[type="submit"]')
    expect(page.locator("#dispatch-step")).to_be_visible()
    choices = page.locator("#dispatch-choices li")
    expect(choices).to_have_count(3)
    expect(choices.first).to_contain_text("建筑外墙瓷砖脱落 (C01-041)")
    expect(choices.first).to_contain_text("城关区住房和城乡建设局")
    expect(choices.first).to_contain_text("urgent")
    expect(choices.first).to_contain_text("瓷砖")

    # The first is checked: dispatch it.
    page.click('#dispatch-form button[type="submit"]')
    expect(page.locator("#call-message")).to_contain_text("dispatched to 城关区住房和城乡建设局")
    expect(page.locator("#dispatch-step")).to_be_hidden()
    db.expire_all()
    order = db.scalar(select(WorkOrder).where(WorkOrder.call_sid == call_sid))
    assert order is not None and order.department_code == "D-CGQ-ZJJ"
    assert order.history[-1].actor == f"staff:{taker.id}"
