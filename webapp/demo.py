"""Demo data for ``make run``: work orders a simulated caller can ask about, staff
to log in as (development only: never in production) and the sample duty directory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tickets import directory as directory_store
from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.directory_import import FILES
from tickets.models import Role, WorkOrder, WorkOrderHistory, WorkOrderKind, WorkOrderState
from tickets.staff import StaffDetails
from webapp.directory import DEMO_DIRECTORY
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

# Development only: README lists these logins. All share DEMO_PASSWORD.
DEMO_PASSWORD = "hotline-demo"
DEMO_STAFF = (
    (
        "admin",
        StaffDetails("Administrator 管理员", frozenset({Role.ADMINISTRATOR})),
    ),
    (
        "manager",
        StaffDetails("Dolma 卓玛 (floor manager)", frozenset({Role.FLOOR_MANAGER, Role.REVIEWER})),
    ),
    (
        "tenzin",
        StaffDetails(
            "Tenzin 丹增",
            frozenset({Role.CALL_TAKER}),
            languages=("bo", "zh"),
            phone_number="+8613900000001",
        ),
    ),
    (
        "emma",
        StaffDetails(
            "Emma Li 李艾玛",
            frozenset({Role.CALL_TAKER, Role.CALLBACK_AGENT}),
            languages=("en", "zh"),
            client_identity="emma",
        ),
    ),
    (
        "wang",
        StaffDetails(
            "Wang Fang 王芳",
            frozenset({Role.CALL_TAKER}),
            languages=("zh",),
            skills=("complaint", "help"),
            phone_number="+8613900000003",
        ),
    ),
    (
        "liaison.cgq.zjj",
        StaffDetails(
            "Pema 白玛 (城关区住建局)",
            frozenset({Role.DEPARTMENT_LIAISON}),
            department_code="D-CGQ-ZJJ",  # 城关区住房和城乡建设局, in the sample directory
        ),
    ),
)


def seed_demo_staff(engine: Engine, settings: Settings) -> Iterator[str]:
    """The demo logins; refused in production, where accounts come from ``hotline staff``."""
    if settings.is_production:
        yield "demo staff not seeded: HOTLINE_ENV=production (use `hotline staff add`)"
        return
    with Session(engine) as session, session.begin():
        for username, details in DEMO_STAFF:
            if staff_store.find_staff(username, session=session) is not None:
                yield f"demo staff {username} already there"
                continue
            staff_store.create_staff(
                username, DEMO_PASSWORD, details, session=session, actor="system:demo"
            )
            roles = ", ".join(sorted(role.value for role in details.roles))
            yield f"demo staff {username} ({roles}), password {DEMO_PASSWORD}"


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
    yield from seed_demo_staff(engine, settings)
    yield from seed_demo_directory(engine, settings)


def seed_demo_directory(engine: Engine, settings: Settings) -> Iterator[str]:
    """The sample duty directory (routing/data/directory), unless a directory is there.
    Never in production: its numbers and items are invented."""
    if settings.is_production:
        yield "production: the sample duty directory is not imported (hotline directory import)"
        return
    with Session(engine) as session, session.begin():
        current = directory_store.find_current_version(session=session)
        if current is not None:
            yield f"duty directory already there (version {current.id})"
            return
        if not all((DEMO_DIRECTORY / name).is_file() for name in FILES):
            yield f"demo duty directory not found in {DEMO_DIRECTORY}: not imported"
            return
        version = directory_store.import_directory(
            {name: (DEMO_DIRECTORY / name).read_bytes() for name in FILES},
            session=session,
            actor="system:demo",
            note="demo data",
        )
        yield (
            f"demo duty directory: version {version.id}, {version.item_count} items,"
            f" {version.department_count} departments"
        )
