"""Storing a webhook, or spooling it when the database is briefly down."""

from __future__ import annotations

import logging
import uuid

from flask import request
from sqlalchemy.exc import DBAPIError, OperationalError

from ivr.config import voice_config
from ivr.events import IDEMPOTENCY_HEADER, dedupe_key, form_snapshot
from tickets.webhooks import StoredWebhook, store_webhook

log = logging.getLogger(__name__)


def webhook_from_request(kind: str, *fallback_key: object, **changes: object) -> StoredWebhook:
    """Describe this delivery: Twilio's parameters, its dedupe key, what it changes.

    ``fallback_key``: the parts of a dedupe key for callbacks that come without Twilio's
    idempotency token (the call, the event, its sequence number).
    """
    return StoredWebhook(
        kind=kind,
        call_sid=request.values.get("CallSid", "")[:34] or None,
        params=form_snapshot(request.values),
        dedupe_key=dedupe_key(request.headers.get(IDEMPOTENCY_HEADER), *fallback_key),
        **changes,  # type: ignore[arg-type]
    )


def persist(hook: StoredWebhook) -> bool | None:
    """True when stored now, False for a retry seen before, None when spooled."""
    config = voice_config()
    try:
        with config.sessions.begin() as session:
            return store_webhook(session=session, hook=hook, context=config.store_context)
    except DBAPIError as error:
        # Only an unreachable database is spooled; bad data is a bug and goes to the
        # route's safety net (apology TwiML, logged).
        if not (isinstance(error, OperationalError) or error.connection_invalidated):
            raise
        log.error("database unavailable; spooling the %s webhook of %s", hook.kind, hook.call_sid)
        key = hook.dedupe_key or f"spool:{uuid.uuid4()}"
        config.spool.append({**hook.to_json(), "dedupe_key": key})
        return None
