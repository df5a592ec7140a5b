"""The ticket store's tables: calls, their event history, work orders, and the staff
who log in (accounts, roles, call-taker profiles and their state history), callback tasks and
the duty directory's versions (categories, departments, items and their audit trail)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
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
    # The caller hung up while waiting for a call-taker: on the abandoned-call list.
    abandoned_at: Mapped[utc_time | None]
    # The queue's callback offer (at most once per call): when the hotline moved the caller
    # out of their room to hear it, and how it ended (``CallbackOfferOutcome``; None while
    # the caller is hearing it).
    callback_offered_at: Mapped[utc_time | None]
    callback_offer_outcome: Mapped[str | None] = mapped_column(String(16))

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
    SUGGESTION = "suggestion"
    EMERGENCY = "emergency"


class WorkOrderState(StrEnum):
    RECEIVED = "received"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    CALLBACK = "callback"
    CLOSED = "closed"
    OBJECTED = "objected"  # the department objected (退单): a reviewer decides


class ClosedHow(StrEnum):
    """How an order came to be closed."""

    ON_THE_SPOT = "on_the_spot"  # 直接答复: answered during the call
    AFTER_CALLBACK = "after_callback"  # the citizen's survey, or a reviewer, closed it
    EXPLAINED = "explained"  # dissatisfied, but about what the law allows (objective)


class WorkOrder(Base):
    """A citizen's request and where it stands (``tickets.lifecycle`` says which moves are
    legal; ``tickets.order_flow`` makes them, each with a history row).

    Dispatch points at the directory version's rows (``directory_item_id``,
    ``department_id``), which are never rewritten, and copies the department's stable
    ``department_code`` (a liaison sees the orders of their code). The three clocks run
    from the latest dispatch: ``signoff_due_at`` (签收), ``contact_due_at`` (响应) and
    ``due_at`` (办结, moved by an approved extension). ``row_version`` makes two staff who
    act on the same order at once fail cleanly instead of overwriting each other.
    """

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
    # What the call-taker recorded from the console: the caller's own words, where, and
    # whether the order is confidential (保密: the number and name hidden from departments).
    caller_words: Mapped[str] = mapped_column(Text, default="", server_default="")
    district: Mapped[str | None] = mapped_column(String(100))  # county or district
    street: Mapped[str | None] = mapped_column(String(100))  # street or township
    is_confidential: Mapped[bool] = mapped_column(default=False, server_default=false())
    handling_department: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[utc_time | None]
    notify_by_sms: Mapped[bool] = mapped_column(default=True, server_default=true())
    directory_version_id: Mapped[int | None] = mapped_column(ForeignKey("directory_versions.id"))
    directory_item_id: Mapped[int | None] = mapped_column(ForeignKey("directory_items.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("directory_departments.id"))
    department_code: Mapped[str | None] = mapped_column(String(40), index=True)
    dispatch_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dispatched_at: Mapped[utc_time | None]
    accepted_at: Mapped[utc_time | None]
    contacted_at: Mapped[utc_time | None]
    answered_at: Mapped[utc_time | None]
    closed_at: Mapped[utc_time | None]
    closed_how: Mapped[ClosedHow | None] = mapped_column(str_enum(ClosedHow, 20))
    signoff_due_at: Mapped[utc_time | None]
    contact_due_at: Mapped[utc_time | None]
    # When the earliest running clock escalates to the floor manager (督办); the worker's
    # sweep reads it, and it is planned again whenever a clock stops or moves.
    escalation_due_at: Mapped[utc_time | None] = mapped_column(index=True)
    outcome: Mapped[str] = mapped_column(Text, default="", server_default="")
    is_supervised: Mapped[bool] = mapped_column(default=False, server_default=false())
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    row_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
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
    directory_item: Mapped[DirectoryItem | None] = relationship(viewonly=True)
    department: Mapped[DirectoryDepartment | None] = relationship(viewonly=True)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": row_version}
    __table_args__ = (
        Index("ix_work_orders_state_department_code", "state", "department_code"),
        Index("ix_work_orders_updated_at_id", "updated_at", "id"),  # the API's sync listing
    )


class WorkOrderHistory(Base):
    """Append-only: who moved an order (``actor``, in which ``role``), when, by which
    ``action`` (``tickets.lifecycle.Action``), from which state to which, and why.
    Side paths that keep the state (progress, reminder, extension) have ``from == to``;
    ``details`` hold what the action carried (department, objection, new due date)."""

    __tablename__ = "work_order_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    at: Mapped[utc_time] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    actor_role: Mapped[str] = mapped_column(String(32), default="", server_default="")
    action: Mapped[str] = mapped_column(String(24), default="receive", server_default="receive")
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)

    work_order: Mapped[WorkOrder] = relationship(back_populates="history")


class WorkOrderDispatch(Base):
    """Append-only: each time an order was sent to a department, by what directory row,
    whether the call-taker took one of the recommender's top three (``recommended_rank``,
    1-3, None when picked by hand), and how that dispatch ended (``ended_how``:
    ``objection-upheld``, ``reopened``...). Dispatch accuracy and the learning examples
    are read from here."""

    __tablename__ = "work_order_dispatches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)  # 1 for the first dispatch
    directory_version_id: Mapped[int] = mapped_column(ForeignKey("directory_versions.id"))
    directory_item_id: Mapped[int | None] = mapped_column(ForeignKey("directory_items.id"))
    item_code: Mapped[str | None] = mapped_column(String(20))
    department_id: Mapped[int] = mapped_column(ForeignKey("directory_departments.id"))
    department_code: Mapped[str] = mapped_column(String(40))
    dispatched_at: Mapped[utc_time] = mapped_column(default=utcnow)
    dispatched_by: Mapped[str] = mapped_column(String(80))
    recommended_rank: Mapped[int | None] = mapped_column(Integer)
    recommended: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    ended_at: Mapped[utc_time | None]
    ended_how: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (UniqueConstraint("work_order_id", "sequence"),)


class ObjectionStatus(StrEnum):
    PENDING = "pending"
    UPHELD = "upheld"  # not the department's: re-dispatched
    REJECTED = "rejected"  # the department's after all: back to it, clock running


class ObjectionReason(StrEnum):
    """The reason codes a department gives when it objects (退单)."""

    NOT_OUR_DUTY = "not_our_duty"  # 不属于本单位职责
    WRONG_AREA = "wrong_area"  # 不在本辖区
    ALREADY_HANDLED = "already_handled"  # 已办理/重复诉求
    NEEDS_OTHER_CHANNEL = "needs_other_channel"  # 应通过诉讼、仲裁等途径解决
    INSUFFICIENT_INFORMATION = "insufficient_information"  # 信息不全，无法办理
    OTHER = "other"


class Objection(Base):
    """A department's objection (退单) and the reviewer's decision on it. ``suggested``
    are the alternatives the recommender offered at the time (item and department codes
    with names), ``state_before`` where a rejected objection sends the order back."""

    __tablename__ = "objections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    dispatch_id: Mapped[int] = mapped_column(ForeignKey("work_order_dispatches.id"))
    department_code: Mapped[str] = mapped_column(String(40))
    reason_code: Mapped[ObjectionReason] = mapped_column(str_enum(ObjectionReason, 32))
    text: Mapped[str] = mapped_column(Text)
    raised_by: Mapped[str] = mapped_column(String(80))
    raised_at: Mapped[utc_time] = mapped_column(default=utcnow)
    state_before: Mapped[WorkOrderState] = mapped_column(str_enum(WorkOrderState))
    suggested: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    status: Mapped[ObjectionStatus] = mapped_column(
        str_enum(ObjectionStatus, 16), default=ObjectionStatus.PENDING
    )
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[utc_time | None]
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    redispatch_id: Mapped[int | None] = mapped_column(ForeignKey("work_order_dispatches.id"))

    work_order: Mapped[WorkOrder] = relationship(viewonly=True)

    __table_args__ = (Index("ix_objections_status_raised_at", "status", "raised_at"),)


class ExtensionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class ExtensionRequest(Base):
    """A department's request for more time (延期) and its decision; an approved one
    moves the resolution due date from ``due_before`` to ``due_after``."""

    __tablename__ = "extension_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    department_code: Mapped[str] = mapped_column(String(40))
    working_days: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(80))
    requested_at: Mapped[utc_time] = mapped_column(default=utcnow)
    status: Mapped[ExtensionStatus] = mapped_column(
        str_enum(ExtensionStatus, 16), default=ExtensionStatus.PENDING
    )
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[utc_time | None]
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    due_before: Mapped[utc_time | None]
    due_after: Mapped[utc_time | None]

    work_order: Mapped[WorkOrder] = relationship(viewonly=True)

    __table_args__ = (Index("ix_extension_requests_status", "status", "requested_at"),)


# -- the SMS outbox ---------------------------------------------------------------------------


class SmsPurpose(StrEnum):
    ORDER_OPENED = "order_opened"  # to the citizen: the order's number
    SURVEY = "survey"  # to the citizen: the survey's question, when the calls ran out
    REMINDER = "reminder"  # 催办: to the department's contact before a deadline
    OVERDUE = "overdue"  # 超期催办: to the department's contact after it
    ESCALATION = "escalation"  # 督办: the overdue order goes to the floor manager


class SmsStatus(StrEnum):
    PENDING = "pending"  # waiting for ``due_at`` / ``next_attempt_at``
    SENDING = "sending"  # a worker holds the lease; after a crash: reconcile, then resend
    SENT = "sent"  # the provider accepted it (``provider_id``)
    CANCELLED = "cancelled"  # no longer needed (the deadline was met or moved)
    OPTED_OUT = "opted_out"  # the number replied STOP (Twilio 21610): never again
    INVALID = "invalid"  # not a number that takes SMS (Twilio 21211)
    FAILED = "failed"  # gave up after the attempts, or rejected by the provider


class SmsMessage(Base):
    """One SMS to send, as a scheduled row: whoever sends it first claims it with a lease
    (``lease_owner``, ``lease_until``), so two workers never send it twice; a row left
    ``sending`` by a crash is reconciled with the provider before it is sent again.
    ``dedupe_key`` makes scheduling idempotent (``reminder:42:1:signoff:before:<due>``:
    order, dispatch, clock, kind and deadline)."""

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    purpose: Mapped[SmsPurpose] = mapped_column(str_enum(SmsPurpose, 16))
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id"), index=True)
    to_number: Mapped[e164]
    body: Mapped[str] = mapped_column(Text)
    due_at: Mapped[utc_time]
    status: Mapped[SmsStatus] = mapped_column(str_enum(SmsStatus, 16), default=SmsStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[utc_time]
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[utc_time | None]
    provider_id: Mapped[str | None] = mapped_column(String(64))
    provider_status: Mapped[str | None] = mapped_column(String(24))
    sent_at: Mapped[utc_time | None]
    error_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    updated_at: Mapped[utc_time] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_sms_messages_status_next_attempt_at", "status", "next_attempt_at"),)


class ContactPreference(Base):
    """What a phone number allows: a citizen who asked not to be texted or called again,
    a number that opted out at the provider (STOP), or one that is not valid. One row per
    number, changed in place; ``reason`` and ``updated_by`` say the latest why."""

    __tablename__ = "contact_preferences"

    number: Mapped[e164] = mapped_column(primary_key=True)
    no_sms: Mapped[bool] = mapped_column(default=False)  # the citizen asked: no texts
    no_calls: Mapped[bool] = mapped_column(default=False)  # do not call again (surveys)
    invalid: Mapped[bool] = mapped_column(default=False)  # the provider: not a valid number
    opted_out_sms: Mapped[bool] = mapped_column(default=False)  # replied STOP (21610)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[utc_time] = mapped_column(default=utcnow, onupdate=utcnow)


class ApiClient(Base):
    """A system that calls the JSON API (a department's or the provincial platform's),
    with the SHA-256 of its bearer token. ``department_code`` limits it to that
    department's orders; None reads every order. Deactivated, never deleted."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    department_code: Mapped[str | None] = mapped_column(String(40))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    last_used_at: Mapped[utc_time | None]


# -- staff and call-takers ----------------------------------------------------------------


class Role(StrEnum):
    """The eight staff roles of PRODUCT.md ("Who uses it"); a person may hold several."""

    CALL_TAKER = "call_taker"  # 接线员
    QUALITY_INSPECTOR = "quality_inspector"  # 质检员
    REVIEWER = "reviewer"  # 审核员
    CALLBACK_AGENT = "callback_agent"  # 回访员
    FLOOR_MANAGER = "floor_manager"  # 现场管理
    KNOWLEDGE_EDITOR = "knowledge_editor"  # 知识采集
    ADMINISTRATOR = "administrator"
    DEPARTMENT_LIAISON = "department_liaison"  # 部门联络员


class CallTakerState(StrEnum):
    """Where a call-taker is; the allowed moves are in ``tickets.staff.TRANSITIONS``."""

    OFFLINE = "offline"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    AWAY = "away"


class AccountAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    PASSWORD_SET = "password_set"
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"


class Staff(Base):
    """A person who logs in. Never deleted: an account no longer used is deactivated."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    # Part of every login session; a new one (new password, deactivation) ends them all.
    session_token: Mapped[str] = mapped_column(String(32))
    # A department liaison's department (its directory code, stable across versions).
    department_code: Mapped[str | None] = mapped_column(String(40))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    updated_at: Mapped[utc_time] = mapped_column(default=utcnow, onupdate=utcnow)

    roles: Mapped[list[StaffRole]] = relationship(
        back_populates="staff",
        cascade="all, delete-orphan",
        order_by="StaffRole.role",
        lazy="selectin",
    )
    call_taker: Mapped[CallTaker | None] = relationship(back_populates="staff", lazy="selectin")

    @property
    def role_set(self) -> frozenset[Role]:
        return frozenset(grant.role for grant in self.roles)

    def has_role(self, role: Role) -> bool:
        return role in self.role_set


class StaffRole(Base):
    """One role held by one person (unique per person and role)."""

    __tablename__ = "staff_roles"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, 32), primary_key=True)
    granted_at: Mapped[utc_time] = mapped_column(default=utcnow)
    granted_by: Mapped[str] = mapped_column(String(80))

    staff: Mapped[Staff] = relationship(back_populates="roles")


class CallTaker(Base):
    """A call-taker's profile and live state: what routing reads to decide who rings.

    ``languages`` hold ``zh``/``bo``/``en``, ``skills`` the front door's intents. A call-taker
    is reached on ``phone_number`` (E.164) or, with the browser softphone, as the Twilio
    Client ``client_identity``. ``idle_since`` is when they last became free (routing prefers
    the longest idle); ``wrap_up_until`` is when the after-call work ends by itself.
    """

    __tablename__ = "call_takers"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    languages: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    skills: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    phone_number: Mapped[e164 | None]
    client_identity: Mapped[str | None] = mapped_column(String(120), unique=True)
    state: Mapped[CallTakerState] = mapped_column(
        str_enum(CallTakerState), default=CallTakerState.OFFLINE
    )
    away_reason: Mapped[str | None] = mapped_column(String(200))
    call_sid: Mapped[str | None] = mapped_column(String(34))  # the call rung for or taken
    state_changed_at: Mapped[utc_time] = mapped_column(default=utcnow)
    idle_since: Mapped[utc_time | None]
    wrap_up_until: Mapped[utc_time | None]

    staff: Mapped[Staff] = relationship(back_populates="call_taker")

    __table_args__ = (Index("ix_call_takers_state_idle_since", "state", "idle_since"),)


class CallTakerStateChange(Base):
    """Append-only: every change of a call-taker's state, who made it, when and why.

    ``actor`` is ``staff:<id>`` for a person, ``system:<part>`` for the hotline itself
    (routing, ring timeout, the end of wrap-up).
    """

    __tablename__ = "call_taker_state_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    at: Mapped[utc_time] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    from_state: Mapped[CallTakerState] = mapped_column(str_enum(CallTakerState))
    to_state: Mapped[CallTakerState] = mapped_column(str_enum(CallTakerState))
    reason: Mapped[str] = mapped_column(Text, default="")
    call_sid: Mapped[str | None] = mapped_column(String(34))


class StaffAccountChange(Base):
    """Append-only: who created an account, changed it, set its password, deactivated it."""

    __tablename__ = "staff_account_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    at: Mapped[utc_time] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[AccountAction] = mapped_column(str_enum(AccountAction))
    detail: Mapped[str] = mapped_column(Text, default="")


# -- conferences ---------------------------------------------------------------------------


class ConferenceRoom(Base):
    """One citizen call's conference: the state machine's state (``callflows.conference``),
    keyed by the citizen's CallSid, which is also the room's name.

    ``version`` is for optimistic concurrency: a save is ``UPDATE ... WHERE version =
    :seen``, and a writer that lost the race reloads and applies its change again.
    ``phase`` copies the state's phase so that the queue can be read without the JSON;
    ``failed_rings`` are the call-takers who let this call ring out (routing skips them).
    """

    __tablename__ = "conference_rooms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_sid: Mapped[call_sid] = mapped_column(unique=True)
    conference_sid: Mapped[str | None] = mapped_column(String(34))
    phase: Mapped[str] = mapped_column(String(16), index=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    failed_rings: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    updated_at: Mapped[utc_time] = mapped_column(default=utcnow, onupdate=utcnow)


# -- callback tasks ------------------------------------------------------------------------


class CallbackOfferOutcome(StrEnum):
    """How the queue's callback offer ended (``calls.callback_offer_outcome``)."""

    REQUESTED = "requested"  # pressed 1: a callback task, out of the queue
    STAYED = "stayed"  # any other key or silence: back in the room, place kept
    HUNG_UP = "hung-up"  # hung up while hearing it: abandoned
    NOT_MADE = "not-made"  # the redirect failed at Twilio: the caller stayed in the room


class CallbackSource(StrEnum):
    QUEUE_REQUEST = "queue-request"  # pressed 1 at the queue's offer
    ABANDONED = "abandoned"  # hung up while waiting in the queue


class CallbackStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class CallbackOutcome(StrEnum):
    """What came of a callback, as the call-taker who worked it recorded."""

    REACHED = "reached"  # talked with the caller
    NO_ANSWER = "no-answer"  # tried, nobody answered
    UNREACHABLE = "unreachable"  # no number, wrong or out-of-service number
    NOT_NEEDED = "not-needed"  # e.g. the caller called again and was served


class CallbackTask(Base):
    """A citizen to call back: they asked for it in the queue, or hung up while waiting.

    ``queued_at`` is their place in line (their first queue entry), so the list is worked in
    the order the queue would have served them. Never deleted: a task worked is ``done``,
    with its outcome and who did it when (``handled_by`` is ``staff:<id>``). One task per
    call. The outbound call itself is issue 5.
    """

    __tablename__ = "callback_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_sid: Mapped[call_sid] = mapped_column(unique=True)
    caller_kind: Mapped[str] = mapped_column(String(16))  # tickets.phones.CallerKind
    caller_number: Mapped[e164 | None]  # None: anonymous, client or unknown (caller_kind)
    language: Mapped[str] = mapped_column(String(8))
    intent: Mapped[str | None] = mapped_column(String(32))
    queued_at: Mapped[utc_time]
    requested_at: Mapped[utc_time]
    source: Mapped[CallbackSource] = mapped_column(str_enum(CallbackSource, 16))
    status: Mapped[CallbackStatus] = mapped_column(
        str_enum(CallbackStatus, 16), default=CallbackStatus.OPEN
    )
    outcome: Mapped[CallbackOutcome | None] = mapped_column(str_enum(CallbackOutcome, 16))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    handled_by: Mapped[str | None] = mapped_column(String(80))
    handled_at: Mapped[utc_time | None]
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    # The outbound callback (issue 5): a free call-taker is rung first, then the citizen
    # into the same room; attempts are planned like a survey's, claimed under a lease.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[utc_time | None]
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[utc_time | None]
    last_room: Mapped[str | None] = mapped_column(String(34))  # the latest attempt's room
    last_attempt_at: Mapped[utc_time | None]  # when the latest attempt was placed
    reached_at: Mapped[utc_time | None]  # the citizen answered: no more automatic calls

    __table_args__ = (
        Index("ix_callback_tasks_status_queued_at", "status", "queued_at"),
        Index("ix_callback_tasks_status_next_attempt_at", "status", "next_attempt_at"),
    )


# -- the duty directory (接诉即办职责清单) -------------------------------------------------------


class DirectoryLevel(StrEnum):
    """Who is responsible for an item, and at which level a department sits."""

    CITY = "city"  # 市
    COUNTY = "county"  # 县区
    TOWNSHIP = "township"  # 乡镇/街道


class DirectoryVersionKind(StrEnum):
    IMPORT = "import"  # the three CSV files
    EDIT = "edit"  # one item or department changed on the admin pages


class DirectoryVersion(Base):
    """One complete duty directory: its categories, departments and items are copied into
    every version and never updated or deleted afterwards, so a work order that refers to
    an item or department row keeps what it was dispatched by. Exactly one version is
    current (a partial unique index); ``source`` names the imported files with their
    SHA-256, ``based_on_id`` the version this one replaced."""

    __tablename__ = "directory_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[DirectoryVersionKind] = mapped_column(str_enum(DirectoryVersionKind, 16))
    based_on_id: Mapped[int | None] = mapped_column(ForeignKey("directory_versions.id"))
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    source: Mapped[list[dict[str, str]]] = mapped_column(JSONDocument, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    is_current: Mapped[bool] = mapped_column(default=False)
    category_count: Mapped[int] = mapped_column(Integer)
    department_count: Mapped[int] = mapped_column(Integer)
    item_count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index(
            "uq_directory_versions_one_current",
            "is_current",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
    )


class DirectoryCategory(Base):
    """A category (大类) of one directory version."""

    __tablename__ = "directory_categories"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("directory_versions.id"))
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("version_id", "code"),)


class DirectoryDepartment(Base):
    """A department of one directory version: where items resolve to, and whom the SMS
    reminders reach (``sms_contact_number``, the liaison's mobile)."""

    __tablename__ = "directory_departments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("directory_versions.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[DirectoryLevel] = mapped_column(str_enum(DirectoryLevel, 16))
    county: Mapped[str | None] = mapped_column(String(50))  # None at city level
    role: Mapped[str] = mapped_column(String(50))
    phone_number: Mapped[e164]
    sms_contact_number: Mapped[e164]

    __table_args__ = (
        UniqueConstraint("version_id", "code"),
        Index("ix_directory_departments_version_id_role", "version_id", "role"),
    )


class DirectoryItem(Base):
    """A responsibility item (职责事项) of one directory version. ``keywords`` are kept as
    in the CSV, separated by ``|`` (searchable with LIKE on every database)."""

    __tablename__ = "directory_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("directory_versions.id"))
    category_id: Mapped[int] = mapped_column(ForeignKey("directory_categories.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(Text, default="")
    level: Mapped[DirectoryLevel] = mapped_column(str_enum(DirectoryLevel, 16))
    role: Mapped[str] = mapped_column(String(50))
    sla_days: Mapped[int] = mapped_column(Integer)
    is_urgent: Mapped[bool] = mapped_column(default=False)

    category: Mapped[DirectoryCategory] = relationship(lazy="joined", viewonly=True)

    __table_args__ = (UniqueConstraint("version_id", "code"),)

    @property
    def keyword_list(self) -> list[str]:
        return [word for word in self.keywords.split("|") if word]


class DirectoryChange(Base):
    """Append-only audit: what a new directory version changed against the one it replaced,
    one row per category, department or item added, changed or dropped, with the changed
    fields as ``{field: [before, after]}``. Who and when are the version's too."""

    __tablename__ = "directory_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("directory_versions.id"), index=True)
    at: Mapped[utc_time] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    entity: Mapped[str] = mapped_column(String(16))  # category, department or item
    code: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(16))  # added, changed or removed
    fields: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)

    __table_args__ = (Index("ix_directory_changes_entity_code", "entity", "code"),)


# -- satisfaction surveys (回访) ------------------------------------------------------------


class SurveyStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for ``next_attempt_at`` (inside calling hours)
    CALLING = "calling"  # a worker holds the lease: an attempt is being placed or is live
    COMPLETED = "completed"  # the citizen answered (some answers may be empty)
    SMS_SENT = "sms_sent"  # the attempts ran out: the question went by SMS
    OPTED_OUT = "opted_out"  # the citizen pressed "do not call me again"
    CANCELLED = "cancelled"  # no callable number, on the do-not-call list, or invalid


class SurveyReview(StrEnum):
    """A reviewer's reading of an unsolved or dissatisfied survey (PRODUCT.md)."""

    PENDING = "pending"
    SUBJECTIVE = "subjective"  # about the handling: reopened (重办)
    OBJECTIVE = "objective"  # about what the law allows: explained and closed


class Survey(Base):
    """The satisfaction survey of one answered work order (one per order, never two).

    Scheduled when the department answers, inside calling hours; each call is a
    ``SurveyAttempt``. A worker claims a due row with a lease, as for SMS, so two workers
    never call the same citizen at once. The answers (``callflows.survey``) are stored
    after every step of the call, so a hang-up keeps what was said; ``review`` is set when
    the answers send the order to a reviewer.
    """

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), unique=True)
    to_number: Mapped[e164 | None]
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[SurveyStatus] = mapped_column(
        str_enum(SurveyStatus, 16), default=SurveyStatus.SCHEDULED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[utc_time | None]
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[utc_time | None]
    responded: Mapped[str | None] = mapped_column(String(24))  # callflows.survey.Responded
    solved: Mapped[str | None] = mapped_column(String(24))  # callflows.survey.Resolution
    satisfied: Mapped[str | None] = mapped_column(String(24))  # callflows.survey.Satisfaction
    answered_call_sid: Mapped[str | None] = mapped_column(String(34))
    answered_at: Mapped[utc_time | None]
    sms_message_id: Mapped[int | None] = mapped_column(ForeignKey("sms_messages.id"))
    review: Mapped[SurveyReview | None] = mapped_column(str_enum(SurveyReview, 16))
    reviewed_by: Mapped[str | None] = mapped_column(String(80))
    reviewed_at: Mapped[utc_time | None]
    review_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[utc_time] = mapped_column(default=utcnow)
    updated_at: Mapped[utc_time] = mapped_column(default=utcnow, onupdate=utcnow)

    work_order: Mapped[WorkOrder] = relationship(viewonly=True)

    __table_args__ = (
        Index("ix_surveys_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_surveys_review", "review"),
    )


class SurveyAttempt(Base):
    """One survey call. ``attempt_key`` goes into the call's callback URLs before the
    call is created, so a create that timed out can be reconciled (was the call made?)
    before anything is retried: the citizen is called once. ``answered_by`` is Twilio's
    answering-machine detection (``human``, ``machine_start``...); a machine or no answer
    is a failed attempt."""

    __tablename__ = "survey_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first call
    attempt_key: Mapped[str] = mapped_column(String(40), unique=True)
    call_sid: Mapped[str | None] = mapped_column(String(34), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="placing")
    answered_by: Mapped[str | None] = mapped_column(String(24))
    placed_at: Mapped[utc_time] = mapped_column(default=utcnow)
    ended_at: Mapped[utc_time | None]
    error_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("survey_id", "number"),)


class OutboundPace(Base):
    """One lane of outbound calls shared by every worker process (``tickets.survey_pacing``):
    ``next_slot`` is the earliest Unix time at which the next create may be sent. A worker
    reserves a slot by moving it on by the spacing in one UPDATE, so the creates of all
    workers together keep to the configured rate."""

    __tablename__ = "outbound_pacing"

    lane: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[utc_time] = mapped_column(default=utcnow, onupdate=utcnow)
