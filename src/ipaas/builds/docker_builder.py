"""ImageBuilder on the Docker engine: fetch, plan, render, `docker build` (classic builder).

The blocking docker SDK stream runs in a worker thread and hands every output line to the
event loop through a queue, so the log sink sees lines as they come and the loop can stop the
build on cancel or timeout by shutting the HTTP connection down (the engine then aborts the
build and, with forcerm, removes its container).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests

from ipaas.builds import git
from ipaas.builds.base import (
    BuildCancelled,
    BuildFailed,
    BuildRequest,
    BuildResult,
    LogSink,
)
from ipaas.builds.dockerfile import CA_DIR, DOCKERFILE_NAME, render
from ipaas.builds.images import stage_ca_certs
from ipaas.builds.plan import Plan, detect_plan
from ipaas.builds.repo_guard import RepoGuard
from ipaas.config import Settings
from ipaas.runtime.base import LABEL_APP, LABEL_APP_NAME, LABEL_PLATFORM, LABEL_RELEASE

LABEL_COMMIT = "org.ipaas.commit"
TAIL_LINES = 20  # log lines quoted in the reason of a failed build
USING_CACHE = "---> Using cache"
# Engine-side failures that are not the user's doing (retry rather than blame the app).
_PLATFORM_ERRORS = (
    "no space left on device",
    "failed to register layer",
    "connection reset",
    "i/o timeout",
    "cannot connect to the docker daemon",
)
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
T = TypeVar("T")


@dataclass
class _Stream:
    """State shared between the build thread and the event loop."""

    response: Any = None
    stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Shut the HTTP connection so the blocked reader returns and the engine aborts."""
        self.stopped.set()
        response = self.response
        if response is None:
            return
        with contextlib.suppress(Exception):
            raw = response.raw._fp.fp.raw
            sock = getattr(raw, "_sock", raw)
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            response.close()


class _APIClient(docker.APIClient):
    """Keeps the streaming build response so another thread can close it."""

    stream: _Stream | None = None

    def _stream_helper(self, response: Any, decode: bool = False) -> Iterator[Any]:
        if self.stream is not None:
            self.stream.response = response
        return super()._stream_helper(response, decode=decode)  # type: ignore[no-any-return]


class DockerImageBuilder:
    """Builds ipaas/<app>:r<release> images; at most settings.build.concurrency at once."""

    def __init__(
        self,
        settings: Settings,
        *,
        docker_host: str | None = None,
        work_root: Path | None = None,
    ) -> None:
        self._settings = settings
        self._docker_host = docker_host
        self._work_root = work_root
        self._slots = asyncio.Semaphore(max(1, settings.build.concurrency))

    async def build(
        self, request: BuildRequest, log: LogSink, cancel: asyncio.Event | None = None
    ) -> BuildResult:
        if not _NAME_RE.match(request.app_name):
            raise BuildFailed(
                f"app name {request.app_name!r} cannot be an image name",
                user_fault=True,
                code="bad_option",
            )
        cancel = cancel or asyncio.Event()
        started = time.monotonic()
        if self._slots.locked():
            await log("==> waiting for a free build slot")
        async with self._slots:
            if cancel.is_set():
                raise BuildCancelled()
            work = Path(tempfile.mkdtemp(prefix="ipaas-build-", dir=self._work_root))
            try:
                return await self._build_in(work, request, log, cancel, started)
            finally:
                # Runs on success, failure and cancellation alike.
                shutil.rmtree(work, ignore_errors=True)

    async def _build_in(
        self,
        work: Path,
        request: BuildRequest,
        log: LogSink,
        cancel: asyncio.Event,
        started: float,
    ) -> BuildResult:
        checkout = work / "src"
        sha = await self._fetch(checkout, request, log, cancel)
        plan = detect_plan(checkout, request.options, self._settings.build.base_images)
        await log(f"==> plan: {_describe(plan)}")
        context = checkout / plan.root_directory.strip("/") if plan.root_directory else checkout
        dockerfile, install_step = self._prepare_context(context, plan, request)
        await asyncio.to_thread(self._check_base_images, plan)
        tag = f"ipaas/{request.app_name}:r{request.release}"
        labels = {
            LABEL_PLATFORM: "1",
            LABEL_APP: request.app_id,
            LABEL_APP_NAME: request.app_name,
            LABEL_RELEASE: str(request.release),
            LABEL_COMMIT: sha,
        }
        job = _BuildJob(
            self._client_factory,
            dict(
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                labels=labels,
                buildargs=dict(request.build_args),
                nocache=request.no_cache,
                container_limits=self._limits(),
            ),
        )
        await log(f"==> building image {tag}")
        lines = await job.run(log, cancel, self._settings.build.timeout_s, install_step)
        await self._log_install_cache(lines, install_step, log)
        image_id = await asyncio.to_thread(self._image_id, tag)
        duration = time.monotonic() - started
        await log(f"==> built {tag} ({image_id[:19]}) in {duration:.1f} s")
        result_plan = plan.to_dict()
        result_plan["install_cached"] = _install_cached(lines, install_step)
        return BuildResult(image_id, tag, sha, result_plan, duration)

    async def _fetch(
        self, checkout: Path, request: BuildRequest, log: LogSink, cancel: asyncio.Event
    ) -> str:
        ref = request.branch or "default branch"
        await log(f"==> fetching {git.redact_url(request.repo_url)} ({ref})")
        sha = await _cancellable(
            git.fetch(
                request.repo_url,
                request.branch,
                request.commit,
                checkout,
                timeout_s=self._settings.build.clone_timeout_s,
                max_bytes=self._settings.build.max_repo_mb * 1_000_000,
                allow_local=request.allow_local,
                allowed_schemes=self._settings.allowed_repo_schemes,
                guard=RepoGuard.from_settings(self._settings) if request.check_host else None,
                credentials=request.credentials,
            ),
            cancel,
        )
        # History is not part of the image; dropping it keeps the build context small.
        shutil.rmtree(checkout / ".git", ignore_errors=True)
        await log(f"==> commit {sha}")
        return sha

    def _prepare_context(
        self, context: Path, plan: Plan, request: BuildRequest
    ) -> tuple[str, int | None]:
        """Write the generated Dockerfile and CA certs; return (dockerfile, install step)."""
        if plan.language == "dockerfile":
            assert plan.dockerfile is not None
            return plan.dockerfile, None  # the user's Dockerfile is used as it is
        has_ca = bool(stage_ca_certs(self._settings.build.extra_ca_certs, context / CA_DIR))
        rendered = render(plan, with_ca=has_ca, build_args=request.build_args.keys())
        (context / DOCKERFILE_NAME).write_text(rendered.text)
        return DOCKERFILE_NAME, rendered.install_step

    def _limits(self) -> dict[str, int]:
        memory = self._settings.build.memory_mb * 1024 * 1024
        return {"memory": memory, "memswap": memory}

    def _client_factory(self) -> _APIClient:
        timeout = int(self._settings.build.timeout_s) + 60
        if self._docker_host:
            return _APIClient(base_url=self._docker_host, version="auto", timeout=timeout)
        kwargs = docker.utils.kwargs_from_env()
        return _APIClient(version="auto", timeout=timeout, **kwargs)

    def _check_base_images(self, plan: Plan) -> None:
        """A missing base image of a plan is the platform's to fix (`ipaas images bootstrap`);
        without a registry the engine would fail on a pull after a long wait."""
        wanted = [i for i in (plan.base_image, plan.runtime_image) if i]
        missing = [image for image in wanted if not self._has_image(image)]
        if missing:
            raise BuildFailed(
                f"base image(s) {', '.join(missing)} are missing on this machine;"
                " run `ipaas images bootstrap`",
                user_fault=False,
                code="base_image_missing",
            )

    def _has_image(self, image: str) -> bool:
        try:
            client = self._client_factory()
            try:
                client.inspect_image(image)
                return True
            finally:
                client.close()
        except docker.errors.ImageNotFound:
            return False
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise _exception_failure(exc) from exc

    def _image_id(self, tag: str) -> str:
        try:
            client = self._client_factory()
            try:
                return str(client.inspect_image(tag)["Id"])
            finally:
                client.close()
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise BuildFailed(
                f"image {tag} could not be inspected: {exc}",
                user_fault=False,
                code="engine_unavailable",
            ) from exc

    async def _log_install_cache(
        self, lines: list[str], install_step: int | None, log: LogSink
    ) -> None:
        cached = _install_cached(lines, install_step)
        if cached is not None:
            await log(
                "==> dependencies: cached (install step reused)"
                if cached
                else "==> dependencies: installed"
            )


class _BuildJob:
    """One docker build stream, run in a worker thread, consumed on the event loop."""

    def __init__(self, client_factory: Any, kwargs: dict[str, Any]) -> None:
        self._client_factory = client_factory
        self._kwargs = kwargs
        self._stream = _Stream()
        self._lines: list[str] = []
        self._step = ""
        self._memory_mb = kwargs["container_limits"]["memory"] // 2**20

    async def run(
        self, log: LogSink, cancel: asyncio.Event, timeout_s: float, install_step: int | None
    ) -> list[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        thread = threading.Thread(target=self._worker, args=(put,), daemon=True)
        thread.start()
        deadline = loop.time() + timeout_s
        try:
            await self._consume(queue, log, cancel, deadline, timeout_s, install_step)
        finally:
            self._stream.stop()  # no-op after a normal end; aborts the build otherwise
        return self._lines

    async def _consume(
        self,
        queue: asyncio.Queue[tuple[str, Any]],
        log: LogSink,
        cancel: asyncio.Event,
        deadline: float,
        timeout_s: float,
        install_step: int | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await _next_item(queue, cancel, deadline - loop.time())
            if item is None:
                if cancel.is_set():
                    await log("==> build cancelled")
                    raise BuildCancelled()
                await log(f"==> build timed out after {timeout_s:.0f} s")
                raise BuildFailed(
                    f"the build took longer than {timeout_s:.0f} s",
                    user_fault=True,
                    code="build_timeout",
                )
            kind, value = item
            if kind == "line":
                self._lines.append(value)
                if value.startswith("Step "):
                    self._step = value
                await log(value)
            elif kind == "error":
                raise self._failure(value, install_step)
            elif kind == "exception":
                raise _exception_failure(value)
            elif kind == "done":
                if not any(line.startswith("Successfully built") for line in self._lines):
                    # The stream ended without a verdict: the engine dropped the connection.
                    raise BuildFailed(
                        "the build output ended before the image was built",
                        user_fault=False,
                        code="engine_error",
                    )
                return

    def _failure(self, message: str, install_step: int | None) -> BuildFailed:
        lower = message.lower()
        if any(marker in lower for marker in _PLATFORM_ERRORS):
            return BuildFailed(f"engine error: {message}", user_fault=False, code="engine_error")
        code = "build_failed"
        if install_step is not None and self._step.startswith(f"Step {install_step}/"):
            code = "install_failed"
        headline = message.strip()
        if "non-zero code: 137" in message:  # SIGKILL: in a build, the memory cap
            code = "build_out_of_memory"
            headline += (
                f" (killed: most likely out of memory; builds may use "
                f"{self._memory_mb} MB, the build.memory_mb setting)"
            )
        tail = "\n".join(self._lines[-TAIL_LINES:])
        return BuildFailed(
            f"{headline}\n--- last build output ---\n{tail}", user_fault=True, code=code
        )

    def _worker(self, put: Any) -> None:
        """Thread body: stream the build, turning chunks into whole lines."""
        pending = ""
        try:
            client = self._client_factory()
            client.stream = self._stream
            try:
                stream = client.build(
                    decode=True, rm=True, forcerm=True, pull=False, **self._kwargs
                )
                for chunk in stream:
                    if "error" in chunk or "errorDetail" in chunk:
                        detail = chunk.get("errorDetail", {}).get("message")
                        put("error", chunk.get("error") or detail or str(chunk))
                        return
                    text = chunk.get("stream") or chunk.get("status") or ""
                    pending += text
                    *complete, pending = pending.split("\n")
                    for line in complete:
                        put("line", _clean(line))
                if pending:
                    put("line", _clean(pending))
                put("done", None)
            finally:
                client.close()
        except Exception as exc:  # handed to the loop, which decides what it means
            if not self._stream.stopped.is_set():
                put("exception", exc)


async def _next_item(
    queue: asyncio.Queue[tuple[str, Any]], cancel: asyncio.Event, wait_s: float
) -> tuple[str, Any] | None:
    """The next queued item, or None when cancel is set or the timeout passes first."""
    if cancel.is_set() or wait_s <= 0:
        return None
    getter = asyncio.ensure_future(queue.get())
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        done, _ = await asyncio.wait(
            {getter, waiter}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiter.cancel()
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


def _exception_failure(exc: BaseException) -> BuildFailed:
    """An exception from the SDK: the engine rejecting the Dockerfile is the user's fault,
    anything else (no socket, connection lost) is the platform's."""
    if isinstance(exc, docker.errors.APIError):
        message = str(exc.explanation or exc)
        lower = message.lower()
        user_markers = ("parse error", "unknown instruction", "cannot locate", "dockerfile")
        if exc.is_client_error() or any(m in lower for m in user_markers):
            return BuildFailed(f"the build was rejected: {message}", user_fault=True)
        return BuildFailed(f"engine error: {message}", user_fault=False, code="engine_error")
    return BuildFailed(
        f"the Docker engine is unavailable: {exc}", user_fault=False, code="engine_unavailable"
    )


async def _cancellable(work: Awaitable[T], cancel: asyncio.Event) -> T:
    """Await work unless cancel is set first; then cancel it (git kills its process group)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise BuildCancelled()


def _clean(line: str) -> str:
    """The classic builder colours stderr with ANSI escapes; logs are plain text."""
    return _ANSI_RE.sub("", line).rstrip("\r")


def _install_cached(lines: list[str], install_step: int | None) -> bool | None:
    """Whether the classic builder reused the install step: its 'Step N/M' line is followed
    by ' ---> Using cache'. None when the plan has no install step."""
    if install_step is None:
        return None
    prefix = f"Step {install_step}/"
    for index, line in enumerate(lines):
        if line.startswith(prefix):
            following = lines[index + 1 : index + 3]
            return any(USING_CACHE in f for f in following)
    return None


def _describe(plan: Plan) -> str:
    if plan.language == "dockerfile":
        return f"the repository's {plan.dockerfile}"
    parts = [f"{plan.language} on {plan.base_image}"]
    if plan.install_command:
        parts.append(f"install: {plan.install_command}")
    if plan.build_command:
        parts.append(f"build: {plan.build_command}")
    parts.append(f"start: {plan.start_command}")
    return "; ".join(parts)
