"""Storing webhooks: appended to the journal and drained, or stored at once.

Two ways, one store. ``persist`` on the hot path only appends the webhook to this
process's journal file when a drainer runs beside the web workers (``JOURNAL_DRAIN=
background``, set by ``webapp.gunicorn_conf``), so the caller never waits for the
database; otherwise, and for a webhook whose follow-up needs the stored state (the
emergency lane), it first drains what is journaled (earlier webhooks first) and stores
this one in the same request. A database that is down only delays storing: the webhook
stays in the journal and the caller is answered all the same.

After queue entries are stored (in the request, or by a drain's batch), routing decides
who rings whom (``ivr.dispatch``): the caller's own webhook never waits for that decision
when a drainer runs.

``store_or_journal`` is that one path (what is journaled first, then this webhook; while
the database is unreachable, the webhook is journaled and the drain applies it later):
``persist`` stores the voice webhooks through it, and the SMS webhooks
(``ivr.sms_inbound``, ``ivr.sms_status``), which need what storing changed, call it with
their own store (``tickets.webhooks``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import request
from sqlalchemy.exc import DBAPIError, OperationalError

from ivr.config import VoiceConfig, voice_config
from ivr.dispatch import dispatch_waiting_calls
from ivr.events import IDEMPOTENCY_HEADER, dedupe_key, form_snapshot
from tickets.journal import DrainResult
from tickets.webhooks import StoredWebhook, store_webhook, store_webhooks

log = logging.getLogger(__name__)
T = TypeVar("T")


def webhook_from_request(kind: str, *fallback_key: object, **changes: object) -> StoredWebhook:
    """Describe this delivery: Twilio's parameters, its dedupe key, what it changes.

    ``fallback_key``: the parts of a dedupe key for callbacks that come without Twilio's
    idempotency token (the call, the event, its sequence number).
    """
    this_request = request._get_current_object()  # type: ignore[attr-defined]
    return StoredWebhook(
        kind=kind,
        call_sid=this_request.values.get("CallSid", "")[:34] or None,
        params=form_snapshot(this_request.args, this_request.form),
        dedupe_key=dedupe_key(this_request.headers.get(IDEMPOTENCY_HEADER), *fallback_key),
        received_at=datetime.now(UTC).isoformat(),
        **changes,  # type: ignore[arg-type]
    )


def persist(hook: StoredWebhook, *, now: bool = False) -> bool | None:
    """Store (or journal) one webhook.

    Returns True when stored now, False for a retry seen before, None when journaled
    (``now=False`` with a background drainer, or the database is down).
    """
    config = voice_config()
    if config.drain_in_background and not now:
        journal_webhook(config, hook)
        return None
    stored, journaled = store_or_journal(hook, store_webhook)
    if journaled:
        # Only an unreachable database is journaled for later; bad data is a bug and goes
        # to the route's safety net (apology TwiML, logged).
        log.error("database unavailable; journaled the %s webhook of %s", hook.kind, hook.call_sid)
        return None
    if stored and hook.enters_queue:
        after_queue_entries(config)
    return stored


def store_or_journal(hook: StoredWebhook, store: Callable[..., T]) -> tuple[T | None, bool]:
    """``store(session=, hook=, context=)`` now (after what is journaled) and what it
    returned; while the database is unreachable the webhook is journaled instead, for a
    drain to apply (``(None, True)``). Any other error is raised."""
    config = voice_config()
    try:
        if config.journal.has_pending():  # earlier webhooks first
            drain_journal(config)
        with config.sessions.begin() as session:
            stored = store(session=session, hook=hook, context=config.store_context)
    except DBAPIError as error:
        if not is_transient(error):
            raise
        journal_webhook(config, hook)
        return None, True
    return stored, False


def after_queue_entries(config: VoiceConfig) -> None:
    """Queue entries were stored: one routing decision (never fails the caller's webhook
    or the drain; the worker's sweep decides again within a minute)."""
    try:
        dispatch_waiting_calls(config=config)
    except Exception:
        log.exception("dispatch after queue entries failed")


def journal_webhook(config: VoiceConfig, hook: StoredWebhook) -> None:
    """Append the webhook to this process's journal: a drain stores it later."""
    document = hook.to_json()
    if not hook.dedupe_key:  # a journaled line may be stored twice: give it an identity
        document["dedupe_key"] = f"journal:{uuid.uuid4()}"
    config.journal.append(document)


def drain_journal(config: VoiceConfig, *, wait: bool = True) -> DrainResult | None:
    """Store one batch of journaled webhooks in arrival order (None: another drain runs).

    Raises the database's error when it is unreachable; the lines stay journaled.
    """

    queued: list[bool] = []

    def store(documents: list[dict[str, Any]]) -> None:
        with config.sessions.begin() as session:
            store_webhooks(
                session=session,
                hooks=[StoredWebhook.from_json(document) for document in documents],
                context=config.store_context,
            )
        if any(document.get("enters_queue") for document in documents):
            queued.append(True)

    result = config.journal.drain(store, is_transient=is_transient, wait=wait)
    if queued:  # after the batch's commit, one decision per batch
        after_queue_entries(config)
    return result


def is_transient(error: Exception) -> bool:
    """The database is unreachable (worth trying again), not the data bad."""
    return isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )
