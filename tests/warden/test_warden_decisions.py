"""The warden on the real store with an in-memory runtime: crashes seen, restarts made."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ipaas.apps.scheduler import BuildScheduler
from ipaas.config import WardenSettings
from ipaas.domain.reconcile import GAVE_UP
from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from ipaas.runtime.base import ContainerSpec, RuntimeUnavailable
from ipaas.store.models import Application
from ipaas.warden.warden import Warden
from tests.conftest import UserMaker
from tests.factories import running_app, starting_app, stored_app
from tests.fakes import FakeRuntime
from tests.support import wait_until_async


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


def quick_warden(core: ControlPlane, crash_limit: int = 5, log_max_age_s: float = 0) -> Warden:
    """A warden of its own over the plane's parts, with short backoffs."""
    settings = WardenSettings(backoff_base_s=0.02, backoff_cap_s=0.1, crash_limit=crash_limit)
    return Warden(
        apps=core.stores.apps,
        builds=core.stores.builds,
        runtime=core.adapters.runtime,
        deployer=core.deployer,
        scheduler=BuildScheduler(core.stores.builds, core.adapters.queue),
        settings=settings,
        log_max_age_s=log_max_age_s,
        identity=core.stores.identity,
    )


async def state_of(core: ControlPlane, app_id: str, state: State) -> Application | None:
    row = await core.stores.apps.get(app_id)
    return row if row.state == state else None


async def test_a_reconcile_pass_lists_the_engine_once_and_asks_only_about_old_containers(
    core: ControlPlane, make_user: UserMaker
) -> None:
    """Its cost must not be one engine call per container: one cheap listing, and an inspect
    only for a retired container old enough to be past log retention, asked once."""
    owner = (await make_user())["id"]
    apps = [await running_app(core, owner) for _ in range(12)]
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    retired = []  # one stopped container per app, as each rollout leaves for its logs
    for app in apps:
        spec = runtime.specs[app.container_id or ""]
        info = await runtime.start(spec)
        await runtime.stop(info.id)
        retired.append(info.id)
    long_ago = datetime.now(UTC) - timedelta(days=9)
    aged = retired[0]
    runtime.containers[aged] = replace(
        runtime.containers[aged], created_at=long_ago, finished_at=long_ago
    )
    ours = {a.container_id for a in apps} | set(retired)
    warden = quick_warden(core, log_max_age_s=7 * 86400)
    try:
        for first in (True, False):
            runtime.listings.clear()
            runtime.inspected.clear()
            await warden.reconcile()
            assert runtime.listings.count((None, False)) == 1
            assert (None, True) not in runtime.listings
            assert [c for c in runtime.inspected if c in ours] == ([aged] if first else [])
    finally:
        await warden.stop()
    assert aged not in runtime.containers  # past retention: gone, with its logs
    assert all(c in runtime.containers for c in retired[1:])
    for app in apps:
        assert (await core.stores.apps.get(app.id)).state == State.RUNNING


async def test_a_restart_attempt_that_raises_is_tried_again(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"])
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    warden = quick_warden(core)
    runtime.start_errors = [KeyError("NetworkSettings")]  # an engine answer of an odd shape
    runtime.crash(app.container_id or "")
    try:
        await warden.reconcile()
        back = await wait_until_async(lambda: state_of(core, app.id, State.RUNNING), 10, "restart")
    finally:
        await warden.stop()
    assert back.container_id != app.container_id
    assert runtime.start_errors == []  # the attempt that raised did happen


async def test_an_engine_outage_is_not_counted_against_the_app(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"])
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    warden = quick_warden(core, crash_limit=1)  # one counted crash would be a give-up
    runtime.down = True
    with pytest.raises(RuntimeUnavailable):
        await warden.reconcile()
    runtime.crash(app.container_id or "")  # the engine's restart took the container down
    runtime.down = False
    try:
        await warden.reconcile()
        crashed = await core.stores.apps.get(app.id)
        assert crashed.state in (State.CRASHED, State.RUNNING)
        back = await wait_until_async(lambda: state_of(core, app.id, State.RUNNING), 10, "restart")
    finally:
        await warden.stop()
    assert back.container_id != app.container_id
    events = await core.stores.apps.events(app.id, limit=100)
    reasons = [e.reason or "" for e in events if e.to_state == State.CRASHED]
    assert reasons and "container engine went away" in reasons[-1]


async def test_restarts_that_keep_failing_end_in_a_give_up_the_user_can_read(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"])
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    warden = quick_warden(core, crash_limit=3)
    runtime.unhealthy_releases.add((app.id, 1))
    runtime.crash(app.container_id or "")
    try:
        await warden.reconcile()

        async def gave_up() -> Application | None:
            row = await core.stores.apps.get(app.id)
            return row if (row.state_reason or "").startswith(GAVE_UP) else None

        final = await wait_until_async(gave_up, 10, "the give-up")
        await warden.reconcile()  # a give-up is final: nothing is scheduled again
        assert app.id not in warden._restarts
    finally:
        runtime.unhealthy_releases.discard((app.id, 1))
        await warden.stop()
    assert final.state == State.CRASHED and "never answered its health check" in (
        final.state_reason or ""
    )


async def test_a_build_no_builder_takes_fails_after_its_deadline(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await stored_app(core.stores, (await make_user())["id"])
    number = await core.app_service.scheduler.enqueue(app.id)
    warden = quick_warden(core)
    warden.no_builder_s = 0.05
    await asyncio.sleep(0.1)
    await warden.sweep_deadlines()
    failed = await core.stores.apps.get(app.id)
    assert failed.state == State.FAILED
    assert f"build {number} failed: no builder took the build" in (failed.state_reason or "")
    build = await core.stores.builds.get(app.id, number)
    assert build is not None and build.status == "failed" and build.error_code == "no_builder"


async def test_a_rollout_nobody_builds_leaves_the_old_release_serving(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"])
    await core.app_service.rebuild(app.id, "rollout")
    warden = quick_warden(core)
    warden.no_builder_s = 0.05
    await asyncio.sleep(0.1)
    await warden.sweep_deadlines()
    after = await core.stores.apps.get(app.id)
    assert after.state == State.RUNNING and after.container_id == app.container_id
    assert "no builder took the build" in (after.state_reason or "")


def hung_engine(core: ControlPlane) -> FakeRuntime:
    """From now on, starts wait until `held` is set."""
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    runtime.held = asyncio.Event()
    return runtime


async def sweep_past_deadline(core: ControlPlane) -> None:
    warden = quick_warden(core)
    warden.deploy_deadline_s = 0.05
    await asyncio.sleep(0.1)
    await warden.sweep_deploys()


async def test_a_start_that_never_ends_fails_at_its_deadline_and_leaves_nothing(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await starting_app(core, (await make_user())["id"])
    runtime = hung_engine(core)
    deploy = asyncio.create_task(core.deployer.deploy(app.id))
    await sweep_past_deadline(core)
    failed = await core.stores.apps.get(app.id)
    assert failed.state == State.FAILED
    assert "did not come up within 0.05 s" in (failed.state_reason or "")
    runtime.held.set()  # the engine answers at last: what it started must not stay
    await deploy
    assert [c for c in runtime.containers.values() if c.app_id == app.id] == []
    assert (await core.stores.apps.get(app.id)).state == State.FAILED


async def test_a_rollout_that_never_ends_leaves_the_old_release_serving(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"])
    runtime = hung_engine(core)
    await core.deployer.redeploy(app.id, None, "settings changed")
    await sweep_past_deadline(core)
    after = await core.stores.apps.get(app.id)
    assert after.state == State.RUNNING and after.container_id == app.container_id
    assert "did not come up within" in (after.state_reason or "")
    runtime.held.set()


async def test_a_deploy_within_its_deadline_is_left_alone(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await starting_app(core, (await make_user())["id"])
    await quick_warden(core).sweep_deploys()  # the default deadline: minutes away
    assert (await core.stores.apps.get(app.id)).state == State.STARTING


async def test_only_this_stores_containers_can_be_strays(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await running_app(core, (await make_user())["id"])
    runtime = core.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    ours = runtime.containers[app.container_id or ""]
    assert ours.store_id == await core.stores.identity.id()
    # Containers of apps this store does not know: one it started, one another store started,
    # and one of no store at all (an older version, or another stack on the same engine).
    mine = await runtime.start(
        ContainerSpec("gone-app", "gone", "o", 1, "i", 80, store_id=ours.store_id)
    )
    theirs = await runtime.start(
        ContainerSpec("their-app", "t", "o", 1, "i", 80, store_id="x" * 32)
    )
    nobodys = await runtime.start(ContainerSpec("old-app", "o", "o", 1, "i", 80))
    await quick_warden(core).reconcile()
    assert mine.id not in runtime.containers
    assert theirs.id in runtime.containers and nobodys.id in runtime.containers
    assert app.container_id in runtime.containers
    await runtime.remove(theirs.id)
    await runtime.remove(nobodys.id)
