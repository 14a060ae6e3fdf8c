"""Scheduled backups, taken by the databases' recovery loop: each running database whose
schedule (a cron expression or an interval, `BackupPlan`) has come due since its last backup
attempt gets one; scheduled backups beyond its keep-N are removed; a database with no good
backup within its window (the schedule's next run after the last good backup, plus the time a
backup may take) gets one `backup_overdue` event per overdue spell, for notices to pick up."""

from __future__ import annotations

import contextlib
from datetime import datetime

import structlog

from ipaas.config import DatabaseSettings
from ipaas.databases.backups import BackupService
from ipaas.domain.databases import BackupPlan, BackupStatus, DbState
from ipaas.domain.errors import Conflict
from ipaas.store.databases import DatabaseStore
from ipaas.store.models import Database, utcnow

log = structlog.get_logger()


def plan_of(db: Database, settings: DatabaseSettings) -> BackupPlan:
    """The database's own schedule (a cron expression, else an interval), else the
    platform's (`databases.backup_cron`, else `databases.backup_interval_s`)."""
    if db.backup_cron:
        return BackupPlan(cron=db.backup_cron)
    if db.backup_interval_s is not None:
        return BackupPlan(interval_s=db.backup_interval_s)
    if settings.backup_cron:
        return BackupPlan(cron=settings.backup_cron)
    return BackupPlan(interval_s=settings.backup_interval_s)


def keep_of(db: Database, settings: DatabaseSettings) -> int:
    return settings.backup_keep if db.backup_keep is None else db.backup_keep


class BackupSchedule:
    def __init__(
        self, store: DatabaseStore, backups: BackupService, settings: DatabaseSettings
    ) -> None:
        self.store = store
        self.backups = backups
        self.settings = settings

    async def once(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        running = await self.store.all_in_states([DbState.RUNNING])
        for db in running:
            try:
                await self._one(db, now)
            except Exception:  # noqa: BLE001 - one database's trouble must not stop the others
                log.exception("scheduled backup step failed", database_id=db.id)
        everyone = await self.store.all_in_states(list(DbState))
        await self.backups.sweep_final({db.id for db in everyone})

    async def _one(self, db: Database, now: datetime) -> None:
        plan = plan_of(db, self.settings)
        await self.backups.prune(db, keep_of(db, self.settings))
        if not plan.enabled:
            return
        latest = await self.store.latest_backup(db.id, succeeded_only=False)
        if latest is not None and latest.status == BackupStatus.RUNNING:
            return
        good = await self.store.latest_backup(db.id, succeeded_only=True)
        last_good = good.created_at if good is not None else db.created_at
        if plan.overdue(now, self.settings.backup_timeout_s, last_good):
            await self._overdue(db, last_good, plan)
        last_attempt = latest.created_at if latest is not None else db.created_at
        if plan.due(now, last_attempt):
            with contextlib.suppress(Conflict):  # stopped meanwhile
                await self.backups.start(db, "scheduled")

    async def _overdue(self, db: Database, last_good: datetime, plan: BackupPlan) -> None:
        """One event per spell: none again until a good backup ends it."""
        seen = await self.store.last_event(db.id, "backup_overdue")
        if seen is not None and seen.at > last_good:
            return
        await self.store.add_event(
            db, "backup_overdue",
            f"no good backup since {last_good:%Y-%m-%d %H:%M} UTC (schedule: {plan.describe()})",
            last_good_at=last_good.isoformat(), cron=plan.cron, interval_s=plan.interval_s,
        )  # fmt: skip
