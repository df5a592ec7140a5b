"""Work orders recorded from the console: the caller's own words, the location (county or
district, street or township) and the confidential flag; the kind "suggestion" needs no
schema change (kinds are stored as plain strings).

Revision ID: c0a50e1e7a11
Revises: 9bb69356e8b6
Create Date: 2026-11-28 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c0a50e1e7a11"
down_revision: str | Sequence[str] | None = "9bb69356e8b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("caller_words", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("district", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("street", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("is_confidential", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_column("is_confidential")
        batch_op.drop_column("street")
        batch_op.drop_column("district")
        batch_op.drop_column("caller_words")
