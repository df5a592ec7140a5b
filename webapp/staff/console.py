"""The call-taker's console: their state with the buttons to go available, away (with a
reason) or offline, and the live call screen.

The screen is pushed by server-sent events (``GET /console/events``, ``live_events``);
the call's buttons post to ``/console/calls/<call_sid>/<operation>`` (``live_operations``)
and its work-order form to ``/console/calls/<call_sid>/work-order`` (``live_orders``).
Served by the ``console`` process (gunicorn's threaded workers): an event stream holds
its connection for minutes, which the sync ``web`` workers must not do."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import CallTaker, CallTakerState, Role, Staff, StaffRole
from webapp.auth import db_session, error_pages, roles_required
from webapp.settings import Settings
from webapp.staff import live_events, live_operations, live_orders, work_order_dispatch
from webapp.staff.forms import AWAY_REASONS, LABELS, StateForm
from webapp.staff.live_dispatch import dispatch_after_commit
from webapp.staff.live_snapshot import EMERGENCY_LINES, Viewer, build_snapshot

bp = error_pages(Blueprint("console", __name__, url_prefix="/console"))
bp.context_processor(lambda: LABELS)
call_takers_only = roles_required(Role.CALL_TAKER)
operators_only = roles_required(*live_operations.OPERATOR_ROLES)

bp.add_url_rule("/events", view_func=call_takers_only(live_events.events), methods=["GET"])
bp.add_url_rule(
    "/calls/<call_sid>/work-order",
    view_func=operators_only(live_orders.record_work_order),
    methods=["POST"],
)
bp.add_url_rule(
    "/work-orders/<int:order_id>/dispatch",
    view_func=operators_only(work_order_dispatch.dispatch_work_order),
    methods=["POST"],
)
bp.add_url_rule(
    "/work-orders/<int:order_id>/close",
    view_func=operators_only(work_order_dispatch.close_work_order),
    methods=["POST"],
)
bp.add_url_rule(
    "/calls/<call_sid>/<operation>",
    view_func=operators_only(live_operations.operate),
    methods=["POST"],
)


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
    viewer = Viewer(staff.id, staff.session_token, staff.role_set)
    return render_template(
        "console/index.html",
        staff=staff,
        profile=profile,
        form=StateForm(formdata=None),
        can=lambda state: CallTakerState(state) in choices,
        away_reasons=AWAY_REASONS,
        wrap_up_left=wrap_up_left,
        snapshot={**(build_snapshot(viewer, session=db) or {}), "server_time": now.isoformat()},
        colleagues=_colleagues(staff),
        emergency_lines=EMERGENCY_LINES,
        record_form=live_orders.CallRecordForm(formdata=None),
    )


def _colleagues(me: Staff) -> list[tuple[str, str]]:
    """The other active call-takers, for transfers: (username, name). Whether one is free
    is checked when the button is pressed."""
    rows = db_session().execute(
        select(Staff.username, Staff.display_name)
        .join(CallTaker, CallTaker.staff_id == Staff.id)
        .join(StaffRole, StaffRole.staff_id == Staff.id)
        .where(Staff.is_active.is_(True), StaffRole.role == Role.CALL_TAKER, Staff.id != me.id)
        .order_by(Staff.display_name)
    )
    return [(username, name) for username, name in rows]


@bp.post("/state")
@call_takers_only
def change_state() -> ResponseReturnValue:
    pressed = utcnow()  # the state change's time: when the button's POST arrived
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
            now=pressed,
        )
    except staff_store.StaffError as error:
        db.rollback()
        flash(str(error), "error")
    else:
        db.commit()
        flash(f"You are {LABELS['state_labels'][to_state].lower()}.", "success")
        if to_state is CallTakerState.AVAILABLE:
            dispatch_after_commit(current_user.id)
    return redirect(url_for("console.index"))


def _first_error(form: StateForm) -> str:
    for name, errors in form.errors.items():
        if errors:
            return f"{name}: {errors[0]}"
    return "the form was incomplete"
