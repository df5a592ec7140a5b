"""Conference rooms (each citizen call's conference state, versioned) and abandoned calls.

Revision ID: ff914707ebb8
Revises: c0a50e1e7a11
Create Date: 2026-11-28 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "ff914707ebb8"
down_revision: str | Sequence[str] | None = "c0a50e1e7a11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json(name: str) -> sa.Column:
    return sa.Column(
        name,
        sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
        nullable=False,
    )


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "conference_rooms",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=False),
        sa.Column("conference_sid", sa.String(length=34), nullable=True),
        sa.Column("phase", sa.String(length=16), nullable=False),
        _json("state"),
        _json("failed_rings"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conference_rooms")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_conference_rooms_call_sid")),
    )
    with op.batch_alter_table("conference_rooms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conference_rooms_phase"), ["phase"], unique=False)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("abandoned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("abandoned_at")
    with op.batch_alter_table("conference_rooms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conference_rooms_phase"))
    op.drop_table("conference_rooms")
