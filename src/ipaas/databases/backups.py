"""Backups you can trust: a dump is only reported good after it was restored into a scratch
container of the same image and checked there (every table the database had is back, with
its rows counted). A backup that fails is recorded failed with the error, its file removed."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from ipaas.apps.background import Background
from ipaas.auth.keys import Cipher
from ipaas.config import DatabaseSettings
from ipaas.databases.links import accounts_of, credentials_of
from ipaas.databases.provisioning import container_spec, run_admin
from ipaas.domain.databases import MOUNT_PATH, BackupStatus, Credentials, DbState, Engine
from ipaas.domain.dbaccounts import Accounts
from ipaas.domain.errors import Conflict, NotFoundError
from ipaas.runtime.databases import DatabaseRuntime, DbStartFailed
from ipaas.store.apps import NotFound
from ipaas.store.databases import DatabaseStore, JobRunning
from ipaas.store.models import Database, DatabaseBackup, DatabaseJob, utcnow

log = structlog.get_logger()
SUFFIX = {Engine.POSTGRES: ".pgdump", Engine.MARIADB: ".sql.gz", Engine.REDIS: ".rdb"}
_INSIDE = "/tmp/ipaas-restore"


class BackupFailed(Exception):
    pass


def parse_counts(output: str) -> dict[str, int]:
    """`ipaas-db count` output: one `name<TAB>rows` line per table (Redis: `keys<TAB>n`)."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        name, _, rows = line.partition("\t")
        if name and rows.strip().isdigit():
            counts[name] = int(rows)
    return counts


def missing_tables(before: dict[str, int], restored: dict[str, int], engine: str) -> list[str]:
    """Tables the database had when the dump began that the restore did not bring back."""
    if engine == Engine.REDIS:
        return []
    return sorted(set(before) - set(restored))


class BackupService:
    def __init__(
        self,
        store: DatabaseStore,
        cipher: Cipher,
        runtime: DatabaseRuntime,
        settings: DatabaseSettings,
        backups_dir: Path,
        background: Background,
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.runtime = runtime
        self.settings = settings
        self.backups_dir = backups_dir
        self.background = background

    def path_of(self, db: Database, backup: DatabaseBackup) -> Path:
        return self.backups_dir / db.id / (backup.file_name or "")

    async def list(self, db: Database) -> Sequence[DatabaseBackup]:
        return await self.store.backups(db.id)

    async def get(self, db: Database, backup_id: str) -> DatabaseBackup:
        try:
            return await self.store.backup(db.id, backup_id)
        except NotFound:
            raise NotFoundError.of("backup") from None

    async def start(self, db: Database, reason: str = "manual") -> DatabaseBackup:
        """Record a running backup and take it in the background."""
        self._check_running(db)
        backup = await self.store.add_backup(db.id, reason)
        self.background.spawn(self.take(db, backup), f"db-backup-{backup.id}")
        return backup

    @staticmethod
    def _check_running(db: Database) -> None:
        if db.state != DbState.RUNNING or not db.container_id:
            raise Conflict(f"not possible while the database is {db.state}", code="invalid_state")

    async def take(self, db: Database, backup: DatabaseBackup) -> bool:
        """Dump, verify, record; True when the backup is good."""
        folder = self.backups_dir / db.id
        await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
        name = f"{utcnow():%Y%m%dT%H%M%S}-{backup.id[:8]}{SUFFIX[Engine(db.engine)]}"
        path = folder / name
        try:
            verified = await asyncio.wait_for(self._dump_and_verify(db, path), self._timeout())
        except (BackupFailed, DbStartFailed, TimeoutError) as exc:
            why = str(exc) or f"took longer than {self._timeout():g} s"
            return await self._failed(db, backup, path, why)
        except Exception as exc:  # noqa: BLE001 - never a backup left running or reported good
            log.exception("backup crashed", database_id=db.id)
            return await self._failed(db, backup, path, f"the platform failed: {exc!r}")
        await self.store.finish_backup(
            backup.id,
            BackupStatus.SUCCEEDED,
            file_name=name,
            size_bytes=(await asyncio.to_thread(path.stat)).st_size,
            verified=verified,
        )
        return True

    def _timeout(self) -> float:
        return self.settings.backup_timeout_s

    async def _failed(self, db: Database, backup: DatabaseBackup, path: Path, why: str) -> bool:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await self.store.finish_backup(backup.id, BackupStatus.FAILED, error=why[-2000:])
        await self.store.add_event(
            db, "backup_failed", f"the {backup.reason} backup failed: {why[:500]}",
            backup_id=backup.id, reason=backup.reason, error=why[-2000:],
        )  # fmt: skip
        log.warning("backup failed", backup_id=backup.id, error=why)
        return False

    async def _dump_and_verify(self, db: Database, path: Path) -> dict[str, object]:
        assert db.container_id
        database = credentials_of(self.cipher, db).database
        before = await self._counts(db.container_id, database)
        dumped = await self.runtime.exec_to_file(
            db.container_id, ["ipaas-db", "dump", database], path, self._timeout()
        )
        if not dumped.ok:
            raise BackupFailed(f"the dump failed (exit {dumped.exit_code}): {dumped.output}")
        if (await asyncio.to_thread(path.stat)).st_size == 0:
            raise BackupFailed("the dump is empty")
        restored = await self._verify(db, path)
        missing = missing_tables(before, restored, db.engine)
        if missing:
            raise BackupFailed(f"the restored copy lacks tables: {', '.join(missing)}")
        return (
            {"tables": restored} if db.engine != Engine.REDIS else {"keys": restored.get("keys", 0)}
        )

    async def _counts(self, container_id: str, database: str) -> dict[str, int]:
        result = await self.runtime.exec(container_id, ["ipaas-db", "count", database], 120)
        if not result.ok:
            raise BackupFailed(f"counting the rows failed: {result.output}")
        return parse_counts(result.output)

    async def _verify(self, db: Database, path: Path) -> dict[str, int]:
        """Restore the dump into a scratch container (no network, no volume) and count."""
        spec = container_spec(db, self.settings)
        seed = path if db.engine == Engine.REDIS else None
        scratch = await self.runtime.start_scratch(spec, seed)
        try:
            accounts = accounts_of(self.cipher, db)
            if db.engine != Engine.REDIS:
                await self._restore_into(scratch, db.engine, accounts, path, scratch=True)
            return await self._counts(scratch, accounts.app.database)
        finally:
            await asyncio.shield(self.runtime.remove_scratch(scratch))

    async def _restore_into(
        self, container_id: str, engine: str, accounts: Accounts, path: Path, scratch: bool
    ) -> None:
        database, owner_role = accounts.app.database, accounts.owner
        if scratch:  # the owner and database of the original, with a throwaway password
            owner = Credentials(owner_role, secrets.token_urlsafe(16), database)
            await run_admin(self.runtime, container_id, engine, Accounts(owner, owner_role))
        await self.runtime.put_file(container_id, _INSIDE, path)
        argv = ["ipaas-db", "restore", database, owner_role, _INSIDE]
        result = await self.runtime.exec(container_id, argv, self._timeout())
        await self.runtime.exec(container_id, ["rm", "-f", _INSIDE], 30)
        if not result.ok:
            raise BackupFailed(f"the restore failed (exit {result.exit_code}): {result.output}")

    # --- restore into the database, as a job ---------------------------------------------------
    async def start_restore(self, db: Database, backup: DatabaseBackup) -> DatabaseJob:
        """Record a restore job and run it in the background: a safety backup of what is
        there now, then the backup put back. Either step failing leaves the data as it was."""
        self._check_running(db)
        if backup.status != BackupStatus.SUCCEEDED:
            raise Conflict("only a verified backup can be restored", code="backup_not_usable")
        job = await add_job(self.store, db, "restore", backup_id=backup.id)
        self.background.spawn(self.run_restore(db, backup, job), f"db-restore-{job.id}")
        return job

    async def run_restore(self, db: Database, backup: DatabaseBackup, job: DatabaseJob) -> None:
        try:
            safety = await asyncio.wait_for(self._restore(db, backup, job), 3 * self._timeout())
        except (BackupFailed, DbStartFailed, TimeoutError) as exc:
            why = str(exc) or f"took longer than {3 * self._timeout():g} s"
            await self.store.finish_job(job.id, "failed", why[-2000:])
            await self.store.add_event(db, "restore_failed", f"the restore failed: {why[:500]}")
            return
        except Exception as exc:  # noqa: BLE001 - the job must end, with the reason
            log.exception("restore crashed", database_id=db.id)
            await self.store.finish_job(job.id, "failed", f"the platform failed: {exc!r}")
            return
        await self.store.finish_job(job.id, "succeeded", safety_backup_id=safety.id)
        await self.store.add_event(
            db, "restored", f"backup {backup.id} was restored", backup_id=backup.id,
            safety_backup_id=safety.id,
        )  # fmt: skip

    async def _restore(
        self, db: Database, backup: DatabaseBackup, job: DatabaseJob
    ) -> DatabaseBackup:
        source = self.path_of(db, backup)
        if db.engine == Engine.REDIS:
            # A snapshot the server cannot load would leave it down: it is loaded into a
            # scratch container first.
            await self._verify(db, source)
        safety = await self.store.add_backup(db.id, "before-restore")
        await self.store.update_job(job.id, safety_backup_id=safety.id)
        if not await self.take(db, safety):
            raise BackupFailed("the safety backup failed, so nothing was restored")
        assert db.container_id
        try:
            await self._put_back(db, db.container_id, source)
        except (BackupFailed, DbStartFailed) as exc:
            if db.engine == Engine.MARIADB and "nothing was changed" not in str(exc):
                # Loaded into a scratch schema fine, then failed in the database: the data
                # from before is put back.
                await self._put_back(db, db.container_id, self.path_of(db, safety))
                raise BackupFailed(f"{exc}; the data from before was put back") from None
            raise
        return safety

    async def _put_back(self, db: Database, container_id: str, source: Path) -> None:
        if db.engine == Engine.REDIS:
            await self.runtime.put_file(container_id, f"{MOUNT_PATH}/restore.rdb", source)
            await self.runtime.restart(container_id, container_spec(db, self.settings))
        else:
            accounts = accounts_of(self.cipher, db)
            await self._restore_into(container_id, db.engine, accounts, source, scratch=False)

    async def jobs(self, db: Database) -> Sequence[DatabaseJob]:
        return await self.store.jobs(db.id)

    async def job(self, db: Database, job_id: str) -> DatabaseJob:
        try:
            return await self.store.job(db.id, job_id)
        except NotFound:
            raise NotFoundError.of("job") from None

    # --- a deleted database's final backup, retention -----------------------------------------
    async def take_final(self, db: Database) -> DatabaseBackup | None:
        """The backup a delete takes first; None when it failed (the event says why)."""
        backup = await self.store.add_backup(db.id, "final")
        return await self.store.backup(db.id, backup.id) if await self.take(db, backup) else None

    async def forget(self, db: Database, final: DatabaseBackup | None) -> None:
        """The database is going: its backup files go too, but for the final backup, kept
        `final_backup_keep_days` and named in a `deleted` event (which outlives the database)."""
        folder = self.backups_dir / db.id
        keep = final.file_name if final is not None else None
        await asyncio.to_thread(_remove_files, folder, keep)
        if final is None:
            await self.store.add_event(db, "deleted", "the database was deleted, no final backup")
            return
        until = utcnow() + timedelta(days=self.settings.final_backup_keep_days)
        await self.store.add_event(
            db, "deleted",
            f"the database was deleted; its final backup is kept until {until:%Y-%m-%d %H:%M} UTC",
            final_backup_path=str(self.path_of(db, final)), size_bytes=final.size_bytes,
            verified=final.verified, kept_until=until.isoformat(),
        )  # fmt: skip

    async def prune(self, db: Database, keep: int) -> int:
        """Scheduled backups beyond the newest `keep` good ones: files and records removed.
        Backups the user took, safety and final backups are left alone."""
        old = prune_plan(await self.store.backups(db.id), keep)
        for backup in old:
            if backup.file_name:
                await asyncio.to_thread(self.path_of(db, backup).unlink, missing_ok=True)
        if old:
            await self.store.delete_backups([b.id for b in old])
        return len(old)

    async def sweep_final(self, live_ids: set[str]) -> None:
        """Final backups of deleted databases past their keeping time are removed."""
        cutoff = time.time() - self.settings.final_backup_keep_days * 86400
        await asyncio.to_thread(_sweep, self.backups_dir, live_ids, cutoff)

    async def fail_abandoned(self) -> None:
        """Backups and jobs whose process died: failed after twice their time limit."""
        cutoff = utcnow() - timedelta(seconds=2 * self._timeout())
        await self.store.fail_running_backups(cutoff, "interrupted: the platform stopped")
        longest = max(3 * self._timeout(), self.settings.rotation_timeout_s)
        await self.store.fail_running_jobs(
            utcnow() - timedelta(seconds=2 * longest), "interrupted: the platform stopped"
        )


async def add_job(store: DatabaseStore, db: Database, kind: str, **detail: Any) -> DatabaseJob:
    """A running job of the database; 409 while another one runs."""
    try:
        return await store.add_job(db.id, kind, detail)
    except JobRunning as exc:
        raise Conflict(
            "another restore or rotation of this database is under way",
            code="operation_running",
            job_id=str(exc),
        ) from None


def prune_plan(backups: Sequence[DatabaseBackup], keep: int) -> list[DatabaseBackup]:
    """Which scheduled backups go: good ones past the newest `keep`, and failed ones older than
    the oldest good one kept."""
    scheduled = sorted(
        (b for b in backups if b.reason == "scheduled" and b.status != BackupStatus.RUNNING),
        key=lambda b: b.created_at,
        reverse=True,
    )
    good = [b for b in scheduled if b.status == BackupStatus.SUCCEEDED]
    if len(good) <= keep:
        return []
    oldest_kept = good[keep - 1].created_at if keep > 0 else None
    return [
        b for b in scheduled
        if b.status == BackupStatus.SUCCEEDED and b not in good[:keep]
        or b.status == BackupStatus.FAILED and oldest_kept and b.created_at < oldest_kept
    ]  # fmt: skip


def _remove_files(folder: Path, keep: str | None) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name != keep:
            path.unlink(missing_ok=True)
    if keep is None:
        folder.rmdir()


def _sweep(root: Path, live_ids: set[str], cutoff: float) -> None:
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if folder.is_dir() and folder.name not in live_ids and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
