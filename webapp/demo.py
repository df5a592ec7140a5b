"""Demo data for ``make run``: work orders a simulated caller can ask about, staff
to log in as (development only: never in production) and the sample duty directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tickets import directory as directory_store
from tickets import order_flow, work_orders
from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.directory_import import FILES
from tickets.models import DirectoryVersion, ObjectionReason, Role, WorkOrder, WorkOrderKind
from tickets.order_clocks import ConfiguredClocks
from tickets.order_flow import Actor
from tickets.staff import StaffDetails
from webapp.directory import DEMO_DIRECTORY
from webapp.settings import Settings

DEMO_CALLER = "+8613800000001"
DEMO_ACTOR = Actor("system:demo", Role.CALL_TAKER.value)


@dataclass(frozen=True)
class DemoOrder:
    """A demo order, taken through the real lifecycle: recorded, dispatched to ``item``'s
    department, then the department's ``steps`` (accept, contact, answer, object)."""

    number: str
    kind: WorkOrderKind
    summary: str
    district: str
    item_code: str
    department_code: str
    steps: tuple[str, ...]
    hours_ago: int


DEMO_ORDERS = (
    DemoOrder(
        "20261120000001",
        WorkOrderKind.COMPLAINT,
        "物业不管事，小区楼道灯坏了两周没人修",
        "城关区",
        "C01-001",
        "D-CGQ-ZJJ",
        ("accept", "contact"),
        30,
    ),
    DemoOrder(
        "20261121000002",
        WorkOrderKind.HELP,
        "八廓街附近水压太低，楼上没水",
        "城关区",
        "C11-003",
        "D-CITY-ZLS",
        ("accept", "contact", "answer"),
        50,
    ),
    DemoOrder(
        "20261122000003",
        WorkOrderKind.COMPLAINT,
        "楼房外墙瓷砖掉下来了，差点砸到人",
        "城关区",
        "C01-041",
        "D-CGQ-ZJJ",
        (),
        1,
    ),
    DemoOrder(
        "20261123000004",
        WorkOrderKind.COMPLAINT,
        "楼下饭馆油烟直排，窗户都不敢开",
        "城关区",
        "C01-001",
        "D-CGQ-ZJJ",
        ("object",),
        3,
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
    yield from seed_demo_directory(engine, settings)
    yield from seed_demo_staff(engine, settings)
    yield from seed_demo_orders(engine, settings)


def seed_demo_orders(engine: Engine, settings: Settings) -> Iterator[str]:
    """Orders in several states for the demo caller (the IVR's progress query reads the
    first two), dispatched to the demo liaison's department and the water company."""
    clocks = ConfiguredClocks.from_files(zone=settings.zone)
    with Session(engine) as session, session.begin():
        version = directory_store.find_current_version(session=session)
        if version is None:
            yield "no duty directory: no demo orders"
            return
        for demo in DEMO_ORDERS:
            if session.scalar(select(WorkOrder.id).where(WorkOrder.number == demo.number)):
                yield f"demo order {demo.number} already there"
                continue
            order = _take_through(demo, version, session, clocks, settings)
            yield f"demo order {demo.number} ({order.state.value}) for {DEMO_CALLER}"


def _take_through(
    demo: DemoOrder,
    version: DirectoryVersion,
    session: Session,
    clocks: ConfiguredClocks,
    settings: Settings,
) -> WorkOrder:
    at = utcnow() - timedelta(hours=demo.hours_ago)
    order = work_orders.open_call_work_order(
        work_orders.CallRecord(
            kind=demo.kind, summary=demo.summary, district=demo.district, notify_by_sms=False
        ),
        session=session,
        call_sid=f"CAdemo{demo.number}",
        caller_number=DEMO_CALLER,
        language="zh",
        actor=DEMO_ACTOR.actor,
        actor_role=DEMO_ACTOR.role,
        zone=settings.zone,
    )
    order.number = demo.number
    item = directory_store.find_item(version, demo.item_code, session=session)
    department = directory_store.find_department(version, demo.department_code, session=session)
    assert item is not None and department is not None, demo
    order_flow.dispatch(
        order,
        item=item,
        department=department,
        actor=DEMO_ACTOR,
        session=session,
        clocks=clocks,
        now=at,
    )
    liaison = Actor("system:demo", Role.DEPARTMENT_LIAISON.value, department.code)
    later = at + timedelta(minutes=20)
    for step in demo.steps:
        if step == "accept":
            order_flow.accept(order, actor=liaison, session=session, clocks=clocks, now=later)
        elif step == "contact":
            order_flow.record_contact(
                order,
                note="已电话联系市民",
                actor=liaison,
                session=session,
                clocks=clocks,
                now=later,
            )
        elif step == "answer":
            order_flow.answer(
                order, outcome="已调整加压泵，水压恢复", actor=liaison, session=session, now=later
            )
        elif step == "object":
            order_flow.object_to(
                order,
                reason_code=ObjectionReason.NOT_OUR_DUTY,
                text="餐饮油烟归城管部门管理，不属于住建局职责",
                actor=liaison,
                session=session,
            )
    return order


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
