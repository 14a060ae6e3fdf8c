"""The Docker engine behind the Runtime seam (docker SDK, sync client run in threads)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import docker
import docker.errors
import httpx
import requests.exceptions
from docker.models.containers import Container
from docker.types import LogConfig

from ipaas.checkpoints import Checkpoints, PassThrough, Phase
from ipaas.config import RuntimeSettings
from ipaas.domain.labels import in_app_repository
from ipaas.domain.logpages import SourceChunk
from ipaas.net import tcp_open
from ipaas.runtime.base import (
    LABEL_APP,
    LABEL_APP_NAME,
    LABEL_OWNER,
    LABEL_PLATFORM,
    LABEL_RELEASE,
    LABEL_STORE,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    RuntimeEvent,
    RuntimeUnavailable,
    StartFailed,
)
from ipaas.runtime.docker_logs import read_container_logs
from ipaas.runtime.firewall import BRIDGE_NAME_OPTION, FirewallError, HostFirewall, bridge_name

T = TypeVar("T")

NETWORK_PREFIX = "ipaas-u-"
BUILD_NETWORK = "ipaas-build"  # where the classic builder runs RUN steps (not docker0)
VOLUME_PREFIX = "ipaas-v-"
EVENT_ACTIONS = ["die", "start", "oom", "destroy"]
_POLL_S = 0.1
_LOG_LINES = 20


def network_name(owner_id: str) -> str:
    return f"{NETWORK_PREFIX}{owner_id[:12]}"


def volume_name(app_id: str, name: str) -> str:
    return f"{VOLUME_PREFIX}{app_id[:12]}-{name}"


def container_name(spec: ContainerSpec) -> str:
    # A random suffix: several containers of one release may live side by side (zero downtime).
    return f"ipaas-{spec.app_name}-r{spec.release}-{secrets.token_hex(3)}"


def ensure_bridge_network(
    api: docker.APIClient, name: str, labels: dict[str, str], options: dict[str, str] | None = None
) -> None:
    """A bridge network whose host interface is `firewall.bridge_name(name)`, so the host
    firewall's one wildcard rule covers it. Idempotent; safe against a concurrent creator."""
    wanted = {BRIDGE_NAME_OPTION: bridge_name(name), **(options or {})}
    # The engine's name filter matches prefixes too: compare exactly.
    for net in api.networks(names=[name]):
        if net["Name"] != name:
            continue
        if (net.get("Options") or {}).get(BRIDGE_NAME_OPTION) == wanted[BRIDGE_NAME_OPTION]:
            return
        # Made by an older ipaas with an unnamed bridge (no firewall rule matches it):
        # replaced while nothing is attached, kept as it is otherwise.
        if api.inspect_network(net["Id"]).get("Containers"):
            return
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(net["Id"])
    try:
        api.create_network(
            name, driver="bridge", options=wanted, labels=labels, check_duplicate=True
        )
    except docker.errors.APIError as exc:
        # Another process created it in between: that is what we wanted.
        if exc.status_code != 409:
            raise


def _is_unreachable(exc: BaseException) -> bool:
    """True when the engine itself cannot be reached (not an error the engine reported)."""
    if isinstance(exc, docker.errors.APIError):
        return False
    return isinstance(
        exc, docker.errors.DockerException | requests.exceptions.ConnectionError | ConnectionError
    )


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking SDK call in a thread; an unreachable engine becomes RuntimeUnavailable."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except Exception as exc:
        if _is_unreachable(exc):
            raise RuntimeUnavailable(f"docker engine unreachable: {exc}") from exc
        raise


def parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 with nanoseconds; its zero time means 'never'."""
    if not value or value.startswith("0001-"):
        return None
    # Python parses at most microseconds: cut the fraction to 6 digits.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _host_port(attrs: dict[str, Any], port: int | None = None) -> int | None:
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for key, bindings in ports.items():
        if port is not None and key != f"{port}/tcp":
            continue
        for binding in bindings or []:
            if binding.get("HostPort"):
                return int(binding["HostPort"])
    return None


def _ip_address(attrs: dict[str, Any]) -> str | None:
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    # Prefer the owner's network: that is where other apps of the user reach it.
    for name in sorted(networks, key=lambda n: not n.startswith(NETWORK_PREFIX)):
        ip = networks[name].get("IPAddress")
        if ip:
            return str(ip)
    return None


def _release(labels: dict[str, str]) -> int:
    try:
        return int(labels.get(LABEL_RELEASE, "0"))
    except ValueError:
        return 0


def container_info(attrs: dict[str, Any]) -> ContainerInfo:
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    state = attrs.get("State") or {}
    status = state.get("Status", "unknown")
    return ContainerInfo(
        id=attrs["Id"],
        name=attrs.get("Name", "").lstrip("/"),
        app_id=labels.get(LABEL_APP, ""),
        store_id=labels.get(LABEL_STORE, ""),
        release=_release(labels),
        image=(attrs.get("Config") or {}).get("Image", ""),
        state=status,
        host_port=_host_port(attrs),
        ip_address=_ip_address(attrs),
        started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")),
        exit_code=None if status in ("running", "created") else state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        restart_count=int(attrs.get("RestartCount") or 0),
        created_at=parse_time(attrs.get("Created")),
    )


def summary_info(summary: dict[str, Any]) -> ContainerInfo:
    """From the engine's container list entry: no start time, exit code, OOM or restarts."""
    labels = summary.get("Labels") or {}
    names = summary.get("Names") or [""]
    ports = [p.get("PublicPort") for p in summary.get("Ports") or [] if p.get("PublicPort")]
    return ContainerInfo(
        id=summary["Id"],
        name=names[0].lstrip("/"),
        app_id=labels.get(LABEL_APP, ""),
        store_id=labels.get(LABEL_STORE, ""),
        release=_release(labels),
        image=summary.get("Image", ""),
        state=summary.get("State", "unknown"),
        host_port=int(ports[0]) if ports else None,
        ip_address=_ip_address(summary),
        created_at=_from_unix(summary.get("Created")),
    )


def _from_unix(seconds: object) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if isinstance(seconds, int | float) else None


def cpu_percent(raw: dict[str, Any]) -> float:
    """The `docker stats` formula: share of the machine's CPU time, times online CPUs."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [1])
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    return round(float(cpu_delta) / float(system_delta) * float(online) * 100.0, 2)


def memory_used(raw: dict[str, Any]) -> tuple[int, int]:
    mem = raw.get("memory_stats") or {}
    stats = mem.get("stats") or {}
    # Page cache is reclaimable: subtract it like `docker stats` (cgroup v2, then v1 key).
    cache = stats.get("inactive_file", stats.get("total_inactive_file", 0))
    return max(int(mem.get("usage", 0)) - int(cache), 0), int(mem.get("limit", 0))


class EngineClient:
    """One docker SDK client, made on first use: the client asks the engine its API version
    when it is built, and a process that never touches the engine should not wait for that."""

    def __init__(self, docker_host: str | None = None) -> None:
        self.docker_host = docker_host
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    def get(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                if self.docker_host:
                    self._client = docker.DockerClient(base_url=self.docker_host)
                else:
                    self._client = docker.from_env()
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _gone(exc: docker.errors.APIError) -> bool:
    """A container that no longer exists, or is on its way out (its logs with it)."""
    return isinstance(exc, docker.errors.NotFound) or (
        exc.status_code == 409 and "marked for removal" in str(exc.explanation or exc)
    )


class DockerRuntime:
    """Runs app containers on one Docker engine; every call is a thread so the loop never blocks."""

    def __init__(
        self,
        settings: RuntimeSettings,
        docker_host: str | None = None,
        firewall: HostFirewall | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.settings = settings
        self.checkpoints = checkpoints or PassThrough()
        self.docker_host = docker_host
        self.firewall = firewall or HostFirewall()
        self._engine = EngineClient(docker_host)
        self._network_lock = asyncio.Lock()
        self._firewall_ready = False

    # -- plumbing -------------------------------------------------------------------------

    def _docker(self) -> docker.DockerClient:
        return self._engine.get()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await in_thread(fn, *args, **kwargs)

    def close(self) -> None:
        self._engine.close()

    # -- networks and volumes --------------------------------------------------------------

    async def prepare(self) -> None:
        """Install the host firewall (runtime/firewall.py): at start, so a host where it cannot
        be applied fails there, and again before every container start whenever its rules are
        gone (an engine restart, `iptables -F`, another process removing them).
        Raises FirewallError."""
        if not self.settings.firewall:
            return
        if self._firewall_ready and await asyncio.to_thread(self.firewall.installed):
            return
        await asyncio.to_thread(self.firewall.apply)
        self._firewall_ready = True

    def _ensure_network_sync(self, owner_id: str) -> str:
        name = network_name(owner_id)
        labels = {LABEL_PLATFORM: "1", LABEL_OWNER: owner_id}
        ensure_bridge_network(self._docker().api, name, labels)
        return name

    async def ensure_network(self, owner_id: str) -> str:
        """The owner's bridge network (created on demand): their apps reach each other by name."""
        async with self._network_lock:
            await self.prepare()
            return await self._run(self._ensure_network_sync, owner_id)

    def _remove_network_sync(self, owner_id: str) -> bool:
        client, name = self._docker(), network_name(owner_id)
        for net in client.networks.list(names=[name]):
            if net.name != name:
                continue
            net.reload()
            if net.attrs.get("Containers"):
                return False
            try:
                net.remove()
            except docker.errors.APIError as exc:
                if exc.status_code not in (403, 404, 409):  # in use again, or gone
                    raise
                return False
            return True
        return False

    async def remove_network(self, owner_id: str) -> bool:
        """Remove the owner's network when nothing uses it: the engine has few address pools."""
        async with self._network_lock:
            return await self._run(self._remove_network_sync, owner_id)

    def _ensure_volumes_sync(self, spec: ContainerSpec) -> dict[str, dict[str, str]]:
        binds: dict[str, dict[str, str]] = {}
        for vol in spec.volumes:
            name = volume_name(spec.app_id, vol.name)
            # Creating an existing named volume returns it unchanged, so this is idempotent.
            self._docker().volumes.create(
                name,
                labels={LABEL_PLATFORM: "1", LABEL_APP: spec.app_id, LABEL_OWNER: spec.owner_id},
            )
            binds[name] = {"bind": vol.mount_path, "mode": "rw"}
        return binds

    # -- start --------------------------------------------------------------------------------

    def _create_sync(self, spec: ContainerSpec, network: str) -> Container:
        client = self._docker()
        binds = self._ensure_volumes_sync(spec)
        endpoint = client.api.create_endpoint_config(aliases=[spec.app_name])
        memory = f"{spec.memory_mb}m"
        # create + start, never `run`: `run` would try to pull a missing image.
        container = client.containers.create(
            spec.image,
            name=container_name(spec),
            detach=True,
            labels={
                LABEL_PLATFORM: self.settings.instance,
                LABEL_APP: spec.app_id,
                LABEL_APP_NAME: spec.app_name,
                LABEL_OWNER: spec.owner_id,
                LABEL_RELEASE: str(spec.release),
                LABEL_STORE: spec.store_id,
            },
            environment={**spec.env, "PORT": str(spec.port)},
            init=True,  # a PID 1 that forwards SIGTERM: stops take milliseconds, not 10 s
            security_opt=["no-new-privileges"],
            # Root in the container keeps only these (Docker's default set is 14).
            cap_drop=["ALL"],
            cap_add=list(self.settings.capabilities),
            privileged=False,
            restart_policy={"Name": "no"},  # the warden restarts, with backoff
            mem_limit=memory,
            memswap_limit=memory,  # no swap: over the limit is an OOM kill, not a slow crawl
            nano_cpus=int(spec.cpus * 1e9),
            pids_limit=spec.pids_limit,
            log_config=LogConfig(
                type="json-file",
                config={"max-size": spec.log_max_size, "max-file": str(spec.log_max_files)},
            ),
            volumes=binds,
            ports={f"{spec.port}/tcp": ("127.0.0.1", None)},
            network=network,
            networking_config={network: endpoint},
        )
        try:
            container.start()
            container.reload()
        except BaseException:
            self._remove_sync(container.id)
            raise
        return container

    async def start(self, spec: ContainerSpec) -> ContainerInfo:
        try:
            network = await self.ensure_network(spec.owner_id)
        except FirewallError as exc:
            raise StartFailed(f"the host firewall could not be set up: {exc}") from exc
        create = asyncio.ensure_future(self._run(self._create_sync, spec, network))
        try:
            # Shielded: a thread cannot be interrupted, so a cancelled start waits for the
            # container it was creating and removes it instead of leaking it.
            container = await asyncio.shield(create)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._run(self._remove_sync, (await create).id)
            raise
        except docker.errors.ImageNotFound as exc:
            raise StartFailed(f"image {spec.image} not found") from exc
        except docker.errors.APIError as exc:
            reason = f"the engine refused to start the container: {exc.explanation}"
            raise StartFailed(reason) from exc
        try:
            await self.checkpoints.reached(Phase.HEALTH_CHECK)
            return await self._wait_healthy(container, spec)
        except StartFailed:
            # Crashed or never healthy: stopped but kept, so its output stays readable in the
            # app's logs (retired containers go with log retention, like any other).
            await asyncio.shield(self._run(self._stop_sync, container.id, 2))
            raise
        except BaseException:
            # Cancelled (or the engine failed us): leave nothing behind.
            await asyncio.shield(self._run(self._remove_sync, container.id))
            raise

    async def _wait_healthy(self, container: Container, spec: ContainerSpec) -> ContainerInfo:
        deadline = time.monotonic() + spec.health_timeout_s
        # Plain HTTP on loopback: no CA bundle to load (~60 ms of CPU on the event loop per
        # start otherwise, which every status poll of every app waits behind).
        async with httpx.AsyncClient(timeout=2.0, verify=False) as http:
            while True:
                attrs = await self._run(self._inspect_sync, container.id)
                if attrs is None:
                    raise StartFailed("the container disappeared while starting")
                info = container_info(attrs)
                if info.state not in ("running", "created"):
                    raise StartFailed(await self._exit_reason(container.id, info))
                if await self._healthy(http, attrs, spec):
                    return info
                if time.monotonic() >= deadline:
                    logs = await self.last_log_lines(container.id, _LOG_LINES)
                    raise StartFailed(
                        f"not healthy after {spec.health_timeout_s:g} s "
                        f"({self._check_word(spec)} on port {spec.port});"
                        f" last log lines:\n{logs}"
                    )
                await asyncio.sleep(_POLL_S)

    @staticmethod
    def _check_word(spec: ContainerSpec) -> str:
        return "tcp check" if spec.health_check == "tcp" else f"GET {spec.health_check}"

    async def _healthy(
        self, http: httpx.AsyncClient, attrs: dict[str, Any], spec: ContainerSpec
    ) -> bool:
        host_port = _host_port(attrs, spec.port)
        if spec.health_check == "tcp":
            # Connect to the container itself: the published port is docker-proxy, which
            # accepts connections before the app listens.
            ip = _ip_address(attrs)
            return await tcp_open(ip, spec.port) if ip else await tcp_open("127.0.0.1", host_port)
        if host_port is None:
            return False
        path = spec.health_check if spec.health_check.startswith("/") else "/" + spec.health_check
        try:
            response = await http.get(f"http://127.0.0.1:{host_port}{path}")
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    async def _exit_reason(self, container_id: str, info: ContainerInfo) -> str:
        logs = await self.last_log_lines(container_id, _LOG_LINES)
        oom = " (killed: out of memory)" if info.oom_killed else ""
        return f"exited with code {info.exit_code}{oom} while starting; last log lines:\n{logs}"

    # -- the rest of the seam -----------------------------------------------------------------

    def _inspect_sync(self, container_id: str) -> dict[str, Any] | None:
        try:
            return dict(self._docker().api.inspect_container(container_id))
        except docker.errors.NotFound:
            return None

    def _remove_sync(self, container_id: str) -> None:
        try:
            # v=True drops anonymous volumes only; named app volumes outlive the container.
            self._docker().api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

    def _stop_sync(self, container_id: str, timeout_s: float) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._docker().api.stop(container_id, timeout=max(int(timeout_s), 0))

    async def stop(self, container_id: str, timeout_s: float = 10.0) -> None:
        await self._run(self._stop_sync, container_id, timeout_s)

    async def remove(self, container_id: str) -> None:
        await self._run(self._remove_sync, container_id)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        attrs = await self._run(self._inspect_sync, container_id)
        return container_info(attrs) if attrs else None

    def _list_sync(self, app_id: str | None, detail: bool) -> list[ContainerInfo]:
        labels = [f"{LABEL_PLATFORM}={self.settings.instance}"]
        if app_id is not None:
            labels.append(f"{LABEL_APP}={app_id}")
        if not detail:  # one engine call, no inspect per container
            summaries = self._docker().api.containers(all=True, filters={"label": labels})
            return [summary_info(s) for s in summaries]
        found = self._docker().containers.list(
            all=True, filters={"label": labels}, ignore_removed=True
        )
        return [container_info(c.attrs) for c in found]

    async def list_containers(
        self, app_id: str | None = None, detail: bool = True
    ) -> list[ContainerInfo]:
        return await self._run(self._list_sync, app_id, detail)

    def _stats_sync(self, container_id: str) -> ContainerStats | None:
        try:
            raw = self._docker().api.stats(container_id, stream=False)
        except docker.errors.NotFound:
            return None
        if not raw.get("memory_stats"):
            return None  # not running
        used, limit = memory_used(raw)
        return ContainerStats(
            memory_bytes=used, memory_limit_bytes=limit, cpu_percent=cpu_percent(raw)
        )

    async def stats(self, container_id: str) -> ContainerStats | None:
        return await self._run(self._stats_sync, container_id)

    def _logs_sync(self, container_id: str, lines: int) -> str:
        try:
            raw = self._docker().api.logs(container_id, stdout=True, stderr=True, tail=lines)
        except docker.errors.APIError as exc:
            if _gone(exc):
                return ""
            raise
        return bytes(raw).decode("utf-8", errors="replace").rstrip("\n")

    async def last_log_lines(self, container_id: str, lines: int = 20) -> str:
        return await self._run(self._logs_sync, container_id, lines)

    def _read_logs_sync(
        self,
        info: ContainerInfo,
        after_ns: int,
        until_ns: int | None,
        limit: int,
        stream: str | None,
    ) -> SourceChunk:
        try:
            return read_container_logs(
                self._docker().api,
                info.id,
                info.name,
                stopped=info.state in ("exited", "dead"),
                after_ns=after_ns,
                until_ns=until_ns,
                limit=limit,
                stream=stream,
            )
        except docker.errors.APIError as exc:
            if _gone(exc):  # removed, or being removed (log retention), while we read it
                return SourceChunk([], cut=False)
            raise

    async def read_logs(
        self,
        info: ContainerInfo,
        after_ns: int,
        until_ns: int | None,
        limit: int,
        stream: str | None = None,
    ) -> SourceChunk:
        return await self._run(self._read_logs_sync, info, after_ns, until_ns, limit, stream)

    def _remove_images_sync(self, app_id: str) -> int:
        api, removed = self._docker().api, 0
        # The engine's summaries (no inspect of each image, which fails on one removed meanwhile).
        labelled = api.images(all=True, filters={"label": f"{LABEL_APP}={app_id}"})
        # The earlier stages of a multi-stage build carry no app label, only a tag of the app.
        tagged = [i for i in api.images() if _tagged_for(i, app_id)]
        images = {i["Id"]: i for i in labelled + tagged}.values()
        # Check again: never remove an image the platform did not build for this app.
        pending = [
            image
            for image in images
            if (image.get("Labels") or {}).get(LABEL_APP) == app_id or _tagged_for(image, app_id)
        ]
        # Tagged (final) images first: removing them prunes their untagged parent layers.
        pending.sort(key=lambda i: not _real_tags(i))
        while pending:
            # The engine refuses (409) an image while a child exists, and a release may be
            # built FROM an earlier one: again, until a pass removes nothing more.
            refused = []
            for image in pending:
                try:
                    api.remove_image(image["Id"], force=True)
                    removed += 1
                except docker.errors.ImageNotFound:
                    pass  # an intermediate layer already removed with its child
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                    refused.append(image)
            if len(refused) == len(pending):
                break  # still used (a container's image)
            pending = refused
        return removed

    async def remove_app_images(self, app_id: str) -> int:
        return await self._run(self._remove_images_sync, app_id)

    def _remove_volumes_sync(self, app_id: str) -> int:
        client, removed = self._docker(), 0
        for volume in client.volumes.list(filters={"label": f"{LABEL_APP}={app_id}"}):
            if (volume.attrs.get("Labels") or {}).get(LABEL_APP) != app_id:
                continue
            try:
                volume.remove(force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                raise RuntimeError(f"volume {volume.name} is still in use: {exc}") from exc
        return removed

    async def remove_volumes(self, app_id: str) -> int:
        """Remove the app's named volumes; its containers must be removed first."""
        return await self._run(self._remove_volumes_sync, app_id)

    # -- events -------------------------------------------------------------------------------

    async def events(self, since: datetime | None = None) -> AsyncIterator[RuntimeEvent]:
        """Platform container events until the engine goes away (then RuntimeUnavailable).

        `since` replays events from that time, so a reconnecting warden misses nothing.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        filters = {
            "type": "container",
            "label": f"{LABEL_PLATFORM}={self.settings.instance}",
            "event": EVENT_ACTIONS,
        }
        try:
            stream = await self._run(
                lambda: self._docker().events(
                    decode=True, filters=filters, since=int(since.timestamp()) if since else None
                )
            )
        except docker.errors.APIError as exc:
            raise RuntimeUnavailable(f"docker events: {exc}") from exc
        reader = threading.Thread(
            target=_pump_events, args=(stream, loop, queue), name="ipaas-docker-events", daemon=True
        )
        reader.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise RuntimeUnavailable(f"docker event stream ended: {item}") from item
                event = _runtime_event(item)
                if event is not None:
                    yield event
        finally:
            # Closing the response unblocks the reader thread, which then ends.
            stream.close()


def _pump_events(stream: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
    """Thread body: move decoded engine events into the asyncio queue."""
    error: BaseException = ConnectionError("the engine closed the stream")
    try:
        for raw in stream:
            loop.call_soon_threadsafe(queue.put_nowait, raw)
    except Exception as exc:
        error = exc
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
        loop.call_soon_threadsafe(queue.put_nowait, error)


def _runtime_event(raw: dict[str, Any]) -> RuntimeEvent | None:
    action = str(raw.get("Action") or raw.get("status") or "")
    # Docker reports some actions with a suffix ("exec_start: sh"); keep the verb.
    action = action.split(":")[0]
    if action not in EVENT_ACTIONS:
        return None
    actor = raw.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    exit_code = attributes.get("exitCode")
    nano = raw.get("timeNano")
    when = datetime.fromtimestamp(nano / 1e9, UTC) if nano else None
    return RuntimeEvent(
        action=action,
        container_id=str(actor.get("ID") or raw.get("id") or ""),
        app_id=str(attributes.get(LABEL_APP, "")),
        exit_code=int(exit_code) if exit_code not in (None, "") else None,
        time=when,
    )


def _real_tags(image: Mapping[str, Any]) -> list[str]:
    """An image summary's tags (the engine says `<none>:<none>` for none)."""
    return [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]


def _tagged_for(image: Mapping[str, Any], app_id: str) -> bool:
    return any(in_app_repository(tag, app_id) for tag in _real_tags(image))
