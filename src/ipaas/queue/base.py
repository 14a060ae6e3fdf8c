"""The BuildQueue seam: hands build jobs from the API to image builders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class QueueUnavailable(RuntimeError):
    """The queue cannot take a job now (the broker is down or does not answer in time)."""


@dataclass(frozen=True)
class BuildJob:
    id: str
    app_id: str
    attempt: int  # 1 for the first try


class BuildQueue(Protocol):
    async def enqueue(self, job: BuildJob) -> None:
        """Hand a build (already recorded as `queued` in the store) to the builders."""
        ...

    async def lease(self, worker: str) -> BuildJob | None:
        """Take the next job, or None. The lease expires unless renewed (worker died)."""
        ...

    async def wait(self, timeout_s: float) -> None:
        """Sleep until a job may be due (or the timeout passes)."""
        ...

    async def renew(self, job: BuildJob) -> bool: ...

    async def complete(self, job: BuildJob) -> None: ...

    async def retry_later(self, job: BuildJob, delay_s: float, error: str) -> None: ...

    async def fail(self, job: BuildJob, error: str) -> None: ...

    async def close(self) -> None: ...
