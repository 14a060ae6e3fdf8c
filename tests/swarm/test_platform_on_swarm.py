"""The whole platform on the 3-node test Swarm: the API with its warden, deployer and registry
(`runtime.kind: swarm`), a real Caddy in front, and a builder on another node (`ipaas worker
build` whose engine is node 2's dockerd, taking jobs from RabbitMQ). A sample app with 3
replicas is built there, pushed, run by digest on all three nodes, and answers a client through
Caddy during a rolling update, a killed replica and a whole node powered off.

Runs before the other Swarm tests (the file name) and powers the node back on at the end."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import docker
import httpx
import pytest

from ipaas.config import Settings
from ipaas.runtime.base import LABEL_APP, LABEL_PLATFORM
from ipaas.runtime.registry import repository_of
from tests.e2e.conftest import E2E, commit_all, e2e_settings, running_platform
from tests.live import free_port
from tests.services import need
from tests.support import stop_process
from tests.swarm.cluster import LocalSwarm, Node

pytestmark = [pytest.mark.swarm, pytest.mark.docker, pytest.mark.rabbitmq, pytest.mark.slow]

QUEUE = "amqp://guest:guest@127.0.0.1:5672/"
# A node powered off: requests may fail from the moment it goes until the warden has moved the
# route off it, which must happen within this long (the Swarm declares the node down after
# 10-15 s here, the warden follows within its reconcile interval, 2 s). Until then a request
# Caddy sends to the lost node waits out the dial timeout (3 s) before going to another; one
# request already on its way to it can be lost, and one answered 502 was seen in some runs,
# about when the Swarm declared the node down. After the move, none fails or waits.
POWER_OFF_WINDOW_S = 25.0
MAX_FAILED = 3


@pytest.fixture(scope="module")
def platform(
    swarm_cluster: LocalSwarm,
    module_database_url: str,
    base_images: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[E2E]:
    """`ipaas up` as the manager's control plane: apps on the Swarm, the registry served on
    the bridge, builds through RabbitMQ to separate builders only."""
    need("rabbitmq")
    port = free_port()
    settings = e2e_settings(
        tmp_path_factory.mktemp("swarm-platform"),
        module_database_url,
        runtime={"kind": "swarm", "max_replicas": 3},
        build={"embedded_worker": False},
        queue_url=QUEUE,
        swarm={
            "manager": swarm_cluster.manager.url,
            "registry": {
                "serve": True,
                "push_address": f"127.0.0.1:{port}",
                "address": f"{swarm_cluster.gateway}:{port}",
                "keep_releases": 1,
            },
            "update_monitor_s": 2.0,
            "poll_interval_s": 0.5,
        },
    )
    with running_platform(settings, tmp_path_factory) as e2e:
        yield e2e


@pytest.fixture(scope="module")
def remote_builder(
    platform: E2E, swarm_cluster: LocalSwarm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    """`ipaas worker build` on node 2's engine (its base image loaded there, as `ipaas images
    bootstrap` would), pushing to the registry at the address the nodes reach."""
    node = swarm_cluster.nodes[1]
    with contextlib.closing(docker.from_env()) as here, contextlib.closing(node.client()) as there:
        there.images.load(b"".join(here.images.get("busybox:stable").save(named=True)))
    registry = platform.settings.swarm.registry.pull_address
    data_dir = tmp_path_factory.mktemp("builder")
    env = {
        **os.environ,
        "DOCKER_HOST": node.url,
        "IPAAS_DATA_DIR": str(data_dir),
        "IPAAS_DATABASE_URL": platform.settings.effective_database_url,
        "IPAAS_QUEUE_URL": QUEUE,
        "IPAAS_RUNTIME__KIND": "swarm",
        "IPAAS_SWARM__REGISTRY__ADDRESS": registry,
        "IPAAS_SWARM__REGISTRY__PUSH_ADDRESS": registry,
    }
    with (data_dir / "worker.log").open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "ipaas.cli.main", "worker", "build"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield node
    finally:
        stop_process(worker, 20)


def _running_tasks(manager: docker.DockerClient, app_id: str) -> list[dict[str, object]]:
    services = manager.services.list(filters={"label": f"{LABEL_APP}={app_id}"})
    if not services:
        return []
    tasks = manager.api.tasks(filters={"service": services[0].id, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def _node_addresses(manager: docker.DockerClient, tasks: list[dict[str, object]]) -> list[str]:
    return sorted(manager.api.inspect_node(t["NodeID"])["Status"]["Addr"] for t in tasks)


def _wait(probe: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.fixture
def services_removed(platform: E2E, manager_client: docker.DockerClient) -> Iterator[None]:
    """The platform's services go after the test even when it fails: a service left running
    holds the app port on every node, and each later Swarm test would wait for a free one."""
    yield
    label = f"{LABEL_PLATFORM}={platform.settings.runtime.instance}"
    for service in manager_client.services.list(filters={"label": label}):
        with contextlib.suppress(docker.errors.APIError):
            service.remove()


def test_a_replicated_app_built_on_another_node_serves_through_updates_and_failures(
    platform: E2E,
    remote_builder: Node,
    swarm_cluster: LocalSwarm,
    manager_client: docker.DockerClient,
    services_removed: None,
) -> None:
    e2e = platform
    name = f"sw-{uuid.uuid4().hex[:6]}"
    repo = e2e.repo("static-site", {"index.html": "version one\n"})
    app_id = e2e.create(repo, name=name, replicas=3, health_check="/health")
    status = e2e.wait(app_id)
    assert status["state"] == "running", e2e.reasons(app_id)

    # Built on node 2 (not on the control plane's engine), pushed, run by digest everywhere.
    [release] = e2e.get(app_id, "/releases")
    registry = e2e.settings.swarm.registry.pull_address
    assert (
        release["image_id"].startswith(f"{registry}/ipaas/") and "@sha256:" in release["image_id"]
    )
    log = "\n".join(line["line"] for line in e2e.get(app_id, "/builds/1/log")["lines"])
    assert f"==> pushed {release['image_id']}" in log, log
    label = {"label": f"{LABEL_APP}={app_id}"}
    with contextlib.closing(remote_builder.client()) as builder_engine:
        assert builder_engine.images.list(filters=label), "the image was not built on node 2"
    with contextlib.closing(docker.from_env()) as here:
        assert here.images.list(filters=label) == [], "the image was built on the manager's host"
    tasks = _running_tasks(manager_client, app_id)
    assert _node_addresses(manager_client, tasks) == [n.address for n in swarm_cluster.nodes]
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in tasks} == {release["image_id"]}  # type: ignore[index]
    port = int(e2e.get(app_id)["address"].split(",")[0].rsplit(":", 1)[1])
    for node in swarm_cluster.nodes:
        answer = httpx.get(f"http://{node.address}:{port}/", timeout=5)
        assert answer.text.strip() == "version one", node.name
    assert e2e.via_router(name).text.strip() == "version one"

    # 1. A new commit rolls out, one task at a time: no request fails.
    with e2e.load(name) as load:
        time.sleep(0.5)
        (repo / "index.html").write_text("version two\n")
        commit_all(repo, "v2")
        assert e2e.post(app_id, "rollout").status_code == 202
        e2e.wait(app_id, {"rolling_out", "building"}, 30)
        status = e2e.wait(app_id)
        assert status["state"] == "running", e2e.reasons(app_id)
        time.sleep(0.5)
    print(f"rolling update: {load.answered} requests, {len(load.failures)} failed")
    # 3 replicas on 3 nodes update stop-first: each node is drained from the route as its
    # task is told to stop, seconds before it stops, so no request is cut by the stop.
    assert load.failures == [], load.failures[:5]
    assert load.seen == {"version one", "version two"}
    assert e2e.get(app_id)["current_release"] == 2
    assert _registry_tags(e2e, app_id) == ["r2"]  # keep_releases: 1

    # 2. A replica is killed: the Swarm replaces it, and no request fails meanwhile but one
    # the killed task was answering (cut with it: no warning comes before a kill, so nothing
    # can drain it; seen once in 8 runs of ~1,300 requests).
    victim = next(t for t in _running_tasks(manager_client, app_id))
    address = manager_client.api.inspect_node(victim["NodeID"])["Status"]["Addr"]
    node = next(n for n in swarm_cluster.nodes if n.address == address)
    with e2e.load(name) as load:
        time.sleep(0.5)
        with contextlib.closing(node.client()) as engine:
            killed_at = time.monotonic()
            engine.containers.get(victim["Status"]["ContainerStatus"]["ContainerID"]).kill()  # type: ignore[index]

        def replaced() -> bool:
            now = _running_tasks(manager_client, app_id)
            return len(now) == 3 and victim["ID"] not in {t["ID"] for t in now}

        _wait(replaced, 60, "the killed replica to be replaced")
        time.sleep(0.5)
    print(f"replica killed: {load.answered} requests, {len(load.failures)} failed")
    assert load.failed_but_one_cut(killed_at) == [], load.failures[:5]

    # 3. A whole node is powered off: only requests already on their way to it may fail.
    lost = swarm_cluster.nodes[2]
    try:
        with e2e.load(name) as load:
            time.sleep(0.5)
            off_at = time.monotonic()
            swarm_cluster.power_off(lost)

            def down() -> bool:
                nodes = manager_client.api.nodes(filters={"role": "worker"})
                state = {n["Status"]["Addr"]: n["Status"]["State"] for n in nodes}
                return state.get(lost.address) == "down"

            _wait(down, 60, "the Swarm to see the node down")
            down_s = time.monotonic() - off_at

            # The warden routes to the nodes the app has left: no request waits on the lost
            # node's silence any more.
            def moved() -> bool:
                return lost.address not in e2e.get(app_id)["address"]

            _wait(moved, off_at + POWER_OFF_WINDOW_S - time.monotonic(), "the route to move")
            moved_at = time.monotonic()
            answered_before = load.answered
            time.sleep(5.0)
            answered_after = load.answered - answered_before
        failed = [round(t - off_at, 2) for t in load.failed_at]
        slow = [(round(t - off_at, 1), round(d, 1)) for t, d in load.slow]
        print(
            f"node powered off: seen down after {down_s:.1f} s, route moved after"
            f" {moved_at - off_at:.1f} s; {load.answered} requests, {len(load.failures)} failed,"
            f" sent at {failed} s ({load.failures}); answers over 1 s (sent at, took): {slow}"
        )
        outside = [t for t in load.failed_at if not off_at - 1.0 <= t <= moved_at]
        assert outside == [] and len(failed) <= MAX_FAILED, (failed, load.failures)
        # (a dial to the lost node waits 3 s; anything shorter is this busy machine's doing)
        assert not [t for t, d in load.slow if t > moved_at and d >= 2.5], slow
        assert answered_after > 20
        assert e2e.via_router(name).text.strip() == "version two"
        assert e2e.get(app_id, "/status")["state"] == "running"
    finally:
        swarm_cluster.power_on(lost)
    # Back on, the node takes the replica that had nowhere to go (one app port per node),
    # and the route has it again.
    _wait(lambda: len(_running_tasks(manager_client, app_id)) == 3, 60, "3 replicas again")
    _wait(lambda: lost.address in e2e.get(app_id)["address"], 30, "the node back in the route")
    assert "the nodes it runs on changed" in "\n".join(e2e.reasons(app_id))

    r = httpx.delete(f"{e2e.api}/{app_id}", headers=e2e.headers, timeout=30)
    assert r.status_code in (200, 202, 204), r.text
    _wait(lambda: not manager_client.services.list(filters=label), 60, "the service to go")
    assert _registry_tags(e2e, app_id) == []


def _registry_tags(e2e: E2E, app_id: str) -> list[str]:
    """The app's release images in the registry the platform serves."""
    url = f"http://{e2e.settings.swarm.registry.push_address}/v2/{repository_of(app_id)}"
    answer = httpx.get(f"{url}/tags/list", timeout=5)
    return [] if answer.status_code == 404 else sorted(answer.json().get("tags") or [])
