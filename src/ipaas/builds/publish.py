"""A builder whose releases every Swarm node can run: each image is pushed to the registry
after its build, and the release names it by digest (what runs is exactly what was built)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ipaas.builds.base import BuildFailed, BuildRequest, BuildResult, ImageBuilder, LogSink
from ipaas.domain.swarm import release_tag
from ipaas.runtime.registry import ImagePublisher, PushFailed, repository_of


class PublishingBuilder:
    def __init__(self, inner: ImageBuilder, publisher: ImagePublisher) -> None:
        self.inner = inner
        self.publisher = publisher

    async def build(
        self, request: BuildRequest, log: LogSink, cancel: asyncio.Event | None = None
    ) -> BuildResult:
        result = await self.inner.build(request, log, cancel)
        repository = repository_of(request.app_id)
        await log(f"==> pushing to {self.publisher.settings.push_address}/{repository}")
        try:
            tag = release_tag(request.release)
            image = await self.publisher.publish(result.image_id, repository, tag)
        except PushFailed as exc:
            # The registry's fault, not the user's: the build is retried.
            raise BuildFailed(f"pushing the image failed: {exc}", user_fault=False) from exc
        await log(f"==> pushed {image}")
        return replace(result, image_id=image)
