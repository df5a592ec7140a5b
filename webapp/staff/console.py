"""The call-taker's console: for now their state and the buttons to go available, away
(with a reason) or offline. The live call screen (issue 3, point 5) comes into the
template's ``live-call`` section."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import CallTaker, CallTakerState, Role, Staff
from webapp.auth import db_session, error_pages, roles_required
from webapp.settings import Settings
from webapp.staff.forms import AWAY_REASONS, LABELS, StateForm

bp = error_pages(Blueprint("console", __name__, url_prefix="/console"))
bp.context_processor(lambda: LABELS)
call_takers_only = roles_required(Role.CALL_TAKER)


def _me() -> tuple[Staff, CallTaker]:
    staff = db_session().get(Staff, current_user.id)
    if staff is None or staff.call_taker is None:
        # A call-taker role without a profile cannot happen through tickets.staff; say so
        # rather than fail.
        raise LookupError(f"{current_user.username} has no call-taker profile")
    return staff, staff.call_taker


@bp.get("")
@call_takers_only
def index() -> ResponseReturnValue:
    db = db_session()
    staff, profile = _me()
    now = utcnow()
    if staff_store.end_wrap_up_if_over(profile, session=db, now=now):
        db.commit()
    choices = staff_store.TRANSITIONS[profile.state] & set(staff_store.CONSOLE_STATES)
    wrap_up_left = (
        max(0, int((profile.wrap_up_until - now).total_seconds()) + 1)
        if profile.state is CallTakerState.WRAP_UP and profile.wrap_up_until
        else None
    )
    return render_template(
        "console/index.html",
        staff=staff,
        profile=profile,
        form=StateForm(formdata=None),
        can=lambda state: CallTakerState(state) in choices,
        away_reasons=AWAY_REASONS,
        wrap_up_left=wrap_up_left,
    )


@bp.post("/state")
@call_takers_only
def change_state() -> ResponseReturnValue:
    form = StateForm()
    if not form.validate_on_submit():
        flash("That did not work: " + _first_error(form), "error")
        return redirect(url_for("console.index"))
    to_state = CallTakerState(form.state.data)
    if to_state not in staff_store.CONSOLE_STATES:
        flash(f"{LABELS['state_labels'][to_state]} is set by the hotline, not here.", "error")
        return redirect(url_for("console.index"))
    db = db_session()
    staff, _profile = _me()
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    try:
        staff_store.change_state(
            staff,
            to_state,
            session=db,
            actor=current_user.actor,
            reason=form.away_reason() if to_state is CallTakerState.AWAY else "from the console",
            wrap_up_seconds=settings.wrap_up_seconds,
        )
    except staff_store.StaffError as error:
        db.rollback()
        flash(str(error), "error")
    else:
        db.commit()
        flash(f"You are {LABELS['state_labels'][to_state].lower()}.", "success")
    return redirect(url_for("console.index"))


def _first_error(form: StateForm) -> str:
    for name, errors in form.errors.items():
        if errors:
            return f"{name}: {errors[0]}"
    return "the form was incomplete"
