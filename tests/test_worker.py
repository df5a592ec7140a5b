"""The worker's queue is real: Huey on Redis when REDIS_URL is set, else its SQLite file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, make_settings
from tests.support.webhooks import call_params, new_call_sid
from tickets.journal import Journal, pending_lines
from tickets.models import CallEvent
from tickets.webhooks import StoredWebhook
from webapp import worker


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, engine):
    env = {
        "DATABASE_URL": database_url,
        "JOURNAL_DIR": str(tmp_path / "journal"),
        "HUEY_SQLITE_PATH": str(tmp_path / "huey.db"),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "LOG_LEVEL": "warning",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    if worker._app is not None:
        worker._app.extensions["hotline.engine"].dispose()
        worker._app = None


def test_huey_storage_follows_the_settings(worker_env, monkeypatch):
    settings = make_settings(worker_env["DATABASE_URL"])
    assert type(worker.make_huey(settings)).__name__ == "SqliteHuey"
    with_redis = make_settings(worker_env["DATABASE_URL"], REDIS_URL="redis://127.0.0.1:1/0")
    assert type(worker.make_huey(with_redis)).__name__ == "RedisHuey"


def test_journaled_webhooks_are_stored_by_the_worker_through_its_queue(worker_env, db):
    settings = make_settings(
        worker_env["DATABASE_URL"],
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        HUEY_SQLITE_PATH=worker_env["HUEY_SQLITE_PATH"],
    )
    huey = worker.make_huey(settings)
    task = huey.task()(worker.drain_webhook_journal.func)
    sid = new_call_sid()
    hook = StoredWebhook(
        kind="incoming",
        call_sid=sid,
        params=call_params(sid),
        dedupe_key=f"journal:{sid}",
        is_new_call=True,
        step="greeting",
    )
    Journal(worker_env["JOURNAL_DIR"]).append(hook.to_json())
    huey.flush()

    task()  # enqueued in the real storage (Redis in CI's second run, SQLite otherwise)
    queued = huey.dequeue()
    assert queued is not None
    assert huey.execute(queued) == (1, 0)

    assert db.scalar(select(CallEvent.kind).where(CallEvent.call_sid == sid)) == "incoming"
    assert pending_lines(worker_env["JOURNAL_DIR"]) == 0
