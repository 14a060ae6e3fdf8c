"""A queue that cannot take a build (its broker down) loses nothing: the build waits in the
store and is handed over again once the queue answers."""

from __future__ import annotations

import contextlib

from ipaas.apps.scheduler import BuildScheduler
from ipaas.domain.statuses import BuildStatus
from ipaas.platform import ControlPlane
from ipaas.queue.base import BuildJob, QueueUnavailable
from tests.conftest import UserMaker
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
