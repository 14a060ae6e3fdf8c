"""The platform's health as an admin sees it: each part asked now (the store, the container
engine, the router, the build queue and its builders, the disk), each answer bounded in time
so one part that hangs cannot hold up the rest."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ipaas.router.base import Router
from ipaas.runtime.base import Runtime
from ipaas.store.apps import AppStore
from ipaas.store.builds import BuildStore

PROBE_TIMEOUT_S = 3.0
DISK_LOW_RATIO = 0.1  # less free than this: the disk is reported low


@dataclass(frozen=True)
class Check:
    part: str
    ok: bool
    summary: str  # what was seen, or why it failed
    took_ms: float


@dataclass(frozen=True)
class HealthLimits:
    no_builder_s: float  # a build queued longer than this fails (settings.build.no_builder_s)
    embedded_builder: bool


class PlatformHealth:
    def __init__(
        self,
        apps: AppStore,
        builds: BuildStore,
        runtime: Runtime,
        router: Router,
        disks: dict[str, Path],
        limits: HealthLimits,
    ) -> None:
        self.apps = apps
        self.builds = builds
        self.runtime = runtime
        self.router = router
        self.disks = disks
        self.limits = limits

    async def check(self) -> list[Check]:
        probes: list[tuple[str, Callable[[], Awaitable[tuple[bool, str]]]]] = [
            ("store", self._store),
            ("engine", self._engine),
            ("router", self._router),
            ("queue", self._queue),
        ]
        probes += [(f"disk ({name})", self._disk(path)) for name, path in self.disks.items()]
        return list(await asyncio.gather(*(_timed(part, probe) for part, probe in probes)))

    async def _store(self) -> tuple[bool, str]:
        _, total = await self.apps.list(None, limit=1)
        return True, f"answers; {total} apps stored"

    async def _engine(self) -> tuple[bool, str]:
        containers = await self.runtime.list_containers(detail=False)
        running = sum(1 for c in containers if c.state == "running")
        return True, f"answers; {running} of {len(containers)} app containers running"

    async def _router(self) -> tuple[bool, str]:
        return True, await self.router.health()

    async def _queue(self) -> tuple[bool, str]:
        seen = await self.builds.activity()
        waited = 0.0
        if seen.oldest_queued_at is not None:
            oldest = seen.oldest_queued_at
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            waited = (datetime.now(UTC) - oldest).total_seconds()
        builders = ", ".join(seen.builders) or "none busy"
        where = "embedded builder" if self.limits.embedded_builder else "separate builders only"
        summary = (
            f"{seen.queued} queued" + (f" (oldest {waited:.0f} s)" if seen.queued else "")
            + f"; {seen.running} building on: {builders}; {where}"
        )  # fmt: skip
        return waited < self.limits.no_builder_s / 2, summary

    def _disk(self, path: Path) -> Callable[[], Awaitable[tuple[bool, str]]]:
        async def probe() -> tuple[bool, str]:
            # The folder may not exist yet (no backup taken): the disk it will be on.
            existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
            usage = await asyncio.to_thread(shutil.disk_usage, existing)
            free = usage.free / usage.total if usage.total else 0.0
            summary = f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB"
            return free >= DISK_LOW_RATIO, f"{summary} ({free:.0%}) at {path}"

        return probe


async def _timed(part: str, probe: Callable[[], Awaitable[tuple[bool, str]]]) -> Check:
    started = time.perf_counter()
    try:
        ok, summary = await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
    except TimeoutError:
        ok, summary = False, f"no answer within {PROBE_TIMEOUT_S:g} s"
    except Exception as exc:  # noqa: BLE001 - a part that fails is what this reports
        ok, summary = False, f"{type(exc).__name__}: {exc}"[:500]
    return Check(part, ok, summary, (time.perf_counter() - started) * 1000)
