"""``POST /orders/<id>/conference``: a multi-party call (多方通话) from an order page.

A reviewer or call-taker rings themselves (their call-taker profile's phone, or browser
identity) into one new conference room; once they answer, the citizen (the order's
number, when asked) and one to ``MAX_DEPARTMENTS`` departments (their duty phone in the
current directory) are dialled into it; if they do not answer, nobody else is called.
``ivr.order_conference`` places and records the calls; here the parties are checked, so
that a call that could not reach them is refused before anything rings. Every leg calls
from the hotline number and nothing is announced, so no department learns the citizen's
number.

A call-taker who was free is set away (reason: the call) so that no citizen's call rings
them meanwhile; they set themselves available on the console afterwards. Who is in the
call, and whether each leg rang, answered or failed, shows on the order page (from the
legs' own status callbacks). Adding or dropping a party once the call runs, hold and
transfer are the console's, for inbound calls only; here a party leaves by hanging up,
and the caller who started it ends it for everyone by hanging up.
"""

from __future__ import annotations

import logging
import re

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from ivr import order_conference
from ivr.order_conference import Leg, OrderCall, PartyKind
from tickets import directory as directory_store
from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import CallTakerState, Role, Staff, WorkOrder
from webapp.auth import db_session
from webapp.order_services import Refused, first_role
from webapp.orders.forms import ConferenceForm, form_problem
from webapp.orders.order_page import CALLING_ROLES, order_or_404, render_order

log = logging.getLogger(__name__)
MAX_DEPARTMENTS = 5
_SEPARATORS = re.compile(r"[\s,;，；、]+")
BUSY = frozenset({CallTakerState.RINGING, CallTakerState.ON_CALL})
GO_AWAY_FROM = frozenset({CallTakerState.AVAILABLE, CallTakerState.WRAP_UP})


def start_call(order_id: int) -> ResponseReturnValue:
    order = order_or_404(order_id)
    form = ConferenceForm()
    if not form.validate_on_submit():
        return render_order(order, status=400, error=form_problem(form))
    db = db_session()
    try:
        call = _plan(order, form, db)
    except Refused as refusal:
        return render_order(order, status=refusal.status, error=refusal.message)
    db.rollback()  # no transaction held while the calls are placed
    try:
        order_conference.start(call)
    except order_conference.AlreadyStarted:
        return render_order(
            order, status=409, error="This call was started a moment ago; look below."
        )
    except order_conference.StaffUnreachable as failure:
        return render_order(
            order,
            status=502,
            error=f"Your phone could not be rung ({failure}); nobody else was dialled.",
        )
    _set_away(db, order)
    others = ", ".join(leg.name for leg in call.legs[1:])
    flash(
        f"Ringing you first. Once you answer, we call: {others}. "
        "If you do not answer, nobody else is called.",
        "success",
    )
    log.info("%s started multi-party call %s for %s", current_user.actor, call.room, order.number)
    return redirect(url_for("orders.show", order_id=order.id))


def _plan(order: WorkOrder, form: ConferenceForm, db: Session) -> OrderCall:
    staff = db.get(Staff, current_user.id)
    profile = staff.call_taker if staff else None
    address = ""
    if profile is not None:
        address = profile.phone_number or (
            f"client:{profile.client_identity}" if profile.client_identity else ""
        )
    if profile is None or not address:
        raise Refused(400, "You have no phone to ring: an administrator can add one to you.")
    if profile.state in BUSY:
        raise Refused(409, "You are on a call now: finish it first.")
    legs = [Leg(f"staff-{current_user.id}", PartyKind.STAFF, current_user.display_name, address)]
    if form.with_citizen.data:
        if not order.caller_number:
            raise Refused(400, "This order has no number to call the citizen on.")
        legs.append(Leg("citizen", PartyKind.CITIZEN, "the citizen", order.caller_number))
    legs += _departments(db, form)
    return OrderCall(
        room=order_conference.room_name(order.number, utcnow()),
        work_order_id=order.id,
        order_number=order.number,
        started_by=current_user.actor,
        role=first_role(*CALLING_ROLES).value,
        is_confidential=order.is_confidential,
        legs=tuple(legs),
    )


def _departments(db: Session, form: ConferenceForm) -> list[Leg]:
    typed = _SEPARATORS.split((form.other_departments.data or "").upper())
    codes = [c.strip().upper() for c in [*request.form.getlist("department"), *typed]]
    codes = list(dict.fromkeys(code for code in codes if code))
    if not codes:
        raise Refused(400, "Choose at least one department to call.")
    if len(codes) > MAX_DEPARTMENTS:
        raise Refused(400, f"At most {MAX_DEPARTMENTS} departments in one call.")
    version = directory_store.find_current_version(session=db)
    legs = []
    for code in codes:
        found = directory_store.find_department(version, code, session=db) if version else None
        if found is None:
            raise Refused(400, f"There is no department {code} in the current directory.")
        legs.append(Leg(f"dept-{code}", PartyKind.DEPARTMENT, found.name, found.phone_number, code))
    return legs


def _set_away(db: Session, order: WorkOrder) -> None:
    """A free call-taker is away while on the call, so routing rings someone else."""
    staff = db.get(Staff, current_user.id)
    profile = staff.call_taker if staff else None
    if staff is None or profile is None or not staff.has_role(Role.CALL_TAKER):
        return
    if profile.state not in GO_AWAY_FROM:
        return
    try:
        staff_store.change_state(
            staff,
            CallTakerState.AWAY,
            session=db,
            actor=current_user.actor,
            reason=f"multi-party call for order {order.number}",
        )
    except staff_store.StaffError as error:
        db.rollback()
        log.warning("%s stays %s: %s", current_user.actor, profile.state.value, error)
        return
    db.commit()
    flash("You are away meanwhile; set yourself available on the console afterwards.", "info")
