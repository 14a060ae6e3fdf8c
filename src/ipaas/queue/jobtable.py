"""The default BuildQueue: the `builds` table itself, with leases that expire.

A builder that dies mid-build stops renewing its lease; once it expires the job is due again
and another builder (or the restarted process) takes it.
"""

from __future__ import annotations

import asyncio
import contextlib

from ipaas.queue.base import BuildJob
from ipaas.store.builds import BuildStore


class JobTableQueue:
    def __init__(self, builds: BuildStore, lease_s: float) -> None:
        self.builds = builds
        self.lease_s = lease_s
        self._wakeup = asyncio.Event()

    async def enqueue(self, job: BuildJob) -> None:
        # The row is already `queued`; only wake an idle builder in this process.
        self._wakeup.set()

    async def lease(self, worker: str) -> BuildJob | None:
        build = await self.builds.lease(worker, self.lease_s)
        if build is None:
            return None
        return BuildJob(id=build.id, app_id=build.app_id, attempt=build.attempt)

    async def wait(self, timeout_s: float) -> None:
        """Sleep until a job is enqueued here or the timeout passes (other processes poll)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout_s)
        self._wakeup.clear()

    async def renew(self, job: BuildJob) -> bool:
        return True  # the builder renews through the store (it needs the status back)

    async def complete(self, job: BuildJob) -> None:
        return None

    async def retry_later(self, job: BuildJob, delay_s: float, error: str) -> None:
        await self.builds.requeue(job.id, delay_s, error)

    async def fail(self, job: BuildJob, error: str) -> None:
        return None

    async def close(self) -> None:
        return None
