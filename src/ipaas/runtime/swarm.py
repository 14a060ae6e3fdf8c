"""Docker Swarm behind the Runtime seam: each app is one Swarm service (docs/swarm.md).

A start creates the app's service, or updates it in place: start-first where a new task has a
free node, stop-first otherwise (the reason goes to the app's events), rolled back by the Swarm
when a new task dies within `swarm.update_monitor_s`, and by us when the new tasks are not
healthy in time. The ContainerInfo of an app is its service: `id` is the service id,
`state` "running" while a task runs, "exited" once scaled to zero (a stop).

Each app has one port of `swarm.port_min..port_max`, published in host mode on every node
that runs one of its tasks, so its upstreams (`node:port` for each node it may run on) stay the
same through updates, restarts and rescheduling; the router retries a refused request on the
next upstream. While a start changes the service, the route's nodes whose task is told to stop
(its engine waits ~3 s before stopping it) or whose new task has not answered its health check
get no new requests (`drain`: the router's, given by the composition root), so no request is
cut by a task stopping under it. Apps with volumes are pinned to one node, since a volume lives
on one node.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import httpx
import structlog
from docker.types import (
    ContainerSpec as SwarmContainerSpec,
)
from docker.types import (
    DriverConfig,
    EndpointSpec,
    Placement,
    Resources,
    RestartPolicy,
    RollbackConfig,
    ServiceMode,
    TaskTemplate,
    UpdateConfig,
)

from ipaas.config import RuntimeSettings, SwarmSettings, WardenSettings
from ipaas.domain.logpages import SourceChunk
from ipaas.domain.swarm import (
    FAILED_TASK_STATES,
    drained_upstreams,
    free_port,
    gave_up,
    route_upstreams,
    running,
    split_upstreams,
    task_state,
    update_order,
    upstream_list,
)
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
    NodeInfo,
    NodeNotFound,
    RuntimeEvent,
    StartFailed,
)
from ipaas.runtime.docker import EngineClient, in_thread, network_name, parse_time, volume_name
from ipaas.runtime.docker_logs import read_container_logs
from ipaas.runtime.registry import RegistryImages

log = structlog.get_logger()

LABEL_DEPLOY = "org.ipaas.deploy"  # one value per start: tells this start's tasks from others
LABEL_NODE = "org.ipaas.node"  # the node an app with volumes is pinned to
LABEL_ORDER_NOTE = "org.ipaas.update-order"
NS = 1_000_000_000
_POLL_S = 0.25
_LOG_LINES = 20


# (app name, the upstreams of its route to drain; none: every one serves again)
Drain = Callable[[str, Sequence[str]], Awaitable[None]]


def _labels(service: Mapping[str, Any]) -> dict[str, str]:
    return dict((service.get("Spec") or {}).get("Labels") or {})


def _replicas(service: Mapping[str, Any]) -> int:
    mode = (service.get("Spec") or {}).get("Mode") or {}
    return int((mode.get("Replicated") or {}).get("Replicas") or 0)


def published_port(service: Mapping[str, Any]) -> int | None:
    ports = ((service.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []
    return int(ports[0]["PublishedPort"]) if ports else None


def _task_deploy(task: Mapping[str, Any]) -> str:
    spec = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
    return str(spec.get(LABEL_DEPLOY, ""))


def _exit_code(task: Mapping[str, Any]) -> int | None:
    code = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode")
    return int(code) if code is not None else None


class SwarmRuntime:
    """Apps as Swarm services, driven through one manager's engine API."""

    def __init__(
        self,
        settings: RuntimeSettings,
        swarm: SwarmSettings,
        warden: WardenSettings,
        remove_local_images: Callable[[str], Awaitable[int]] | None = None,
        images: RegistryImages | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.settings = settings
        self.swarm = swarm
        self.warden = warden
        self.images = images  # the releases' images in the registry: old ones deleted
        self._engine = EngineClient(swarm.manager or None)
        self._lock = asyncio.Lock()  # ports and pinned nodes are chosen one start at a time
        self._remove_local_images = remove_local_images
        self._drain = drain

    def _docker(self) -> docker.DockerClient:
        return self._engine.get()

    def close(self) -> None:
        self._engine.close()

    async def prepare(self) -> None:
        """The engine must be a Swarm manager: everything else goes through it."""
        info = await in_thread(lambda: self._docker().info())
        swarm = info.get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            raise RuntimeError(
                f"runtime.kind is swarm but the engine at {self.swarm.manager or 'the default'}"
                f" is not a Swarm manager (state: {swarm.get('LocalNodeState', 'unknown')})"
            )

    # -- what the Swarm holds ----------------------------------------------------------------

    def _services_sync(self, app_id: str | None = None) -> list[dict[str, Any]]:
        labels = [f"{LABEL_PLATFORM}={self.settings.instance}"]
        if app_id is not None:
            labels.append(f"{LABEL_APP}={app_id}")
        found = self._docker().api.services(filters={"label": labels})
        return [dict(s) for s in found]

    def _service_sync(self, service_id: str) -> dict[str, Any] | None:
        try:
            found = dict(self._docker().api.inspect_service(service_id))
        except docker.errors.NotFound:
            return None
        if _labels(found).get(LABEL_PLATFORM) != self.settings.instance:
            return None  # not one of ours: as good as absent
        return found

    def _tasks_sync(self, service_id: str | None = None) -> list[dict[str, Any]]:
        filters = {"service": service_id} if service_id else None
        return [dict(t) for t in self._docker().api.tasks(filters=filters)]

    def _nodes_sync(self) -> dict[str, str]:
        """Ready, active nodes: id -> the address the router reaches them at."""
        return _ready(self._docker().api.nodes())

    def _all_node_addresses_sync(self) -> dict[str, str]:
        return _addresses(self._docker().api.nodes())

    # -- start -------------------------------------------------------------------------------

    def _ensure_network_sync(self, owner_id: str) -> str:
        name = network_name(owner_id)
        client = self._docker()
        if any(n["Name"] == name for n in client.api.networks(names=[name])):
            return name
        labels = {LABEL_PLATFORM: "1", LABEL_OWNER: owner_id}
        try:
            client.api.create_network(
                name, driver="overlay", labels=labels, check_duplicate=True, attachable=False
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        return name

    def _task_template(
        self, spec: ContainerSpec, deploy: str, network: str, node: str | None
    ) -> TaskTemplate:
        labels = {**self._service_labels(spec), LABEL_DEPLOY: deploy}
        mounts = [f"{volume_name(spec.app_id, v.name)}:{v.mount_path}:rw" for v in spec.volumes]
        container = SwarmContainerSpec(
            spec.image,
            env={**spec.env, "PORT": str(spec.port)},
            labels=labels,
            mounts=mounts,
            init=True,
            stop_grace_period=int(self.settings.stop_timeout_s * NS),
            cap_drop=["ALL"],
            cap_add=list(self.settings.capabilities),
        )
        resources = Resources(cpu_limit=int(spec.cpus * NS), mem_limit=spec.memory_mb << 20)
        resources["Limits"]["Pids"] = spec.pids_limit
        w = self.warden
        # Swarm restarts a dead task with the warden's backoff and gives up after its crash
        # limit; the warden then hears of it (events) and decides as for any crash.
        restart = RestartPolicy(
            condition="on-failure",
            delay=int(w.backoff_base_s * NS),
            max_attempts=w.crash_limit,
            window=int(w.crash_window_s * NS),
        )
        return TaskTemplate(
            container_spec=container,
            resources=resources,
            restart_policy=restart,
            placement=Placement(constraints=[f"node.id=={node}"] if node else None),
            log_driver=DriverConfig(
                "json-file",
                {"max-size": spec.log_max_size, "max-file": str(spec.log_max_files)},
            ),
            networks=[{"Target": network, "Aliases": [spec.app_name]}],
        )

    def _service_labels(self, spec: ContainerSpec) -> dict[str, str]:
        return {
            LABEL_PLATFORM: self.settings.instance,
            LABEL_APP: spec.app_id,
            LABEL_APP_NAME: spec.app_name,
            LABEL_OWNER: spec.owner_id,
            LABEL_RELEASE: str(spec.release),
            LABEL_STORE: spec.store_id,
        }

    def _place_sync(
        self, spec: ContainerSpec, current: dict[str, Any] | None
    ) -> tuple[int, str | None, dict[str, str]]:
        """The app's port, its pinned node (apps with volumes), and the nodes it may use."""
        nodes = self._nodes_sync()
        if current is not None and published_port(current):
            port = published_port(current)
        else:
            used = [published_port(s) for s in self._services_sync()]
            port = free_port([p for p in used if p], self.swarm.port_min, self.swarm.port_max)
        if port is None:
            raise StartFailed("every port of swarm.port_min..port_max is taken")
        if not spec.volumes:
            if spec.replicas > len(nodes):
                raise StartFailed(
                    f"{spec.replicas} replicas need as many nodes; {len(nodes)} are ready"
                )
            return port, None, nodes
        if spec.replicas > 1:
            raise StartFailed("an app with volumes runs one replica: its volumes are on one node")
        node = _labels(current).get(LABEL_NODE) if current else None
        if node is None or node not in nodes:
            if node is not None and current is not None:
                raise StartFailed(f"the node {node} holding the app's volumes is not ready")
            node = self._least_busy_sync(nodes)
        return port, node, {node: nodes[node]}

    def _least_busy_sync(self, nodes: dict[str, str]) -> str:
        if not nodes:
            raise StartFailed("no Swarm node is ready")
        load = dict.fromkeys(nodes, 0)
        for task in self._tasks_sync():
            if task.get("NodeID") in load and task_state(task) == "running":
                load[task["NodeID"]] += 1
        return min(sorted(load), key=lambda n: load[n])

    def _deploy_sync(self, spec: ContainerSpec, deploy: str) -> tuple[str, str, str, bool]:
        """Create or update the app's service. Returns its id, its upstreams, the note on
        its update order, and whether it was an update."""
        network = self._ensure_network_sync(spec.owner_id)
        existing = self._services_sync(spec.app_id)
        current = self._service_sync(existing[0]["ID"]) if existing else None
        port, node, nodes = self._place_sync(spec, current)
        order = update_order(spec.replicas, len(nodes), bool(spec.volumes))
        monitor = int(self.swarm.update_monitor_s * NS)
        update = UpdateConfig(
            parallelism=1, failure_action="rollback", monitor=monitor, order=order.order
        )
        rollback = RollbackConfig(parallelism=1, monitor=monitor, order=order.order)
        labels = self._service_labels(spec) | {LABEL_ORDER_NOTE: order.order}
        if node:
            labels[LABEL_NODE] = node
        kwargs: dict[str, Any] = {
            "task_template": self._task_template(spec, deploy, network, node),
            "name": f"ipaas-{spec.app_name}-{spec.app_id[:8]}",
            "labels": labels,
            "mode": ServiceMode("replicated", replicas=spec.replicas),
            "update_config": update,
            "rollback_config": rollback,
            "endpoint_spec": EndpointSpec(ports={port: (spec.port, "tcp", "host")}),
        }
        api = self._docker().api
        upstreams = upstream_list(nodes.values(), port)
        if current is None:
            created = api.create_service(**kwargs)
            return str(created["ID"]), upstreams, order.reason, False
        # The name stays the service's first (a renamed app keeps its service).
        kwargs["name"] = current["Spec"]["Name"]
        api.update_service(current["ID"], current["Version"]["Index"], **kwargs)
        return str(current["ID"]), upstreams, order.reason, True

    async def start(self, spec: ContainerSpec) -> ContainerInfo:
        deploy = secrets.token_hex(6)
        try:
            async with self._lock:
                service_id, upstreams, note, updated = await in_thread(
                    self._deploy_sync, spec, deploy
                )
        except docker.errors.APIError as exc:
            raise StartFailed(f"the Swarm refused the service: {exc.explanation}") from exc
        try:
            await self._converge(service_id, deploy, spec, split_upstreams(upstreams))
        except StartFailed as exc:
            await self._undo(service_id, updated)
            undone = "; the update was rolled back" if updated else ""
            raise StartFailed(exc.reason + undone) from exc
        except BaseException:
            await asyncio.shield(self._undo(service_id, updated))
            raise
        info = await self.inspect(service_id)
        if info is None:
            raise StartFailed("the service disappeared while starting")
        await self._prune_images(spec)
        # Every node the app may run on: the route then outlives updates and rescheduling.
        return replace(info, upstreams=tuple(split_upstreams(upstreams)), note=note)

    async def _prune_images(self, spec: ContainerSpec) -> None:
        """The release runs: images of releases no longer kept leave the registry (a registry
        that does not answer keeps them until the next deploy)."""
        if self.images is None:
            return
        try:
            await self.images.prune(spec.app_id, spec.release)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("old release images not deleted", app_id=spec.app_id, error=str(exc))

    async def _undo(self, service_id: str, updated: bool) -> None:
        """A start that failed: an update goes back to what ran; a new service stops."""
        with contextlib.suppress(Exception):
            if updated:
                await in_thread(self._rollback_sync, service_id)
            else:
                await in_thread(self._scale_sync, service_id, 0)

    def _rollback_sync(self, service_id: str) -> None:
        service = self._service_sync(service_id)
        if service is None or not service.get("PreviousSpec"):
            return
        state = (service.get("UpdateStatus") or {}).get("State", "")
        if state.startswith("rollback"):
            return  # the Swarm does it already
        api = self._docker().api
        url = api._url("/services/{0}/update", service_id)
        params = {"version": service["Version"]["Index"], "rollback": "previous"}
        api._raise_for_status(api._post_json(url, data=service["Spec"], params=params))

    def _scale_sync(self, service_id: str, replicas: int) -> None:
        service = self._service_sync(service_id)
        if service is None:
            return
        spec = service["Spec"]
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        api = self._docker().api
        url = api._url("/services/{0}/update", service_id)
        params = {"version": service["Version"]["Index"]}
        api._raise_for_status(api._post_json(url, data=spec, params=params))

    async def _converge(
        self, service_id: str, deploy: str, spec: ContainerSpec, route: Sequence[str]
    ) -> None:
        """Until every task of this start runs and answers its health check (from here, at
        its node's published port), or one fails, or time is up; meanwhile the route's nodes
        that cannot serve are drained, and serve again when it ends."""
        proven: set[str] = set()  # tasks of this start that answered their health check
        drainer = asyncio.create_task(self._drain_while(service_id, deploy, spec, route, proven))
        try:
            await self._until_healthy(service_id, deploy, spec, proven)
        finally:
            drainer.cancel()
            await asyncio.wait([drainer])

    async def _drain_while(
        self,
        service_id: str,
        deploy: str,
        spec: ContainerSpec,
        route: Sequence[str],
        proven: Collection[str],
    ) -> None:
        """Every _POLL_S until cancelled, apart from the health checks (a slow one must not
        eat the ~3 s between a task told to stop and its stop): the nodes of the route that
        cannot serve get no new requests; all serve again at the end."""
        drain = self._drain
        if drain is None or len(route) < 2:
            return
        drained: tuple[str, ...] = ()
        try:
            while True:
                with contextlib.suppress(docker.errors.DockerException, OSError):
                    # (an engine that does not answer now: the next round asks again)
                    tasks, addresses = await in_thread(self._tasks_and_addresses_sync, service_id)
                    unproven = {t["ID"] for t in tasks if _task_deploy(t) == deploy} - set(proven)
                    now = drained_upstreams(route, tasks, addresses, unproven)
                    if now != drained:
                        drained = await _steer(drain, spec.app_name, now, drained)
                await asyncio.sleep(_POLL_S)
        finally:
            if drained:
                await _steer(drain, spec.app_name, (), drained)

    def _tasks_and_addresses_sync(
        self, service_id: str
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        return self._tasks_sync(service_id), self._all_node_addresses_sync()

    async def _until_healthy(
        self, service_id: str, deploy: str, spec: ContainerSpec, proven: set[str]
    ) -> None:
        deadline = time.monotonic() + spec.health_timeout_s
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                service, tasks, nodes = await in_thread(self._snapshot_sync, service_id)
                if service is None:
                    raise StartFailed("the service disappeared while starting")
                ours = [t for t in tasks if _task_deploy(t) == deploy]
                await self._check_update(service, ours, deploy)
                up = running(ours)
                port = published_port(service)
                answered = await self._answering(http, up, nodes, port, spec)
                proven.clear()
                proven.update(answered)
                healthy = len(up) >= spec.replicas and len(answered) == len(up)
                if healthy and _update_done(service):
                    return
                if time.monotonic() >= deadline:
                    raise StartFailed(
                        f"{len(up)} of {spec.replicas} tasks healthy after "
                        f"{spec.health_timeout_s:g} s ({_check_word(spec)} on port {spec.port});"
                        f" last log lines:\n{await self.last_log_lines(service_id, _LOG_LINES)}"
                    )
                await asyncio.sleep(_POLL_S)

    def _snapshot_sync(
        self, service_id: str
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, str]]:
        return (
            self._service_sync(service_id),
            self._tasks_sync(service_id),
            self._all_node_addresses_sync(),
        )

    async def _check_update(
        self, service: dict[str, Any], ours: list[dict[str, Any]], deploy: str
    ) -> None:
        """Raise StartFailed when a task of this start failed, or the Swarm rolled back."""
        failed = [t for t in ours if task_state(t) in FAILED_TASK_STATES]
        status = service.get("UpdateStatus") or {}
        if not failed and not str(status.get("State", "")).startswith("rollback"):
            return
        if not failed:
            failed = await self._failed_soon(service["ID"], deploy)
        task = failed[0] if failed else None
        why = (task or {}).get("Status", {}).get("Err") or status.get("Message") or "failed"
        code = _exit_code(task) if task else None
        exited = f"exited with code {code}" if code is not None else why
        logs = await self.last_log_lines(service["ID"], _LOG_LINES)
        raise StartFailed(f"{exited} while starting; last log lines:\n{logs}")

    async def _failed_soon(self, service_id: str, deploy: str) -> list[dict[str, Any]]:
        """The Swarm rolled back for a task of this start that the task list did not show as
        failed yet (2 of 6 test runs gave the Swarm's message instead of the exit code and the
        task's last lines): wait a little for it."""
        for _ in range(4):
            await asyncio.sleep(_POLL_S)
            tasks = await in_thread(self._tasks_sync, service_id)
            ours = [t for t in tasks if _task_deploy(t) == deploy]
            failed = [t for t in ours if task_state(t) in FAILED_TASK_STATES]
            if failed:
                return failed
        return []

    async def _answering(
        self,
        http: httpx.AsyncClient,
        tasks: list[Mapping[str, Any]],
        nodes: dict[str, str],
        port: int | None,
        spec: ContainerSpec,
    ) -> set[str]:
        """The ids of the tasks that answer their health check."""
        checks = [
            self._healthy(http, nodes.get(str(t.get("NodeID")), ""), port, spec) for t in tasks
        ]
        answers = await asyncio.gather(*checks)
        return {str(t["ID"]) for t, ok in zip(tasks, answers, strict=True) if ok}

    @staticmethod
    async def _healthy(
        http: httpx.AsyncClient, address: str, port: int | None, spec: ContainerSpec
    ) -> bool:
        if not address or port is None:
            return False
        if spec.health_check == "tcp":
            return await tcp_open(address, port)
        path = spec.health_check if spec.health_check.startswith("/") else "/" + spec.health_check
        try:
            response = await http.get(f"http://{address}:{port}{path}")
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    # -- the rest of the seam --------------------------------------------------------------------

    def _info_sync(
        self, service: dict[str, Any], tasks: list[dict[str, Any]], ready: dict[str, str]
    ) -> ContainerInfo:
        """The service as a ContainerInfo; its upstreams are where the route sends requests:
        every ready node it may run on (not only those with a task up right now, so that an
        update or a restarted task never changes the route; a node that goes or comes does)."""
        labels = _labels(service)
        replicas = _replicas(service)
        up = running(tasks)
        latest = max(tasks, key=lambda t: str(t.get("UpdatedAt") or ""), default=None)
        if replicas == 0:
            state = "exited"
        elif up:
            state = "running"
        elif latest is not None and task_state(latest) in FAILED_TASK_STATES:
            state = "exited"
        else:
            state = "created"
        image = ((service["Spec"].get("TaskTemplate") or {}).get("ContainerSpec") or {}).get(
            "Image", ""
        )
        return ContainerInfo(
            id=service["ID"],
            name=service["Spec"]["Name"],
            app_id=labels.get(LABEL_APP, ""),
            store_id=labels.get(LABEL_STORE, ""),
            release=int(labels.get(LABEL_RELEASE, "0") or 0),
            image=str(image),
            state=state,
            host_port=published_port(service),
            ip_address=None,
            started_at=parse_time(service.get("CreatedAt")),
            finished_at=parse_time(service.get("UpdatedAt")) if state == "exited" else None,
            exit_code=_exit_code(latest) if latest and state == "exited" else None,
            restart_count=max(len([t for t in tasks if task_state(t) in FAILED_TASK_STATES]), 0),
            upstreams=route_upstreams(
                ready, published_port(service), replicas, labels.get(LABEL_NODE)
            ),
        )

    def _inspect_sync(self, service_id: str) -> ContainerInfo | None:
        service = self._service_sync(service_id)
        if service is None:
            return None
        return self._info_sync(service, *self._addressed_tasks_sync(service_id))

    def _addressed_tasks_sync(
        self, service_id: str | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The tasks, each with its node's address (`_addr`), and the ready nodes."""
        nodes = self._docker().api.nodes()
        addresses = _addresses(nodes)
        tasks = self._tasks_sync(service_id)
        for task in tasks:
            task["_addr"] = addresses.get(str(task.get("NodeID")), "")
        return tasks, _ready(nodes)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        return await in_thread(self._inspect_sync, container_id)

    def _list_sync(self, app_id: str | None) -> list[ContainerInfo]:
        services = self._services_sync(app_id)
        tasks, ready = self._addressed_tasks_sync() if services else ([], {})
        by_service: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(str(task.get("ServiceID")), []).append(task)
        return [self._info_sync(s, by_service.get(s["ID"], []), ready) for s in services]

    async def list_containers(
        self, app_id: str | None = None, detail: bool = True
    ) -> list[ContainerInfo]:
        return await in_thread(self._list_sync, app_id)

    async def stop(self, container_id: str, timeout_s: float = 10.0) -> None:
        """Scale to zero: the service stays (its port, its pinned node, its logs)."""
        await in_thread(self._scale_sync, container_id, 0)
        deadline = time.monotonic() + timeout_s + 5
        while time.monotonic() < deadline:
            tasks = await in_thread(self._tasks_sync, container_id)
            if not running(tasks) and not any(task_state(t) == "running" for t in tasks):
                return
            await asyncio.sleep(_POLL_S)

    def _remove_sync(self, service_id: str) -> None:
        if self._service_sync(service_id) is None:
            return
        with contextlib.suppress(docker.errors.NotFound):
            self._docker().api.remove_service(service_id)

    async def remove(self, container_id: str) -> None:
        await in_thread(self._remove_sync, container_id)

    async def stats(self, container_id: str) -> ContainerStats | None:
        return None  # the tasks' engines are the nodes': no stats through the manager

    def _logs_sync(self, service_id: str, lines: int) -> str:
        if self._service_sync(service_id) is None:
            return ""
        raw = self._docker().api.service_logs(
            service_id, stdout=True, stderr=True, tail=lines, follow=False
        )
        return b"".join(raw).decode("utf-8", errors="replace").rstrip("\n")

    async def last_log_lines(self, container_id: str, lines: int = 20) -> str:
        return await in_thread(self._logs_sync, container_id, lines)

    async def read_logs(
        self,
        info: ContainerInfo,
        after_ns: int,
        until_ns: int | None,
        limit: int,
        stream: str | None = None,
    ) -> SourceChunk:
        def read() -> SourceChunk:
            try:
                return read_container_logs(
                    self._docker().api,
                    info.id,
                    info.name,
                    stopped=info.state == "exited",
                    after_ns=after_ns,
                    until_ns=until_ns,
                    limit=limit,
                    stream=stream,
                    kind="services",
                )
            except docker.errors.NotFound:
                return SourceChunk([], cut=False)

        return await in_thread(read)

    async def remove_app_images(self, app_id: str) -> int:
        """The images the build engine holds and the registry's; the nodes' copies are left to
        their engines' pruning (docs/swarm.md)."""
        removed = 0
        if self.images is not None:
            try:
                removed += await self.images.remove_app(app_id)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("the app's images stay in the registry", app_id=app_id, error=str(exc))
        if self._remove_local_images is not None:
            removed += await self._remove_local_images(app_id)
        return removed

    async def remove_volumes(self, app_id: str) -> int:
        # A volume lives on its node, which the manager's API cannot reach: docs/swarm.md.
        return 0

    def _remove_network_sync(self, owner_id: str) -> bool:
        name = network_name(owner_id)
        for net in self._docker().api.networks(names=[name]):
            if net["Name"] != name:
                continue
            try:
                self._docker().api.remove_network(net["Id"])
            except docker.errors.APIError:
                return False  # still in use
            return True
        return False

    async def remove_network(self, owner_id: str) -> bool:
        """Drop the owner's overlay network once no service of theirs is left."""
        services = await in_thread(self._services_sync)
        if any(_labels(s).get(LABEL_OWNER) == owner_id for s in services):
            return False
        return await in_thread(self._remove_network_sync, owner_id)

    # -- nodes ----------------------------------------------------------------------------------

    def _node_infos_sync(self) -> list[NodeInfo]:
        services = {s["ID"] for s in self._services_sync()}
        tasks = [t for t in self._tasks_sync() if t.get("ServiceID") in services]
        out = []
        for node in self._docker().api.nodes():
            status, spec = node.get("Status") or {}, node.get("Spec") or {}
            manager = node.get("ManagerStatus") or {}
            mine = [t for t in running(tasks) if t.get("NodeID") == node["ID"]]
            out.append(
                NodeInfo(
                    id=node["ID"],
                    hostname=str((node.get("Description") or {}).get("Hostname") or ""),
                    role=str(spec.get("Role") or ""),
                    state=str(status.get("State") or ""),
                    availability=str(spec.get("Availability") or ""),
                    address=str(status.get("Addr") or ""),
                    leader=bool(manager.get("Leader")),
                    tasks=len(mine),
                )
            )
        return sorted(out, key=lambda n: (n.role != "manager", n.hostname, n.id))

    async def nodes(self) -> list[NodeInfo]:
        return await in_thread(self._node_infos_sync)

    def _set_availability_sync(self, name: str, availability: str) -> None:
        api = self._docker().api
        # Only a node of the list is ever named to the engine: `name` is the caller's.
        found = [n for n in api.nodes() if name in (n["ID"], _hostname(n))]
        if len(found) != 1:
            raise NodeNotFound(name)
        node = api.inspect_node(found[0]["ID"])
        spec = {**node["Spec"], "Availability": availability}
        api.update_node(node["ID"], node["Version"]["Index"], spec)

    async def set_availability(self, node: str, availability: str) -> NodeInfo:
        if availability not in ("active", "drain", "pause"):
            raise ValueError(f"not an availability: {availability}")
        await in_thread(self._set_availability_sync, node, availability)
        return next(n for n in await self.nodes() if node in (n.id, n.hostname))

    # -- events ---------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        """From the task list, read every `swarm.poll_interval_s` (the manager's event stream
        has no container events of other nodes): "die" once when the Swarm gave up on an app
        (no task up or coming, the last one failed); a task that died and was restarted is
        the Swarm's business, and the router sends its requests to the other tasks."""
        reported: set[str] = set()
        while True:
            for info, stopped in await in_thread(self._watch_sync):
                if stopped and info.id not in reported:
                    reported.add(info.id)
                    now = datetime.now(UTC)
                    yield RuntimeEvent("die", info.id, info.app_id, info.exit_code, now)
                elif not stopped:
                    reported.discard(info.id)
            await asyncio.sleep(self.swarm.poll_interval_s)

    def _watch_sync(self) -> list[tuple[ContainerInfo, bool]]:
        """Each service of ours, and whether the Swarm gave up on it."""
        services = self._services_sync()
        tasks, ready = self._addressed_tasks_sync() if services else ([], {})
        out = []
        for service in services:
            mine = [t for t in tasks if t.get("ServiceID") == service["ID"]]
            out.append((self._info_sync(service, mine, ready), gave_up(_replicas(service), mine)))
        return out


async def _steer(
    drain: Drain, app_name: str, drained: tuple[str, ...], before: tuple[str, ...]
) -> tuple[str, ...]:
    """Tell the router; returns what it holds now (a router that failed keeps what it had)."""
    try:
        await drain(app_name, drained)
    except Exception as exc:  # noqa: BLE001 - a drain spares requests; the start goes on
        log.warning("route not drained", app=app_name, drained=drained, error=str(exc))
        return before
    log.info("route drained", app=app_name, drained=drained)
    return drained


def _hostname(node: Mapping[str, Any]) -> str:
    return str((node.get("Description") or {}).get("Hostname") or "")


def _addresses(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Node id -> the address the router reaches it at."""
    return {n["ID"]: str((n.get("Status") or {}).get("Addr") or "") for n in nodes}


def _ready(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """The nodes that take tasks (ready and active, not drained or paused) -> addresses."""
    return {
        n["ID"]: str((n.get("Status") or {}).get("Addr") or "")
        for n in nodes
        if (n.get("Status") or {}).get("State") == "ready"
        and (n.get("Spec") or {}).get("Availability") == "active"
    }


def _update_done(service: Mapping[str, Any]) -> bool:
    state = (service.get("UpdateStatus") or {}).get("State")
    return state in (None, "completed")


def _check_word(spec: ContainerSpec) -> str:
    return "tcp check" if spec.health_check == "tcp" else f"GET {spec.health_check}"
