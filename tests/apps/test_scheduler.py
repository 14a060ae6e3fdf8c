"""A queue that cannot take a build (its broker down) loses nothing: the build waits in the
store and is handed over again once the queue answers. No builder takes a build before the API
has moved its app on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from ipaas.apps.scheduler import BuildScheduler
from ipaas.domain.states import State
from ipaas.domain.statuses import BuildStatus
from ipaas.platform import ControlPlane
from ipaas.queue.base import BuildJob, QueueUnavailable
from ipaas.queue.jobtable import JobTableQueue
from tests.conftest import UserMaker, core_plane, signed_in_user
from tests.factories import stored_app


class FlakyQueue:
    """A broker that is down until `up` is set; records what it took."""

    def __init__(self) -> None:
        self.up = False
        self.taken: list[BuildJob] = []

    async def enqueue(self, job: BuildJob) -> None:
        if not self.up:
            raise QueueUnavailable("connection refused")
        self.taken.append(job)


async def test_a_build_asked_for_while_the_broker_is_down_is_handed_over_later(
    core: ControlPlane, make_user: UserMaker
) -> None:
    app = await stored_app(core.stores, (await make_user())["id"])
    queue = FlakyQueue()
    scheduler = BuildScheduler(core.stores.builds, queue)  # type: ignore[arg-type]
    scheduler.behind = False

    number = await scheduler.enqueue(app.id)  # the user's request succeeds all the same

    [build] = await core.stores.builds.of_app(app.id)
    assert build.number == number and build.status == BuildStatus.QUEUED
    assert scheduler.behind and queue.taken == []
    with contextlib.suppress(QueueUnavailable):
        await scheduler.requeue_all()
    assert scheduler.behind  # still down: tried again on the warden's next round
    queue.up = True
    await scheduler.requeue_all()
    assert not scheduler.behind
    assert [job.id for job in queue.taken] == [build.id]


@pytest.fixture(scope="module")
async def own_store(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControlPlane]:
    """A store no other test queues builds in: a builder here takes the oldest due build."""
    async for plane in core_plane(module_database_url, tmp_path_factory):
        yield plane


async def test_no_builder_takes_a_rollout_before_the_app_is_rolling_out(
    own_store: ControlPlane,
) -> None:
    """The API records a rollout's build, then moves the app to `rolling_out`. A builder that
    took the build in between read the app as running, failed to move it on itself, and lost
    the build: it sat under a lease nobody renewed, and the rollout waited `build.lease_s`."""
    stores = own_store.stores
    owner = await signed_in_user(own_store)
    app = await stored_app(stores, owner["id"], state=State.RUNNING.value)
    queue = JobTableQueue(stores.builds, lease_s=60)
    scheduler = BuildScheduler(stores.builds, queue)
    taken_early: list[BuildJob | None] = []

    async def roll_out() -> None:
        taken_early.append(await queue.lease("a builder polling now"))
        await stores.apps.transition(app.id, State.ROLLING_OUT, "rollout")

    number = await scheduler.enqueue(app.id, before_queue=roll_out)

    assert taken_early == [None]
    job = await queue.lease("a builder polling now")
    assert job is not None and job.app_id == app.id
    build = await stores.builds.by_id(job.id)
    assert build is not None and build.number == number and build.status == BuildStatus.RUNNING


async def test_a_build_whose_hand_over_broke_off_is_due_all_the_same(
    own_store: ControlPlane,
) -> None:
    stores = own_store.stores
    owner = await signed_in_user(own_store)
    app = await stored_app(stores, owner["id"], state=State.RUNNING.value)
    queue = JobTableQueue(stores.builds, lease_s=60)

    async def broken() -> None:
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError):
        await BuildScheduler(stores.builds, queue).enqueue(app.id, before_queue=broken)

    job = await queue.lease("builder")
    assert job is not None and job.app_id == app.id
