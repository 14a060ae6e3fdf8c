"""The platform: every part wired together, started and stopped as one (the embedded mode).

Parts are built from settings here and nowhere else; tests build a Platform with the parts
they need (for example without a runtime, to test the API alone).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from ipaas.apps.bus import ChangeBus
from ipaas.auth.keys import Cipher, load_or_create_keys, private_dir
from ipaas.auth.tokens import AccessTokens
from ipaas.builds.base import ImageBuilder
from ipaas.config import Settings
from ipaas.providers.base import GitProvider
from ipaas.queue.base import BuildQueue
from ipaas.router.base import Router
from ipaas.runtime.base import Runtime
from ipaas.store.apps import AppStore
from ipaas.store.builds import BuildStore
from ipaas.store.db import holds_encrypted_data, make_engine, make_sessionmaker
from ipaas.store.users import UserStore

log = structlog.get_logger()
S = TypeVar("S")


@dataclass
class Platform:
    settings: Settings
    apps: AppStore
    users: UserStore
    builds: BuildStore
    cipher: Cipher
    access_tokens: AccessTokens
    bus: ChangeBus
    queue: BuildQueue
    git: GitProvider
    runtime: Runtime | None = None
    router: Router | None = None
    builder: ImageBuilder | None = None
    engine: Any = None
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{id(object())}")
    # Held while a route changes together with the app's state, so the warden's full sync of
    # routes never sees one without the other.
    routes_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _services: list[Any] = field(default_factory=list)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a background operation; keep a reference so it is not collected mid-way."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", task=task.get_name(), exc=repr(task.exception()))

    def add_service(self, service: Any) -> None:
        """A long-running part (builder loop, warden) started with the platform."""
        self._services.append(service)

    def service(self, kind: type[S]) -> S:
        """The running service of that type (the warden, the build worker)."""
        return next(s for s in self._services if isinstance(s, kind))

    async def start(self) -> None:
        if self.router is not None:
            await self.router.start()
        for service in self._services:
            await service.start()

    async def close(self) -> None:
        for service in reversed(self._services):
            await service.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.queue.close()
        if self.router is not None:
            await self.router.close()
        if self.engine is not None:
            await self.engine.dispose()


def build_core(settings: Settings, **parts: Any) -> Platform:
    """The store, auth and queue; runtime, router and builder are added by `build_platform`."""
    from ipaas.providers.git import GitCliProvider
    from ipaas.queue.jobtable import JobTableQueue

    private_dir(settings.data_dir)
    url = settings.effective_database_url
    keys = load_or_create_keys(settings.effective_secrets_file, lambda: holds_encrypted_data(url))
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    bus = ChangeBus()
    builds = BuildStore(sessions)
    queue = parts.pop("queue", None) or JobTableQueue(builds, settings.build.lease_s)
    git = parts.pop("git", None) or GitCliProvider(settings)
    return Platform(
        settings=settings,
        apps=AppStore(sessions, bus.notify, settings.status_cache_ttl_s),
        users=UserStore(sessions),
        builds=builds,
        cipher=Cipher(keys.fernet_key),
        access_tokens=AccessTokens(keys.jwt_key, settings.auth.access_token_ttl_s),
        bus=bus,
        queue=queue,
        git=git,
        engine=engine,
        **parts,
    )


def build_platform(settings: Settings) -> Platform:
    """Everything on the embedded defaults: Docker runtime, Caddy (or transparent) router,
    in-process builder and warden."""
    from ipaas.apps.worker import BuildWorker
    from ipaas.builds.docker_builder import DockerImageBuilder
    from ipaas.runtime.docker import DockerRuntime
    from ipaas.warden.warden import Warden

    router: Router
    if settings.router.kind == "caddy":
        from ipaas.router.caddy import CaddyRouter

        router = CaddyRouter(settings.router, settings.base_domain, settings.data_dir)
    else:
        from ipaas.router.transparent import TransparentRouter

        router = TransparentRouter()
    platform = build_core(
        settings,
        runtime=DockerRuntime(settings.runtime),
        router=router,
        builder=DockerImageBuilder(settings),
    )
    if settings.queue_url.startswith("amqp"):
        from ipaas.queue.rabbitmq import RabbitQueue

        platform.queue = RabbitQueue(
            settings.queue_url,
            builds=platform.builds,
            max_attempts=settings.build.max_attempts,
            prefetch=settings.build.concurrency,
            lease_s=settings.build.lease_s,
        )
    if settings.build.embedded_worker:
        platform.add_service(BuildWorker(platform))
    platform.add_service(Warden(platform))
    return platform
