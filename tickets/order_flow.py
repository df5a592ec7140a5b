"""Moving work orders through their lifecycle: each function checks the move against
``tickets.lifecycle``, changes the order, and writes one history row (who, in which role,
when, from, to, why). The session is passed in and never committed here.

A department liaison acts only on orders of their own department: anyone else's order
raises ``NotYours``, which the web layer answers with 404 (the order's existence is not
confirmed to another department). Two people acting on one order at once: the second
flush fails on ``row_version`` (SQLAlchemy's ``StaleDataError``) and nothing of theirs is
written.

The clocks (sign-off, first contact, resolution) run from the latest dispatch; the
reminders for them go into the SMS outbox at dispatch, are cancelled as each clock is met,
and are rescheduled when an extension moves the resolution deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tickets import sms_outbox
from tickets.clocks import Deadlines
from tickets.db import utcnow
from tickets.lifecycle import SYSTEM, Action, IllegalMove, check
from tickets.models import (
    ClosedHow,
    DirectoryDepartment,
    DirectoryItem,
    ExtensionRequest,
    ExtensionStatus,
    Objection,
    ObjectionReason,
    ObjectionStatus,
    Role,
    SmsPurpose,
    Survey,
    SurveyStatus,
    WorkOrder,
    WorkOrderDispatch,
    WorkOrderHistory,
    WorkOrderState,
)
from tickets.order_clocks import ConfiguredClocks

__all__ = ["Actor", "IllegalMove", "NotYours"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``actor`` as in every audit row (``staff:<id>``, ``system:<part>``), the
    role they act in (a ``Role`` value or ``lifecycle.SYSTEM``), and a liaison's
    department code."""

    actor: str
    role: str
    department_code: str | None = None


SYSTEM_WORKER = Actor("system:worker", SYSTEM)


class NotYours(LookupError):
    """The order is not this department's (the web answers 404)."""


# -- the one way a state changes -----------------------------------------------------------


def _move(
    order: WorkOrder,
    action: Action,
    actor: Actor,
    *,
    session: Session,
    reason: str = "",
    now: datetime | None = None,
    details: dict[str, Any] | None = None,
    target: WorkOrderState | None = None,
) -> WorkOrderHistory:
    """Check the move, change the state, write the history row."""
    if actor.role == Role.DEPARTMENT_LIAISON.value:
        _require_own(order, actor)
    to_state = check(action, order.state, actor.role, reason) or target or order.state
    now = now or utcnow()
    row = WorkOrderHistory(
        actor=actor.actor,
        actor_role=actor.role,
        action=action.value,
        from_state=order.state.value,
        to_state=to_state.value,
        reason=reason.strip(),
        details=details or {},
        at=now,
    )
    order.history.append(row)
    order.state = to_state
    order.updated_at = now
    session.flush()
    return row


def _require_own(order: WorkOrder, actor: Actor) -> None:
    if actor.department_code is None or order.department_code != actor.department_code:
        raise NotYours(order.number)


def get_for(actor: Actor, order_id: int, *, session: Session) -> WorkOrder:
    """The order, if ``actor`` may see it: ``NotYours`` for another department's (or none)."""
    order = session.get(WorkOrder, order_id)
    if order is None:
        raise NotYours(str(order_id))
    if actor.role == Role.DEPARTMENT_LIAISON.value:
        _require_own(order, actor)
        if order.dispatch_count == 0:
            raise NotYours(order.number)
    return order


# -- received: dispatch or close on the spot -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Recommended:
    """One of the recommender's suggestions as the call-taker saw it (kept with the
    dispatch: the objection reviewer sees them, and they say whether the top one was
    taken)."""

    item_code: str
    item_title: str
    department_code: str | None
    department_name: str | None
    matched_words: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_code": self.item_code,
            "item_title": self.item_title,
            "department_code": self.department_code,
            "department_name": self.department_name,
            "matched_words": list(self.matched_words),
        }


def dispatch(
    order: WorkOrder,
    *,
    item: DirectoryItem | None,
    department: DirectoryDepartment,
    actor: Actor,
    session: Session,
    clocks: ConfiguredClocks,
    reason: str = "",
    recommended: Sequence[Recommended] = (),
    now: datetime | None = None,
) -> WorkOrderDispatch:
    """派单: send a received order to ``department`` for ``item`` (both rows of the same
    directory version; ``item`` None when the call-taker picked a department by hand)."""
    now = now or utcnow()
    _check_same_version(item, department)
    row = _move(
        order,
        Action.DISPATCH,
        actor,
        session=session,
        reason=reason or f"dispatched to {department.name}",
        now=now,
        details=_dispatch_details(item, department),
    )
    return _send_to(order, item, department, actor, session, clocks, now, recommended, row)


def close_on_the_spot(
    order: WorkOrder, *, answer: str, actor: Actor, session: Session, now: datetime | None = None
) -> WorkOrderHistory:
    """直接答复: the call-taker answered the citizen during the call."""
    row = _move(order, Action.CLOSE_ON_THE_SPOT, actor, session=session, reason=answer, now=now)
    order.outcome = answer.strip()
    order.closed_at = row.at
    order.closed_how = ClosedHow.ON_THE_SPOT
    return row


def _check_same_version(item: DirectoryItem | None, department: DirectoryDepartment) -> None:
    if item is not None and item.version_id != department.version_id:
        raise IllegalMove("the item and the department come from different directory versions")


def _dispatch_details(
    item: DirectoryItem | None, department: DirectoryDepartment
) -> dict[str, Any]:
    return {
        "department_code": department.code,
        "department_name": department.name,
        "item_code": item.code if item else None,
        "item_title": item.title if item else None,
        "directory_version_id": department.version_id,
    }


def _send_to(
    order: WorkOrder,
    item: DirectoryItem | None,
    department: DirectoryDepartment,
    actor: Actor,
    session: Session,
    clocks: ConfiguredClocks,
    now: datetime,
    recommended: Sequence[Recommended],
    history: WorkOrderHistory,
) -> WorkOrderDispatch:
    """Point the order at the department and start its three clocks."""
    rank = next(
        (
            position
            for position, suggestion in enumerate(recommended, start=1)
            if item is not None
            and suggestion.item_code == item.code
            and suggestion.department_code == department.code
        ),
        None,
    )
    order.dispatch_count += 1
    record = WorkOrderDispatch(
        work_order_id=order.id,
        sequence=order.dispatch_count,
        directory_version_id=department.version_id,
        directory_item_id=item.id if item else None,
        item_code=item.code if item else None,
        department_id=department.id,
        department_code=department.code,
        dispatched_at=now,
        dispatched_by=actor.actor,
        recommended_rank=rank,
        recommended=[suggestion.as_dict() for suggestion in recommended],
    )
    session.add(record)
    order.directory_version_id = department.version_id
    order.directory_item_id = item.id if item else None
    order.department_id = department.id
    order.department_code = department.code
    order.handling_department = department.name
    order.dispatched_at = now
    order.accepted_at = order.contacted_at = order.answered_at = None
    if item is not None and item.is_urgent:
        order.is_urgent = True
    deadlines = clocks.deadlines(
        now,
        kind=order.kind.value,
        sla_days=item.sla_days if item else None,
        is_urgent=order.is_urgent,
    )
    order.signoff_due_at = deadlines.signoff_due
    order.contact_due_at = deadlines.contact_due
    order.due_at = deadlines.resolution_due
    history.details = {**history.details, **_due_details(order)}
    plan_escalation(order, clocks)
    session.flush()
    sms_outbox.cancel_pending(order, session=session, reason="dispatched again")
    _schedule_reminders(order, department, session, clocks, deadlines, now)
    return record


def _due_details(order: WorkOrder) -> dict[str, str | None]:
    return {
        "signoff_due_at": _iso(order.signoff_due_at),
        "contact_due_at": _iso(order.contact_due_at),
        "due_at": _iso(order.due_at),
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


CLOCK_NAMES = {"signoff": "签收", "contact": "响应", "resolution": "办结"}
# Each clock's deadline and the moment that stops it, as WorkOrder attributes.
CLOCK_DUE_FIELDS = {
    "signoff": "signoff_due_at",
    "contact": "contact_due_at",
    "resolution": "due_at",
}
CLOCK_MET_FIELDS = {
    "signoff": "accepted_at",
    "contact": "contacted_at",
    "resolution": "answered_at",
}


def _schedule_reminders(
    order: WorkOrder,
    department: DirectoryDepartment,
    session: Session,
    clocks: ConfiguredClocks,
    deadlines: Deadlines,
    dispatched_at: datetime,
    only: set[str] | None = None,
) -> None:
    """One outbox row per reminder slot (before and overdue; escalation is the worker's
    sweep), to the department's SMS contact."""
    due_by_clock = {
        "signoff": deadlines.signoff_due,
        "contact": deadlines.contact_due,
        "resolution": deadlines.resolution_due,
    }
    for slot in clocks.reminder_slots(deadlines, dispatched_at, is_urgent=order.is_urgent):
        if slot.kind not in ("before", "overdue") or (only and slot.clock not in only):
            continue
        due = due_by_clock[slot.clock]
        sms_outbox.schedule(
            session=session,
            dedupe_key=(
                f"reminder:{order.id}:{order.dispatch_count}:{slot.clock}:{slot.kind}"
                f":{due.timestamp():.0f}"
            ),
            purpose=SmsPurpose.REMINDER if slot.kind == "before" else SmsPurpose.OVERDUE,
            to_number=department.sms_contact_number,
            body=_reminder_text(order, slot.clock, slot.kind, clocks.local(due)),
            due_at=slot.at,
            work_order_id=order.id,
            details={
                "clock": slot.clock,
                "kind": slot.kind,
                "department_code": department.code,
                "due_at": due.isoformat(),
            },
        )


def plan_escalation(order: WorkOrder, clocks: ConfiguredClocks) -> None:
    """When the order goes to the floor manager: the earliest escalation of a clock that
    still runs (sign-off until accepted, contact until contacted, resolution until
    answered); None once none runs, or once the order is supervised."""
    running = {
        "signoff": order.accepted_at is None,
        "contact": order.contacted_at is None,
        "resolution": order.answered_at is None,
    }
    if (
        order.is_supervised
        or order.dispatched_at is None
        or not (order.signoff_due_at and order.contact_due_at and order.due_at)
    ):
        order.escalation_due_at = None
        return
    deadlines = Deadlines(order.signoff_due_at, order.contact_due_at, order.due_at)
    slots = clocks.reminder_slots(deadlines, order.dispatched_at, is_urgent=order.is_urgent)
    order.escalation_due_at = min(
        (slot.at for slot in slots if slot.kind == "escalation" and running[slot.clock]),
        default=None,
    )


def _reminder_text(order: WorkOrder, clock: str, kind: str, due_local: datetime) -> str:
    step = CLOCK_NAMES[clock]
    when = f"{due_local:%m-%d %H:%M}"
    if kind == "before":
        return f"【12345热线】工单{order.number}请于{when}前{step}。"
    return f"【12345热线】工单{order.number}已超过{step}时限（{when}），请尽快办理。"


# -- at the department ---------------------------------------------------------------------


def accept(
    order: WorkOrder,
    *,
    actor: Actor,
    session: Session,
    clocks: ConfiguredClocks,
    note: str = "",
    now: datetime | None = None,
) -> WorkOrderHistory:
    """签收: the department takes the order."""
    row = _move(order, Action.ACCEPT, actor, session=session, reason=note, now=now)
    order.accepted_at = row.at
    sms_outbox.cancel_pending(order, session=session, clocks=["signoff"], reason="signed off")
    plan_escalation(order, clocks)
    return row


def record_contact(
    order: WorkOrder,
    *,
    note: str,
    actor: Actor,
    session: Session,
    clocks: ConfiguredClocks,
    now: datetime | None = None,
) -> WorkOrderHistory:
    """响应: the department has been in touch with the citizen."""
    row = _move(order, Action.CONTACT, actor, session=session, reason=note, now=now)
    order.contacted_at = row.at
    sms_outbox.cancel_pending(order, session=session, clocks=["contact"], reason="contacted")
    plan_escalation(order, clocks)
    return row


def record_progress(
    order: WorkOrder, *, note: str, actor: Actor, session: Session, now: datetime | None = None
) -> WorkOrderHistory:
    return _move(order, Action.PROGRESS, actor, session=session, reason=note, now=now)


def answer(
    order: WorkOrder, *, outcome: str, actor: Actor, session: Session, now: datetime | None = None
) -> WorkOrderHistory:
    """反馈: the department's outcome. Answering also meets the first-contact clock if
    the department had not recorded it (they reached the citizen to answer)."""
    row = _move(order, Action.ANSWER, actor, session=session, reason=outcome, now=now)
    order.outcome = outcome.strip()
    order.answered_at = row.at
    order.contacted_at = order.contacted_at or row.at
    order.escalation_due_at = None  # no clock runs any more
    sms_outbox.cancel_pending(order, session=session, reason="answered")
    _open_survey(order, session)
    return row


def _open_survey(order: WorkOrder, session: Session) -> None:
    """The order's satisfaction survey (one per order, whatever happens later: a reopened
    order answered again keeps its first survey row). The worker plans its first call
    inside calling hours (``next_attempt_at`` is None until then)."""
    if session.scalar(select(Survey.id).where(Survey.work_order_id == order.id)) is not None:
        return
    session.add(
        Survey(
            work_order_id=order.id,
            to_number=order.caller_number,
            language=order.language or "zh",
            status=SurveyStatus.SCHEDULED,
            attempts=0,
            next_attempt_at=None,
        )
    )
    session.flush()


def object_to(
    order: WorkOrder,
    *,
    reason_code: ObjectionReason,
    text: str,
    actor: Actor,
    session: Session,
    suggested: Sequence[Recommended] = (),
    now: datetime | None = None,
) -> Objection:
    """退单: the department says the order is not theirs. The clocks keep running."""
    state_before = order.state
    row = _move(
        order,
        Action.OBJECT,
        actor,
        session=session,
        reason=text,
        now=now,
        details={"reason_code": reason_code.value},
    )
    objection = Objection(
        work_order_id=order.id,
        dispatch_id=_current_dispatch(order, session).id,
        department_code=order.department_code or "",
        reason_code=reason_code,
        text=text.strip(),
        raised_by=actor.actor,
        raised_at=row.at,
        state_before=state_before,
        suggested=[suggestion.as_dict() for suggestion in suggested],
        status=ObjectionStatus.PENDING,
    )
    session.add(objection)
    session.flush()
    return objection


def _current_dispatch(order: WorkOrder, session: Session) -> WorkOrderDispatch:
    record = session.scalar(
        select(WorkOrderDispatch).where(
            WorkOrderDispatch.work_order_id == order.id,
            WorkOrderDispatch.sequence == order.dispatch_count,
        )
    )
    if record is None:
        raise IllegalMove("the order has not been dispatched")
    return record


def pending_objection(order: WorkOrder, *, session: Session) -> Objection | None:
    return session.scalar(
        select(Objection).where(
            Objection.work_order_id == order.id, Objection.status == ObjectionStatus.PENDING
        )
    )


def uphold_objection(
    objection: Objection,
    *,
    item: DirectoryItem | None,
    department: DirectoryDepartment,
    reason: str,
    actor: Actor,
    session: Session,
    clocks: ConfiguredClocks,
    now: datetime | None = None,
) -> WorkOrderDispatch:
    """审核: not the department's: re-dispatch to another, whose clocks start now."""
    order = session.get_one(WorkOrder, objection.work_order_id)
    _require_pending(objection)
    if department.code == objection.department_code:
        raise IllegalMove("an upheld objection re-dispatches to another department")
    _check_same_version(item, department)
    now = now or utcnow()
    row = _move(
        order,
        Action.UPHOLD_OBJECTION,
        actor,
        session=session,
        reason=reason,
        now=now,
        details={"objection_id": objection.id, **_dispatch_details(item, department)},
    )
    previous = _current_dispatch(order, session)
    previous.ended_at, previous.ended_how = now, "objection-upheld"
    record = _send_to(
        order, item, department, actor, session, clocks, now, _suggestions(objection), row
    )
    objection.status = ObjectionStatus.UPHELD
    objection.decided_by, objection.decided_at = actor.actor, now
    objection.decision_reason = reason.strip()
    objection.redispatch_id = record.id
    session.flush()
    return record


def reject_objection(
    objection: Objection,
    *,
    reason: str,
    actor: Actor,
    session: Session,
    now: datetime | None = None,
) -> WorkOrderHistory:
    """审核: the department's after all: back where it was, its clocks never stopped."""
    order = session.get_one(WorkOrder, objection.work_order_id)
    _require_pending(objection)
    row = _move(
        order,
        Action.REJECT_OBJECTION,
        actor,
        session=session,
        reason=reason,
        now=now,
        details={"objection_id": objection.id},
        target=objection.state_before,
    )
    objection.status = ObjectionStatus.REJECTED
    objection.decided_by, objection.decided_at = actor.actor, row.at
    objection.decision_reason = reason.strip()
    session.flush()
    return row


def _require_pending(objection: Objection) -> None:
    if objection.status is not ObjectionStatus.PENDING:
        raise IllegalMove(f"this objection was already {objection.status.value}")


def _suggestions(objection: Objection) -> list[Recommended]:
    return [
        Recommended(
            item_code=entry["item_code"],
            item_title=entry.get("item_title", ""),
            department_code=entry.get("department_code"),
            department_name=entry.get("department_name"),
            matched_words=tuple(entry.get("matched_words", ())),
        )
        for entry in objection.suggested
        if entry.get("item_code")
    ]


# -- extensions ------------------------------------------------------------------------------

MAX_EXTENSION_DAYS = 30


def request_extension(
    order: WorkOrder,
    *,
    working_days: int,
    reason: str,
    actor: Actor,
    session: Session,
    now: datetime | None = None,
) -> ExtensionRequest:
    """延期申请: more working days for the resolution deadline. One pending at a time."""
    if not 1 <= working_days <= MAX_EXTENSION_DAYS:
        raise IllegalMove(f"an extension is 1 to {MAX_EXTENSION_DAYS} working days")
    if _pending_extension(order, session) is not None:
        raise IllegalMove("an extension request for this order is already waiting for a decision")
    row = _move(
        order,
        Action.REQUEST_EXTENSION,
        actor,
        session=session,
        reason=reason,
        now=now,
        details={"working_days": working_days},
    )
    request = ExtensionRequest(
        work_order_id=order.id,
        department_code=order.department_code or "",
        working_days=working_days,
        reason=reason.strip(),
        requested_by=actor.actor,
        requested_at=row.at,
        status=ExtensionStatus.PENDING,
        due_before=order.due_at,
    )
    session.add(request)
    session.flush()
    return request


def _pending_extension(order: WorkOrder, session: Session) -> ExtensionRequest | None:
    return session.scalar(
        select(ExtensionRequest).where(
            ExtensionRequest.work_order_id == order.id,
            ExtensionRequest.status == ExtensionStatus.PENDING,
        )
    )


def decide_extension(
    request: ExtensionRequest,
    *,
    approve: bool,
    reason: str,
    actor: Actor,
    session: Session,
    clocks: ConfiguredClocks,
    now: datetime | None = None,
) -> WorkOrderHistory:
    """Approve (the resolution deadline moves by the working days asked, its reminders
    with it) or refuse."""
    if request.status is not ExtensionStatus.PENDING:
        raise IllegalMove(f"this extension request was already {request.status.value}")
    order = session.get_one(WorkOrder, request.work_order_id)
    now = now or utcnow()
    details: dict[str, Any] = {"extension_id": request.id, "working_days": request.working_days}
    new_due = None
    if approve and order.due_at is not None:
        new_due = clocks.extended(order.due_at, request.working_days)
        details |= {"due_before": _iso(order.due_at), "due_after": _iso(new_due)}
    row = _move(
        order,
        Action.APPROVE_EXTENSION if approve else Action.REFUSE_EXTENSION,
        actor,
        session=session,
        reason=reason,
        now=now,
        details=details,
    )
    request.status = ExtensionStatus.APPROVED if approve else ExtensionStatus.REFUSED
    request.decided_by, request.decided_at = actor.actor, now
    request.decision_reason = reason.strip()
    if new_due is not None:
        request.due_after = new_due
        order.due_at = new_due
        _reschedule_resolution(order, session, clocks)
        plan_escalation(order, clocks)
    session.flush()
    return row


def _reschedule_resolution(order: WorkOrder, session: Session, clocks: ConfiguredClocks) -> None:
    department = session.get_one(DirectoryDepartment, order.department_id)
    sms_outbox.cancel_pending(
        order, session=session, clocks=["resolution"], reason="deadline extended"
    )
    assert order.dispatched_at and order.signoff_due_at and order.contact_due_at and order.due_at
    moved = Deadlines(order.signoff_due_at, order.contact_due_at, order.due_at)
    _schedule_reminders(
        order, department, session, clocks, moved, order.dispatched_at, only={"resolution"}
    )


# -- reminders and supervision -------------------------------------------------------------


def remind(
    order: WorkOrder, *, note: str, actor: Actor, session: Session, now: datetime | None = None
) -> WorkOrderHistory:
    """催办 by a person (a call-taker whose caller asks again, a floor manager)."""
    return _move(order, Action.REMIND, actor, session=session, reason=note, now=now)


def supervise(
    order: WorkOrder, *, note: str, actor: Actor, session: Session, now: datetime | None = None
) -> WorkOrderHistory:
    """督办: the floor manager follows the order from now on."""
    row = _move(order, Action.SUPERVISE, actor, session=session, reason=note, now=now)
    order.is_supervised = True
    order.escalation_due_at = None
    return row


# -- after the answer ------------------------------------------------------------------------


def start_callback(
    order: WorkOrder, *, actor: Actor, session: Session, now: datetime | None = None
) -> WorkOrderHistory:
    return _move(order, Action.START_CALLBACK, actor, session=session, now=now)


def close(
    order: WorkOrder,
    *,
    how: ClosedHow,
    reason: str,
    actor: Actor,
    session: Session,
    now: datetime | None = None,
) -> WorkOrderHistory:
    """办结: closed after the callback (or explained, when the citizen's dissatisfaction is
    about what the law allows)."""
    if how is ClosedHow.ON_THE_SPOT:
        raise IllegalMove("an order answered on the spot is closed when it is received")
    row = _move(
        order, Action.CLOSE, actor, session=session, reason=reason, now=now, details={"how": how}
    )
    order.closed_at, order.closed_how = row.at, how
    return row


def reopen(
    order: WorkOrder,
    *,
    reason: str,
    actor: Actor,
    session: Session,
    clocks: ConfiguredClocks,
    now: datetime | None = None,
) -> WorkOrderDispatch:
    """重办: back to the same department (the same directory rows), with fresh clocks."""
    if order.department_id is None:
        raise IllegalMove("an order that was never dispatched cannot be reopened")
    now = now or utcnow()
    department = session.get_one(DirectoryDepartment, order.department_id)
    item = session.get(DirectoryItem, order.directory_item_id) if order.directory_item_id else None
    row = _move(
        order,
        Action.REOPEN,
        actor,
        session=session,
        reason=reason,
        now=now,
        details=_dispatch_details(item, department),
    )
    previous = _current_dispatch(order, session)
    previous.ended_at, previous.ended_how = now, "reopened"
    order.reopen_count += 1
    order.closed_at = order.closed_how = None
    return _send_to(order, item, department, actor, session, clocks, now, (), row)


# -- reading -------------------------------------------------------------------------------


def dispatch_accuracy(*, session: Session) -> tuple[int, int]:
    """(orders never re-dispatched after an upheld objection, orders dispatched): the
    dispatch accuracy KPI (派单准确率) is their ratio."""
    dispatched = session.scalar(
        select(func.count()).select_from(WorkOrder).where(WorkOrder.dispatch_count > 0)
    )
    redispatched = session.scalar(
        select(func.count(func.distinct(Objection.work_order_id))).where(
            Objection.status == ObjectionStatus.UPHELD
        )
    )
    total = int(dispatched or 0)
    return total - int(redispatched or 0), total
