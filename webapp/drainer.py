"""The journal drainer: stores journaled webhooks within milliseconds of their arrival.

``webapp.gunicorn_conf`` starts one beside the web workers of each node (the journal is
that node's local files); ``hotline drain`` runs one pass by hand, and the worker runs
one every minute as a safety net. Only one drain runs at a time (a file lock), so any
number of them may be started.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

from flask import Flask

from ivr.config import EXTENSION_KEY, VoiceConfig
from ivr.persist import drain_journal, is_transient
from tickets.journal import MAX_BATCH, DrainResult

log = logging.getLogger(__name__)
# Each pass costs about what storing one webhook at once would; waiting between passes
# lets a pass store many (at 1,000 webhooks/s, ~20), while a webhook still reaches the
# database within a few tens of milliseconds.
INTERVAL_S = 0.02
OUTAGE_INTERVAL_S = 1.0


def drain_once(app: Flask, *, wait: bool = True) -> DrainResult | None:
    """One batch; raises the database's error when it is unreachable."""
    config: VoiceConfig = app.extensions[EXTENSION_KEY]
    return drain_journal(config, wait=wait)


def drain_all(app: Flask) -> tuple[int, int]:
    """Drain until nothing older than now is left: (stored, still pending)."""
    stored = 0
    while True:
        result = drain_once(app)
        if result is None:
            continue
        stored += result.stored
        if not result.stored or not result.pending:
            return stored, result.pending


def drain_forever(app: Flask, stop: threading.Event, *, still_wanted: Callable[[], bool]) -> None:
    """Drain in a loop until ``stop`` is set or ``still_wanted()`` says no; then once more."""
    interval = INTERVAL_S
    while not stop.is_set() and still_wanted():
        try:
            result = drain_once(app, wait=False)
            backlog = result is not None and result.pending > MAX_BATCH
            interval = 0.0 if backlog else INTERVAL_S
        except Exception as error:
            if is_transient(error):
                log.error("journal drain: database unavailable; trying again in %.0f s", interval)
            else:
                log.exception("journal drain failed")
            interval = OUTAGE_INTERVAL_S
        stop.wait(interval)
    try:
        drain_all(app)
    except Exception:
        log.exception("the last journal drain failed; the journal keeps the webhooks")


def run_drainer(app: Flask, parent_pid: int | None = None) -> None:
    """The drainer process: runs until SIGTERM/SIGINT, or until its parent is gone."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("journal drainer started (pid %d)", os.getpid())
    drain_forever(app, stop, still_wanted=lambda: parent_pid is None or os.getppid() == parent_pid)
    log.info("journal drainer stopped")
