"""Outbound pacing: one row per lane of outbound calls, shared by every worker.

Revision ID: 5e1c9a7b3d20
Revises: b2d4e6f8a013
Create Date: 2026-12-06 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5e1c9a7b3d20"
down_revision: str | Sequence[str] | None = "b2d4e6f8a013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "outbound_pacing",
        sa.Column("lane", sa.String(length=40), nullable=False),
        sa.Column("next_slot", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lane", name=op.f("pk_outbound_pacing")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("outbound_pacing")
