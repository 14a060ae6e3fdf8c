"""Credential rotation without downtime, as a job:

1. a new login is made beside the old one and tried (it must log in before anything else);
2. it becomes the one apps get, and the old one is marked retiring (stored, so a rotation a
   killed process left is finished by the next);
3. every attached app that runs is rolled out onto it (the old release serves until the new one
   is healthy), and the rotation waits until each rollout ended;
4. only then are the retiring logins revoked: their password is refused from then on.

An app whose rollout does not come up keeps serving on the old login: the old login is then
kept, the job fails saying which app, and a later rotation revokes it once every app moved.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from ipaas.apps.background import Background
from ipaas.apps.deployer import Deployer
from ipaas.auth.keys import Cipher
from ipaas.config import DatabaseSettings
from ipaas.databases.backups import add_job
from ipaas.databases.links import accounts_of
from ipaas.databases.provisioning import new_login
from ipaas.domain.databases import DbState, Engine, provision_argv
from ipaas.domain.dbaccounts import provision_input, revoke_input
from ipaas.domain.errors import Conflict
from ipaas.domain.states import State
from ipaas.runtime.databases import DatabaseRuntime
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.databases import DatabaseStore
from ipaas.store.models import Application, Database, DatabaseJob

log = structlog.get_logger()
_SETTLING = (State.ROLLING_OUT, State.STARTING)
_POLL_S = 0.5


class RotationFailed(Exception):
    pass


class CredentialRotation:
    def __init__(
        self,
        store: DatabaseStore,
        apps: AppStore,
        cipher: Cipher,
        runtime: DatabaseRuntime,
        deployer: Deployer,
        settings: DatabaseSettings,
        background: Background,
    ) -> None:
        self.store = store
        self.apps = apps
        self.cipher = cipher
        self.runtime = runtime
        self.deployer = deployer
        self.settings = settings
        self.background = background

    async def start(self, db: Database) -> DatabaseJob:
        if db.state != DbState.RUNNING or not db.container_id:
            raise Conflict(f"not possible while the database is {db.state}", code="invalid_state")
        job = await add_job(self.store, db, "rotate")
        self.background.spawn(self.run(db, job), f"db-rotate-{job.id}")
        return job

    async def run(self, db: Database, job: DatabaseJob) -> None:
        timeout = self.settings.rotation_timeout_s
        try:
            detail = await asyncio.wait_for(self._rotate(db, job), timeout)
        except (RotationFailed, TimeoutError) as exc:
            why = str(exc) or f"the rotation took longer than {timeout:g} s"
            await self.store.finish_job(job.id, "failed", why)
            await self.store.add_event(
                db, "rotation_failed", f"rotating the password failed: {why}"
            )
            return
        except Exception as exc:  # noqa: BLE001 - the job must end, with the reason
            log.exception("rotation crashed", database_id=db.id)
            await self.store.finish_job(job.id, "failed", f"the platform failed: {exc!r}")
            return
        await self.store.finish_job(job.id, "succeeded", **detail)
        await self.store.add_event(db, "credentials_rotated", "the password was rotated", **detail)

    async def _rotate(self, db: Database, job: DatabaseJob) -> dict[str, Any]:
        assert db.container_id
        accounts = accounts_of(self.cipher, db)
        fresh = new_login(accounts.app.database)
        rotated = accounts.rotated(fresh)
        made = provision_input(db.engine, rotated, self.settings.console_timeout_s)
        await self._admin(db, made, "creating")
        if not (await self._login_works(db, fresh.username, fresh.password)):
            raise RotationFailed("the new login was made but does not log in")
        await self.store.set_fields(
            db.id, credentials_encrypted=self.cipher.encrypt(rotated.to_json())
        )
        await self.store.update_job(job.id, username=fresh.username)
        moved = await self._move_apps(db)
        await self._admin(db, revoke_input(db.engine, rotated), "revoking", db_scoped=True)
        await self.store.set_fields(
            db.id, credentials_encrypted=self.cipher.encrypt(rotated.revoked().to_json())
        )
        return {"username": fresh.username, "revoked": list(rotated.retiring), "apps": moved}

    async def _admin(self, db: Database, sql: str, what: str, db_scoped: bool = False) -> None:
        assert db.container_id
        argv = provision_argv(db.engine)
        if db_scoped and db.engine == Engine.POSTGRES:  # REASSIGN OWNED acts on one database
            argv = ["ipaas-db", "admin", "-d", accounts_of(self.cipher, db).app.database]
        result = await self.runtime.exec(db.container_id, argv, 60, sql.encode())
        if not result.ok:
            raise RotationFailed(f"{what} the login failed: {result.output[-500:]}")

    async def _login_works(self, db: Database, username: str, password: str) -> bool:
        assert db.container_id
        database = accounts_of(self.cipher, db).app.database
        argv = ["ipaas-db", "login", username, database]
        result = await self.runtime.exec(db.container_id, argv, 30, f"{password}\n".encode())
        return result.ok

    async def _move_apps(self, db: Database) -> list[str]:
        """Roll every attached app that runs onto the new login; wait until each is done."""
        names: list[str] = []
        failed: list[str] = []
        for link, name in await self.store.attachments(db.id):
            names.append(name)
            if not await self._roll(link.app_id):
                failed.append(name)
        if failed:
            raise RotationFailed(
                f"{', '.join(failed)} did not come up on the new login and still use the old "
                "one, which was kept; fix the app and rotate again"
            )
        return names

    async def _roll(self, app_id: str) -> bool:
        """True when the app runs on the new login (or will get it at its next start)."""
        try:
            app = await self._settled(app_id)  # a rollout under way may predate the new login
            if app.state not in (State.RUNNING, State.CRASHED):
                return True
            before = app.container_id
            try:
                await self.deployer.redeploy(app_id, None, "database credentials rotated")
            except Conflict:
                return False
            app = await self._settled(app_id)
        except NotFound:
            return True  # deleted meanwhile
        return app.state == State.RUNNING and app.container_id != before

    async def _settled(self, app_id: str) -> Application:
        deadline = time.monotonic() + self.settings.rotation_timeout_s
        while True:
            app = await self.apps.get(app_id)
            if app.state not in _SETTLING or time.monotonic() > deadline:
                return app
            await asyncio.sleep(_POLL_S)
