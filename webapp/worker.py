"""The background worker (Procfile: worker): a Huey consumer.

Storage is a SQLite file by default and Redis when ``REDIS_URL`` is set. The truth is
always in the database rows; a job lost with the queue is found again by the next sweep.
Run: ``huey_consumer webapp.worker.huey``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from flask import Flask
from huey import Huey, RedisHuey, SqliteHuey, crontab

from ivr import callback_calls
from ivr.config import voice_config
from ivr.dispatch import dispatch_waiting_calls, sweep
from webapp import create_app
from webapp.drainer import drain_all
from webapp.settings import Settings, load_settings
from webapp.sms import run_sweep
from webapp.surveys import run_survey_sweep, survey_plan

log = logging.getLogger(__name__)


def make_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    if settings.redis_url:
        return RedisHuey("hotline", url=settings.redis_url, immediate=immediate)
    Path(settings.huey_sqlite_path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("hotline", filename=settings.huey_sqlite_path, immediate=immediate)


huey = make_huey(load_settings())


_app: Flask | None = None


def worker_app() -> Flask:
    """The app the jobs run in: built once per worker process."""
    global _app
    if _app is None:
        _app = create_app()
    return _app


@huey.periodic_task(crontab(minute="*"), retries=2, retry_delay=10)
def drain_webhook_journal() -> tuple[int, int]:
    """Store journaled webhooks (every minute): after an outage, or with no drainer running."""
    app = worker_app()
    with app.app_context():
        return drain_all(app)


@huey.task(retries=2, retry_delay=5)
def dispatch_queue() -> int:
    """A routing decision at its scheduled time (a wrap-up is over: the decision ends it;
    a caller's wait for a speaker of their language is over). How many calls were rung."""
    app = worker_app()
    with app.app_context():
        return len(dispatch_waiting_calls(config=voice_config()))


@huey.periodic_task(crontab(minute="*"), retries=1, retry_delay=10)
def sweep_call_takers() -> int:
    """The safety net: wrap-ups that are over, rings whose last callback was lost, language
    waits that ran out; then one routing decision. How many calls were rung."""
    app = worker_app()
    with app.app_context():
        return len(sweep(voice_config()))


@huey.periodic_task(crontab(minute="*"), retries=0)
def deliver_sms() -> dict[str, Any]:
    """Every minute: escalate overdue work orders (督办), then send the SMS outbox's due
    rows, each exactly once (``tickets.sms_delivery``). Not retried: what a failed sweep
    left is due again at the next one."""
    app = worker_app()
    with app.app_context():
        return run_sweep(app).as_dict()


@huey.task(retries=0)
def deliver_sms_now() -> dict[str, Any]:
    """The same sweep at once: enqueued after a commit that put a text in the outbox
    (``webapp.sms_cli.deliver_sms_soon``), so it goes out within seconds."""
    app = worker_app()
    with app.app_context():
        return run_sweep(app).as_dict()


@huey.periodic_task(crontab(minute="*"), retries=0)
def place_survey_calls() -> dict[str, Any]:
    """Every minute: plan the surveys of newly answered orders, then place the due survey
    calls inside calling hours, paced, each exactly once (``tickets.surveys``). Not
    retried: what a failed sweep left is due again at the next one."""
    app = worker_app()
    with app.app_context():
        return run_survey_sweep(app).as_dict()


@huey.periodic_task(crontab(minute="*"), retries=0)
def call_back_citizens() -> dict[str, Any]:
    """Every minute: plan the open callback tasks inside calling hours, then claim as many
    due ones as call-takers are free and ring a call-taker for each; the citizen is dialled
    when they answer (``ivr.callback_calls``). Not retried: the next sweep finds the rest."""
    app = worker_app()
    with app.app_context():
        owner = f"worker:{socket.gethostname()}:{os.getpid()}"[:80]
        plan = survey_plan(app)
        return callback_calls.sweep(voice_config(), plan, owner=owner).as_dict()
