"""Duty directory: versions, and the categories, departments and items copied into each
version, with the audit of what each version changed.

Revision ID: 4336202d5fcd
Revises: 5e1c0ba11b0c
Create Date: 2026-11-30 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "4336202d5fcd"
down_revision: str | Sequence[str] | None = "5e1c0ba11b0c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "directory_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("based_on_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("source", JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("category_count", sa.Integer(), nullable=False),
        sa.Column("department_count", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["based_on_id"],
            ["directory_versions.id"],
            name=op.f("fk_directory_versions_based_on_id_directory_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_versions")),
    )
    with op.batch_alter_table("directory_versions", schema=None) as batch_op:
        batch_op.create_index(
            "uq_directory_versions_one_current",
            ["is_current"],
            unique=True,
            sqlite_where=sa.text("is_current"),
            postgresql_where=sa.text("is_current"),
        )

    op.create_table(
        "directory_categories",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["directory_versions.id"],
            name=op.f("fk_directory_categories_version_id_directory_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_categories")),
        sa.UniqueConstraint(
            "version_id", "code", name=op.f("uq_directory_categories_version_id_code")
        ),
    )
    op.create_table(
        "directory_changes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["directory_versions.id"],
            name=op.f("fk_directory_changes_version_id_directory_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_changes")),
    )
    with op.batch_alter_table("directory_changes", schema=None) as batch_op:
        batch_op.create_index("ix_directory_changes_entity_code", ["entity", "code"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_directory_changes_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "directory_departments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("county", sa.String(length=50), nullable=True),
        sa.Column("role", sa.String(length=50), nullable=False),
        sa.Column("phone_number", sa.String(length=16), nullable=False),
        sa.Column("sms_contact_number", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["directory_versions.id"],
            name=op.f("fk_directory_departments_version_id_directory_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_departments")),
        sa.UniqueConstraint(
            "version_id", "code", name=op.f("uq_directory_departments_version_id_code")
        ),
    )
    with op.batch_alter_table("directory_departments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_departments_version_id_role", ["version_id", "role"], unique=False
        )

    op.create_table(
        "directory_items",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("category_id", BIG_ID, nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=50), nullable=False),
        sa.Column("sla_days", sa.Integer(), nullable=False),
        sa.Column("is_urgent", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["directory_categories.id"],
            name=op.f("fk_directory_items_category_id_directory_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["directory_versions.id"],
            name=op.f("fk_directory_items_version_id_directory_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_items")),
        sa.UniqueConstraint("version_id", "code", name=op.f("uq_directory_items_version_id_code")),
    )
    with op.batch_alter_table("directory_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directory_items_category_id"), ["category_id"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("directory_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_items_category_id"))
    op.drop_table("directory_items")
    with op.batch_alter_table("directory_departments", schema=None) as batch_op:
        batch_op.drop_index("ix_directory_departments_version_id_role")
    op.drop_table("directory_departments")
    with op.batch_alter_table("directory_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_changes_version_id"))
        batch_op.drop_index("ix_directory_changes_entity_code")
    op.drop_table("directory_changes")
    op.drop_table("directory_categories")
    with op.batch_alter_table("directory_versions", schema=None) as batch_op:
        batch_op.drop_index("uq_directory_versions_one_current")
    op.drop_table("directory_versions")
