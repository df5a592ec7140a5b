"""``POST /console/calls/<call_sid>/work-order``: record the call as a work order.

The call screen's form (type, summary, location, the caller's own words, confidential)
opens a received order linked to the call and the caller's number, numbered like every
order, with its first history row (who, in which role, when). One order per call from
the console; the emergency lane's urgent order is separate. Dispatch comes later.

``console.js`` posts it with ``fetch`` and gets JSON (201 with the number, 400 with the
fields' problems); without JavaScript the form posts and the page comes back.
"""

from __future__ import annotations

import logging

from flask import current_app, flash, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from tickets import work_orders
from tickets.models import Call, Role, Staff, WorkOrder, WorkOrderKind
from webapp.auth import db_session
from webapp.settings import Settings
from webapp.sms import deliver_sms_soon
from webapp.staff.live_operations import is_my_call
from webapp.staff.live_snapshot import KIND_LABELS
from webapp.staff.work_order_dispatch import recommendations_for

log = logging.getLogger(__name__)


class CallRecordForm(FlaskForm):
    kind = SelectField(
        "Type",
        choices=[SelectChoice(kind.value, KIND_LABELS[kind]) for kind in work_orders.CONSOLE_KINDS],
        validators=[InputRequired()],
    )
    summary = StringField("Summary", validators=[InputRequired(), Length(max=200)])
    district = StringField("County or district 区县", validators=[Optional(), Length(max=100)])
    street = StringField("Street or township 街道乡镇", validators=[Optional(), Length(max=100)])
    caller_words = TextAreaField(
        "In the caller's own words", validators=[Optional(), Length(max=4000)]
    )
    is_confidential = BooleanField("Confidential 保密 (number and name hidden from departments)")
    no_sms = BooleanField("The caller does not want the order's number by SMS")

    def record(self) -> work_orders.CallRecord:
        return work_orders.CallRecord(
            kind=WorkOrderKind(self.kind.data),
            summary=self.summary.data or "",
            caller_words=self.caller_words.data or "",
            district=self.district.data or "",
            street=self.street.data or "",
            is_confidential=bool(self.is_confidential.data),
            notify_by_sms=not self.no_sms.data,
        )


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _answer(status: int, message: str, **extra: object) -> ResponseReturnValue:
    if _wants_json():
        body = {"error": message} if status >= 400 else {"message": message}
        return jsonify(**body, **extra), status
    flash(message, "error" if status >= 400 else "success")
    return redirect(url_for("console.index"))


def record_work_order(call_sid: str) -> ResponseReturnValue:
    session = db_session()
    staff = session.get(Staff, current_user.id)
    if staff is None or not is_my_call(staff, call_sid, session=session):
        return _answer(403, "This call is not yours.")
    form = CallRecordForm()
    if not form.validate_on_submit():
        problems = {name: errors[0] for name, errors in form.errors.items() if errors}
        return _answer(400, "Check the work order: " + _describe(problems), fields=problems)
    existing = session.scalar(
        select(WorkOrder.number).where(
            WorkOrder.call_sid == call_sid,
            WorkOrder.kind.in_(work_orders.CONSOLE_KINDS),
        )
    )
    if existing is not None:
        return _answer(409, f"This call is already recorded as work order {existing}.")
    call = session.scalar(select(Call).where(Call.call_sid == call_sid))
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    role = Role.CALL_TAKER if current_user.has_role(Role.CALL_TAKER) else Role.FLOOR_MANAGER
    try:
        order = work_orders.open_call_work_order(
            form.record(),
            session=session,
            call_sid=call_sid,
            caller_number=call.from_number if call else None,
            language=call.language if call else None,
            actor=current_user.actor,
            actor_role=role.value,
            zone=settings.zone,
        )
    except ValueError as problem:
        session.rollback()
        return _answer(400, str(problem))
    session.commit()
    deliver_sms_soon()  # the citizen's SMS with the order's number
    log.info("%s recorded call %s as work order %s", current_user.actor, call_sid, order.number)
    return _answer(
        201,
        f"Work order {order.number} recorded. Dispatch it, or close it as answered on the spot.",
        number=order.number,
        order_id=order.id,
        dispatch_url=url_for("console.dispatch_work_order", order_id=order.id),
        close_url=url_for("console.close_work_order", order_id=order.id),
        recommendations=recommendations_for(order),
    )


def _describe(problems: dict[str, str]) -> str:
    return "; ".join(f"{name.replace('_', ' ')}: {problem}" for name, problem in problems.items())
