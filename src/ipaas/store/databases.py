"""Queries on databases, their attachments and their backups. State changes are conditional
UPDATEs that only match from a state the domain's table allows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.domain.databases import BackupStatus, DbState, check_db_transition, db_sources_of
from ipaas.domain.notices import NoticeKind
from ipaas.store.apps import Guard, NameTaken, NotFound
from ipaas.store.models import (
    Application,
    Database,
    DatabaseAttachment,
    DatabaseBackup,
    DatabaseEvent,
    DatabaseJob,
    utcnow,
)
from ipaas.store.notices import record_notice

# Database events that reach their owner as notices (mail, webhooks), by the user's choices.
DATABASE_NOTICES = {
    "backup_failed": NoticeKind.BACKUP_FAILED,
    "backup_overdue": NoticeKind.BACKUP_OVERDUE,
    "credentials_rotated": NoticeKind.DATABASE_CREDENTIALS_ROTATED,
}


class AlreadyAttached(Exception):
    pass


class JobRunning(Exception):
    """Another restore or rotation of the database is under way."""


class DatabaseStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    # --- databases ----------------------------------------------------------------------------
    async def create(self, db: Database, guard: Guard) -> Database:
        """Insert the database; `guard` (the quota check) runs first in the same transaction."""
        async with self.sessions() as s:
            await guard(s)
            s.add(db)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise NameTaken(db.name) from exc
        return db

    async def get(self, db_id: str, owner_id: str | None = None) -> Database:
        stmt = select(Database).where(Database.id == db_id)
        if owner_id is not None:
            stmt = stmt.where(Database.owner_id == owner_id)
        async with self.sessions() as s:
            db = (await s.execute(stmt)).scalar_one_or_none()
        if db is None:
            raise NotFound(db_id)
        return db

    async def list(self, owner_id: str) -> Sequence[Database]:
        stmt = (
            select(Database)
            .where(Database.owner_id == owner_id)
            .order_by(Database.created_at.desc(), Database.id)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def count(self, s: AsyncSession, owner_id: str) -> int:
        stmt = select(func.count()).select_from(Database).where(Database.owner_id == owner_id)
        return int((await s.execute(stmt)).scalar_one())

    async def all_in_states(self, states: Sequence[DbState]) -> Sequence[Database]:
        stmt = select(Database).where(Database.state.in_([s.value for s in states]))
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def transition(
        self, db_id: str, target: DbState, reason: str | None = None, **fields: Any
    ) -> None:
        """Move the database to `target` in one conditional UPDATE (IllegalDbTransition when
        its state does not allow it, NotFound when it is gone)."""
        async with self.sessions() as s:
            current = (
                await s.execute(select(Database.state).where(Database.id == db_id))
            ).scalar_one_or_none()
            if current is None:
                raise NotFound(db_id)
            check_db_transition(current, target)
            values = {"state": target.value, "state_reason": reason, "updated_at": utcnow()}
            stmt = (
                update(Database)
                .where(Database.id == db_id)
                .where(Database.state.in_([x.value for x in db_sources_of(target)]))
                .values(**values, **fields)
            )
            result = await s.execute(stmt)
            if result.rowcount and current == DbState.CREATING and target == DbState.RUNNING:  # type: ignore[attr-defined]
                await self._notice_created(s, db_id)
            await s.commit()
        if not result.rowcount:  # type: ignore[attr-defined]
            # Changed between the read and the write: report the state it is in now.
            current = (await self.get(db_id)).state
            check_db_transition(current, target)

    @staticmethod
    async def _notice_created(s: AsyncSession, db_id: str) -> None:
        row = (
            await s.execute(select(Database.owner_id, Database.name).where(Database.id == db_id))
        ).one()
        facts = {"database_id": db_id, "database_name": row.name}
        await record_notice(s, NoticeKind.DATABASE_CREATED, row.owner_id, None, facts)

    async def set_fields(self, db_id: str, **fields: Any) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(Database).where(Database.id == db_id).values(updated_at=utcnow(), **fields)
            )
            await s.commit()

    async def delete(self, db_id: str) -> None:
        async with self.sessions() as s:
            await s.execute(delete(Database).where(Database.id == db_id))
            await s.commit()

    # --- attachments --------------------------------------------------------------------------
    async def attach(self, db_id: str, app_id: str, env_name: str) -> DatabaseAttachment:
        row = DatabaseAttachment(database_id=db_id, app_id=app_id, env_name=env_name)
        async with self.sessions() as s:
            s.add(row)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise AlreadyAttached(env_name) from exc
        return row

    async def detach(self, db_id: str, app_id: str) -> bool:
        stmt = delete(DatabaseAttachment).where(
            DatabaseAttachment.database_id == db_id, DatabaseAttachment.app_id == app_id
        )
        async with self.sessions() as s:
            result = await s.execute(stmt)
            await s.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def attachments(self, db_id: str) -> Sequence[tuple[DatabaseAttachment, str]]:
        """The database's attachments with each app's name."""
        stmt = (
            select(DatabaseAttachment, Application.name)
            .join(Application, Application.id == DatabaseAttachment.app_id)
            .where(DatabaseAttachment.database_id == db_id)
            .order_by(DatabaseAttachment.created_at)
        )
        async with self.sessions() as s:
            return [(row, name) for row, name in (await s.execute(stmt)).all()]

    async def attached_to(self, app_id: str) -> Sequence[tuple[DatabaseAttachment, Database]]:
        """What an app gets at start: its attachments with their databases."""
        stmt = (
            select(DatabaseAttachment, Database)
            .join(Database, Database.id == DatabaseAttachment.database_id)
            .where(DatabaseAttachment.app_id == app_id)
        )
        async with self.sessions() as s:
            return [(row, db) for row, db in (await s.execute(stmt)).all()]

    # --- backups ------------------------------------------------------------------------------
    async def add_backup(self, db_id: str, reason: str) -> DatabaseBackup:
        row = DatabaseBackup(database_id=db_id, status=BackupStatus.RUNNING.value, reason=reason)
        async with self.sessions() as s:
            s.add(row)
            await s.commit()
        return row

    async def finish_backup(self, backup_id: str, status: BackupStatus, **fields: Any) -> None:
        stmt = (
            update(DatabaseBackup)
            .where(DatabaseBackup.id == backup_id)
            .values(status=status.value, finished_at=utcnow(), **fields)
        )
        async with self.sessions() as s:
            await s.execute(stmt)
            await s.commit()

    async def backups(self, db_id: str) -> Sequence[DatabaseBackup]:
        stmt = (
            select(DatabaseBackup)
            .where(DatabaseBackup.database_id == db_id)
            .order_by(DatabaseBackup.created_at.desc(), DatabaseBackup.id)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def backup(self, db_id: str, backup_id: str) -> DatabaseBackup:
        stmt = select(DatabaseBackup).where(
            DatabaseBackup.id == backup_id, DatabaseBackup.database_id == db_id
        )
        async with self.sessions() as s:
            row = (await s.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise NotFound(backup_id)
        return row

    async def fail_running_backups(self, started_before: datetime, error: str) -> int:
        """Backups still `running` long after their deadline (their process was killed):
        failed, with why, never left hanging."""
        stmt = (
            update(DatabaseBackup)
            .where(DatabaseBackup.status == BackupStatus.RUNNING.value)
            .where(DatabaseBackup.created_at < started_before)
            .values(status=BackupStatus.FAILED.value, error=error, finished_at=utcnow())
        )
        async with self.sessions() as s:
            result = await s.execute(stmt)
            await s.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def latest_backup(self, db_id: str, succeeded_only: bool) -> DatabaseBackup | None:
        stmt = select(DatabaseBackup).where(DatabaseBackup.database_id == db_id)
        if succeeded_only:
            stmt = stmt.where(DatabaseBackup.status == BackupStatus.SUCCEEDED.value)
        stmt = stmt.order_by(DatabaseBackup.created_at.desc(), DatabaseBackup.id).limit(1)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def delete_backups(self, backup_ids: Sequence[str]) -> None:
        async with self.sessions() as s:
            await s.execute(delete(DatabaseBackup).where(DatabaseBackup.id.in_(backup_ids)))
            await s.commit()

    # --- jobs (restores, rotations) -----------------------------------------------------------
    async def add_job(self, db_id: str, kind: str, detail: dict[str, Any]) -> DatabaseJob:
        """A running job, unless one already runs on the database (JobRunning)."""
        async with self.sessions() as s:
            busy = (
                await s.execute(
                    select(DatabaseJob.id).where(
                        DatabaseJob.database_id == db_id, DatabaseJob.status == "running"
                    )
                )
            ).first()
            if busy is not None:
                raise JobRunning(busy[0])
            row = DatabaseJob(database_id=db_id, kind=kind, status="running", detail=detail)
            s.add(row)
            await s.commit()
        return row

    async def finish_job(
        self, job_id: str, status: str, error: str | None = None, **detail: Any
    ) -> None:
        async with self.sessions() as s:
            row = await s.get(DatabaseJob, job_id)
            if row is None:
                return
            row.status, row.error, row.finished_at = status, error, utcnow()
            row.detail = {**row.detail, **detail}
            await s.commit()

    async def update_job(self, job_id: str, **detail: Any) -> None:
        async with self.sessions() as s:
            row = await s.get(DatabaseJob, job_id)
            if row is not None:
                row.detail = {**row.detail, **detail}
                await s.commit()

    async def job(self, db_id: str, job_id: str) -> DatabaseJob:
        stmt = select(DatabaseJob).where(DatabaseJob.id == job_id, DatabaseJob.database_id == db_id)
        async with self.sessions() as s:
            row = (await s.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise NotFound(job_id)
        return row

    async def jobs(self, db_id: str) -> Sequence[DatabaseJob]:
        stmt = (
            select(DatabaseJob)
            .where(DatabaseJob.database_id == db_id)
            .order_by(DatabaseJob.created_at.desc(), DatabaseJob.id)
            .limit(100)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def fail_running_jobs(self, started_before: datetime, error: str) -> int:
        stmt = (
            update(DatabaseJob)
            .where(DatabaseJob.status == "running", DatabaseJob.created_at < started_before)
            .values(status="failed", error=error, finished_at=utcnow())
        )
        async with self.sessions() as s:
            result = await s.execute(stmt)
            await s.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]

    # --- events -------------------------------------------------------------------------------
    async def add_event(
        self, db: Database, kind: str, message: str, **detail: Any
    ) -> DatabaseEvent:
        row = DatabaseEvent(
            owner_id=db.owner_id, database_id=db.id, database_name=db.name, kind=kind,
            message=message, detail=detail,
        )  # fmt: skip
        async with self.sessions() as s:
            s.add(row)
            notice = DATABASE_NOTICES.get(kind)
            if notice is not None:  # written with the event: it exists exactly when it does
                facts = {
                    "database_id": db.id, "database_name": db.name, "reason": message,
                    "last_backup": detail.get("last_good_at"),
                }  # fmt: skip
                await record_notice(s, notice, db.owner_id, None, facts)
            await s.commit()
        return row

    async def events(
        self,
        owner_id: str | None = None,
        database_id: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> Sequence[DatabaseEvent]:
        """Events oldest first after `after_id` (a reader's cursor), one owner's or all."""
        stmt = select(DatabaseEvent).where(DatabaseEvent.id > after_id)
        if owner_id is not None:
            stmt = stmt.where(DatabaseEvent.owner_id == owner_id)
        if database_id is not None:
            stmt = stmt.where(DatabaseEvent.database_id == database_id)
        async with self.sessions() as s:
            return (await s.execute(stmt.order_by(DatabaseEvent.id).limit(limit))).scalars().all()

    async def last_event(self, db_id: str, kind: str) -> DatabaseEvent | None:
        stmt = (
            select(DatabaseEvent)
            .where(DatabaseEvent.database_id == db_id, DatabaseEvent.kind == kind)
            .order_by(DatabaseEvent.id.desc())
            .limit(1)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()
