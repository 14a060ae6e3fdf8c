"""Backups you can trust: a dump is only reported good after it was restored into a scratch
container of the same image and checked there (every table the database had is back, with
its rows counted). A backup that fails is recorded failed with the error, its file removed."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import structlog

from ipaas.apps.background import Background
from ipaas.auth.keys import Cipher
from ipaas.config import DatabaseSettings
from ipaas.databases.links import credentials_of
from ipaas.databases.service import container_spec, run_admin
from ipaas.domain.databases import MOUNT_PATH, BackupStatus, Credentials, DbState, Engine
from ipaas.domain.errors import Conflict, NotFoundError
from ipaas.runtime.databases import DatabaseRuntime, DbStartFailed
from ipaas.store.apps import NotFound
from ipaas.store.databases import DatabaseStore
from ipaas.store.models import Database, DatabaseBackup, utcnow

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
            return await self._failed(backup, path, why)
        except Exception as exc:  # noqa: BLE001 - never a backup left running or reported good
            log.exception("backup crashed", database_id=db.id)
            return await self._failed(backup, path, f"the platform failed: {exc!r}")
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

    async def _failed(self, backup: DatabaseBackup, path: Path, why: str) -> bool:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await self.store.finish_backup(backup.id, BackupStatus.FAILED, error=why[-2000:])
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
            creds = credentials_of(self.cipher, db)
            if db.engine != Engine.REDIS:
                await self._restore_into(scratch, db.engine, creds, path, scratch=True)
            return await self._counts(scratch, creds.database)
        finally:
            await asyncio.shield(self.runtime.remove_scratch(scratch))

    async def _restore_into(
        self, container_id: str, engine: str, creds: Credentials, path: Path, scratch: bool
    ) -> None:
        if scratch:  # the same user and database as the original, with a throwaway password
            scratch_user = Credentials(creds.username, secrets.token_urlsafe(16), creds.database)
            await run_admin(self.runtime, container_id, engine, scratch_user)
        await self.runtime.put_file(container_id, _INSIDE, path)
        argv = ["ipaas-db", "restore", creds.database, creds.username, _INSIDE]
        result = await self.runtime.exec(container_id, argv, self._timeout())
        await self.runtime.exec(container_id, ["rm", "-f", _INSIDE], 30)
        if not result.ok:
            raise BackupFailed(f"the restore failed (exit {result.exit_code}): {result.output}")

    # --- restore into the database ------------------------------------------------------------
    async def restore(self, db: Database, backup: DatabaseBackup) -> DatabaseBackup:
        """Put a good backup back, after a safety backup of what is there now; returns the
        safety backup. The database is left as it was when either step fails."""
        self._check_running(db)
        if backup.status != BackupStatus.SUCCEEDED:
            raise Conflict("only a verified backup can be restored", code="backup_not_usable")
        safety = await self.store.add_backup(db.id, "before-restore")
        if not await self.take(db, safety):
            raise Conflict(
                "the safety backup failed, so nothing was restored", code="safety_backup_failed"
            )
        assert db.container_id
        creds = credentials_of(self.cipher, db)
        source = self.path_of(db, backup)
        try:
            if db.engine == Engine.REDIS:
                await self.runtime.put_file(db.container_id, f"{MOUNT_PATH}/restore.rdb", source)
                await self.runtime.restart(db.container_id, container_spec(db, self.settings))
            else:
                await self._restore_into(db.container_id, db.engine, creds, source, scratch=False)
        except (BackupFailed, DbStartFailed) as exc:
            raise Conflict(f"the restore failed: {exc}", code="restore_failed") from None
        return await self.store.backup(db.id, safety.id)

    async def fail_abandoned(self) -> None:
        """Backups whose process died: failed after twice their time limit."""
        cutoff = utcnow() - timedelta(seconds=2 * self._timeout())
        await self.store.fail_running_backups(cutoff, "interrupted: the platform stopped")
