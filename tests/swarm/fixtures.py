"""Fixtures for the Swarm tests (a plugin of tests/conftest.py, so that the session's one
Swarm serves tests/swarm and the runtime contract alike): one 3-node Swarm per session (namespaces, dockerds, bridge),
the registry ipaas serves (Debian's docker-registry) relayed onto the Swarm's bridge, the
busybox test image pushed there, and a SwarmRuntime on the manager."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from ipaas.config import RegistrySettings, RuntimeSettings, SwarmSettings, WardenSettings
from ipaas.runtime.base import LABEL_APP
from ipaas.runtime.docker import network_name
from ipaas.runtime.registry import ImagePublisher, LocalRegistry
from ipaas.runtime.swarm import SwarmRuntime
from tests import services
from tests.runtime.conftest import SpecFactory, spec_maker
from tests.runtime.images import build_image
from tests.support import free_port
from tests.swarm.cluster import SUBNET_PREFIX, LocalSwarm

NODES = 3


def _need_swarm() -> None:
    services.need("docker")
    missing = [t for t in ("ip", "nsenter", "iptables", "docker-registry") if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        why = f"needs root and {', '.join(missing) or 'nothing else'}"
        if "docker" in services.REQUIRED:
            pytest.fail(f"the Swarm tests {why}", pytrace=False)
        pytest.skip(f"the Swarm tests {why}")


@pytest.fixture(scope="session")
def registry_settings() -> RegistrySettings:
    port = free_port()
    return RegistrySettings(
        address=f"{SUBNET_PREFIX}.1:{port}", push_address=f"127.0.0.1:{port}", serve=True
    )


@pytest.fixture(scope="session")
def swarm_cluster(registry_settings: RegistrySettings) -> Iterator[LocalSwarm]:
    _need_swarm()
    # Every registry on the host's bridge address is trusted: the session's, and the one a
    # whole platform under test serves on a port of its own.
    cluster = LocalSwarm(NODES, insecure_registries=(f"{SUBNET_PREFIX}.0/24",)).create()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
async def swarm_registry(
    swarm_cluster: LocalSwarm, registry_settings: RegistrySettings
) -> AsyncIterator[LocalRegistry]:
    """After the cluster: the relay listens on the Swarm bridge's address."""
    root = Path(tempfile.mkdtemp(prefix="ipaas-registry-"))
    registry = LocalRegistry(registry_settings, root)
    await registry.start()
    try:
        yield registry
    finally:
        await registry.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def swarm_image(
    swarm_registry: LocalRegistry, registry_settings: RegistrySettings
) -> AsyncIterator[str]:
    """The busybox test app, pushed to the registry: its name by digest."""
    client = docker.from_env()
    tag = build_image(client)
    publisher = ImagePublisher(registry_settings)
    try:
        yield await publisher.publish(tag, f"ipaas-test/{uuid.uuid4().hex[:8]}", "r1")
    finally:
        publisher.close()
        client.images.remove(tag, force=True)
        client.close()


@pytest.fixture(scope="session")
def swarm_settings(swarm_cluster: LocalSwarm, registry_settings: RegistrySettings) -> SwarmSettings:
    return SwarmSettings(
        manager=swarm_cluster.manager.url,
        registry=registry_settings,
        update_monitor_s=2.0,
        poll_interval_s=0.5,
    )


@pytest.fixture(scope="session")
def swarm_runtime(swarm_settings: SwarmSettings, swarm_image: str) -> Iterator[SwarmRuntime]:
    instance = f"swarm-{uuid.uuid4().hex[:6]}"
    warden = WardenSettings(backoff_base_s=0.5, crash_limit=2, crash_window_s=60)
    runtime = SwarmRuntime(RuntimeSettings(instance=instance), swarm_settings, warden)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def manager_client(swarm_cluster: LocalSwarm) -> Iterator[docker.DockerClient]:
    client = swarm_cluster.manager.client()
    yield client
    client.close()


def remove_services(client: docker.DockerClient, app_ids: set[str], owners: set[str]) -> None:
    for app_id in app_ids:
        for service in client.services.list(filters={"label": f"{LABEL_APP}={app_id}"}):
            with contextlib.suppress(docker.errors.NotFound):
                service.remove()
    for owner in owners:
        for net in client.networks.list(names=[network_name(owner)]):
            with contextlib.suppress(docker.errors.APIError):
                net.remove()


@pytest.fixture
def swarm_spec(swarm_image: str, manager_client: docker.DockerClient) -> Iterator[SpecFactory]:
    """ContainerSpecs of the test image with fresh ids; their services go after the test."""
    app_ids: set[str] = set()
    owners: set[str] = set()
    yield spec_maker(swarm_image, app_ids, owners, health_timeout_s=30.0)
    remove_services(manager_client, app_ids, owners)
