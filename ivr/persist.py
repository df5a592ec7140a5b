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
    """Describe this delivery: Twilio's parameters, its dedupe key, what it changes."""
    sequence = changes.pop("sequence_number", None)
    return StoredWebhook(
        kind=kind,
        call_sid=request.values.get("CallSid", "")[:34] or None,
        params=form_snapshot(request.values),
        dedupe_key=dedupe_key(request.headers.get(IDEMPOTENCY_HEADER), *fallback_key),
        sequence_number=sequence,  # type: ignore[arg-type]
        **changes,  # type: ignore[arg-type]
    )


def persist(hook: StoredWebhook) -> bool | None:
    """True when stored now, False for a retry seen before, None when spooled."""
    config = voice_config()
    try:
        with config.sessions.begin() as session:
            return store_webhook(session=session, hook=hook, context=config.store_context)
    except (OperationalError, DBAPIError) as error:
        if (
            isinstance(error, DBAPIError)
            and not error.connection_invalidated
            and not isinstance(error, OperationalError)
        ):
            raise
        log.error("database unavailable; spooling the %s webhook of %s", hook.kind, hook.call_sid)
        key = hook.dedupe_key or f"spool:{uuid.uuid4()}"
        config.spool.append({**hook.to_json(), "dedupe_key": key})
        return None
