"""Satisfaction surveys: one per answered work order, each call an attempt with the key
that reconciles a create that timed out; the answers and the reviewer's reading of them.

Revision ID: 8838be358cff
Revises: 7c1e5d2a9b40
Create Date: 2026-12-03 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "8838be358cff"
down_revision: str | Sequence[str] | None = "7c1e5d2a9b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "surveys",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("work_order_id", BIG_ID, nullable=False),
        sa.Column("to_number", sa.String(length=16), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "calling",
                "completed",
                "sms_sent",
                "opted_out",
                "cancelled",
                name="surveystatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=80), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded", sa.String(length=24), nullable=True),
        sa.Column("solved", sa.String(length=24), nullable=True),
        sa.Column("satisfied", sa.String(length=24), nullable=True),
        sa.Column("answered_call_sid", sa.String(length=34), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sms_message_id", BIG_ID, nullable=True),
        sa.Column(
            "review",
            sa.Enum(
                "pending",
                "subjective",
                "objective",
                name="surveyreview",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("reviewed_by", sa.String(length=80), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sms_message_id"],
            ["sms_messages.id"],
            name=op.f("fk_surveys_sms_message_id_sms_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"], ["work_orders.id"], name=op.f("fk_surveys_work_order_id_work_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("work_order_id", name=op.f("uq_surveys_work_order_id")),
    )
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.create_index("ix_surveys_review", ["review"], unique=False)
        batch_op.create_index(
            "ix_surveys_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "survey_attempts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("survey_id", BIG_ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("attempt_key", sa.String(length=40), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("answered_by", sa.String(length=24), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name=op.f("fk_survey_attempts_survey_id_surveys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_attempts")),
        sa.UniqueConstraint("attempt_key", name=op.f("uq_survey_attempts_attempt_key")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_survey_attempts_call_sid")),
        sa.UniqueConstraint(
            "survey_id", "number", name=op.f("uq_survey_attempts_survey_id_number")
        ),
    )
    with op.batch_alter_table("survey_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_survey_attempts_survey_id"), ["survey_id"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("survey_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_attempts_survey_id"))

    op.drop_table("survey_attempts")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_index("ix_surveys_status_next_attempt_at")
        batch_op.drop_index("ix_surveys_review")

    op.drop_table("surveys")
