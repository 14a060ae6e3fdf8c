"""Deploys end in a state the user can act on, whatever breaks underneath (a runtime that fails
in a way nobody planned for stands in for a platform bug)."""

from __future__ import annotations

import uuid
from typing import Any

from ipaas.apps.background import Background
from ipaas.apps.deployer import Deployer
from ipaas.builds.base import BuildFailed
from ipaas.domain.hosts import HostNames
from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from ipaas.store.models import Application, Release, new_id
from tests.conftest import UserMaker
from tests.fakes import FakeBuilder, FakeRouter, FakeRuntime


class BrokenRuntime:
    """Only what a deploy reaches before it breaks."""

    async def start(self, spec: Any) -> Any:
        raise KeyError("NetworkSettings")  # say, an engine answer of an unexpected shape


async def test_a_deploy_that_breaks_unexpectedly_ends_failed_with_the_reason(
    core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    app = Application(
        id=new_id(),
        name=f"ops-{uuid.uuid4().hex[:8]}",
        owner_id=user["id"],
        repo="https://x.invalid/r.git",
        state=State.PENDING.value,
        envs_encrypted="",
    )
    await core.stores.apps.create(app)
    await core.stores.builds.add_release(
        Release(
            app_id=app.id,
            number=1,
            build_id=new_id(),
            commit="a" * 40,
            image_id="sha256:x",
            image_tag="x:r1",
        )
    )
    await core.stores.apps.transition(app.id, State.BUILDING, "test")
    await core.stores.apps.transition(app.id, State.STARTING, "test", target_release=1)
    deployer = Deployer(
        apps=core.stores.apps,
        builds=core.stores.builds,
        runtime=BrokenRuntime(),  # type: ignore[arg-type]
        router=core.adapters.router,
        cipher=core.stores.cipher,
        settings=core.settings.runtime,
        hosts=HostNames(core.settings.base_domain),
        background=Background(),
        identity=core.stores.identity,
    )
    await deployer.deploy(app.id)
    after = await core.stores.apps.get(app.id)
    assert after.state == State.FAILED
    assert "failed while starting the release" in (after.state_reason or "")
    assert "NetworkSettings" in (after.state_reason or "")


async def running_on_release_1(core: ControlPlane, owner_id: str) -> Application:
    stores = core.stores
    app = Application(
        id=new_id(),
        name=f"roll-{uuid.uuid4().hex[:8]}",
        owner_id=owner_id,
        repo="https://x.invalid/r.git",
        state=State.PENDING.value,
        envs_encrypted="",
    )
    await stores.apps.create(app)
    for number in (1, 2):
        await stores.builds.add_release(
            Release(
                app_id=app.id,
                number=number,
                build_id=new_id(),
                commit=str(number) * 40,
                image_id=f"sha256:{number}",
                image_tag=f"x:r{number}",
            )
        )
    await stores.apps.transition(app.id, State.BUILDING, "test")
    await stores.apps.transition(app.id, State.STARTING, "test", target_release=1)
    await core.deployer.deploy(app.id)
    running = await stores.apps.get(app.id)
    assert running.state == State.RUNNING and running.current_release == 1
    return running


async def test_a_release_that_does_not_come_up_leaves_the_old_one_serving(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_on_release_1(core, (await make_user())["id"])
    runtime, router = core.adapters.runtime, core.adapters.router
    assert isinstance(runtime, FakeRuntime) and isinstance(router, FakeRouter)
    runtime.unhealthy_releases.add((app.id, 2))
    await core.stores.apps.transition(app.id, State.ROLLING_OUT, "test", target_release=2)
    await core.deployer.deploy(app.id)
    after = await core.stores.apps.get(app.id)
    assert after.state == State.RUNNING and after.current_release == 1
    assert after.container_id == app.container_id and after.address == app.address
    assert "release 2 did not come up" in (after.state_reason or "")
    assert "release 1 still serves" in (after.state_reason or "")
    assert runtime.containers[app.container_id or ""].state == "running"
    await core.deployer.sync_routes()  # what the warden does: the route stays
    assert router.routes[core.app_service.hosts.host(app.name)].upstream == app.address
    events = await core.stores.apps.events(app.id, limit=100)
    assert [e.to_state for e in events][-2:] == ["rolling_out", "running"]


async def test_a_rollout_whose_build_fails_leaves_the_old_release_serving(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_on_release_1(core, (await make_user())["id"])
    builder = core.adapters.builder
    assert isinstance(builder, FakeBuilder)
    await core.app_service.rebuild(app.id, "rollout")
    job = await core.adapters.queue.lease("test-builder")
    while job is not None and job.app_id != app.id:  # other tests' jobs stay queued
        job = await core.adapters.queue.lease("test-builder")
    assert job is not None
    builder.fail_with = BuildFailed("npm install failed", user_fault=True, code="install_failed")
    try:
        await core.worker.run(job)
    finally:
        builder.fail_with = None
    after = await core.stores.apps.get(app.id)
    assert after.state == State.RUNNING and after.current_release == 1
    assert "build failed: npm install failed" in (after.state_reason or "")
    assert after.container_id == app.container_id
