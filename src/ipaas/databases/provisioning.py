"""Making a database's container and users: its container spec, the admin statements run in
it, and fresh generated logins (shared by creating, restoring and rotating)."""

from __future__ import annotations

import secrets

from ipaas.config import DatabaseSettings
from ipaas.domain.databases import (
    Credentials,
    Engine,
    database_name,
    image_tag,
    provision_argv,
    server_args,
)
from ipaas.domain.dbaccounts import Accounts, provision_input
from ipaas.runtime.databases import DatabaseRuntime, DbContainerSpec, DbStartFailed
from ipaas.store.models import Database

_ADMIN_TIMEOUT_S = 60.0


def container_spec(db: Database, settings: DatabaseSettings) -> DbContainerSpec:
    return DbContainerSpec(
        database_id=db.id,
        owner_id=db.owner_id,
        image=image_tag(db.engine, db.version),
        memory_mb=db.memory_mb,
        cpus=db.cpus,
        pids_limit=settings.pids_limit,
        server_args=tuple(server_args(db.engine, db.memory_mb)),
        ready_timeout_s=settings.create_timeout_s,
    )


async def run_admin(
    runtime: DatabaseRuntime,
    container_id: str,
    engine: str,
    accounts: Accounts,
    statement_timeout_s: float = 5.0,
) -> None:
    """Create (or bring up to date) the database and its users; DbStartFailed when refused.
    The viewer's login is also left (root-only) in the container, for its `view`/`console`."""
    stdin = provision_input(engine, accounts, statement_timeout_s).encode()
    result = await runtime.exec(container_id, provision_argv(engine), _ADMIN_TIMEOUT_S, stdin)
    if not result.ok:
        raise DbStartFailed(f"creating the user failed: {result.output[-500:]}")
    if accounts.reader is not None and engine != Engine.REDIS:
        secret = f"{accounts.reader.username}\n{accounts.reader.password}\n".encode()
        kept = await runtime.exec(container_id, ["ipaas-db", "set-reader"], 30, secret)
        if not kept.ok:
            raise DbStartFailed(f"storing the viewer's login failed: {kept.output[-500:]}")


def new_login(database: str) -> Credentials:
    """Generated, never chosen by the user: a random user name and a 32-character password."""
    return Credentials(f"u{secrets.token_hex(6)}", secrets.token_urlsafe(24), database)


def new_accounts(name: str, engine: str) -> Accounts:
    database = "0" if engine == Engine.REDIS else database_name(name)
    app = new_login(database)
    reader = None
    if engine != Engine.REDIS:
        reader = Credentials(f"v{secrets.token_hex(6)}", secrets.token_urlsafe(24), database)
    return Accounts(app, app.username, reader)
