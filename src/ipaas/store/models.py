"""Tables of the state store. One code path for SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # Access tokens issued before this no longer work (password changed, account disabled).
    sessions_ended_at: Mapped[datetime | None] = mapped_column()
    password_hash: Mapped[str | None] = mapped_column(String(255))  # None: external login only
    role: Mapped[str] = mapped_column(String(16), default="user")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Limits an admin set for this user; None: the operator's default (settings `quota.*`).
    quota_apps: Mapped[int | None] = mapped_column(Integer)
    quota_memory_mb: Mapped[int | None] = mapped_column(Integer)
    quota_cpus: Mapped[float | None] = mapped_column(Float)
    quota_volumes: Mapped[int | None] = mapped_column(Integer)


class Identity(Base):
    """A login at an external provider (GitHub) linked to a user."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    login: Mapped[str | None] = mapped_column(String(255))
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(24))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class RefreshToken(Base):
    """Single-use; a reused one revokes its whole family (every token rotated from one login)."""

    __tablename__ = "refresh_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Application(Base):
    __tablename__ = "applications"
    # web/viewer names are unique on the platform (scope ""), database names per owner.
    __table_args__ = (
        UniqueConstraint("name_scope", "name", name="uq_app_name"),
        Index("ix_app_owner_created", "owner_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63))
    name_scope: Mapped[str] = mapped_column(String(32), default="")
    kind: Mapped[str] = mapped_column(String(16), default="web")
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    repo: Mapped[str] = mapped_column(String(2048))  # never with credentials in it
    # The user:token split off an https repo URL (Fernet, a JSON document); None: no credentials.
    repo_credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(String(255))
    commit: Mapped[str | None] = mapped_column(String(40))
    built_commit: Mapped[str | None] = mapped_column(String(40))
    root_directory: Mapped[str] = mapped_column(String(255), default="")
    port: Mapped[int | None] = mapped_column(Integer)
    envs_encrypted: Mapped[str] = mapped_column(Text, default="")
    build: Mapped[dict[str, Any]] = mapped_column(default=dict)
    health_check: Mapped[str] = mapped_column(String(255), default="tcp")
    volumes: Mapped[list[Any]] = mapped_column(default=list)
    resources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    visibility: Mapped[str] = mapped_column(String(16), default="public")
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    state_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumps on every change: the ETag
    current_release: Mapped[int | None] = mapped_column(Integer)
    # The release a deploy in progress is bringing up (survives a restart mid-deploy).
    target_release: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(255))  # host:port the app answers at
    container_id: Mapped[str | None] = mapped_column(String(128))  # the serving container
    url: Mapped[str | None] = mapped_column(String(2048))
    # None: a git URL in `repo`; "github": `repo` is owner/repo on the configured GitHub.
    provider: Mapped[str | None] = mapped_column(String(16))
    # The secret push webhooks are signed with (Fernet); None until the owner asks for it.
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previews: Mapped[bool] = mapped_column(Boolean, default=False)  # pull-request previews
    # A preview: the app it previews and the pull request's number.
    preview_of: Mapped[str | None] = mapped_column(String(32), index=True)
    preview_number: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One push webhook received for an app, with what it did (deduplicated by its id)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("app_id", "delivery_id", name="uq_delivery_app_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[str] = mapped_column(String(100))
    forge: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    commit: Mapped[str | None] = mapped_column(String(40))
    build_number: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class GitHubAppRecord(Base):
    """The GitHub App the platform made for itself with the manifest flow, one per GitHub
    (its web URL); its secrets are encrypted with the platform key like every credential."""

    __tablename__ = "github_apps"
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32))
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(100))
    html_url: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str] = mapped_column(String(100))
    client_secret_encrypted: Mapped[str] = mapped_column(Text)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    # The nonce of the flow that made it: that flow's state cannot complete again.
    state_nonce: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlatformMeta(Base):
    """Facts about the store itself (its identity: which containers are its own)."""

    __tablename__ = "platform_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    app_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)


class Build(Base):
    """One build of an app; also the durable job of the job-table queue."""

    __tablename__ = "builds"
    __table_args__ = (
        UniqueConstraint("app_id", "number"),
        Index("ix_build_queue", "status", "not_before"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # queued, running, succeeded, failed, cancelled, superseded
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    commit: Mapped[str | None] = mapped_column(String(40))
    # The commit this build must build (a push webhook); None: the app's commit or branch head.
    requested_commit: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class BuildLogLine(Base):
    __tablename__ = "build_log_lines"
    __table_args__ = (Index("ix_build_log", "build_id", "seq"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    line: Mapped[str] = mapped_column(Text)


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app_id", "number"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    build_id: Mapped[str | None] = mapped_column(String(32))
    commit: Mapped[str | None] = mapped_column(String(40))
    image_id: Mapped[str] = mapped_column(String(128))
    image_tag: Mapped[str] = mapped_column(String(255))
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    build_duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """The transactional outbox: one message to send (an e-mail, or a webhook's POST), written
    in the transaction of what caused it and sent by the notice sender, with retries."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str | None] = mapped_column(String(40))
    notice_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16), default="email")
    webhook_id: Mapped[str | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    to_address: Mapped[str] = mapped_column(String(254))  # "" for a webhook
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)  # plain text, or a webhook's JSON payload
    body_html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_reply: Mapped[str | None] = mapped_column(Text)  # the server's last answer
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class Database(Base):
    """A database add-on (SPEC §4): one container of one engine with a named volume."""

    __tablename__ = "databases"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_database_owner_name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    engine: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(16))
    memory_mb: Mapped[int] = mapped_column(Integer)
    cpus: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default="creating", index=True)
    state_reason: Mapped[str | None] = mapped_column(Text)
    # The users the platform made (Fernet, a JSON document: the app's and the viewer's).
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    container_id: Mapped[str | None] = mapped_column(String(128))
    deadline: Mapped[datetime | None] = mapped_column()  # when a busy state fails
    # The backup schedule: a cron expression (UTC), else an interval; both None: the
    # platform's (databases.backup_cron or backup_interval_s); backup_keep None: backup_keep.
    backup_interval_s: Mapped[int | None] = mapped_column(Integer)
    backup_cron: Mapped[str | None] = mapped_column(String(200))
    backup_keep: Mapped[int | None] = mapped_column(Integer)
    final_backup: Mapped[bool] = mapped_column(Boolean, default=True)  # taken when deleted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatabaseAttachment(Base):
    """An app that gets the database's URL in its environment when its containers start."""

    __tablename__ = "database_attachments"
    __table_args__ = (UniqueConstraint("app_id", "env_name", name="uq_attachment_app_env"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    database_id: Mapped[str] = mapped_column(
        ForeignKey("databases.id", ondelete="CASCADE"), index=True
    )
    app_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    env_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatabaseBackup(Base):
    """A dump of a database, good only once a scratch restore of it checked out."""

    __tablename__ = "database_backups"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    database_id: Mapped[str] = mapped_column(
        ForeignKey("databases.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="running")
    reason: Mapped[str] = mapped_column(String(32), default="manual")  # manual, before-restore
    file_name: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # What the verifying restore found: tables and their row counts, or Redis's key count.
    verified: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class Notice(Base):
    """Something a user should hear about, written with the event that caused it; the sender
    turns it into outbox messages (preferences, throttles) when `not_before` has come."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notice_due", "state", "not_before"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    app_id: Mapped[str | None] = mapped_column(String(32), index=True)
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)


class NoticeThrottle(Base):
    """One app's crash-notice window (domain.notices.CrashWindow), kept across restarts."""

    __tablename__ = "notice_throttles"
    app_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    opened_at: Mapped[datetime | None] = mapped_column()
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    last_facts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class NoticePreference(Base):
    """A user's choice for one kind of notice; no row: the kind's default."""

    __tablename__ = "notice_preferences"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean)


class Webhook(Base):
    """A user's outgoing webhook: notices POSTed as JSON, signed with its secret."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    mode: Mapped[str] = mapped_column(String(16), default="json")
    secret_encrypted: Mapped[str] = mapped_column(Text)
    kinds: Mapped[list[Any]] = mapped_column(default=list)  # empty: every kind
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountToken(Base):
    """A single-use link sent by e-mail: confirm an address, or set a forgotten password."""

    __tablename__ = "account_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # verify_email | password_reset
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class DatabaseJob(Base):
    """A long operation on a database that the user follows: a restore, a rotation."""

    __tablename__ = "database_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    database_id: Mapped[str] = mapped_column(
        ForeignKey("databases.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # restore, rotate
    status: Mapped[str] = mapped_column(String(16), default="running")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class DatabaseEvent(Base):
    """Something about a database its owner should hear of (a failed or overdue backup, a
    rotation, a final backup kept after a delete). Outlives the database; `id` only grows, so
    a reader (notices) follows it with the last id it saw."""

    __tablename__ = "database_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    database_id: Mapped[str] = mapped_column(String(32), index=True)
    database_name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AppDomain(Base):
    """A custom domain of an app (or the www/apex partner of one, which redirects to it).
    A name belongs to one app on the whole platform; it is served once verified."""

    __tablename__ = "app_domains"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    host: Mapped[str] = mapped_column(String(253), unique=True)
    # Set on a partner: the domain it redirects to (removed with it).
    redirect_to: Mapped[str | None] = mapped_column(String(253))
    token: Mapped[str] = mapped_column(String(64))  # what the TXT record must hold
    verified_at: Mapped[datetime | None] = mapped_column()
    verified_by: Mapped[str | None] = mapped_column(String(16))  # address | txt
    checked_at: Mapped[datetime | None] = mapped_column()
    # What the last check found: {"addresses": [...], "txt": [...], "error": "..."}.
    lookup: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cert_error: Mapped[str | None] = mapped_column(Text)  # the last failed issuance's ACME error
    cert_error_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
