"""Staff accounts with their roles, call-taker profiles and states, and both audit trails.

Revision ID: 9bb69356e8b6
Revises: 6aeb1a1c507c
Create Date: 2026-11-27 02:10:50.987849

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "9bb69356e8b6"
down_revision: str | Sequence[str] | None = "6aeb1a1c507c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CALL_TAKER_STATES = ("offline", "available", "ringing", "on_call", "wrap_up", "away")
ROLES = (
    "call_taker",
    "quality_inspector",
    "reviewer",
    "callback_agent",
    "floor_manager",
    "knowledge_editor",
    "administrator",
    "department_liaison",
)
ACCOUNT_ACTIONS = ("created", "updated", "password_set", "deactivated", "reactivated")


def _state(name: str) -> sa.Column:
    return sa.Column(
        name,
        sa.Enum(*CALL_TAKER_STATES, name="calltakerstate", native_enum=False, length=20),
        nullable=False,
    )


def _json(name: str) -> sa.Column:
    return sa.Column(
        name,
        sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
        nullable=False,
    )


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=120), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("session_token", sa.String(length=32), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_username")),
    )

    op.create_table(
        "staff_roles",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(*ROLES, name="role", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_roles_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("staff_id", "role", name=op.f("pk_staff_roles")),
    )

    op.create_table(
        "call_takers",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        _json("languages"),
        _json("skills"),
        sa.Column("phone_number", sa.String(length=16), nullable=True),
        sa.Column("client_identity", sa.String(length=120), nullable=True),
        _state("state"),
        sa.Column("away_reason", sa.String(length=200), nullable=True),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idle_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wrap_up_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_call_takers_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("staff_id", name=op.f("pk_call_takers")),
        sa.UniqueConstraint("client_identity", name=op.f("uq_call_takers_client_identity")),
    )
    with op.batch_alter_table("call_takers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_takers_state_idle_since", ["state", "idle_since"], unique=False
        )

    op.create_table(
        "call_taker_state_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        _state("from_state"),
        _state("to_state"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_call_taker_state_changes_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_taker_state_changes")),
    )
    with op.batch_alter_table("call_taker_state_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_call_taker_state_changes_staff_id"), ["staff_id"], unique=False
        )

    op.create_table(
        "staff_account_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column(
            "action",
            sa.Enum(*ACCOUNT_ACTIONS, name="accountaction", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_account_changes_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_account_changes")),
    )
    with op.batch_alter_table("staff_account_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_account_changes_staff_id"), ["staff_id"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("staff_account_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_account_changes_staff_id"))
    op.drop_table("staff_account_changes")

    with op.batch_alter_table("call_taker_state_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_taker_state_changes_staff_id"))
    op.drop_table("call_taker_state_changes")

    with op.batch_alter_table("call_takers", schema=None) as batch_op:
        batch_op.drop_index("ix_call_takers_state_idle_since")
    op.drop_table("call_takers")

    op.drop_table("staff_roles")
    op.drop_table("staff")
