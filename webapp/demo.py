"""Demo data for ``make run``: work orders a simulated caller can ask about."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tickets.db import utcnow
from tickets.models import WorkOrder, WorkOrderHistory, WorkOrderKind, WorkOrderState
from webapp.settings import Settings

DEMO_CALLER = "+8613800000001"
DEMO_ORDERS = (
    (
        "20261120000001",
        WorkOrderKind.COMPLAINT,
        WorkOrderState.IN_PROGRESS,
        "城关区住房和城乡建设局",
        "小区楼道灯坏了两周没人修",
    ),
    (
        "20261121000002",
        WorkOrderKind.HELP,
        WorkOrderState.ANSWERED,
        "拉萨市自来水公司",
        "八廓街附近水压太低",
    ),
)


def seed_demo_data(engine: Engine, settings: Settings) -> Iterator[str]:
    now = utcnow()
    with Session(engine) as session, session.begin():
        for number, kind, state, department, summary in DEMO_ORDERS:
            if session.scalar(select(WorkOrder.id).where(WorkOrder.number == number)):
                yield f"demo order {number} already there"
                continue
            order = WorkOrder(
                number=number,
                kind=kind,
                state=state,
                caller_number=DEMO_CALLER,
                language="zh",
                summary=summary,
                handling_department=department,
                due_at=now + timedelta(days=5),
                created_at=now,
                updated_at=now,
            )
            order.history.append(
                WorkOrderHistory(actor="system:demo", to_state=state, reason="demo data", at=now)
            )
            session.add(order)
            yield f"demo order {number} ({state.value}) for {DEMO_CALLER}"
