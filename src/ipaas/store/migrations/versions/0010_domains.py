"""domains: custom domains of apps, their verification and their last issuance error

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_domains",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "app_id",
            sa.String(32),
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("host", sa.String(253), nullable=False, unique=True),
        sa.Column("redirect_to", sa.String(253)),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True)),
        sa.Column("verified_by", sa.String(16)),
        sa.Column("checked_at", sa.DateTime(timezone=True)),
        sa.Column("lookup", sa.JSON, nullable=False),
        sa.Column("cert_error", sa.Text),
        sa.Column("cert_error_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_app_domains_app_id", "app_domains", ["app_id"])


def downgrade() -> None:
    op.drop_table("app_domains")
