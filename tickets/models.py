"""The ticket store's tables: calls, their event history, and work orders."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tickets.db import Base, JSONDocument, call_sid, e164, str_enum, utc_time, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallStatus(StrEnum):
    """Twilio's call statuses, in the order a call moves through them."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        """Higher ranks come later; every final status shares the top rank."""
        return _STATUS_RANK[self]

    @property
    def is_final(self) -> bool:
        return self.rank == _FINAL_RANK


_FINAL_RANK = 4
_STATUS_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    CallStatus.COMPLETED: _FINAL_RANK,
    CallStatus.BUSY: _FINAL_RANK,
    CallStatus.NO_ANSWER: _FINAL_RANK,
    CallStatus.CANCELED: _FINAL_RANK,
    CallStatus.FAILED: _FINAL_RANK,
}


class Call(Base):
    """One phone call, inbound from a citizen or an outbound leg the hotline placed."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_sid: Mapped[call_sid] = mapped_column(unique=True)
    parent_call_sid: Mapped[str | None] = mapped_column(String(34), index=True)
    direction: Mapped[CallDirection] = mapped_column(str_enum(CallDirection, 16))
    caller_kind: Mapped[str] = mapped_column(String(16))  # tickets.phones.CallerKind
    from_number: Mapped[e164 | None] = mapped_column(index=True)
    caller_identity: Mapped[str | None] = mapped_column(String(200))
    to_number: Mapped[e164 | None]
    leg_role: Mapped[str | None] = mapped_column(String(32))  # e.g. "emergency-line"
    language: Mapped[str | None] = mapped_column(String(8))
    intent: Mapped[str | None] = mapped_column(String(32))
    front_door_path: Mapped[str] = mapped_column(String(500), default="", server_default="")
    status: Mapped[CallStatus] = mapped_column(str_enum(CallStatus, 16))
    status_rank: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    answered_at: Mapped[utc_time | None]
    ended_at: Mapped[utc_time | None]
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[utc_time | None]
    queue_left_at: Mapped[utc_time | None]
    queue_wait_seconds: Mapped[int | None] = mapped_column(Integer)
    emergency_line: Mapped[str | None] = mapped_column(String(16))

    events: Mapped[list[CallEvent]] = relationship(
        primaryjoin="Call.call_sid == foreign(CallEvent.call_sid)",
        order_by="CallEvent.id",
        viewonly=True,
    )

    __table_args__ = (
        Index(
            "ix_calls_queued_waiting",
            "queued_at",
            sqlite_where=text("queue_left_at IS NULL"),
            postgresql_where=text("queue_left_at IS NULL"),
        ),
    )


class CallEvent(Base):
    """Append-only: one row per webhook or status callback Twilio delivered.

    ``dedupe_key`` is Twilio's idempotency token (or, for callbacks without one, the
    call SID with the callback's sequence number), so a retried delivery is stored once.
    Events for call SIDs we never saw are kept too: ``call_sid`` is not a foreign key.
    """

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_sid: Mapped[str | None] = mapped_column(String(34), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    sequence_number: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[utc_time] = mapped_column(default=utcnow)
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument)


class WorkOrderKind(StrEnum):
    CONSULTATION = "consultation"
    COMPLAINT = "complaint"
    HELP = "help"
    EMERGENCY = "emergency"


class WorkOrderState(StrEnum):
    RECEIVED = "received"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    CALLBACK = "callback"
    CLOSED = "closed"


class WorkOrder(Base):
    """A citizen's request. The full lifecycle arrives with the work-order issue."""

    __tablename__ = "work_orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[WorkOrderKind] = mapped_column(str_enum(WorkOrderKind))
    state: Mapped[WorkOrderState] = mapped_column(str_enum(WorkOrderState))
    is_urgent: Mapped[bool] = mapped_column(default=False)
    call_sid: Mapped[str | None] = mapped_column(String(34), index=True)
    caller_number: Mapped[e164 | None] = mapped_column(index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(Text, default="")
    handling_department: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[utc_time | None]
    emergency_line: Mapped[str | None] = mapped_column(String(16))
    emergency_number: Mapped[e164 | None]
    emergency_leg_sid: Mapped[str | None] = mapped_column(String(34))
    emergency_requested_at: Mapped[utc_time | None]
    emergency_dialed_at: Mapped[utc_time | None]
    emergency_connected_at: Mapped[utc_time | None]
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    updated_at: Mapped[utc_time] = mapped_column(default=utcnow, onupdate=utcnow)

    history: Mapped[list[WorkOrderHistory]] = relationship(
        back_populates="work_order", order_by="WorkOrderHistory.id"
    )


class WorkOrderHistory(Base):
    """Who moved an order, when, from which state to which, and why."""

    __tablename__ = "work_order_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    at: Mapped[utc_time] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")

    work_order: Mapped[WorkOrder] = relationship(back_populates="history")
