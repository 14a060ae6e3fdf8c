"""Scheduled backups, taken by the databases' recovery loop: each running database whose last
backup attempt is older than its interval gets one; scheduled backups beyond its keep-N are
removed; a database with no good backup within its window (interval plus the time a backup may
take) gets one `backup_overdue` event per overdue spell, for notices to pick up."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

import structlog

from ipaas.config import DatabaseSettings
from ipaas.databases.backups import BackupService
from ipaas.domain.databases import BackupStatus, DbState
from ipaas.domain.errors import Conflict
from ipaas.store.databases import DatabaseStore
from ipaas.store.models import Database, utcnow

log = structlog.get_logger()


def interval_of(db: Database, settings: DatabaseSettings) -> int:
    return settings.backup_interval_s if db.backup_interval_s is None else db.backup_interval_s


def keep_of(db: Database, settings: DatabaseSettings) -> int:
    return settings.backup_keep if db.backup_keep is None else db.backup_keep


def backup_due(now: datetime, interval_s: int, last_attempt: datetime) -> bool:
    return interval_s > 0 and now >= last_attempt + timedelta(seconds=interval_s)


def backup_overdue(now: datetime, interval_s: int, window_s: float, last_good: datetime) -> bool:
    return interval_s > 0 and now > last_good + timedelta(seconds=interval_s + window_s)


class BackupSchedule:
    def __init__(
        self, store: DatabaseStore, backups: BackupService, settings: DatabaseSettings
    ) -> None:
        self.store = store
        self.backups = backups
        self.settings = settings

    async def once(self) -> None:
        now = utcnow()
        running = await self.store.all_in_states([DbState.RUNNING])
        for db in running:
            try:
                await self._one(db, now)
            except Exception:  # noqa: BLE001 - one database's trouble must not stop the others
                log.exception("scheduled backup step failed", database_id=db.id)
        everyone = await self.store.all_in_states(list(DbState))
        await self.backups.sweep_final({db.id for db in everyone})

    async def _one(self, db: Database, now: datetime) -> None:
        interval = interval_of(db, self.settings)
        await self.backups.prune(db, keep_of(db, self.settings))
        if interval <= 0:
            return
        latest = await self.store.latest_backup(db.id, succeeded_only=False)
        if latest is not None and latest.status == BackupStatus.RUNNING:
            return
        good = await self.store.latest_backup(db.id, succeeded_only=True)
        last_good = good.created_at if good is not None else db.created_at
        if backup_overdue(now, interval, self.settings.backup_timeout_s, last_good):
            await self._overdue(db, last_good, interval)
        last_attempt = latest.created_at if latest is not None else db.created_at
        if backup_due(now, interval, last_attempt):
            with contextlib.suppress(Conflict):  # stopped meanwhile
                await self.backups.start(db, "scheduled")

    async def _overdue(self, db: Database, last_good: datetime, interval: int) -> None:
        """One event per spell: none again until a good backup ends it."""
        seen = await self.store.last_event(db.id, "backup_overdue")
        if seen is not None and seen.at > last_good:
            return
        await self.store.add_event(
            db, "backup_overdue",
            f"no good backup since {last_good:%Y-%m-%d %H:%M} UTC (every {interval} s asked)",
            last_good_at=last_good.isoformat(), interval_s=interval,
        )  # fmt: skip
