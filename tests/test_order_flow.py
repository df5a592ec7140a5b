"""Work orders moved through their lifecycle on a real database: each move's history row,
the clocks it starts or stops, the reminders it schedules or cancels, the department
scoping, objections, extensions, reopening, and two people acting at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from tests.support.orders import (
    CALL_TAKER,
    CALLER,
    FLOOR_MANAGER,
    REVIEWER,
    TUESDAY_10AM,
    department,
    dispatched_order,
    import_demo_directory,
    item,
    liaison,
    received_order,
    shipped_clocks,
)
from tickets import order_flow
from tickets.models import (
    ClosedHow,
    ExtensionStatus,
    ObjectionReason,
    ObjectionStatus,
    SmsMessage,
    SmsPurpose,
    SmsStatus,
    Survey,
    SurveyStatus,
    WorkOrder,
    WorkOrderDispatch,
    WorkOrderHistory,
    WorkOrderState,
)
from tickets.order_flow import IllegalMove, NotYours
from tickets.sms_outbox import set_preference

ZJJ = "D-CGQ-ZJJ"  # 城关区住建局
CLOCKS = shipped_clocks()


@pytest.fixture(autouse=True)
def directory(db: Session) -> None:
    import_demo_directory(db)


def history(db: Session, order: WorkOrder) -> list[tuple[str, str, str | None, str]]:
    rows = db.scalars(
        select(WorkOrderHistory)
        .where(WorkOrderHistory.work_order_id == order.id)
        .order_by(WorkOrderHistory.id)
    )
    return [(row.action, row.actor_role, row.from_state, row.to_state) for row in rows]


def outbox(db: Session, order: WorkOrder) -> list[SmsMessage]:
    return list(
        db.scalars(
            select(SmsMessage).where(SmsMessage.work_order_id == order.id).order_by(SmsMessage.id)
        )
    )


def local(at: datetime | None) -> str:
    assert at is not None
    return CLOCKS.local(at).strftime("%Y-%m-%d %H:%M")


def test_a_recorded_order_texts_the_citizen_its_number(db: Session) -> None:
    order = received_order(db)

    (sms,) = outbox(db, order)
    assert sms.purpose is SmsPurpose.ORDER_OPENED
    assert sms.to_number == CALLER
    assert order.number in sms.body
    assert history(db, order) == [("receive", "call_taker", None, "received")]


def test_no_sms_when_the_citizen_asked_not_to_be_texted(db: Session) -> None:
    assert outbox(db, received_order(db, notify_by_sms=False)) == []
    set_preference(CALLER, session=db, actor="staff:1", reason="asked", no_sms=True)
    assert outbox(db, received_order(db, summary="another order")) == []


def test_dispatch_starts_three_clocks_and_schedules_the_reminders(db: Session) -> None:
    order = dispatched_order(db, item_code="C01-001", department_code=ZJJ)

    assert order.state is WorkOrderState.DISPATCHED
    assert order.department_code == ZJJ and order.handling_department == "城关区住房和城乡建设局"
    assert order.dispatched_at == TUESDAY_10AM
    assert local(order.signoff_due_at) == "2026-11-24 10:30"  # 30 working minutes
    assert local(order.contact_due_at) == "2026-11-24 11:00"  # 1 working hour
    assert local(order.due_at) == "2026-12-03 10:00"  # the item's 7 working days
    reminders = [m for m in outbox(db, order) if m.purpose is not SmsPurpose.ORDER_OPENED]
    assert {(m.details["clock"], m.details["kind"]) for m in reminders} == {
        (clock, kind)
        for clock in ("signoff", "contact", "resolution")
        for kind in ("before", "overdue")
    }
    assert {m.to_number for m in reminders} == {department(db, ZJJ).sms_contact_number}
    assert order.escalation_due_at is not None
    assert local(order.escalation_due_at) == "2026-11-24 11:30"  # sign-off + 1 working hour
    (record,) = db.scalars(select(WorkOrderDispatch))
    assert (record.sequence, record.item_code, record.department_code) == (1, "C01-001", ZJJ)
    assert history(db, order)[-1] == ("dispatch", "call_taker", "received", "dispatched")


def test_signing_off_cancels_its_reminders_and_moves_the_escalation(db: Session) -> None:
    order = dispatched_order(db)
    order_flow.accept(order, actor=liaison(ZJJ), session=db, clocks=CLOCKS)
    db.commit()

    statuses = {
        (m.details["clock"], m.details["kind"]): m.status
        for m in outbox(db, order)
        if m.purpose is not SmsPurpose.ORDER_OPENED
    }
    assert statuses[("signoff", "before")] is SmsStatus.CANCELLED
    assert statuses[("signoff", "overdue")] is SmsStatus.CANCELLED
    assert statuses[("contact", "before")] is SmsStatus.PENDING
    assert local(order.escalation_due_at) == "2026-11-24 12:00"  # contact + 1 working hour
    assert order.state is WorkOrderState.ACCEPTED


def test_another_departments_liaison_cannot_touch_or_see_the_order(db: Session) -> None:
    order = dispatched_order(db)
    with pytest.raises(NotYours):
        order_flow.accept(order, actor=liaison("D-DLQ-ZJJ"), session=db, clocks=CLOCKS)
    with pytest.raises(NotYours):
        order_flow.get_for(liaison("D-DLQ-ZJJ"), order.id, session=db)
    assert order_flow.get_for(liaison(ZJJ), order.id, session=db) is order


def test_a_received_order_is_no_departments(db: Session) -> None:
    order = received_order(db)
    with pytest.raises(NotYours):
        order_flow.get_for(liaison(ZJJ), order.id, session=db)


def test_the_whole_way_to_closed(db: Session) -> None:
    order = dispatched_order(db)
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    order_flow.record_contact(order, note="电话联系了市民", actor=zjj, session=db, clocks=CLOCKS)
    order_flow.record_progress(order, note="已约谈物业", actor=zjj, session=db)
    order_flow.answer(order, outcome="物业已清理垃圾", actor=zjj, session=db)
    assert order.escalation_due_at is None
    assert all(
        m.status is SmsStatus.CANCELLED
        for m in outbox(db, order)
        if m.purpose is not SmsPurpose.ORDER_OPENED
    )
    order_flow.start_callback(order, actor=order_flow.SYSTEM_WORKER, session=db)
    order_flow.close(
        order,
        how=ClosedHow.AFTER_CALLBACK,
        reason="市民满意",
        actor=order_flow.SYSTEM_WORKER,
        session=db,
    )
    db.commit()

    assert order.state is WorkOrderState.CLOSED and order.closed_how is ClosedHow.AFTER_CALLBACK
    assert order.outcome == "物业已清理垃圾"
    assert [row[0] for row in history(db, order)] == [
        "receive",
        "dispatch",
        "accept",
        "contact",
        "progress",
        "answer",
        "start_callback",
        "close",
    ]


def test_closed_on_the_spot(db: Session) -> None:
    order = received_order(db)
    order_flow.close_on_the_spot(order, answer="告知了办理地点", actor=CALL_TAKER, session=db)
    assert order.state is WorkOrderState.CLOSED and order.closed_how is ClosedHow.ON_THE_SPOT
    with pytest.raises(IllegalMove, match="cannot dispatch an order that is closed"):
        order_flow.dispatch(
            order,
            item=item(db, "C01-001"),
            department=department(db, ZJJ),
            actor=CALL_TAKER,
            session=db,
            clocks=CLOCKS,
        )


def test_an_upheld_objection_redispatches_with_fresh_clocks(db: Session) -> None:
    order = dispatched_order(db)
    objection = order_flow.object_to(
        order,
        reason_code=ObjectionReason.NOT_OUR_DUTY,
        text="垃圾清运归城管局",
        actor=liaison(ZJJ),
        session=db,
    )
    assert order.state is WorkOrderState.OBJECTED
    later = TUESDAY_10AM + timedelta(hours=2)
    with pytest.raises(IllegalMove, match="another department"):
        order_flow.uphold_objection(
            objection,
            item=item(db, "C01-001"),
            department=department(db, ZJJ),
            reason="x",
            actor=REVIEWER,
            session=db,
            clocks=CLOCKS,
            now=later,
        )
    order_flow.uphold_objection(
        objection,
        item=None,
        department=department(db, "D-CGQ-CGJ"),
        reason="确属城管职责",
        actor=REVIEWER,
        session=db,
        clocks=CLOCKS,
        now=later,
    )
    db.commit()

    assert order.state is WorkOrderState.DISPATCHED
    assert order.department_code == "D-CGQ-CGJ" and order.dispatch_count == 2
    assert order.dispatched_at == later
    assert objection.status is ObjectionStatus.UPHELD and objection.redispatch_id is not None
    first, second = db.scalars(select(WorkOrderDispatch).order_by(WorkOrderDispatch.sequence))
    assert first.ended_how == "objection-upheld" and second.department_code == "D-CGQ-CGJ"
    assert order_flow.dispatch_accuracy(session=db) == (0, 1)
    # The old department's reminders are gone; the new one's are pending.
    pending = {m.details.get("department_code") for m in outbox(db, order) if m.status == "pending"}
    assert pending == {None, "D-CGQ-CGJ"}  # None: the citizen's SMS with the number
    with pytest.raises(NotYours):
        order_flow.accept(order, actor=liaison(ZJJ), session=db, clocks=CLOCKS)


def test_a_rejected_objection_sends_the_order_back_as_it_was(db: Session) -> None:
    order = dispatched_order(db)
    order_flow.accept(order, actor=liaison(ZJJ), session=db, clocks=CLOCKS)
    due = order.due_at
    objection = order_flow.object_to(
        order,
        reason_code=ObjectionReason.WRONG_AREA,
        text="不在本辖区",
        actor=liaison(ZJJ),
        session=db,
    )
    order_flow.reject_objection(objection, reason="就在城关区", actor=REVIEWER, session=db)
    db.commit()

    assert order.state is WorkOrderState.ACCEPTED and order.due_at == due  # clock ran on
    assert objection.status is ObjectionStatus.REJECTED
    assert order_flow.dispatch_accuracy(session=db) == (1, 1)
    with pytest.raises(IllegalMove, match="already rejected"):
        order_flow.reject_objection(objection, reason="again", actor=REVIEWER, session=db)


def test_an_approved_extension_moves_the_deadline_and_its_reminders(db: Session) -> None:
    order = dispatched_order(db)
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    request = order_flow.request_extension(
        order, working_days=3, reason="需要协调多个部门", actor=zjj, session=db
    )
    with pytest.raises(IllegalMove, match="already waiting"):
        order_flow.request_extension(order, working_days=1, reason="x", actor=zjj, session=db)
    order_flow.decide_extension(
        request, approve=True, reason="同意", actor=FLOOR_MANAGER, session=db, clocks=CLOCKS
    )
    db.commit()

    assert local(order.due_at) == "2026-12-08 10:00"  # 3 more working days
    assert request.status is ExtensionStatus.APPROVED
    resolution = [m for m in outbox(db, order) if m.details.get("clock") == "resolution"]
    assert {m.status for m in resolution} == {SmsStatus.CANCELLED, SmsStatus.PENDING}
    (before,) = [m for m in resolution if m.status == "pending" and m.details["kind"] == "before"]
    assert "12-08 10:00" in before.body


def test_extension_limits(db: Session) -> None:
    order = dispatched_order(db)
    with pytest.raises(IllegalMove, match="cannot request extension an order that is dispatched"):
        order_flow.request_extension(
            order, working_days=2, reason="x", actor=liaison(ZJJ), session=db
        )
    order_flow.accept(order, actor=liaison(ZJJ), session=db, clocks=CLOCKS)
    with pytest.raises(IllegalMove, match="1 to 30"):
        order_flow.request_extension(
            order, working_days=0, reason="x", actor=liaison(ZJJ), session=db
        )


def test_reopen_sends_it_back_to_the_same_department(db: Session) -> None:
    order = dispatched_order(db)
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    order_flow.answer(order, outcome="已处理", actor=zjj, session=db)
    order_flow.start_callback(order, actor=order_flow.SYSTEM_WORKER, session=db)
    later = TUESDAY_10AM + timedelta(days=3)
    order_flow.reopen(
        order, reason="市民不满意，问题没解决", actor=REVIEWER, session=db, clocks=CLOCKS, now=later
    )
    db.commit()

    assert order.state is WorkOrderState.DISPATCHED and order.reopen_count == 1
    assert order.department_code == ZJJ and order.dispatch_count == 2
    assert order.accepted_at is None and order.answered_at is None
    assert order.escalation_due_at is not None and order.escalation_due_at > later


def test_illegal_moves_write_nothing(db: Session) -> None:
    order = dispatched_order(db)
    before = history(db, order)
    with pytest.raises(IllegalMove, match="cannot answer an order that is dispatched"):
        order_flow.answer(order, outcome="done", actor=liaison(ZJJ), session=db)
    with pytest.raises(IllegalMove, match="role 'call_taker' may not accept"):
        order_flow.accept(order, actor=CALL_TAKER, session=db, clocks=CLOCKS)
    db.rollback()
    assert history(db, order) == before


def test_two_people_acting_at_once_the_second_is_refused(db: Session, engine) -> None:
    order = dispatched_order(db)
    with Session(engine) as other:
        same = other.get_one(WorkOrder, order.id)
        order_flow.accept(order, actor=liaison(ZJJ), session=db, clocks=CLOCKS)
        db.commit()
        with pytest.raises(StaleDataError):
            order_flow.object_to(
                same,
                reason_code=ObjectionReason.OTHER,
                text="不是我们的",
                actor=liaison(ZJJ),
                session=other,
            )
        other.rollback()
    db.expire_all()
    assert db.get_one(WorkOrder, order.id).state is WorkOrderState.ACCEPTED


def test_supervision_stops_the_escalation(db: Session) -> None:
    order = dispatched_order(db)
    order_flow.supervise(order, note="超时未签收", actor=order_flow.SYSTEM_WORKER, session=db)
    assert order.is_supervised and order.escalation_due_at is None
    assert history(db, order)[-1] == ("supervise", "system", "dispatched", "dispatched")


def test_an_urgent_item_runs_on_wall_clock_hours(db: Session) -> None:
    saturday_night = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # 23:00 in Lhasa
    order = dispatched_order(db, item_code="C01-041", now=saturday_night)  # 外墙瓷砖脱落

    assert order.is_urgent
    assert order.signoff_due_at == saturday_night + timedelta(minutes=15)
    assert order.due_at == saturday_night + timedelta(hours=8)


def test_a_redispatch_in_the_same_second_gets_its_own_reminders(db: Session) -> None:
    """Reminders are keyed by the dispatch, not only by the deadline."""
    order = dispatched_order(db)
    objection = order_flow.object_to(
        order,
        reason_code=ObjectionReason.NOT_OUR_DUTY,
        text="不是我们的",
        actor=liaison(ZJJ),
        session=db,
    )
    order_flow.uphold_objection(
        objection,
        item=None,
        department=department(db, "D-CGQ-CGJ"),
        reason="城管职责",
        actor=REVIEWER,
        session=db,
        clocks=CLOCKS,
        now=TUESDAY_10AM,  # the same instant as the first dispatch
    )
    db.commit()

    pending = [
        (m.details["clock"], m.details["kind"])
        for m in outbox(db, order)
        if m.status is SmsStatus.PENDING and m.details.get("department_code") == "D-CGQ-CGJ"
    ]
    assert sorted(pending) == sorted(
        (clock, kind)
        for clock in ("signoff", "contact", "resolution")
        for kind in ("before", "overdue")
    )


def test_an_answer_opens_the_orders_one_survey(db: Session) -> None:
    order = dispatched_order(db)
    zjj = liaison(ZJJ)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    order_flow.answer(order, outcome="已处理", actor=zjj, session=db)
    order_flow.reopen(order, reason="市民说没解决", actor=REVIEWER, session=db, clocks=CLOCKS)
    order_flow.accept(order, actor=zjj, session=db, clocks=CLOCKS)
    order_flow.answer(order, outcome="再次处理", actor=zjj, session=db)
    db.commit()

    (survey,) = db.scalars(select(Survey).where(Survey.work_order_id == order.id))
    assert survey.status is SurveyStatus.SCHEDULED and survey.next_attempt_at is None
    assert (survey.to_number, survey.language) == (CALLER, "zh")
