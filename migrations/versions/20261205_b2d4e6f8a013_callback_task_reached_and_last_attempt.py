"""Callback tasks: when the citizen was reached, and when the latest attempt was placed.

Revision ID: b2d4e6f8a013
Revises: 3f6a2c8d1e57
Create Date: 2026-12-05 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b2d4e6f8a013"
down_revision: str | Sequence[str] | None = "3f6a2c8d1e57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("callback_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reached_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("callback_tasks", schema=None) as batch_op:
        batch_op.drop_column("reached_at")
        batch_op.drop_column("last_attempt_at")
