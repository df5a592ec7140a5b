"""The callback list: citizens to call back, in their place in line.

One list for both kinds of task (``tickets.callbacks``): the callers who pressed 1 at the
queue's callback offer and the callers who hung up while waiting. Call-takers and floor
managers work it: each row shows the caller's number (in full for the roles that call
back, masked for anyone else, as on the live console), language, intent and how long they
waited; "done" records the outcome with who and when. Placing the call from here is the
outbound-call issue (issue 5): for now the call-taker dials the number themselves.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from tickets import callbacks
from tickets.db import utcnow
from tickets.models import CallbackOutcome, CallbackSource, CallbackTask, Role
from tickets.phones import mask_number
from webapp.auth import db_session, error_pages, roles_required
from webapp.settings import Settings
from webapp.staff.forms import LABELS, LANGUAGE_LABELS
from webapp.staff.live_snapshot import INTENT_LABELS, can_see_numbers

bp = error_pages(Blueprint("callbacks", __name__, url_prefix="/console/callbacks"))
bp.context_processor(lambda: LABELS)
CALLBACK_ROLES = (Role.CALL_TAKER, Role.FLOOR_MANAGER)
workers_only = roles_required(*CALLBACK_ROLES)

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


def _row(task: CallbackTask, full: bool) -> dict[str, object]:
    return {
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
    db = db_session()
    full = can_see_numbers(current_user.roles)
    return render_template(
        "console/callbacks.html",
        open_tasks=[_row(task, full) for task in callbacks.list_open_tasks(session=db)],
        done_tasks=[_row(task, full) for task in callbacks.list_done_tasks(session=db)],
        form=DoneForm(formdata=None),
    )


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
