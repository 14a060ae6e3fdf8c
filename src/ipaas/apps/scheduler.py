"""Builds handed to the queue: a new one for an app, or every queued one again.

The store is where a build lives; the queue only carries it to a builder. A queue that cannot
take a job (a broker down) loses nothing: the build stays `queued` in the store, and the
warden hands every queued build over again until the queue takes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from ipaas.queue.base import BuildJob, BuildQueue, QueueUnavailable
from ipaas.store.builds import BuildStore

log = structlog.get_logger()
HANDOVER_S = 30.0  # at most this long between recording a build and handing it over


class BuildScheduler:
    def __init__(self, builds: BuildStore, queue: BuildQueue) -> None:
        self.builds = builds
        self.queue = queue
        # Queued builds the queue may not hold: at start (a broker may have lost them), and
        # after a hand-over failed.
        self.behind = True

    async def enqueue(
        self,
        app_id: str,
        before_queue: Callable[[], Awaitable[None]] | None = None,
        commit: str | None = None,
    ) -> int:
        """A new build of the app's source (at `commit` when given); returns its number.
        `before_queue` runs once the build is recorded (the app is busy with it) but before
        any builder can take it."""
        # A builder polling the job table takes a due build at once: held until `before_queue`
        # has run (a builder that took it just before the API moved the app on lost it, and
        # the app waited out the build's lease). Due after HANDOVER_S should this process die.
        held_s = HANDOVER_S if before_queue is not None else 0.0
        build = await self.builds.new_build(app_id, commit, held_s)
        if before_queue is not None:
            try:
                await before_queue()
            finally:
                await self.builds.make_due(build.id)
        try:
            await self.queue.enqueue(BuildJob(id=build.id, app_id=app_id, attempt=0))
        except QueueUnavailable as exc:
            self.behind = True
            log.warning("build kept queued until the queue takes it", error=str(exc))
        return build.number

    async def requeue_all(self) -> None:
        """Hand queued builds to the queue again; raises (and stays behind) if it cannot."""
        self.behind = False
        try:
            for build in await self.builds.queued():
                job = BuildJob(id=build.id, app_id=build.app_id, attempt=build.attempt)
                await self.queue.enqueue(job)
        except BaseException:
            self.behind = True
            raise
