"""Work orders for the tests: the demo directory imported once per test that needs it,
orders received and dispatched through ``tickets.order_flow`` (the same path the pages
use), and the clocks configured as the app configures them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import directory as directory_store
from tickets import order_flow, work_orders
from tickets.models import (
    DirectoryDepartment,
    DirectoryItem,
    DirectoryVersion,
    Role,
    WorkOrder,
    WorkOrderKind,
)
from tickets.order_clocks import ConfiguredClocks
from tickets.order_flow import Actor

DIRECTORY_DIR = Path(__file__).resolve().parents[2] / "routing" / "data" / "directory"
ZONE = ZoneInfo("Asia/Shanghai")
CALLER = "+8613800000001"
CALL_TAKER = Actor("staff:1", Role.CALL_TAKER.value)
REVIEWER = Actor("staff:2", Role.REVIEWER.value)
FLOOR_MANAGER = Actor("staff:3", Role.FLOOR_MANAGER.value)
# Tuesday 24 November 2026, 10:00 in Lhasa (Beijing time), far from any holiday.
TUESDAY_10AM = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def liaison(department_code: str, staff_id: int = 9) -> Actor:
    return Actor(f"staff:{staff_id}", Role.DEPARTMENT_LIAISON.value, department_code)


def shipped_clocks() -> ConfiguredClocks:
    """The shipped limits and calendar, in the hotline's zone (what the app uses)."""
    return ConfiguredClocks.from_files(zone=ZONE)


def import_demo_directory(db: Session) -> DirectoryVersion:
    files = {path.name: path.read_bytes() for path in sorted(DIRECTORY_DIR.glob("*.csv"))}
    version = directory_store.import_directory(files, session=db, actor="system:test")
    db.commit()
    return version


def item(db: Session, code: str) -> DirectoryItem:
    version = directory_store.get_current_version(session=db)
    found = directory_store.find_item(version, code, session=db)
    assert found is not None, code
    return found


def department(db: Session, code: str) -> DirectoryDepartment:
    found = db.scalar(
        select(DirectoryDepartment)
        .join(DirectoryVersion, DirectoryVersion.id == DirectoryDepartment.version_id)
        .where(DirectoryVersion.is_current, DirectoryDepartment.code == code)
    )
    assert found is not None, code
    return found


def received_order(
    db: Session,
    *,
    summary: str = "物业公司啥也不管，小区垃圾堆了一个星期没人清",
    kind: WorkOrderKind = WorkOrderKind.COMPLAINT,
    caller_number: str | None = CALLER,
    confidential: bool = False,
    notify_by_sms: bool = True,
    call_sid: str | None = None,
) -> WorkOrder:
    order = work_orders.open_call_work_order(
        work_orders.CallRecord(
            kind=kind,
            summary=summary,
            district="城关区",
            is_confidential=confidential,
            notify_by_sms=notify_by_sms,
        ),
        session=db,
        call_sid=call_sid or f"CA{abs(hash((summary, caller_number))):032x}"[:34],
        caller_number=caller_number,
        language="zh",
        actor=CALL_TAKER.actor,
        actor_role=CALL_TAKER.role,
        zone=ZONE,
    )
    db.commit()
    return order


def dispatched_order(
    db: Session,
    *,
    item_code: str = "C01-001",
    department_code: str = "D-CGQ-ZJJ",
    now: datetime = TUESDAY_10AM,
    **received: object,
) -> WorkOrder:
    """A received order dispatched to ``department_code`` for ``item_code`` at ``now``."""
    order = received_order(db, **received)  # type: ignore[arg-type]
    order_flow.dispatch(
        order,
        item=item(db, item_code),
        department=department(db, department_code),
        actor=CALL_TAKER,
        session=db,
        clocks=shipped_clocks(),
        now=now,
    )
    db.commit()
    return order
