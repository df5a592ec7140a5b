"""Storing the webhooks spooled while the database was down (worker and CLI)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from ivr.config import EXTENSION_KEY, VoiceConfig
from tickets.webhooks import StoredWebhook, store_webhook

log = logging.getLogger(__name__)


def replay_spool(app: Flask) -> tuple[int, int]:
    """(stored, still pending) after one pass over the spool."""
    config: VoiceConfig = app.extensions[EXTENSION_KEY]

    def store(document: dict[str, Any]) -> None:
        with config.sessions.begin() as session:
            store_webhook(
                session=session,
                hook=StoredWebhook.from_json(document),
                context=config.store_context,
            )

    stored, pending = config.spool.replay(store)
    if stored or pending:
        log.info("replayed %d spooled webhooks, %d still pending", stored, pending)
    return stored, pending
