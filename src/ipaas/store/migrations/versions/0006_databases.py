"""databases: add-on databases, their attachments to apps, and their backups

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", sa.String(32), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "databases",
        _id(),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column(
            "owner_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("cpus", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.Text),
        sa.Column("credentials_encrypted", sa.Text, nullable=False),
        sa.Column("container_id", sa.String(128)),
        sa.Column("deadline", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_id", "name", name="uq_database_owner_name"),
    )
    op.create_index("ix_databases_owner_id", "databases", ["owner_id"])
    op.create_index("ix_databases_state", "databases", ["state"])
    op.create_table(
        "database_attachments",
        _id(),
        sa.Column(
            "database_id",
            sa.String(32),
            sa.ForeignKey("databases.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "app_id",
            sa.String(32),
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("env_name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("app_id", "env_name", name="uq_attachment_app_env"),
    )
    op.create_index("ix_database_attachments_database_id", "database_attachments", ["database_id"])
    op.create_index("ix_database_attachments_app_id", "database_attachments", ["app_id"])
    op.create_table(
        "database_backups",
        _id(),
        sa.Column(
            "database_id",
            sa.String(32),
            sa.ForeignKey("databases.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("file_name", sa.String(255)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("verified", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_database_backups_database_id", "database_backups", ["database_id"])


def downgrade() -> None:
    op.drop_table("database_backups")
    op.drop_table("database_attachments")
    op.drop_table("databases")
