"""The Swarm runtime on a real 3-node Swarm: replicas over the nodes, updates that keep
answering through the router, rollback, a replica killed, tenants apart, volumes pinned."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence

import docker
import httpx
import pytest

from ipaas.router.base import Route
from ipaas.router.caddy import CaddyRouter
from ipaas.runtime.base import NodeNotFound, StartFailed, VolumeMount
from ipaas.runtime.swarm import SwarmRuntime
from tests.e2e.load import ClientLoad
from tests.runtime.conftest import SpecFactory
from tests.swarm.cluster import LocalSwarm

pytestmark = [pytest.mark.swarm, pytest.mark.docker, pytest.mark.slow]


def _tasks(client: docker.DockerClient, service_id: str) -> list[dict[str, object]]:
    return [
        t for t in client.api.tasks(filters={"service": service_id, "desired-state": "running"})
    ]


async def test_replicas_spread_over_the_nodes_and_each_answers(
    swarm_runtime: SwarmRuntime, swarm_spec: SpecFactory, manager_client: docker.DockerClient
) -> None:
    info = await swarm_runtime.start(swarm_spec(replicas=3, env={"APP_TEXT": "three"}))
    assert info.state == "running" and len(info.upstreams) == 3
    nodes = {t["NodeID"] for t in _tasks(manager_client, info.id)}
    assert len(nodes) == 3  # one task per node: the app's port is published on each
    async with httpx.AsyncClient(timeout=3) as http:
        for upstream in info.upstreams:
            assert (await http.get(f"http://{upstream}/")).text.strip() == "three"
    assert info.note.startswith("updates stop-first: 3 replicas on 3 nodes")


async def test_a_stop_first_update_drains_each_node_well_before_its_task_stops(
    swarm_runtime: SwarmRuntime, swarm_spec: SpecFactory
) -> None:
    """3 replicas on 3 nodes update stop-first: each node leaves the route (the drain the
    router is told of) as soon as its task is told to stop, seconds before the task stops
    answering (the engine's wait before it stops a task of an overlay network), and comes
    back once its new task answers."""
    drains: list[tuple[float, tuple[str, ...]]] = []

    async def record(app_name: str, upstreams: Sequence[str]) -> None:
        drains.append((time.monotonic(), tuple(upstreams)))

    runtime = SwarmRuntime(
        swarm_runtime.settings, swarm_runtime.swarm, swarm_runtime.warden, drain=record
    )
    spec = swarm_spec(replicas=3, env={"APP_TEXT": "one"})
    info = await runtime.start(spec)
    drains.clear()
    with _Probes(info.upstreams) as probes:
        await runtime.start(
            swarm_spec(app_id=spec.app_id, app_name=spec.app_name, release=2,
                       replicas=3, env={"APP_TEXT": "two"})
        )  # fmt: skip
    assert drains and drains[-1][1] == ()  # all serve again at the end
    assert all(len(drained) < 3 for _, drained in drains)
    windows = {}
    for upstream in info.upstreams:
        drained_at = next(t for t, drained in drains if upstream in drained)
        windows[upstream] = round(probes.first_failure[upstream] - drained_at, 2)
    print(f"drained this long before the task stopped answering (s): {windows}")
    assert min(windows.values()) >= 1.0, windows


class _Probes:
    """A GET on each upstream every 20 ms, from a thread: when each first failed."""

    def __init__(self, upstreams: Sequence[str]) -> None:
        self.first_failure: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(u,)) for u in upstreams]

    def __enter__(self) -> _Probes:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self, upstream: str) -> None:
        with httpx.Client(timeout=1) as http:
            while not self._stop.is_set() and upstream not in self.first_failure:
                sent = time.monotonic()
                try:
                    http.get(f"http://{upstream}/", headers={"Connection": "close"})
                except httpx.HTTPError:
                    self.first_failure[upstream] = sent
                time.sleep(0.02)


async def test_requests_through_the_router_spread_and_survive_an_update_and_a_kill(
    swarm_runtime: SwarmRuntime,
    swarm_spec: SpecFactory,
    router: CaddyRouter,
    swarm_cluster: LocalSwarm,
    manager_client: docker.DockerClient,
) -> None:
    async def drain(app_name: str, upstreams: Sequence[str]) -> None:
        await router.drain(f"{app_name}.localhost", upstreams)  # as the platform wires it

    runtime = SwarmRuntime(
        swarm_runtime.settings, swarm_runtime.swarm, swarm_runtime.warden, drain=drain
    )
    # Swarm fills in each task's slot: the answers tell the replicas apart.
    spec = swarm_spec(replicas=2, env={"APP_TEXT": "v1-{{.Task.Slot}}"})
    info = await runtime.start(spec)
    assert info.note == ""  # 2 replicas on 3 nodes: start-first
    host = f"{spec.app_name}.localhost"
    await router.set_route(Route(host, ",".join(info.upstreams)))
    with ClientLoad(router.settings.http_port, host) as load:
        await asyncio.sleep(1.0)
        assert load.seen >= {"v1-1", "v1-2"}  # requests spread over both replicas
        # A rolling update (start-first, one task at a time) under load.
        updated = await runtime.start(
            swarm_spec(app_id=spec.app_id, app_name=spec.app_name, release=2,
                       replicas=2, env={"APP_TEXT": "v2-{{.Task.Slot}}"})
        )  # fmt: skip
        assert updated.id == info.id and updated.release == 2
        assert updated.upstreams == info.upstreams  # the route did not have to change
        await asyncio.sleep(1.0)
        before_kill = load.answered
        # One task killed on its node: the Swarm restarts it, the router uses the other (a
        # response the task was writing is cut with it: a kill gives no warning to drain on).
        task = _tasks(manager_client, info.id)[0]
        address = _addr(manager_client, task)
        node = next(n for n in swarm_cluster.nodes if n.address == address)
        victim = task["Status"]["ContainerStatus"]["ContainerID"]  # type: ignore[index]
        with contextlib.closing(docker.DockerClient(base_url=node.url)) as on_node:
            killed_at = time.monotonic()
            on_node.containers.get(victim).kill()
        await asyncio.sleep(3.0)
    assert load.failed_but_one_cut(killed_at) == [], load.failures[:5]
    assert {"v2-1", "v2-2"} <= load.seen
    assert load.answered - before_kill > 50
    print(f"swarm load: {load.answered} requests, answers {sorted(load.seen)}")


def _addr(client: docker.DockerClient, task: dict[str, object]) -> str:
    return str(client.api.inspect_node(task["NodeID"])["Status"]["Addr"])


async def test_a_failed_update_rolls_back_and_the_old_release_serves(
    swarm_runtime: SwarmRuntime, swarm_spec: SpecFactory
) -> None:
    spec = swarm_spec(replicas=1, env={"APP_TEXT": "good"})
    info = await swarm_runtime.start(spec)
    bad = swarm_spec(app_id=spec.app_id, app_name=spec.app_name, release=2,
                     env={"APP_MODE": "crash"})  # fmt: skip
    with pytest.raises(StartFailed) as failed:
        await swarm_runtime.start(bad)
    assert "exited with code 3" in failed.value.reason
    assert "rolled back" in failed.value.reason
    assert "fatal: cannot read config" in failed.value.reason

    async def old_answers() -> bool:
        now = await swarm_runtime.inspect(info.id)
        if now is None or now.release != 1 or now.state != "running":
            return False
        # The upstreams are every node it may run on: one of them has its task.
        async with httpx.AsyncClient(timeout=2) as http:
            for upstream in now.upstreams:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://{upstream}/")).text.strip() == "good":
                        return True
        return False

    await _eventually(old_answers, 30, "release 1 serving again")


async def _eventually(probe: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await probe():  # type: ignore[operator]
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_stop_scales_to_zero_and_start_brings_it_back(
    swarm_runtime: SwarmRuntime, swarm_spec: SpecFactory
) -> None:
    spec = swarm_spec(replicas=2)
    info = await swarm_runtime.start(spec)
    await swarm_runtime.stop(info.id, 2)
    stopped = await swarm_runtime.inspect(info.id)
    assert stopped is not None and stopped.state == "exited" and stopped.upstreams == ()
    again = await swarm_runtime.start(spec)
    assert again.id == info.id and again.state == "running"
    assert "listening on 8080" in await swarm_runtime.last_log_lines(info.id, 50)


async def test_an_app_with_a_volume_is_pinned_and_updates_stop_first(
    swarm_runtime: SwarmRuntime, swarm_spec: SpecFactory, manager_client: docker.DockerClient
) -> None:
    spec = swarm_spec(volumes=(VolumeMount("data", "/data"),))
    info = await swarm_runtime.start(spec)
    assert "volumes live on one node" in info.note
    node = {t["NodeID"] for t in _tasks(manager_client, info.id)}
    again = await swarm_runtime.start(
        swarm_spec(app_id=spec.app_id, app_name=spec.app_name, release=2,
                   volumes=spec.volumes)
    )  # fmt: skip
    assert {t["NodeID"] for t in _tasks(manager_client, again.id)} == node
    assert len(again.upstreams) == 1  # only the pinned node is routed to
    service = manager_client.api.inspect_service(info.id)
    assert service["Spec"]["UpdateConfig"]["Order"] == "stop-first"


async def test_another_tenants_task_cannot_reach_the_app_on_its_network(
    swarm_runtime: SwarmRuntime, swarm_spec: SpecFactory, manager_client: docker.DockerClient,
    swarm_cluster: LocalSwarm,
) -> None:  # fmt: skip
    mine = swarm_spec(owner_id="owner-a-" + "0" * 8, replicas=1)
    theirs = swarm_spec(owner_id="owner-b-" + "0" * 8, replicas=1)
    neighbour = swarm_spec(owner_id=mine.owner_id, replicas=1)
    await swarm_runtime.start(mine)
    await swarm_runtime.start(theirs)
    await swarm_runtime.start(neighbour)
    # By address, with nc: the static busybox's wget crashes (no NSS in the image).
    address = _overlay_address(manager_client, mine.app_id)
    probe = rf"printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 {address} 8080 || echo unreachable"
    assert "hello" in await _exec_in(swarm_cluster, manager_client, neighbour.app_id, probe)
    assert "unreachable" in await _exec_in(swarm_cluster, manager_client, theirs.app_id, probe)


def _overlay_address(manager: docker.DockerClient, app_id: str) -> str:
    service = manager.services.list(filters={"label": f"org.ipaas.app={app_id}"})[0]
    task = _tasks(manager, service.id)[0]
    attachments = task["NetworksAttachments"]  # type: ignore[index]
    owner_net = next(a for a in attachments if a["Network"]["Spec"]["Name"].startswith("ipaas-u-"))
    return str(owner_net["Addresses"][0]).split("/")[0]


async def _exec_in(
    cluster: LocalSwarm, manager: docker.DockerClient, app_id: str, command: str
) -> str:
    """Run a shell command in the app's task, on whichever node it runs."""
    service = manager.services.list(filters={"label": f"org.ipaas.app={app_id}"})[0]
    task = _tasks(manager, service.id)[0]
    address = _addr(manager, task)
    node = next(n for n in cluster.nodes if n.address == address)
    container_id = task["Status"]["ContainerStatus"]["ContainerID"]  # type: ignore[index]
    with contextlib.closing(docker.DockerClient(base_url=node.url)) as client:
        result = await asyncio.to_thread(
            client.containers.get(container_id).exec_run, ["sh", "-c", command]
        )
    return bytes(result.output).decode()


async def test_a_crash_loop_ends_in_one_death_the_warden_hears_of(
    swarm_runtime: SwarmRuntime, swarm_spec: SpecFactory
) -> None:
    """The Swarm restarts a dying task with the warden's backoff up to its crash limit (2
    here); then the service has no task left and the runtime reports one "die"."""
    spec = swarm_spec(env={"APP_MODE": "hog", "HOG_DELAY_S": "1"}, memory_mb=32)
    info = await swarm_runtime.start(spec)
    deaths = []

    async def follow() -> None:
        async for event in swarm_runtime.events():
            if event.container_id == info.id:
                deaths.append(event)
                return

    await asyncio.wait_for(follow(), 60)
    assert deaths[0].action == "die" and deaths[0].app_id == spec.app_id
    after = await swarm_runtime.inspect(info.id)
    assert after is not None and after.state == "exited" and after.exit_code == 137
    assert "eating memory" in await swarm_runtime.last_log_lines(info.id)


async def test_a_drained_node_leaves_the_route_and_comes_back_when_active(
    swarm_runtime: SwarmRuntime, swarm_spec: SpecFactory, swarm_cluster: LocalSwarm
) -> None:
    info = await swarm_runtime.start(swarm_spec(replicas=1))
    nodes = await swarm_runtime.nodes()
    assert [(n.role, n.state, n.availability) for n in nodes][0] == ("manager", "ready", "active")
    assert sorted(n.address for n in nodes) == [n.address for n in swarm_cluster.nodes]
    assert [n.leader for n in nodes].count(True) == 1
    assert sum(n.tasks for n in nodes) >= 1
    worker = next(n for n in nodes if n.address == swarm_cluster.nodes[2].address)
    port = info.upstreams[0].rsplit(":", 1)[1]
    try:
        drained = await swarm_runtime.set_availability(worker.id, "drain")
        assert drained.availability == "drain"
        now = await swarm_runtime.inspect(info.id)
        assert now is not None and f"{worker.address}:{port}" not in now.upstreams
        assert len(now.upstreams) == 2
    finally:
        await swarm_runtime.set_availability(worker.id, "active")
    back = await swarm_runtime.inspect(info.id)
    assert back is not None and f"{worker.address}:{port}" in back.upstreams
    with pytest.raises(NodeNotFound):
        await swarm_runtime.set_availability("no-such-node", "drain")
