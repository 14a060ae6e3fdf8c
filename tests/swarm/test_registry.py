"""The registry ipaas serves: images pushed after a build, named by digest, pulled by every
node through the relay on the Swarm's bridge; a registry that dies comes back; the images of
releases no longer kept are deleted and their space freed."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import uuid

import docker
import httpx
import pytest

from ipaas.builds.base import BuildRequest, BuildResult, LogSink
from ipaas.builds.publish import PublishingBuilder
from ipaas.config import RegistrySettings
from ipaas.runtime.registry import ImagePublisher, LocalRegistry, RegistryImages, repository_of
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


async def test_images_of_releases_no_longer_kept_are_deleted_and_their_space_freed(
    swarm_registry: LocalRegistry, registry_settings: RegistrySettings
) -> None:
    """Releases 1-3 are different images, release 4 the same image as 3 (an identical
    rebuild). Keeping one release after 4 deploys: 1 and 2 go, 3 stays (4 names its manifest
    too); garbage collection frees their blobs and 4 is still whole. The app deleted: all go."""
    client = docker.from_env()
    base = build_image(client)
    app_id = uuid.uuid4().hex
    repository = repository_of(app_id)
    publisher = ImagePublisher(registry_settings)
    made = []
    try:
        for n in (1, 2, 3):
            dockerfile = io.BytesIO(f"FROM {base}\nLABEL release={n}\n".encode())
            made.append(f"ipaas-test-gc:{app_id[:8]}-{n}")  # tagged: a push untags its copy
            client.images.build(fileobj=dockerfile, rm=True, tag=made[-1])
            await publisher.publish(made[-1], repository, f"r{n}")
        fourth = await publisher.publish(made[-1], repository, "r4")
    finally:
        publisher.close()
        for image in [*made[::-1], base]:
            client.images.remove(image, force=True)
        client.close()
    images = RegistryImages(registry_settings.model_copy(update={"keep_releases": 1}))
    url = f"http://{registry_settings.push_address}/v2/{repository}"
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    async with httpx.AsyncClient(timeout=5) as http:

        async def present(reference: str) -> bool:
            answer = await http.get(f"{url}/manifests/{reference}", headers=accept)
            return answer.status_code == 200

        assert await images.prune(app_id, 4) == 2
        assert [await present(f"r{n}") for n in (1, 2, 3, 4)] == [False, False, True, True]
        assert await swarm_registry.collect() > 0
        digest = fourth.split("@", 1)[1]
        manifest = (await http.get(f"{url}/manifests/{digest}", headers=accept)).json()
        for blob in [manifest["config"], *manifest["layers"]]:
            assert (await http.head(f"{url}/blobs/{blob['digest']}")).status_code == 200
        assert await swarm_registry.collect() == 0  # nothing more to free: no pause

        assert await images.remove_app(app_id) == 1
        assert not await present("r4") and not await present("r3")
        assert await swarm_registry.collect() > 0
