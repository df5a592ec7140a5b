"""An index on work orders by (updated_at, id): the JSON API lists changed orders in
that order for the systems that sync from it.

Revision ID: 7c1e5d2a9b40
Revises: 2188b544b18a
Create Date: 2026-12-02 09:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "7c1e5d2a9b40"
down_revision: str | Sequence[str] | None = "2188b544b18a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index("ix_work_orders_updated_at_id", "work_orders", ["updated_at", "id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_work_orders_updated_at_id", table_name="work_orders")
