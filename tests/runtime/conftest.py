"""Fixtures for runtime tests: a real Docker engine, one tiny image, cleanup by label."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from ipaas.config import RuntimeSettings
from ipaas.runtime.base import LABEL_APP, ContainerSpec
from ipaas.runtime.docker import DockerRuntime, network_name
from tests import services
from tests.runtime.images import build_image

SpecFactory = Callable[..., ContainerSpec]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    services.need("docker")
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="session")
def app_image(docker_client: docker.DockerClient) -> Iterator[str]:
    tag = build_image(docker_client)
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def runtime(docker_client: docker.DockerClient) -> Iterator[DockerRuntime]:
    rt = DockerRuntime(RuntimeSettings())
    yield rt
    rt.close()


def cleanup(client: docker.DockerClient, app_ids: set[str], owner_ids: set[str]) -> None:
    """Remove what the tests created: containers, volumes, networks (all by our ids)."""
    for app_id in app_ids:
        label = {"label": f"{LABEL_APP}={app_id}"}
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
    for owner_id in owner_ids:
        for net in client.networks.list(names=[network_name(owner_id)]):
            if net.name == network_name(owner_id):
                net.remove()


def spec_maker(image: str, app_ids: set[str], owner_ids: set[str], **defaults: Any) -> SpecFactory:
    """A factory of small ContainerSpecs of `image` with fresh ids, noting the ids it gives
    out (for the cleanup)."""
    default_owner = uuid.uuid4().hex

    def factory(**overrides: Any) -> ContainerSpec:
        fields: dict[str, Any] = {
            "app_id": uuid.uuid4().hex,
            "app_name": f"t-{uuid.uuid4().hex[:8]}",
            "owner_id": default_owner,
            "release": 1,
            "image": image,
            "port": 8080,
            "memory_mb": 64,
            "cpus": 0.5,
            "pids_limit": 64,
            "health_timeout_s": 10.0,
            **defaults,
        }
        fields.update(overrides)
        app_ids.add(fields["app_id"])
        owner_ids.add(fields["owner_id"])
        return ContainerSpec(**fields)

    return factory


@pytest.fixture
def make_spec(app_image: str, docker_client: docker.DockerClient) -> Iterator[SpecFactory]:
    """Build ContainerSpecs with fresh ids; everything they create is removed after the test."""
    app_ids: set[str] = set()
    owner_ids: set[str] = set()
    yield spec_maker(app_image, app_ids, owner_ids)
    cleanup(docker_client, app_ids, owner_ids)
