"""The warden on the real store with an in-memory runtime: crashes seen, restarts made."""

from __future__ import annotations

from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from ipaas.store.models import Application, Release, new_id
from tests.conftest import UserMaker
from tests.fakes import FakeRuntime
from tests.support import unique_name, wait_until_async


async def running_app(core: ControlPlane, owner_id: str) -> Application:
    stores = core.stores
    app = Application(
        id=new_id(),
        name=unique_name("wd"),
        owner_id=owner_id,
        repo="https://x.invalid/r.git",
        state=State.PENDING.value,
        envs_encrypted="",
    )
    await stores.apps.create(app)
    release = Release(
        app_id=app.id, number=1, build_id=new_id(), commit="a" * 40, image_id="i", image_tag="t"
    )
    await stores.builds.add_release(release)
    await stores.apps.transition(app.id, State.BUILDING, "test")
    await stores.apps.transition(app.id, State.STARTING, "test", target_release=1)
    await core.deployer.deploy(app.id)
    return await stores.apps.get(app.id)


async def test_a_crash_found_by_reconcile_is_restarted_on_a_new_container(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"])
    assert app.state == State.RUNNING and app.container_id
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    runtime.crash(app.container_id)
    await core.warden.reconcile()
    crashed = await core.stores.apps.get(app.id)
    assert crashed.state == State.CRASHED and "exited with 1" in (crashed.state_reason or "")

    async def restarted() -> Application | None:
        row = await core.stores.apps.get(app.id)
        return row if row.state == State.RUNNING else None

    back = await wait_until_async(restarted, 10, "the restart")
    assert back.container_id not in (None, app.container_id)
    assert runtime.containers[back.container_id or ""].state == "running"
    await core.warden.stop()


async def test_routes_follow_the_store_after_a_sync(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"])
    router = core.adapters.router
    await router.sync([])
    await core.deployer.sync_routes()
    host = core.app_service.hosts.host(app.name)
    assert router.routes[host].upstream == app.address
