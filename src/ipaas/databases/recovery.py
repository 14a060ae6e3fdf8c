"""The databases' own small warden: at start and every few seconds, creates, restarts and
deletes a killed process left half-done are finished (or failed past their deadline), backups
and jobs left running are failed with the reason, and scheduled backups are taken and pruned."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from ipaas.databases.backups import BackupService
from ipaas.databases.schedule import BackupSchedule
from ipaas.databases.service import DatabaseService

log = structlog.get_logger()


class DatabaseRecovery:
    def __init__(
        self,
        databases: DatabaseService,
        backups: BackupService,
        schedule: BackupSchedule,
        interval_s: float,
    ) -> None:
        self.databases = databases
        self.backups = backups
        self.schedule = schedule
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> None:
        await self.databases.recover()
        await self.backups.fail_abandoned()
        await self.schedule.once()

    async def _loop(self) -> None:
        while True:
            try:
                await self.once()
            except Exception:  # noqa: BLE001 - a store hiccup must not end the loop
                log.exception("database recovery failed")
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="database-recovery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
