"""Work-order lifecycle: dispatch to directory rows with three clocks, the history's
actor role, action and details, dispatches, objections, extension requests, the SMS
outbox, contact preferences, JSON API clients and a liaison's department.

Revision ID: 2188b544b18a
Revises: 4336202d5fcd
Create Date: 2026-12-01 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "2188b544b18a"
down_revision: str | Sequence[str] | None = "4336202d5fcd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_api_clients_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_clients_token_sha256")),
    )
    op.create_table(
        "contact_preferences",
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("no_sms", sa.Boolean(), nullable=False),
        sa.Column("no_calls", sa.Boolean(), nullable=False),
        sa.Column("invalid", sa.Boolean(), nullable=False),
        sa.Column("opted_out_sms", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_contact_preferences")),
    )
    op.create_table(
        "extension_requests",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("work_order_id", BIG_ID, nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("working_days", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=80), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "refused",
                name="extensionstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("due_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_after", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_extension_requests_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_extension_requests")),
    )
    with op.batch_alter_table("extension_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_extension_requests_status", ["status", "requested_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_extension_requests_work_order_id"), ["work_order_id"], unique=False
        )

    op.create_table(
        "sms_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                "order_opened",
                "reminder",
                "overdue",
                "escalation",
                name="smspurpose",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("work_order_id", BIG_ID, nullable=True),
        sa.Column("to_number", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "cancelled",
                "opted_out",
                "invalid",
                "failed",
                name="smsstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=80), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("provider_status", sa.String(length=24), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_sms_messages_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_sms_messages_dedupe_key")),
    )
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sms_messages_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sms_messages_work_order_id"), ["work_order_id"], unique=False
        )

    op.create_table(
        "work_order_dispatches",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("work_order_id", BIG_ID, nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("directory_version_id", sa.Integer(), nullable=False),
        sa.Column("directory_item_id", BIG_ID, nullable=True),
        sa.Column("item_code", sa.String(length=20), nullable=True),
        sa.Column("department_id", BIG_ID, nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_by", sa.String(length=80), nullable=False),
        sa.Column("recommended_rank", sa.Integer(), nullable=True),
        sa.Column("recommended", JSON, nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_how", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["directory_departments.id"],
            name=op.f("fk_work_order_dispatches_department_id_directory_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["directory_item_id"],
            ["directory_items.id"],
            name=op.f("fk_work_order_dispatches_directory_item_id_directory_items"),
        ),
        sa.ForeignKeyConstraint(
            ["directory_version_id"],
            ["directory_versions.id"],
            name=op.f("fk_work_order_dispatches_directory_version_id_directory_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_dispatches_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_dispatches")),
        sa.UniqueConstraint(
            "work_order_id",
            "sequence",
            name=op.f("uq_work_order_dispatches_work_order_id_sequence"),
        ),
    )
    with op.batch_alter_table("work_order_dispatches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_work_order_dispatches_work_order_id"), ["work_order_id"], unique=False
        )

    op.create_table(
        "objections",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("work_order_id", BIG_ID, nullable=False),
        sa.Column("dispatch_id", BIG_ID, nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column(
            "reason_code",
            sa.Enum(
                "not_our_duty",
                "wrong_area",
                "already_handled",
                "needs_other_channel",
                "insufficient_information",
                "other",
                name="objectionreason",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("raised_by", sa.String(length=80), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "state_before",
            sa.Enum(
                "received",
                "dispatched",
                "accepted",
                "in_progress",
                "answered",
                "callback",
                "closed",
                "objected",
                name="workorderstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("suggested", JSON, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "upheld",
                "rejected",
                name="objectionstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("redispatch_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["dispatch_id"],
            ["work_order_dispatches.id"],
            name=op.f("fk_objections_dispatch_id_work_order_dispatches"),
        ),
        sa.ForeignKeyConstraint(
            ["redispatch_id"],
            ["work_order_dispatches.id"],
            name=op.f("fk_objections_redispatch_id_work_order_dispatches"),
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_objections_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objections")),
    )
    with op.batch_alter_table("objections", schema=None) as batch_op:
        batch_op.create_index(
            "ix_objections_status_raised_at", ["status", "raised_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_objections_work_order_id"), ["work_order_id"], unique=False
        )

    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department_code", sa.String(length=40), nullable=True))

    with op.batch_alter_table("work_order_history", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("actor_role", sa.String(length=32), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("action", sa.String(length=24), server_default="receive", nullable=False)
        )
        batch_op.add_column(sa.Column("details", JSON, server_default="{}", nullable=False))

    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notify_by_sms", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("directory_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("directory_item_id", BIG_ID, nullable=True))
        batch_op.add_column(sa.Column("department_id", BIG_ID, nullable=True))
        batch_op.add_column(sa.Column("department_code", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("dispatch_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("contacted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "closed_how",
                sa.Enum(
                    "on_the_spot",
                    "after_callback",
                    "explained",
                    name="closedhow",
                    native_enum=False,
                    length=20,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("signoff_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("contact_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("escalation_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("outcome", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("is_supervised", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("reopen_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("row_version", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_work_orders_department_code"), ["department_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_work_orders_escalation_due_at"), ["escalation_due_at"], unique=False
        )
        batch_op.create_index(
            "ix_work_orders_state_department_code", ["state", "department_code"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_work_orders_directory_item_id_directory_items"),
            "directory_items",
            ["directory_item_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_work_orders_department_id_directory_departments"),
            "directory_departments",
            ["department_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_work_orders_directory_version_id_directory_versions"),
            "directory_versions",
            ["directory_version_id"],
            ["id"],
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_work_orders_directory_version_id_directory_versions"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_work_orders_department_id_directory_departments"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_work_orders_directory_item_id_directory_items"), type_="foreignkey"
        )
        batch_op.drop_index("ix_work_orders_state_department_code")
        batch_op.drop_index(batch_op.f("ix_work_orders_escalation_due_at"))
        batch_op.drop_index(batch_op.f("ix_work_orders_department_code"))
        batch_op.drop_column("row_version")
        batch_op.drop_column("reopen_count")
        batch_op.drop_column("is_supervised")
        batch_op.drop_column("outcome")
        batch_op.drop_column("escalation_due_at")
        batch_op.drop_column("contact_due_at")
        batch_op.drop_column("signoff_due_at")
        batch_op.drop_column("closed_how")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("answered_at")
        batch_op.drop_column("contacted_at")
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("dispatched_at")
        batch_op.drop_column("dispatch_count")
        batch_op.drop_column("department_code")
        batch_op.drop_column("department_id")
        batch_op.drop_column("directory_item_id")
        batch_op.drop_column("directory_version_id")
        batch_op.drop_column("notify_by_sms")

    with op.batch_alter_table("work_order_history", schema=None) as batch_op:
        batch_op.drop_column("details")
        batch_op.drop_column("action")
        batch_op.drop_column("actor_role")

    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("department_code")

    with op.batch_alter_table("objections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_objections_work_order_id"))
        batch_op.drop_index("ix_objections_status_raised_at")

    op.drop_table("objections")
    with op.batch_alter_table("work_order_dispatches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_dispatches_work_order_id"))

    op.drop_table("work_order_dispatches")
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_messages_work_order_id"))
        batch_op.drop_index("ix_sms_messages_status_next_attempt_at")

    op.drop_table("sms_messages")
    with op.batch_alter_table("extension_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_extension_requests_work_order_id"))
        batch_op.drop_index("ix_extension_requests_status")

    op.drop_table("extension_requests")
    op.drop_table("contact_preferences")
    op.drop_table("api_clients")
