"""github: provider apps, webhook secrets and deliveries, previews, builds of a given commit

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("previews", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("preview_of", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("preview_number", sa.Integer(), nullable=True))
        batch_op.create_index("ix_applications_preview_of", ["preview_of"])
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_commit", sa.String(40), nullable=True))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "app_id",
            sa.String(32),
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("delivery_id", sa.String(100), nullable=False),
        sa.Column("forge", sa.String(16), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("commit", sa.String(40)),
        sa.Column("build_number", sa.Integer()),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("app_id", "delivery_id", name="uq_delivery_app_id"),
    )
    op.create_index("ix_webhook_deliveries_app_id", "webhook_deliveries", ["app_id"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_column("requested_commit")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index("ix_applications_preview_of")
        batch_op.drop_column("preview_number")
        batch_op.drop_column("preview_of")
        batch_op.drop_column("previews")
        batch_op.drop_column("webhook_secret_encrypted")
        batch_op.drop_column("provider")
