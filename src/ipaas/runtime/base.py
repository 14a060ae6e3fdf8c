"""The Runtime seam: what the rest of ipaas needs from a container engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ipaas.domain.labels import (
    LABEL_APP,
    LABEL_APP_NAME,
    LABEL_OWNER,
    LABEL_PLATFORM,
    LABEL_RELEASE,
    LABEL_STORE,
)
from ipaas.domain.logpages import SourceChunk

__all__ = [
    "LABEL_APP",
    "LABEL_APP_NAME",
    "LABEL_OWNER",
    "LABEL_PLATFORM",
    "LABEL_RELEASE",
    "LABEL_STORE",
]


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str


@dataclass(frozen=True)
class ContainerSpec:
    app_id: str
    app_name: str
    owner_id: str
    release: int
    image: str
    port: int  # the port the app listens on inside the container ($PORT)
    replicas: int = 1  # tasks of a Swarm service; a plain Docker engine runs one container
    env: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 512
    cpus: float = 1.0
    pids_limit: int = 256
    health_check: str = "tcp"  # "tcp" or an HTTP path such as "/health"
    health_timeout_s: float = 60.0
    volumes: tuple[VolumeMount, ...] = ()
    log_max_size: str = "10m"
    log_max_files: int = 3
    store_id: str = ""  # the store that wants this container (labels it as that store's)


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    app_id: str
    release: int
    image: str
    state: str  # the engine's word: created, running, exited, ...
    host_port: int | None  # published on 127.0.0.1
    ip_address: str | None  # on the owner's network
    started_at: datetime | None = None
    finished_at: datetime | None = None  # when it last stopped
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    store_id: str = ""  # "" for containers of no known store (older versions, other stacks)
    # Where several tasks answer (a Swarm service): "host:port" each; empty for a container.
    upstreams: tuple[str, ...] = ()
    # Something the user should know about this start (why an update is stop-first).
    note: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class RuntimeEvent:
    """A container of the platform died, started, or was OOM-killed."""

    action: str  # "die", "start", "oom", "destroy"
    container_id: str
    app_id: str
    exit_code: int | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class ContainerStats:
    memory_bytes: int
    memory_limit_bytes: int
    cpu_percent: float


class StartFailed(Exception):
    """The container did not become healthy; `reason` is for the user (last log lines)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RuntimeUnavailable(Exception):
    """The engine cannot be reached: a platform fault, worth retrying."""


class Runtime(Protocol):
    async def prepare(self) -> None:
        """Set up what must be in place before any container runs (the host firewall);
        idempotent. Raises when that cannot be done."""
        ...

    async def start(self, spec: ContainerSpec) -> ContainerInfo:
        """Create and start a container beside any existing ones; return once healthy."""
        ...

    async def stop(self, container_id: str, timeout_s: float = 10.0) -> None: ...

    async def remove(self, container_id: str) -> None: ...

    async def list_containers(
        self, app_id: str | None = None, detail: bool = True
    ) -> list[ContainerInfo]:
        """Every platform container (running or not), optionally of one app. Without
        `detail`, one engine call however many there are: started_at, finished_at, exit_code,
        oom_killed and restart_count are unset (created_at is set)."""
        ...

    async def inspect(self, container_id: str) -> ContainerInfo | None: ...

    async def stats(self, container_id: str) -> ContainerStats | None: ...

    def events(self) -> AsyncIterator[RuntimeEvent]: ...

    async def last_log_lines(self, container_id: str, lines: int = 20) -> str: ...

    async def read_logs(
        self,
        info: ContainerInfo,
        after_ns: int,
        until_ns: int | None,
        limit: int,
        stream: str | None = None,
    ) -> SourceChunk:
        """Lines strictly after `after_ns`: at least `limit` (whole timestamp groups) or all."""
        ...

    async def remove_app_images(self, app_id: str) -> int: ...

    async def remove_volumes(self, app_id: str) -> int: ...

    async def remove_network(self, owner_id: str) -> bool:
        """Drop the owner's network if no container is attached (their last app went)."""
        ...


@dataclass(frozen=True)
class NodeInfo:
    """A machine of a multi-node runtime (a Swarm node)."""

    id: str
    hostname: str
    role: str  # manager | worker
    state: str  # ready | down | unknown | disconnected
    availability: str  # active | pause | drain
    address: str
    leader: bool
    tasks: int  # the platform's app tasks running there


class NodeNotFound(LookupError):
    pass


class Nodes(Protocol):
    """The nodes of a multi-node runtime: listed, drained (their tasks move to the others and
    routes leave them) and made active again."""

    async def nodes(self) -> list[NodeInfo]: ...

    async def set_availability(self, node: str, availability: str) -> NodeInfo:
        """`node`: an id or a hostname. Raises NodeNotFound."""
        ...
