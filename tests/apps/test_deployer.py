"""Deploys end in a state the user can act on, whatever breaks underneath (a runtime that fails
in a way nobody planned for stands in for a platform bug)."""

from __future__ import annotations

import copy
from typing import Any

from ipaas.apps.background import Background
from ipaas.apps.deployer import Deployer
from ipaas.apps.service import Principal
from ipaas.builds.base import BuildFailed
from ipaas.domain.hosts import HostNames
from ipaas.domain.specs import AppUpdate
from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from ipaas.store.models import Application
from tests.conftest import UserMaker
from tests.factories import running_app, starting_app, stored_app
from tests.fakes import FakeBuilder, FakeRouter, FakeRuntime
from tests.support import wait_until_async


class BrokenRuntime:
    """Only what a deploy reaches before it breaks."""

    async def start(self, spec: Any) -> Any:
        raise KeyError("NetworkSettings")  # say, an engine answer of an unexpected shape


async def test_a_deploy_that_breaks_unexpectedly_ends_failed_with_the_reason(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await starting_app(core, (await make_user())["id"])
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


async def test_a_release_that_does_not_come_up_leaves_the_old_one_serving(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"], releases=2)
    runtime, router = core.adapters.runtime, core.adapters.router
    assert isinstance(runtime, FakeRuntime) and isinstance(router, FakeRouter)
    runtime.unhealthy_releases.add((app.id, 2))
    await core.stores.apps.transition(app.id, State.ROLLING_OUT, "test", target_release=2)
    await core.deployer.deploy(app.id)
    after = await core.stores.apps.get(app.id)
    assert after.state == State.RUNNING and after.current_release == 1
    assert after.container_id == app.container_id and after.address == app.address
    assert "release 2 did not come up" in (after.state_reason or "")
    # What serves is release 1's commit: a rollout of it is not "up to date".
    assert after.built_commit == "1" * 40
    assert "release 1 still serves" in (after.state_reason or "")
    assert runtime.containers[app.container_id or ""].state == "running"
    await core.deployer.sync_routes()  # what the warden does: the route stays
    assert router.routes[core.app_service.hosts.host(app.name)].upstream == app.address
    events = await core.stores.apps.events(app.id, limit=100)
    assert [e.to_state for e in events][-2:] == ["rolling_out", "running"]


async def test_a_rollout_whose_build_fails_leaves_the_old_release_serving(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"], releases=2)
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


async def build_next(core: ControlPlane, app_id: str) -> None:
    """What a builder does with the app's oldest queued build (other tests' stay queued)."""
    job = await core.adapters.queue.lease("test-builder")
    while job is not None and job.app_id != app_id:
        job = await core.adapters.queue.lease("test-builder")
    assert job is not None
    await core.worker.run(job)


async def test_a_change_made_during_a_build_is_the_one_deployed(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await stored_app(core.stores, (await make_user())["id"])
    await core.app_service.scheduler.enqueue(app.id)
    await build_next(core, app.id)
    first = await core.stores.apps.get(app.id)
    assert first.state == State.RUNNING and first.current_release == 1
    await core.app_service.rebuild(app.id, "branch changed")  # build 2 ...
    job = await core.adapters.queue.lease("test-builder")
    while job is not None and job.app_id != app.id:
        job = await core.adapters.queue.lease("test-builder")
    assert job is not None
    await core.app_service.rebuild(app.id, "branch changed again")  # ... and, meanwhile, 3
    await core.worker.run(job)  # build 2 ends: superseded, not deployed
    middle = await core.stores.apps.get(app.id)
    assert middle.state == State.ROLLING_OUT and middle.current_release == 1
    assert await core.stores.builds.release(app.id, 2) is not None  # kept, for rollbacks
    await build_next(core, app.id)  # build 3: the newest wins
    last = await core.stores.apps.get(app.id)
    assert last.state == State.RUNNING and last.current_release == 3
    assert last.built_commit == f"{3:040x}"


def newest_spec(core: ControlPlane, app_id: str) -> Any:
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    return [s for s in runtime.specs.values() if s.app_id == app_id][-1]


async def test_a_setting_changed_while_a_build_fails_restarts_what_serves(
    core: ControlPlane, make_user: UserMaker
) -> None:
    who = await make_user()
    app = await running_app(core, who["id"])
    principal = Principal(who["id"], "user")
    await core.app_service.rebuild(app.id, "rollout")
    job = await core.adapters.queue.lease("test-builder")
    while job is not None and job.app_id != app.id:
        job = await core.adapters.queue.lease("test-builder")
    assert job is not None
    updated = await core.app_service.update(principal, app, AppUpdate(port=5001))
    assert updated.state == State.ROLLING_OUT and updated.target_release == 1
    builder = core.adapters.builder
    assert isinstance(builder, FakeBuilder)
    builder.fail_with = BuildFailed("npm install failed", user_fault=True, code="install_failed")
    try:
        await core.worker.run(job)
    finally:
        builder.fail_with = None
    after = await wait_until_async(lambda: running(core, app.id), 5, "the restart")
    assert after.current_release == 1 and after.container_id != app.container_id
    assert newest_spec(core, app.id).port == 5001
    reasons = [e.reason or "" for e in await core.stores.apps.events(app.id, limit=100)]
    assert "settings changed: port (restart, after the build in progress)" in reasons


async def test_a_setting_changed_while_a_release_starts_is_applied_after_it(
    core: ControlPlane, make_user: UserMaker
) -> None:
    who = await make_user()
    app = await running_app(core, who["id"], releases=2)
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    start = runtime.start
    changed: list[Application] = []

    async def start_and_change(spec: Any) -> Any:
        if not changed:  # the user changes a setting while release 2 starts
            current = await core.stores.apps.get(app.id)
            body = AppUpdate(health_check="/health")
            changed.append(
                await core.app_service.update(Principal(who["id"], "user"), current, body)
            )
        return await start(spec)

    runtime.start = start_and_change  # type: ignore[method-assign]
    try:
        await core.stores.apps.transition(app.id, State.ROLLING_OUT, "test", target_release=2)
        await core.deployer.deploy(app.id)
        after = await wait_until_async(
            lambda: running_with(core, app.id, "/health"), 5, "the restart with the change"
        )
    finally:
        runtime.start = start  # type: ignore[method-assign]
    assert after.current_release == 2
    reasons = [e.reason or "" for e in await core.stores.apps.events(app.id, limit=100)]
    assert "settings changed: health_check (restart, after the start in progress)" in reasons
    assert "settings changed during the rollout: release 2 restarts" in reasons


async def running(core: ControlPlane, app_id: str) -> Application | None:
    app = await core.stores.apps.get(app_id)
    return app if app.state == State.RUNNING else None


async def running_with(core: ControlPlane, app_id: str, health: str) -> Application | None:
    app = await running(core, app_id)
    return app if app and newest_spec(core, app_id).health_check == health else None


class ReadBefore:
    """The app store, but the first read of the app answers what it was before a change."""

    def __init__(self, apps: Any, before: Application) -> None:
        self.apps = apps
        self.before: Application | None = before

    async def get(self, app_id: str) -> Application:
        before, self.before = self.before, None
        return before if before is not None else await self.apps.get(app_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.apps, name)


async def test_a_build_taken_as_its_app_starts_rolling_out_goes_on(
    core: ControlPlane, make_user: UserMaker
) -> None:
    """A builder read the app as running; before it moved the app on, a restart did: the build
    is carried out all the same (it used to die, and wait under its lease for `lease_s`)."""
    app = await stored_app(core.stores, (await make_user())["id"])
    await core.app_service.scheduler.enqueue(app.id)
    await build_next(core, app.id)
    app = await core.stores.apps.get(app.id)
    assert app.state == State.RUNNING
    await core.app_service.scheduler.enqueue(app.id)  # queued behind what was in flight
    job = await core.adapters.queue.lease("test-builder")
    while job is not None and job.app_id != app.id:
        job = await core.adapters.queue.lease("test-builder")
    assert job is not None
    await core.stores.apps.transition(app.id, State.ROLLING_OUT, "settings changed: restart")
    worker = copy.copy(core.worker)
    worker.apps = ReadBefore(core.stores.apps, app)  # type: ignore[assignment]
    await worker.run(job)
    after = await wait_until_async(lambda: running(core, app.id), 5, "the rollout")
    assert after.current_release == 2
