"""Database use cases (SPEC §4) as a user sees them: create, list, restart, delete, show the
credentials, attach to apps. Long steps run in the background and end in a state the user can
act on (`running` or `failed` with the reason); `recover` finishes what a killed process left."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from ipaas.apps.background import Background
from ipaas.apps.deployer import Deployer
from ipaas.apps.service import Principal
from ipaas.auth.keys import Cipher
from ipaas.config import DatabaseSettings
from ipaas.databases.backups import BackupService
from ipaas.databases.links import accounts_of, credentials_of, url_of
from ipaas.databases.provisioning import container_spec, new_accounts, run_admin
from ipaas.domain.databases import (
    ENGINES,
    MIN_MEMORY_MB,
    SHELL_OS_USER,
    SHELL_PASSWORD_ENV,
    DbState,
    Engine,
    IllegalDbTransition,
    engine_info,
    env_name_problem,
    shell_argv,
)
from ipaas.domain.errors import Conflict, InvalidInput, LimitReached, NotFoundError
from ipaas.domain.names import name_problem
from ipaas.domain.states import State
from ipaas.runtime.databases import DatabaseRuntime, DbContainerSpec, DbStartFailed, host_name
from ipaas.store.apps import AppStore, NameTaken, NotFound
from ipaas.store.databases import AlreadyAttached, DatabaseStore
from ipaas.store.models import Database, DatabaseAttachment, new_id, utcnow
from ipaas.store.quotas import QuotaExceeded, QuotaStore

log = structlog.get_logger()
D = DbState


@dataclass(frozen=True)
class DatabaseRequest:
    name: str
    engine: str
    version: str | None = None
    memory_mb: int | None = None
    cpus: float | None = None


@dataclass(frozen=True)
class ShownCredentials:
    username: str
    password: str
    database: str
    host: str
    port: int
    url: str


@dataclass(frozen=True)
class ShellCommand:
    container_id: str
    user: str
    argv: list[str]
    env: dict[str, str]


class DatabaseService:
    def __init__(
        self,
        store: DatabaseStore,
        apps: AppStore,
        quotas: QuotaStore,
        cipher: Cipher,
        runtime: DatabaseRuntime,
        deployer: Deployer,
        settings: DatabaseSettings,
        background: Background,
        backups: BackupService,
    ) -> None:
        self.backups = backups
        self.store = store
        self.apps = apps
        self.quotas = quotas
        self.cipher = cipher
        self.runtime = runtime
        self.deployer = deployer
        self.settings = settings
        self.background = background
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # --- reading ------------------------------------------------------------------------------
    async def get(self, who: Principal, db_id: str) -> Database:
        """The caller's database; another user's looks exactly like a missing one."""
        try:
            return await self.store.get(db_id, who.user_id)
        except NotFound:
            raise NotFoundError.of("database") from None

    async def list(self, who: Principal) -> Sequence[Database]:
        return await self.store.list(who.user_id)

    def credentials(self, db: Database) -> ShownCredentials:
        creds = credentials_of(self.cipher, db)
        host = host_name(db.id)
        port = ENGINES[engine_info(db.engine, db.version)[0]].port
        return ShownCredentials(
            creds.username, creds.password, creds.database, host, port, url_of(self.cipher, db)
        )

    def shell(self, db: Database) -> ShellCommand:
        """The engine's client for `ipaas db shell`, run in the database's own container."""
        if db.state != DbState.RUNNING or not db.container_id:
            raise Conflict(f"not possible while the database is {db.state}", code="invalid_state")
        creds = credentials_of(self.cipher, db)
        return ShellCommand(
            db.container_id, SHELL_OS_USER, shell_argv(db.engine, db.version, creds),
            {SHELL_PASSWORD_ENV[Engine(db.engine)]: creds.password},
        )  # fmt: skip

    async def attachments(self, db: Database) -> Sequence[tuple[DatabaseAttachment, str]]:
        return await self.store.attachments(db.id)

    async def attached_to(self, app_id: str) -> Sequence[tuple[DatabaseAttachment, Database]]:
        """The databases attached to an app (the caller owns the app)."""
        return await self.store.attached_to(app_id)

    # --- create -------------------------------------------------------------------------------
    async def create(self, who: Principal, body: DatabaseRequest) -> Database:
        problem = name_problem(body.name, ())
        if problem:
            raise InvalidInput(f"the name is not valid: {problem}", code="invalid_name")
        engine, version = engine_info(body.engine, body.version)
        memory_mb = body.memory_mb or self.settings.memory_mb
        cpus = body.cpus or self.settings.cpus
        if memory_mb < MIN_MEMORY_MB:
            raise InvalidInput(f"a database needs at least {MIN_MEMORY_MB} MB", code="too_small")
        accounts = new_accounts(body.name, engine)
        db = Database(
            id=new_id(),
            name=body.name,
            owner_id=who.user_id,
            engine=engine.value,
            version=version,
            memory_mb=memory_mb,
            cpus=cpus,
            state=D.CREATING.value,
            credentials_encrypted=self.cipher.encrypt(accounts.to_json()),
            deadline=self._deadline(),
        )
        await self._insert(db)
        self.background.spawn(self.provision(db.id), f"db-create-{db.id}")
        return db

    def _deadline(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.create_timeout_s)

    async def _insert(self, db: Database) -> None:
        quota = self.quotas.database_guard(db.owner_id, db.memory_mb, db.cpus)

        async def guard(s: object) -> None:
            if await self.store.count(s, db.owner_id) >= self.settings.max_per_user:  # type: ignore[arg-type]
                raise LimitReached(
                    f"at most {self.settings.max_per_user} databases per user",
                    code="too_many_databases",
                )
            await quota(s)  # type: ignore[arg-type]

        try:
            await self.store.create(db, guard)
        except NameTaken:
            raise Conflict(
                f"you already have a database named {db.name!r}", code="name_taken"
            ) from None
        except QuotaExceeded as exc:
            d = exc.decision
            raise InvalidInput(
                "the database does not fit in your quota",
                code="quota_exceeded",
                exceeded=list(d.exceeded),
                too_large=list(d.too_large),
                remaining=d.remaining.as_dict(),
            ) from None

    def _spec(self, db: Database) -> DbContainerSpec:
        return container_spec(db, self.settings)

    async def provision(self, db_id: str) -> None:
        """creating → running (container up, users made) or failed, within the deadline."""
        async with self._locks[db_id]:
            try:
                db = await self.store.get(db_id)
            except NotFound:
                return
            if db.state != D.CREATING:
                return
            await self._bounded(db, self._provision(db), "create")

    async def _provision(self, db: Database) -> None:
        container_id = await self.runtime.start(self._spec(db))
        await self.store.set_fields(db.id, container_id=container_id)
        await self.provision_users(db, container_id)
        await self.store.transition(db.id, D.RUNNING, "the server answers", deadline=None)

    async def provision_users(self, db: Database, container_id: str) -> None:
        """The users as stored (a database made before the viewer existed gets its viewer
        here, at its next start)."""
        accounts = accounts_of(self.cipher, db)
        if accounts.reader is None and db.engine != Engine.REDIS:
            fresh = new_accounts(db.name, db.engine).reader
            accounts = replace(accounts, reader=fresh)
            await self.store.set_fields(
                db.id, credentials_encrypted=self.cipher.encrypt(accounts.to_json())
            )
        await run_admin(
            self.runtime, container_id, db.engine, accounts, self.settings.console_timeout_s
        )

    async def _bounded(self, db: Database, work: Awaitable[None], what: str) -> None:
        """Run a create or restart within its deadline; whatever happens, it ends running or
        failed with the reason."""
        try:
            await asyncio.wait_for(work, self.settings.create_timeout_s)
        except DbStartFailed as exc:
            await self._fail(db.id, exc.reason)
        except TimeoutError:
            await self._fail(
                db.id, f"the {what} took longer than {self.settings.create_timeout_s:g} s"
            )
        except (IllegalDbTransition, NotFound):
            pass  # deleted meanwhile
        except Exception as exc:  # noqa: BLE001 - the database must not stay busy
            log.exception("database step crashed", database_id=db.id)
            await self._fail(db.id, f"the platform failed during the {what}: {exc!r}")

    async def _fail(self, db_id: str, reason: str) -> None:
        with contextlib.suppress(IllegalDbTransition, NotFound):
            await self.store.transition(db_id, D.FAILED, reason, deadline=None)
        log.warning("database failed", database_id=db_id, reason=reason)

    # --- restart and delete -------------------------------------------------------------------
    async def restart(self, db: Database) -> None:
        await self.store.transition(
            db.id, D.RESTARTING, "restart requested", deadline=self._deadline()
        )
        self.background.spawn(self.finish_restart(db.id), f"db-restart-{db.id}")

    async def finish_restart(self, db_id: str) -> None:
        async with self._locks[db_id]:
            db = await self.store.get(db_id)
            await self._bounded(db, self._restart(db), "restart")

    async def _restart(self, db: Database) -> None:
        running = db.container_id and await self.runtime.state(db.container_id)
        if running and db.container_id:
            await self.runtime.restart(db.container_id, self._spec(db))
            container_id = db.container_id
        else:  # never made (a failed create) or gone: made again on the same volume
            container_id = await self.runtime.start(self._spec(db))
        await self.provision_users(db, container_id)
        await self.store.transition(
            db.id, D.RUNNING, "restarted", container_id=container_id, deadline=None
        )

    async def delete(self, db: Database, final_backup: bool = True) -> None:
        attached = await self.store.attachments(db.id)
        if attached:
            names = ", ".join(name for _, name in attached)
            raise Conflict(
                f"the database is attached to {names}: detach it first",
                code="database_attached",
                apps=[name for _, name in attached],
            )
        note = "deleted by the user" + ("" if final_backup else " (no final backup)")
        await self.store.transition(db.id, D.DELETING, note, final_backup=final_backup)
        self.background.spawn(self.finish_delete(db.id), f"db-delete-{db.id}")

    async def finish_delete(self, db_id: str) -> None:
        """A final backup first (unless opted out; a database that does not run has none to
        give), then the container and volume. A final backup that fails stops the delete:
        the database ends `failed`, its data kept, saying how to delete it anyway."""
        async with self._locks[db_id]:
            try:
                db = await self.store.get(db_id)
            except NotFound:
                return
            final = None
            if db.final_backup and await self._runs(db):
                final = await self.backups.take_final(db)
                if final is None:
                    await self._fail(
                        db_id,
                        "the final backup failed, so nothing was deleted: see the backups; "
                        "delete with final_backup=false to delete without one",
                    )
                    return
            await self.runtime.remove(db_id)
            await self.runtime.remove_volume(db_id)
            await self.backups.forget(db, final)
            await self.store.delete(db_id)
        self._locks.pop(db_id, None)

    async def _runs(self, db: Database) -> bool:
        return (
            bool(db.container_id) and await self.runtime.state(db.container_id or "") == "running"
        )

    # --- attachments --------------------------------------------------------------------------
    async def attach(
        self, who: Principal, db: Database, app_id: str, env_name: str | None
    ) -> DatabaseAttachment:
        try:
            app = await self.apps.get(app_id, who.user_id)
        except NotFound:
            raise NotFoundError.of("application") from None
        name = env_name or ENGINES[engine_info(db.engine, db.version)[0]].env_name
        problem = env_name_problem(name)
        if problem:
            raise InvalidInput(f"env_name: {problem}", code="invalid_env_name")
        if db.state == D.DELETING:
            raise IllegalDbTransition(D.DELETING, D.RUNNING)
        try:
            link = await self.store.attach(db.id, app.id, name)
        except AlreadyAttached:
            raise Conflict(
                f"the app already gets {name} from a database", code="already_attached"
            ) from None
        await self._restart_app(app.id, f"database {db.name} attached as {name}")
        return link

    async def detach(self, who: Principal, db: Database, app_id: str) -> None:
        if not await self.store.detach(db.id, app_id):
            raise NotFoundError.of("attachment")
        await self._restart_app(app_id, f"database {db.name} detached")

    async def _restart_app(self, app_id: str, reason: str) -> None:
        """A running app takes the change now; a stopped or failed one at its next start."""
        app = await self.apps.get(app_id)
        if app.state in (State.RUNNING, State.CRASHED):
            with contextlib.suppress(Conflict):
                await self.deployer.redeploy(app_id, None, reason)

    # --- the whole picture --------------------------------------------------------------------
    async def recover(self) -> None:
        """Creates, restarts and deletes nobody works on (a killed process): finished, or
        failed once past their deadline."""
        for db in await self.store.all_in_states([D.CREATING, D.RESTARTING, D.DELETING]):
            lock = self._locks.get(db.id)
            if lock is not None and lock.locked():
                continue
            if db.state == D.DELETING:
                self.background.spawn(self.finish_delete(db.id), f"db-delete-{db.id}")
            elif db.deadline is not None and db.deadline < utcnow():
                await self._fail(db.id, f"interrupted: the {db.state} did not finish in time")
            elif db.state == D.CREATING:
                self.background.spawn(self.provision(db.id), f"db-create-{db.id}")
            else:
                self.background.spawn(self.finish_restart(db.id), f"db-restart-{db.id}")
