"""Builds handed to the queue: a new one for an app, or every queued one again after a restart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ipaas.queue.base import BuildJob, BuildQueue
from ipaas.store.builds import BuildStore


class BuildScheduler:
    def __init__(self, builds: BuildStore, queue: BuildQueue) -> None:
        self.builds = builds
        self.queue = queue

    async def enqueue(
        self, app_id: str, before_queue: Callable[[], Awaitable[None]] | None = None
    ) -> int:
        """A new build of the app's source; returns its number. `before_queue` runs once the
        build is recorded (the app is busy with it) but before any builder can take it."""
        build = await self.builds.new_build(app_id)
        if before_queue is not None:
            await before_queue()
        await self.queue.enqueue(BuildJob(id=build.id, app_id=app_id, attempt=0))
        return build.number

    async def requeue_all(self) -> None:
        """Hand queued builds to the queue again (a broker may have lost or never got them)."""
        for build in await self.builds.queued():
            await self.queue.enqueue(
                BuildJob(id=build.id, app_id=build.app_id, attempt=build.attempt)
            )
