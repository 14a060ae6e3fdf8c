"""RabbitQueue with the build store: leasing claims the `builds` row, stale jobs are dropped."""

from __future__ import annotations

import uuid

from aio_pika.abc import AbstractChannel

from ipaas.platform import ControlPlane
from ipaas.queue.base import BuildJob
from ipaas.store.models import Application, Build, new_id
from tests.queue.conftest import QueueMaker, count, lease_soon
from tests.services import need


async def queued_build(core: ControlPlane) -> Build:
    user = await core.stores.users.create(f"u{uuid.uuid4().hex[:10]}", "not-a-hash", "user")
    name = f"q-{uuid.uuid4().hex[:8]}"
    app = await core.stores.apps.create(
        Application(
            id=new_id(), name=name, owner_id=user.id, repo="https://x.invalid", state="pending"
        )
    )
    return await core.stores.builds.new_build(app.id)


def job_of(build: Build) -> BuildJob:
    return BuildJob(id=build.id, app_id=build.app_id, attempt=0)  # as the API enqueues it


async def row(core: ControlPlane, build_id: str) -> Build:
    found = await core.stores.builds.by_id(build_id)
    assert found is not None
    return found


async def test_lease_marks_the_row_running(core: ControlPlane, make_queue: QueueMaker) -> None:
    need("rabbitmq")
    queue = make_queue(builds=core.stores.builds)
    build = await queued_build(core)
    await queue.enqueue(job_of(build))
    job = await lease_soon(queue, "w1")
    claimed = await row(core, build.id)
    assert (claimed.status, claimed.lease_owner, claimed.attempt) == ("running", "w1", 1)
    assert claimed.lease_until is not None
    await queue.complete(job)


async def test_a_cancelled_build_is_dropped(
    core: ControlPlane, make_queue: QueueMaker, prefix: str, broker: AbstractChannel
) -> None:
    need("rabbitmq")
    queue = make_queue(builds=core.stores.builds)
    build = await queued_build(core)
    await queue.enqueue(job_of(build))
    await core.stores.builds.request_cancel(build.app_id)
    await queue.wait(2)
    assert await queue.lease("w1") is None
    assert (await row(core, build.id)).status == "cancelled"
    assert await count(broker, f"{prefix}.builds") == 0


async def test_a_dead_builder_is_taken_over_once_its_lease_expires(
    core: ControlPlane, make_queue: QueueMaker
) -> None:
    need("rabbitmq")
    first = make_queue(builds=core.stores.builds, lease_s=1.0)
    second = make_queue(builds=core.stores.builds, lease_s=1.0)
    build = await queued_build(core)
    await first.enqueue(job_of(build))
    await lease_soon(first, "w1")
    await second.wait(0.1)
    await first.close()  # dies; its DB lease still runs for about a second
    job = await lease_soon(second, "w2")
    taken = await row(core, build.id)
    assert (job.attempt, taken.attempt, taken.lease_owner) == (2, 2, "w2")
    await second.complete(job)


async def test_retry_later_requeues_the_row(core: ControlPlane, make_queue: QueueMaker) -> None:
    need("rabbitmq")
    queue = make_queue(builds=core.stores.builds)
    build = await queued_build(core)
    await queue.enqueue(job_of(build))
    job = await lease_soon(queue)
    await queue.retry_later(job, 0.3, "registry timeout")
    waiting = await row(core, build.id)
    assert (waiting.status, waiting.error) == ("queued", "registry timeout")
    again = await lease_soon(queue, "w2")
    assert again.attempt == 2
    assert (await row(core, build.id)).status == "running"
    await queue.complete(again)
