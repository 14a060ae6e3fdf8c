"""The registry ipaas serves: images pushed after a build, named by digest, pulled by every
node through the relay on the Swarm's bridge; a registry that dies comes back."""

from __future__ import annotations

import asyncio
import os
import signal

import docker
import httpx
import pytest

from ipaas.builds.base import BuildRequest, BuildResult, LogSink
from ipaas.builds.publish import PublishingBuilder
from ipaas.config import RegistrySettings
from ipaas.runtime.registry import ImagePublisher, LocalRegistry
from tests.runtime.images import build_image
from tests.support import wait_until_async

pytestmark = [pytest.mark.swarm, pytest.mark.docker, pytest.mark.slow]


class _BuiltAlready:
    """Stands for the Docker builder: the image is the busybox test app, built just now."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    async def build(
        self, request: BuildRequest, log: LogSink, cancel: asyncio.Event | None = None
    ) -> BuildResult:
        return BuildResult(self.tag, self.tag, "0" * 40, {}, 0.1)


async def test_a_built_image_is_pushed_and_released_by_digest(
    swarm_registry: LocalRegistry, registry_settings: RegistrySettings
) -> None:
    client = docker.from_env()
    tag = build_image(client)
    lines: list[str] = []

    async def log(line: str) -> None:
        lines.append(line)

    try:
        builder = PublishingBuilder(_BuiltAlready(tag), ImagePublisher(registry_settings))
        request = BuildRequest(app_id="a" * 32, app_name="pushed", release=4, repo_url="x")
        result = await builder.build(request, log)
    finally:
        client.images.remove(tag, force=True)
        client.close()
    assert result.image_id.startswith(
        f"{registry_settings.pull_address}/ipaas/aaaaaaaaaaaa@sha256:"
    )
    assert len(result.image_id) <= 128  # the release column
    assert any(line.startswith("==> pushed ") for line in lines)
    # What the nodes see, through the relay: the manifest under that digest.
    repository, digest = result.image_id.split("/", 1)[1].split("@")
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.head(
            f"http://{registry_settings.pull_address}/v2/{repository}/manifests/{digest}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
    assert answer.status_code == 200


async def test_a_registry_that_dies_is_started_again(
    swarm_registry: LocalRegistry, registry_settings: RegistrySettings
) -> None:
    before = swarm_registry.pid
    assert before is not None
    os.kill(before, signal.SIGKILL)

    async def back() -> bool:
        if swarm_registry.pid == before:
            return False
        async with httpx.AsyncClient(timeout=1) as http:
            try:
                url = f"http://{registry_settings.pull_address}/v2/"
                return (await http.get(url)).status_code == 200
            except httpx.HTTPError:
                return False

    await wait_until_async(back, 20, "the registry answering again", every_s=0.2)
