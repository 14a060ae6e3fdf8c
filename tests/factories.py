"""Stored objects for tests, made the way the platform makes them (through the stores)."""

from __future__ import annotations

from typing import Any

from ipaas.domain.states import State
from ipaas.platform import ControlPlane, Stores
from ipaas.store.models import Application, Database, Release, new_id
from tests.support import unique_name


async def stored_app(stores: Stores, owner_id: str, **fields: Any) -> Application:
    """A pending app (no build queued) with a unique name."""
    values: dict[str, Any] = {
        "id": new_id(),
        "name": unique_name("app"),
        "owner_id": owner_id,
        "repo": "https://x.invalid/r.git",
        "state": State.PENDING.value,
        "envs_encrypted": "",
        **fields,
    }
    return await stores.apps.create(Application(**values))


async def stored_releases(stores: Stores, app_id: str, *numbers: int) -> None:
    """Built releases of the app (their images are names only: fakes run them)."""
    for number in numbers:
        await stores.builds.add_release(
            Release(
                app_id=app_id,
                number=number,
                build_id=new_id(),
                commit=str(number % 10) * 40,
                image_id=f"sha256:{number}",
                image_tag=f"x:r{number}",
            )
        )


async def starting_app(core: ControlPlane, owner_id: str, releases: int = 1) -> Application:
    """An app whose first release is built and about to start (`starting`)."""
    app = await stored_app(core.stores, owner_id)
    await stored_releases(core.stores, app.id, *range(1, releases + 1))
    await core.stores.apps.transition(app.id, State.BUILDING, "test")
    await core.stores.apps.transition(app.id, State.STARTING, "test", target_release=1)
    return app


async def running_app(core: ControlPlane, owner_id: str, releases: int = 1) -> Application:
    """An app running release 1 on the plane's runtime (a fake in the fast tier)."""
    app = await starting_app(core, owner_id, releases)
    await core.deployer.deploy(app.id)
    running = await core.stores.apps.get(app.id)
    assert running.state == State.RUNNING and running.current_release == 1, running.state_reason
    return running


async def stored_database(
    core: ControlPlane, owner_id: str, engine: str = "postgres", state: str = "running"
) -> Database:
    """A database as a create leaves it (its logins made up and stored encrypted), put in
    `state` directly: the fast tier runs no engine."""
    from ipaas.databases.provisioning import new_accounts
    from ipaas.domain.databases import ENGINES, Engine

    name = unique_name("db")
    db = Database(
        id=new_id(), name=name, owner_id=owner_id, engine=engine,
        version=ENGINES[Engine(engine)].versions[0], memory_mb=256, cpus=0.5, state=state,
        credentials_encrypted=core.stores.cipher.encrypt(new_accounts(name, engine).to_json()),
        container_id="not-a-container" if state == "running" else None,
    )  # fmt: skip

    async def no_guard(_: object) -> None:
        return None

    return await core.stores.databases.create(db, no_guard)
