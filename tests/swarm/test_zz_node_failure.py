"""A node lost: its dockerd killed. The Swarm reschedules its tasks on the other nodes, and
the app keeps answering through the router. Runs last (the file name): the node stays dead
for the rest of the session."""

from __future__ import annotations

import asyncio
import time

import docker
import pytest

from ipaas.router.base import Route
from ipaas.router.caddy import CaddyRouter
from ipaas.runtime.swarm import SwarmRuntime
from tests.e2e.load import ClientLoad
from tests.runtime.conftest import SpecFactory
from tests.swarm.cluster import LocalSwarm

pytestmark = [pytest.mark.swarm, pytest.mark.docker, pytest.mark.slow]


async def test_a_lost_node_s_task_moves_and_the_app_keeps_answering(
    swarm_runtime: SwarmRuntime,
    swarm_spec: SpecFactory,
    router: CaddyRouter,
    swarm_cluster: LocalSwarm,
    manager_client: docker.DockerClient,
) -> None:
    spec = swarm_spec(replicas=2, env={"APP_TEXT": "up"})
    info = await swarm_runtime.start(spec)
    host = f"{spec.app_name}.localhost"
    await router.set_route(Route(host, ",".join(info.upstreams)))
    running = manager_client.api.tasks(filters={"service": info.id, "desired-state": "running"})
    workers = {n.address: n for n in swarm_cluster.nodes[1:]}
    addresses = {manager_client.api.inspect_node(t["NodeID"])["Status"]["Addr"] for t in running}
    victim = workers[sorted(addresses & set(workers))[0]]  # a worker running a task
    with ClientLoad(router.settings.http_port, host) as load:
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        swarm_cluster.kill_engine(victim)

        async def rescheduled() -> bool:
            tasks = await asyncio.to_thread(
                manager_client.api.tasks, filters={"service": info.id, "desired-state": "running"}
            )
            up = [t for t in tasks if t["Status"]["State"] == "running"]
            nodes = {manager_client.api.inspect_node(t["NodeID"])["Status"]["Addr"] for t in up}
            return len(up) == 2 and victim.address not in nodes

        deadline = killed_at + 60
        while not await rescheduled():
            assert time.monotonic() < deadline, "the task was not rescheduled within 60 s"
            await asyncio.sleep(0.5)
        moved_s = time.monotonic() - killed_at
        await asyncio.sleep(1.0)
    print(f"node lost: task rescheduled after {moved_s:.1f} s; {load.answered} requests,"
          f" {len(load.failures)} failed")  # fmt: skip
    assert load.failures == [], load.failures[:5]
    assert load.answered > 100
