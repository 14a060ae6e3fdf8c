"""notices: the outbox as a delivery queue, notices, throttles, preferences, webhooks, account
tokens, verified e-mail addresses and ended sessions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 07:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("sessions_ended_at", WHEN, nullable=True))
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_webhooks_user_id", "webhooks", ["user_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("kind", sa.String(40), nullable=True))
        batch.add_column(sa.Column("notice_id", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("channel", sa.String(16), nullable=False, server_default="email")
        )
        batch.add_column(sa.Column("webhook_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("body_html", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="pending")
        )
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("next_attempt_at", WHEN, nullable=False, server_default=sa.func.now())
        )
        batch.add_column(sa.Column("last_reply", sa.Text(), nullable=True))
        batch.create_foreign_key(
            "fk_outbox_webhook", "webhooks", ["webhook_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_outbox_webhook_id", ["webhook_id"])
        batch.create_index("ix_outbox_due", ["status", "next_attempt_at"])
    op.create_table(
        "notices",
        sa.Column("id", BIGINT, primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column(
            "user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("app_id", sa.String(32), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("not_before", WHEN, nullable=False),
    )
    op.create_index("ix_notice_due", "notices", ["state", "not_before"])
    op.create_index("ix_notices_app_id", "notices", ["app_id"])
    op.create_table(
        "notice_throttles",
        sa.Column("app_id", sa.String(32), primary_key=True),
        sa.Column(
            "user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("opened_at", WHEN, nullable=True),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("last_facts", sa.JSON(), nullable=False),
    )
    op.create_table(
        "notice_preferences",
        sa.Column(
            "user_id",
            sa.String(32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(40), primary_key=True),
        sa.Column("email", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
    )
    op.create_index("ix_account_tokens_user_id", "account_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_table("account_tokens")
    op.drop_table("notice_preferences")
    op.drop_table("notice_throttles")
    op.drop_table("notices")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_due")
        batch.drop_index("ix_outbox_webhook_id")
        batch.drop_constraint("fk_outbox_webhook", type_="foreignkey")
        for column in (
            "last_reply",
            "next_attempt_at",
            "attempts",
            "status",
            "body_html",
            "webhook_id",
            "channel",
            "notice_id",
            "kind",
        ):
            batch.drop_column(column)
    op.drop_table("webhooks")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("sessions_ended_at")
        batch.drop_column("email_verified")
