"""database jobs (restores, credential rotations), database events, backup schedules

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("databases") as batch:
        batch.add_column(sa.Column("backup_interval_s", sa.Integer))
        batch.add_column(sa.Column("backup_keep", sa.Integer))
        batch.add_column(
            sa.Column("final_backup", sa.Boolean, nullable=False, server_default=sa.true())
        )
    op.create_table(
        "database_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "database_id",
            sa.String(32),
            sa.ForeignKey("databases.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_database_jobs_database_id", "database_jobs", ["database_id"])
    op.create_table(
        "database_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column(
            "owner_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("database_id", sa.String(32), nullable=False),
        sa.Column("database_name", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_database_events_owner_id", "database_events", ["owner_id"])
    op.create_index("ix_database_events_database_id", "database_events", ["database_id"])


def downgrade() -> None:
    op.drop_table("database_events")
    op.drop_table("database_jobs")
    with op.batch_alter_table("databases") as batch:
        batch.drop_column("final_backup")
        batch.drop_column("backup_keep")
        batch.drop_column("backup_interval_s")
