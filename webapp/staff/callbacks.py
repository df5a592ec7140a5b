"""The callback list: citizens to call back, in their place in line.

One list for both kinds of task (``tickets.callbacks``): the callers who pressed 1 at the
queue's callback offer and the callers who hung up while waiting. Call-takers and floor
managers work it: each row shows the caller's number (in full for the roles that call
back, masked for anyone else, as on the live console), language, intent and how long they
waited; "done" records the outcome with who and when.

The worker calls the open tasks back (``ivr.callback_calls``: a free call-taker first,
then the citizen into their room; retried like a survey), and a call-taker who is
available can start one at once with "Call back now" (they are rung first). Each row says
where its calls stand: attempts, the next one, being called (with whom), reached (the
outcome is the call-taker's to record here), or not reached after the last attempt.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from ivr import callback_calls
from ivr.config import voice_config
from tickets import callbacks
from tickets.db import utcnow
from tickets.models import CallbackOutcome, CallbackSource, CallbackTask, CallTaker, Role, Staff
from tickets.phones import mask_number
from webapp.auth import db_session, error_pages, roles_required
from webapp.settings import Settings
from webapp.staff.forms import LABELS, LANGUAGE_LABELS
from webapp.staff.live_snapshot import INTENT_LABELS, can_see_numbers

log = logging.getLogger(__name__)
bp = error_pages(Blueprint("callbacks", __name__, url_prefix="/console/callbacks"))
bp.context_processor(lambda: LABELS)
CALLBACK_ROLES = (Role.CALL_TAKER, Role.FLOOR_MANAGER)
workers_only = roles_required(*CALLBACK_ROLES)
call_takers_only = roles_required(Role.CALL_TAKER)

OUTCOME_LABELS = {
    CallbackOutcome.REACHED: "Reached the caller 已回电",
    CallbackOutcome.NO_ANSWER: "No answer 无人接听",
    CallbackOutcome.UNREACHABLE: "Number unreachable or unknown 无法联系",
    CallbackOutcome.NOT_NEEDED: "Not needed (called again, served) 无需回电",
}
SOURCE_LABELS = {
    CallbackSource.QUEUE_REQUEST: "Asked in the queue 排队中留言",
    CallbackSource.ABANDONED: "Hung up while waiting 放弃呼叫",
}
CALLER_KIND_LABELS = {
    "anonymous": "withheld number",
    "client": "browser caller",
    "sip": "SIP caller",
    "unknown": "unknown number",
}


class DoneForm(FlaskForm):
    outcome = SelectField(
        "Outcome",
        choices=[SelectChoice(outcome.value, label) for outcome, label in OUTCOME_LABELS.items()],
        validators=[InputRequired()],
    )
    note = StringField("Note", validators=[Optional(), Length(max=callbacks.MAX_NOTE)])


def _waited(task: CallbackTask) -> str:
    seconds = max(0, int((task.requested_at - task.queued_at).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _caller(task: CallbackTask, full: bool) -> str:
    if not task.caller_number:
        return CALLER_KIND_LABELS.get(task.caller_kind, "unknown number")
    return task.caller_number if full else mask_number(task.caller_number)


def _local(value: datetime | None) -> str:
    if value is None:
        return "-"
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    return value.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S")


def _calling(task: CallbackTask, now: datetime, hosts: dict[str, str]) -> str:
    """Where the task's calls stand."""
    if task.reached_at is not None:
        return "Reached: record the outcome 已接通，请登记结果"
    if task.lease_owner and task.lease_until and task.lease_until > now:
        if not task.last_room:
            return "About to be called 即将回电"
        host = hosts.get(task.last_room)
        return f"Being called now by {host} 正在回电" if host else "Being called now 正在回电"
    if task.note:  # the worker gave up: "not reached after 3 attempts", "cannot be called"
        return task.note
    if not task.caller_number:
        return "No number to call 无号码"
    if task.next_attempt_at is not None:
        return f"Next call {_local(task.next_attempt_at)}"
    return "To be planned 待安排"


def _row(
    task: CallbackTask, full: bool, now: datetime, hosts: dict[str, str] | None = None
) -> dict[str, object]:
    return {
        "calling": _calling(task, now, hosts or {}),
        "attempts": task.attempts,
        "callable": bool(task.caller_number),
        "id": task.id,
        "caller": _caller(task, full),
        "language": LANGUAGE_LABELS.get(task.language, task.language),
        "intent": INTENT_LABELS.get(task.intent or "", task.intent or "-"),
        "source": SOURCE_LABELS[task.source],
        "queued_at": _local(task.queued_at),
        "waited": _waited(task),
        "outcome": OUTCOME_LABELS[task.outcome] if task.outcome else "",
        "note": task.note,
        "handled_by": task.handled_by or "",
        "handled_at": _local(task.handled_at),
    }


@bp.get("")
@workers_only
def index() -> ResponseReturnValue:
    return _page()


def _page() -> str:
    db = db_session()
    full = can_see_numbers(current_user.roles)
    now = utcnow()
    open_tasks = callbacks.list_open_tasks(session=db)
    rooms = [task.last_room for task in open_tasks if task.last_room]
    hosts: dict[str, str] = {}
    if rooms:
        found = db.execute(
            select(CallTaker.call_sid, Staff.display_name)
            .join(Staff, Staff.id == CallTaker.staff_id)
            .where(CallTaker.call_sid.in_(rooms))
        )
        hosts = {str(room): name for room, name in found}
    return render_template(
        "console/callbacks.html",
        open_tasks=[_row(task, full, now, hosts) for task in open_tasks],
        done_tasks=[_row(task, full, now) for task in callbacks.list_done_tasks(session=db)],
        form=DoneForm(formdata=None),
        may_call=current_user.has_role(Role.CALL_TAKER),
    )


@bp.post("/<int:task_id>/call")
@call_takers_only
def call(task_id: int) -> ResponseReturnValue:
    """Call back now, with the logged-in call-taker as the host: they are rung first, the
    citizen when they answer. 409 when they are not available or the task cannot be
    called (done, no number, being called)."""
    db_session().close()  # nothing of this request's session is held while calling
    try:
        placed = callback_calls.call_now(voice_config(), task_id, staff_id=current_user.id)
    except (callback_calls.NotAvailable, callback_calls.CannotCall) as error:
        log.info("callback %s not placed for %s: %s", task_id, current_user.actor, error)
        flash(f"Not called: {error}.", "error")
        return _page(), 409
    flash(
        f"Your phone rings now; the citizen is called when you answer ({placed.room}).", "success"
    )
    return redirect(url_for("callbacks.index"))


@bp.post("/<int:task_id>/done")
@workers_only
def mark_done(task_id: int) -> ResponseReturnValue:
    form = DoneForm()
    if not form.validate_on_submit():
        flash("That did not work: choose an outcome.", "error")
        return redirect(url_for("callbacks.index"))
    db = db_session()
    try:
        callbacks.complete_task(
            session=db,
            task_id=task_id,
            outcome=CallbackOutcome(form.outcome.data),
            note=form.note.data or "",
            actor=current_user.actor,
            at=utcnow(),
        )
    except callbacks.CallbackError as error:
        db.rollback()
        flash(str(error), "error")
    else:
        db.commit()
        flash("Callback marked done.", "success")
    return redirect(url_for("callbacks.index"))
