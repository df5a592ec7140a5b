"""The webhook journal: appended on the hot path, drained in arrival order, exactly once."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from ivr.gateway import ConsoleGateway
from tests.conftest import make_settings
from tests.support.webhooks import TwilioSender, call_params, new_call_sid
from tickets.journal import Journal, pending_lines
from tickets.models import Call, CallEvent, WorkOrder
from tickets.webhooks import StoredWebhook
from webapp import create_app
from webapp.drainer import drain_all


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def background_app(settings, journal_dir: Path) -> Iterator[Flask]:
    """The app as the web workers run it beside a drainer: webhooks are only journaled."""
    app = create_app(
        make_settings(
            settings.database_url, JOURNAL_DRAIN="background", JOURNAL_DIR=str(journal_dir)
        ),
        gateway=ConsoleGateway(),
    )
    yield app
    app.extensions["hotline.engine"].dispose()


@pytest.fixture
def sender(background_app: Flask, settings) -> TwilioSender:
    return TwilioSender(
        background_app.test_client(), settings.webhook_auth_token, settings.public_base_url
    )


def _kinds(db, sid: str) -> list[str]:
    return list(
        db.scalars(select(CallEvent.kind).where(CallEvent.call_sid == sid).order_by(CallEvent.id))
    )


def test_webhooks_are_answered_at_once_and_stored_by_the_drain_in_order(
    sender, background_app, db, journal_dir
):
    sid = new_call_sid()
    incoming = sender.post("/voice/incoming", call_params(sid, CallStatus="ringing"))
    menu = sender.post("/voice/step/language?try=1", call_params(sid, Digits="1"))
    queue = sender.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits="2"))
    assert all(r.status_code == 200 for r in (incoming, menu, queue))
    assert b"<Conference" in queue.data
    assert db.scalar(select(Call).where(Call.call_sid == sid)) is None  # not stored yet
    assert pending_lines(journal_dir) == 3

    assert drain_all(background_app) == (3, 0)

    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.front_door_path == ">greeting>language:zh>menu:2"
    assert call.intent == "complaint" and call.queued_at is not None
    assert call.created_at <= call.queued_at
    assert _kinds(db, sid) == ["incoming", "step:language", "step:menu"]
    assert not list(journal_dir.glob("*.jsonl"))  # drained files are removed


def test_a_retried_delivery_is_stored_once_even_within_one_batch(sender, background_app, db):
    sid = new_call_sid()
    sender.post("/voice/incoming", call_params(sid, CallStatus="ringing"), token="first")
    sender.post("/voice/incoming", call_params(sid, CallStatus="ringing"), token="first")
    sender.post("/voice/step/language?try=1", call_params(sid, Digits="3"), token="second")
    drain_all(background_app)
    sender.post("/voice/step/language?try=1", call_params(sid, Digits="3"), token="second")
    drain_all(background_app)

    assert _kinds(db, sid) == ["incoming", "step:language"]
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.front_door_path == ">greeting>language:en"


def test_the_emergency_lane_is_stored_at_once_after_what_came_before(
    sender, background_app, db, journal_dir
):
    sid = new_call_sid()
    sender.post("/voice/incoming", call_params(sid, CallStatus="ringing"))
    sender.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits="9"))
    fire = sender.post("/voice/step/emergency?lang=zh&try=1", call_params(sid, Digits="1"))

    assert b"119" in fire.data
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.front_door_path == ">greeting>menu:9>emergency:fire"
    assert db.scalar(select(WorkOrder).where(WorkOrder.call_sid == sid)).is_urgent
    assert pending_lines(journal_dir) == 0


def test_lines_of_several_writers_are_stored_in_the_order_they_arrived(
    background_app, db, journal_dir
):
    """Two web processes' files: the drain merges them by arrival time."""
    sid = new_call_sid()
    first, second = Journal(journal_dir), Journal(journal_dir)
    first._pid = second._pid = os.getpid()  # one process here, two files all the same
    writers = [first, second, first, second]
    steps = ["greeting", "language:bo", "menu:9", "emergency:police"]
    for index, (writer, step) in enumerate(zip(writers, steps, strict=True)):
        hook = StoredWebhook(
            kind=f"step:{index}",
            call_sid=sid,
            params=call_params(sid),
            dedupe_key=f"{sid}:{index}",
            is_new_call=index == 0,
            step=step,
        )
        writer.append(hook.to_json())
    assert len(list(journal_dir.glob("*.jsonl"))) == 2

    assert drain_all(background_app) == (4, 0)
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.front_door_path == ">greeting>language:bo>menu:9>emergency:police"


def test_a_line_stamped_after_the_drain_began_waits_for_the_next_drain(journal_dir):
    journal_dir.mkdir(parents=True)
    future = time.time_ns() + 60 * 10**9
    line = json.dumps({"t": future, "d": {"kind": "late"}})
    (journal_dir / "host.1.1.000001.jsonl").write_text(line + "\n")
    stored: list[list[dict]] = []
    result = Journal(journal_dir).drain(stored.append, is_transient=lambda _: False)
    assert result is not None and (result.stored, result.pending) == (0, 1)
    assert stored == [] and pending_lines(journal_dir) == 1


def test_a_torn_line_of_a_dead_writer_is_set_aside_and_the_rest_stored(journal_dir):
    journal_dir.mkdir(parents=True)
    whole = json.dumps({"t": 1, "d": {"kind": "whole"}})
    (journal_dir / "host.1.1.000001.jsonl").write_text(whole + '\n{"t": 2, "d": {"ki')
    stored: list[list[dict]] = []
    result = Journal(journal_dir).drain(stored.append, is_transient=lambda _: False)
    assert result is not None and result.stored == 1
    assert stored == [[{"kind": "whole"}]]
    assert not list(journal_dir.glob("host.*.jsonl"))
    assert '{"t": 2' in (journal_dir / "rejected.jsonl").read_text()


def test_a_live_writer_keeps_its_file_until_it_moves_on(journal_dir):
    writer = Journal(journal_dir, max_file_bytes=200)
    drain = Journal(journal_dir)
    writer.append({"kind": "a"})
    drain.drain(lambda _: None, is_transient=lambda _: False)
    assert len(list(journal_dir.glob("*.jsonl"))) == 1  # still open for appends
    writer.append({"kind": "b", "padding": "x" * 200})  # past the size: the file is retired
    writer.append({"kind": "c"})  # a new file
    stored: list[list[dict]] = []
    drain.drain(stored.append, is_transient=lambda _: False)
    assert [d["kind"] for batch in stored for d in batch] == ["b", "c"]
    drain.drain(stored.append, is_transient=lambda _: False)  # idle: tidies up
    assert len(list(journal_dir.glob("*.jsonl"))) == 1


def test_a_bad_line_is_set_aside_and_the_good_ones_are_stored(background_app, db, journal_dir):
    sid = new_call_sid()
    journal = Journal(journal_dir)
    good = StoredWebhook("incoming", sid, call_params(sid), f"{sid}:1", is_new_call=True)
    bad = StoredWebhook("step:x", sid, call_params(sid), f"{sid}:2", emergency_line="nowhere")
    journal.append(good.to_json())
    journal.append(bad.to_json())

    assert drain_all(background_app) == (1, 0)
    assert _kinds(db, sid) == ["incoming"]
    assert "nowhere" in (journal_dir / "rejected.jsonl").read_text()


def test_a_drain_while_the_database_is_down_keeps_every_line(settings, journal_dir, db):
    down = create_app(
        make_settings(
            f"sqlite:///{journal_dir.parent}/missing/dir/hotline.db", JOURNAL_DIR=str(journal_dir)
        ),
        gateway=ConsoleGateway(),
    )
    sid = new_call_sid()
    Journal(journal_dir).append(
        StoredWebhook("incoming", sid, call_params(sid), f"{sid}:1", is_new_call=True).to_json()
    )
    try:
        with pytest.raises(Exception, match="unable to open database"):
            drain_all(down)
    finally:
        down.extensions["hotline.engine"].dispose()
    assert pending_lines(journal_dir) == 1

    live = create_app(
        make_settings(settings.database_url, JOURNAL_DIR=str(journal_dir)),
        gateway=ConsoleGateway(),
    )
    try:
        assert drain_all(live) == (1, 0)
    finally:
        live.extensions["hotline.engine"].dispose()
    assert _kinds(db, sid) == ["incoming"]


def test_a_second_drain_does_not_wait_for_the_first(journal_dir):
    Journal(journal_dir).append({"kind": "a"})
    outer = Journal(journal_dir)

    def store(_documents: list[dict]) -> None:
        assert Journal(journal_dir).drain(store, is_transient=lambda _: False, wait=False) is None

    assert outer.drain(store, is_transient=lambda _: False).stored == 1
