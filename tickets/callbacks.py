"""Callback tasks: the citizens a call-taker calls back, one list in place-in-line order.

A task is opened when a caller presses 1 at the queue's callback offer (``queue-request``)
or hangs up while waiting in the queue (``abandoned``); either way their first queue entry
is their place in line (the task row is the record; the call's history already holds the
webhook or the room's end that led to it). A task worked is marked done with its outcome,
who and when (and a ``callback:done`` event on the call's history); nothing is deleted.
Service functions take the session and never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tickets.events import record_event
from tickets.models import (
    Call,
    CallbackOutcome,
    CallbackSource,
    CallbackStatus,
    CallbackTask,
)

MAX_NOTE = 1000


class CallbackError(ValueError):
    """A task that cannot be changed as asked; the message is for the console."""


def open_callback_task(
    *, session: Session, call: Call, source: CallbackSource, at: datetime
) -> bool:
    """A task for ``call`` unless it has one (a retried webhook); True when opened.

    The place in line is the call's first queue entry (``at`` for a call never queued).
    """
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = (
        module.insert(CallbackTask)
        .values(
            call_sid=call.call_sid,
            caller_kind=call.caller_kind,
            caller_number=call.from_number,
            language=call.language or "zh",
            intent=call.intent,
            queued_at=call.queued_at or at,
            requested_at=at,
            source=source,
            status=CallbackStatus.OPEN,
            note="",
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["call_sid"])
    )
    return bool(session.execute(statement).rowcount)


def list_open_tasks(*, session: Session, limit: int = 500) -> list[CallbackTask]:
    """The open tasks in place-in-line order (first queue entry, then request)."""
    return list(
        session.scalars(
            select(CallbackTask)
            .where(CallbackTask.status == CallbackStatus.OPEN)
            .order_by(CallbackTask.queued_at, CallbackTask.requested_at, CallbackTask.id)
            .limit(limit)
        )
    )


def list_done_tasks(*, session: Session, limit: int = 20) -> list[CallbackTask]:
    """The tasks worked most recently."""
    return list(
        session.scalars(
            select(CallbackTask)
            .where(CallbackTask.status == CallbackStatus.DONE)
            .order_by(CallbackTask.handled_at.desc(), CallbackTask.id.desc())
            .limit(limit)
        )
    )


def find_task_for_call(*, session: Session, call_sid: str) -> CallbackTask | None:
    return session.scalar(select(CallbackTask).where(CallbackTask.call_sid == call_sid))


def complete_task(
    *,
    session: Session,
    task_id: int,
    outcome: CallbackOutcome,
    note: str,
    actor: str,
    at: datetime,
) -> CallbackTask:
    """Mark an open task done (who, when, what came of it); CallbackError otherwise."""
    task = session.scalars(
        select(CallbackTask).where(CallbackTask.id == task_id).with_for_update()
    ).first()
    if task is None:
        raise CallbackError("there is no such callback task")
    if task.status is not CallbackStatus.OPEN:
        raise CallbackError(f"this callback was already marked done by {task.handled_by}")
    task.status = CallbackStatus.DONE
    task.outcome = outcome
    task.note = note.strip()[:MAX_NOTE]
    task.handled_by = actor
    task.handled_at = at
    record_event(
        session=session,
        kind="callback:done",
        call_sid=task.call_sid,
        params={"who": actor, "outcome": outcome.value, "note": task.note},
        dedupe_key=None,
    )
    return task
