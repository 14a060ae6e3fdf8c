"""In-memory stand-ins for the runtime, router, image builder and DNS seams, for the fast tier.

They keep the same promises as the real adapters: `tests/contracts/` runs one set of
contract tests against each fake and its real counterpart, so a fake cannot drift.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from ipaas.builds.base import BuildFailed, BuildRequest, BuildResult
from ipaas.config import Settings
from ipaas.dnslookup.resolver import DnsResolver
from ipaas.domain.domains import Lookup
from ipaas.domain.logpages import SourceChunk
from ipaas.platform import Adapters, ControlPlane, control_plane, github_provider, open_stores
from ipaas.providers.git import GitCliProvider
from ipaas.queue.jobtable import JobTableQueue
from ipaas.router.base import Route
from ipaas.router.transparent import TransparentRouter
from ipaas.runtime.base import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    RuntimeEvent,
    RuntimeUnavailable,
    StartFailed,
)
from ipaas.runtime.docker_databases import DockerDatabases


class FakeRuntime:
    """Containers as records: start makes a running one, stop exits it, remove forgets it."""

    def __init__(self) -> None:
        self.containers: dict[str, ContainerInfo] = {}
        self.specs: dict[str, ContainerSpec] = {}
        self._ips = itertools.count(2)
        self._events: asyncio.Queue[RuntimeEvent] = asyncio.Queue()
        # Releases whose containers never become healthy (as a broken new version would).
        self.unhealthy_releases: set[tuple[str, int]] = set()
        self.down = False  # the engine does not answer (stopped, restarting)
        self.start_errors: list[Exception] = []  # raised by the next starts, in order
        self.held: asyncio.Event | None = None  # starts wait for it (an engine that hangs)
        # What was asked of the engine: (app_id or None, detail) per listing, ids inspected.
        self.listings: list[tuple[str | None, bool]] = []
        self.inspected: list[str] = []

    async def prepare(self) -> None:
        return None

    def _answer(self) -> None:
        if self.down:
            raise RuntimeUnavailable("the fake engine is down")

    async def start(self, spec: ContainerSpec) -> ContainerInfo:
        self._answer()
        if self.start_errors:
            raise self.start_errors.pop(0)
        if self.held is not None:
            await self.held.wait()
        if (spec.app_id, spec.release) in self.unhealthy_releases:
            raise StartFailed(f"release {spec.release} never answered its health check")
        cid = uuid.uuid4().hex
        info = ContainerInfo(
            id=cid,
            name=f"{spec.app_name}-r{spec.release}-{cid[:6]}",
            app_id=spec.app_id,
            release=spec.release,
            image=spec.image,
            state="running",
            host_port=None,
            ip_address=f"10.254.0.{next(self._ips) % 250 + 2}",
            started_at=datetime.now(UTC),
            store_id=spec.store_id,
            created_at=datetime.now(UTC),
        )
        self.containers[cid] = info
        self.specs[cid] = spec
        return info

    async def stop(self, container_id: str, timeout_s: float = 10.0) -> None:
        info = self.containers.get(container_id)
        if info is not None and info.state == "running":
            self.containers[container_id] = replace(
                info, state="exited", exit_code=0, finished_at=datetime.now(UTC)
            )

    def crash(self, container_id: str, exit_code: int = 1) -> None:
        """What an app that dies does: the container exits and a `die` event follows."""
        info = self.containers[container_id]
        self.containers[container_id] = replace(
            info, state="exited", exit_code=exit_code, finished_at=datetime.now(UTC)
        )
        self._events.put_nowait(RuntimeEvent("die", container_id, info.app_id, exit_code))

    async def remove(self, container_id: str) -> None:
        self.containers.pop(container_id, None)

    async def list_containers(
        self, app_id: str | None = None, detail: bool = True
    ) -> list[ContainerInfo]:
        self._answer()
        self.listings.append((app_id, detail))
        found = [c for c in self.containers.values() if app_id in (None, c.app_id)]
        if detail:
            return found
        # As the engine's cheap listing: no start or stop times, exit codes or OOM flags.
        return [
            replace(c, started_at=None, finished_at=None, exit_code=None, oom_killed=False)
            for c in found
        ]

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        self._answer()
        self.inspected.append(container_id)
        return self.containers.get(container_id)

    async def stats(self, container_id: str) -> ContainerStats | None:
        if container_id not in self.containers:
            return None
        return ContainerStats(memory_bytes=1 << 20, memory_limit_bytes=1 << 28, cpu_percent=0.0)

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        while True:
            yield await self._events.get()

    async def last_log_lines(self, container_id: str, lines: int = 20) -> str:
        return ""

    async def read_logs(
        self,
        info: ContainerInfo,
        after_ns: int,
        until_ns: int | None,
        limit: int,
        stream: str | None = None,
    ) -> SourceChunk:
        return SourceChunk([], False)

    async def remove_app_images(self, app_id: str) -> int:
        return 0

    async def remove_volumes(self, app_id: str) -> int:
        return 0

    async def remove_network(self, owner_id: str) -> bool:
        live = (self.specs[cid] for cid in self.containers)
        return not any(spec.owner_id == owner_id for spec in live)


class FakeRouter(TransparentRouter):
    """The in-memory route table, answering with the host's URL as Caddy does."""

    async def set_route(self, route: Route) -> str:
        await super().set_route(route)
        return self.url_for(route.host)

    def url_for(self, host: str) -> str:
        return f"http://{host}/"


class FakeBuilder:
    """Builds nothing: answers with an image name, or fails as told (`fail_with`)."""

    def __init__(self) -> None:
        self.requests: list[BuildRequest] = []
        self.fail_with: BuildFailed | None = None

    async def build(
        self,
        request: BuildRequest,
        log: Callable[[str], Awaitable[None]],
        cancel: asyncio.Event | None = None,
    ) -> BuildResult:
        self.requests.append(request)
        await log(f"fake build of {request.app_name} release {request.release}")
        if self.fail_with is not None:
            raise self.fail_with
        return BuildResult(
            image_id=f"sha256:{uuid.uuid4().hex}",
            image_tag=f"fake/{request.app_id}:r{request.release}",
            commit=f"{request.release:040x}",
            plan={"language": "fake"},
            duration_s=0.0,
        )


async def _no_network(owner_id: str) -> str:
    raise RuntimeError("a plane on the in-memory runtime has no networks for databases")


class UnknownNames:
    """DNS in which no name exists, so that no query leaves the machine; tests that need
    answers set `domains.nameserver` to a DNS server of their own (tests/acme.py)."""

    async def lookup(self, name: str) -> Lookup:
        return Lookup()


def fake_plane(settings: Settings) -> ControlPlane:
    """An API process on the real store and queue with in-memory runtime, router and builder,
    and no loops running: apps stay where the API (or the test) puts them."""
    stores = open_stores(settings)
    adapters = Adapters(
        runtime=FakeRuntime(),
        # Real, but never asked to start anything here: these planes run no databases.
        databases=DockerDatabases(settings.databases, settings.runtime.instance, _no_network),
        router=FakeRouter(),
        builder=FakeBuilder(),
        queue=JobTableQueue(stores.builds, settings.build.lease_s),
        git=GitCliProvider(settings),
        github=github_provider(settings, stores),  # a stand-in GitHub when the settings name one
        dns=DnsResolver(settings.domains) if settings.domains.nameserver else UnknownNames(),
    )
    return control_plane(settings, stores, adapters, run_builder=False, run_warden=False)
