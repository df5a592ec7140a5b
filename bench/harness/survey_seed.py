"""The survey benchmark's database side: the rules file, the answered orders with their
surveys, and what the rows say during and after the run (through ``tickets`` only).

The orders are written in bulk, as ``tickets.order_flow.answer`` leaves them: ANSWERED, an
hour ago, with their ``Survey`` row opened (``scheduled``, ``next_attempt_at`` None: the
worker's sweep plans the first call, ``tickets.survey_planning``). With ``planned`` the
planning is done here instead (the order in CALLBACK, the first call due a minute ago), so
that the run measures the placing of calls alone.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from tickets.db import make_engine
from tickets.models import (
    SmsMessage,
    SmsPurpose,
    Survey,
    SurveyAttempt,
    SurveyReview,
    SurveyStatus,
    WorkOrder,
    WorkOrderKind,
    WorkOrderState,
)

UNSETTLED = (SurveyStatus.SCHEDULED, SurveyStatus.CALLING)
CHUNK = 1000
TOPICS = ("小区夜间施工噪音", "路灯不亮", "供暖温度不达标", "公交站台破损", "自来水水压低")


def citizen_number(index: int) -> str:
    """A valid mainland mobile number per order (``phonenumbers`` accepts it)."""
    return f"+86137{50_000_000 + index:08d}"


def write_rules(path: Path, *, attempts: int, min_gap: str) -> Path:
    """Calling hours all day, every day (weekends and public holidays too), so that the
    benchmark runs at any hour; retries ``min_gap`` apart, so they happen within the run."""
    path.write_text(
        "# tickets/data/survey_rules.toml, for bench/surveys.py: calls at any hour.\n"
        "[calling_hours]\n"
        'hours = "00:00-23:59:59.999999"\n'
        "weekends = true\n"
        "public_holidays = true\n"
        "\n"
        "[attempts]\n"
        f"max = {attempts}\n"
        f'min_gap = "{min_gap}"\n'
        'settle_delay = "10m"\n'
        "sms_fallback = true\n",
        encoding="utf-8",
    )
    return path


def seed(database_url: str, orders: int, *, planned: bool, seed_value: int = 12345) -> float:
    """``orders`` answered orders, each with its survey; how long the inserts took (s)."""
    rng = random.Random(seed_value)
    now = datetime.now(UTC)
    answered = now - timedelta(hours=1)
    day = f"{answered:%Y%m%d}"
    state = WorkOrderState.CALLBACK if planned else WorkOrderState.ANSWERED
    engine = make_engine(database_url)
    started = datetime.now(UTC)
    try:
        with Session(engine) as session:
            for first in range(0, orders, CHUNK):
                rows = []
                for index in range(first, min(first + CHUNK, orders)):
                    language = rng.choices(["zh", "bo", "en"], [85, 12, 3])[0]
                    rows.append(
                        {
                            "number": f"{day}{index + 1:06d}",
                            "kind": WorkOrderKind.COMPLAINT,
                            "state": state,
                            "is_urgent": False,
                            "caller_number": citizen_number(index),
                            "language": language,
                            "summary": rng.choice(TOPICS),
                            "caller_words": "",
                            "is_confidential": index % 20 == 7,
                            "handling_department": "Bench department",
                            "department_code": "BENCH",
                            "dispatch_count": 1,
                            "dispatched_at": answered - timedelta(days=2),
                            "accepted_at": answered - timedelta(days=2),
                            "contacted_at": answered - timedelta(days=1),
                            "answered_at": answered,
                            "outcome": "已处理 handled",
                            "notify_by_sms": True,
                            "created_at": answered - timedelta(days=3),
                            "updated_at": answered,
                        }
                    )
                session.execute(insert(WorkOrder), rows)
            session.flush()
            orders_rows = session.execute(
                select(WorkOrder.id, WorkOrder.caller_number, WorkOrder.language).order_by(
                    WorkOrder.id
                )
            ).all()
            due = now - timedelta(minutes=1) if planned else None
            for first in range(0, len(orders_rows), CHUNK):
                session.execute(
                    insert(Survey),
                    [
                        {
                            "work_order_id": order_id,
                            "to_number": number,
                            "language": language or "zh",
                            "status": SurveyStatus.SCHEDULED,
                            "attempts": 0,
                            "next_attempt_at": due,
                            "review_reason": "",
                            "created_at": answered,
                            "updated_at": answered,
                        }
                        for order_id, number, language in orders_rows[first : first + CHUNK]
                    ],
                )
            session.commit()
    finally:
        engine.dispose()
    return (datetime.now(UTC) - started).total_seconds()


class Watcher:
    """Polls the surveys' statuses during the run (one short read each time)."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url, pool_size=1)

    def statuses(self) -> Counter[str]:
        with Session(self.engine) as session:
            rows = session.execute(select(Survey.status, func.count()).group_by(Survey.status))
            return Counter({status.value: int(count) for status, count in rows})

    def unsettled(self) -> int:
        counts = self.statuses()
        return sum(counts[status.value] for status in UNSETTLED)

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class Attempt:
    survey_id: int
    number: int
    attempt_key: str
    call_sid: str | None
    status: str
    answered_by: str | None
    placed_at: float
    error: str


def read_outcome(database_url: str) -> dict[str, Any]:
    """What the rows say after the run: the surveys' statuses, their attempts, the orders."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            statuses = Counter(
                {
                    status.value: int(count)
                    for status, count in session.execute(
                        select(Survey.status, func.count()).group_by(Survey.status)
                    )
                }
            )
            reviews = int(
                session.scalar(
                    select(func.count(Survey.id)).where(Survey.review == SurveyReview.PENDING)
                )
                or 0
            )
            orders = Counter(
                {
                    state.value: int(count)
                    for state, count in session.execute(
                        select(WorkOrder.state, func.count()).group_by(WorkOrder.state)
                    )
                }
            )
            sms = int(
                session.scalar(
                    select(func.count(SmsMessage.id)).where(SmsMessage.purpose == SmsPurpose.SURVEY)
                )
                or 0
            )
            attempts = [
                Attempt(
                    survey_id=row.survey_id,
                    number=row.number,
                    attempt_key=row.attempt_key,
                    call_sid=row.call_sid,
                    status=row.status,
                    answered_by=row.answered_by,
                    placed_at=row.placed_at.timestamp(),
                    error=row.error or "",
                )
                for row in session.scalars(select(SurveyAttempt).order_by(SurveyAttempt.id))
            ]
            counted = Counter(
                {
                    int(n): int(count)
                    for n, count in session.execute(
                        select(Survey.attempts, func.count()).group_by(Survey.attempts)
                    )
                }
            )
    finally:
        engine.dispose()
    return {
        "statuses": statuses,
        "reviews": reviews,
        "orders": orders,
        "sms": sms,
        "attempts": attempts,
        "attempts_counted": counted,
    }
