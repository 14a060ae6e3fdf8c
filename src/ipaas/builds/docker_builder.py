"""ImageBuilder on the Docker engine: fetch, plan, render, `docker build` (classic builder).

The repository is hostile: its files are read through safefs, nothing is written into the
checkout (the context tar is made by builds/context.py from the checkout plus a folder of
generated files), a user Dockerfile may only build on allowed images (builds/baseimage.py), and
the build runs under memory, CPU, time, context-size and log-size caps.

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
import uuid
from collections import deque
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
from ipaas.builds.baseimage import ImagePolicy, check_dockerfile
from ipaas.builds.cgroups import BuildCgroup
from ipaas.builds.context import write_context
from ipaas.builds.dockerfile import DOCKERFILE_NAME, label_line, render
from ipaas.builds.dockerfile_policy import check_user_dockerfile
from ipaas.builds.ignore import IgnoreRules
from ipaas.builds.images import stage_ca_certs
from ipaas.builds.logcap import MAX_LINE_CHARS, CappedLog
from ipaas.builds.plan import Plan, context_files, detect_plan
from ipaas.builds.repo_guard import RepoGuard
from ipaas.checkpoints import Checkpoints, PassThrough, Phase
from ipaas.config import Settings
from ipaas.domain.labels import (
    LABEL_APP,
    LABEL_APP_NAME,
    LABEL_PLATFORM,
    LABEL_RELEASE,
    image_repository,
)
from ipaas.runtime.docker import BUILD_NETWORK, ensure_bridge_network
from ipaas.runtime.firewall import FirewallError, HostFirewall

LABEL_COMMIT = "org.ipaas.commit"
TAIL_LINES = 20  # log lines quoted in the reason of a failed build
USING_CACHE = "---> Using cache"
_LAYER_RE = re.compile(r"---> ([0-9a-f]{12,64})\s*$")
_FROM_STEP_RE = re.compile(r"Step \d+/\d+ : FROM\s", re.IGNORECASE)
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
_CPU_PERIOD = 100_000  # microseconds; the quota is cpus times this


# What a shell or runtime prints when fork() hits the pids cap (EAGAIN).
_FORK_FAILED = "resource temporarily unavailable"


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


class _APIClient(docker.APIClient):  # type: ignore[misc]  # docker ships no types
    """Keeps the streaming build response so another thread can close it, and adds the
    engine's /build parameters docker-py does not pass (cpuperiod, cpuquota)."""

    stream: _Stream | None = None
    extra_build_params: dict[str, Any] | None = None

    def _post(self, url: str, **kwargs: Any) -> Any:
        if self.extra_build_params and url.endswith("/build"):
            kwargs["params"] = {**(kwargs.get("params") or {}), **self.extra_build_params}
        return super()._post(url, **kwargs)

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
        firewall: HostFirewall | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self._settings = settings
        self._checkpoints = checkpoints or PassThrough()
        self._firewall = firewall or HostFirewall()
        self._docker_host = docker_host
        self._work_root = work_root
        self._slots = asyncio.Semaphore(max(1, settings.build.concurrency))
        self._network_ready = False

    async def build(
        self, request: BuildRequest, log: LogSink, cancel: asyncio.Event | None = None
    ) -> BuildResult:
        for what, value in (("app name", request.app_name), ("app id", request.app_id)):
            if not _NAME_RE.match(value):
                raise BuildFailed(
                    f"{what} {value!r} cannot be part of an image name",
                    user_fault=True,
                    code="bad_option",
                )
        capped = CappedLog(log, self._settings.build.max_log_kb * 1024)
        try:
            return await self._build_capped(request, capped, cancel)
        finally:
            with contextlib.suppress(Exception):
                await capped.close()

    async def _build_capped(
        self, request: BuildRequest, log: LogSink, cancel: asyncio.Event | None
    ) -> BuildResult:
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
        labels = {
            LABEL_PLATFORM: "1",
            LABEL_APP: request.app_id,
            LABEL_APP_NAME: request.app_name,
            LABEL_RELEASE: str(request.release),
            LABEL_COMMIT: sha,
        }
        # Reading the checkout and writing the tar are blocking file work: off the event loop.
        plan, install_step, context_tar = await asyncio.to_thread(
            self._prepare, work, checkout, request, labels
        )
        await log(f"==> plan: {_describe(plan)}")
        await asyncio.to_thread(self._check_base_images, plan)
        await asyncio.to_thread(self._prepare_network)
        tag = f"{image_repository(request.app_name, request.app_id)}:r{request.release}"
        pids_max = self._settings.build.pids_limit
        cgroup = BuildCgroup(f"ipaas-build-{uuid.uuid4().hex[:16]}", pids_max)
        parent = await asyncio.to_thread(cgroup.create)
        if parent is None and pids_max > 0:
            await log("==> note: this host cannot cap a build's processes (build.pids_limit)")
        job = _BuildJob(
            self._client_factory,
            context_tar,
            dict(
                dockerfile=DOCKERFILE_NAME,
                tag=tag,
                # A generated Dockerfile carries them in one instruction of its own.
                labels=labels if plan.language == "dockerfile" else None,
                buildargs=dict(request.build_args),
                nocache=request.no_cache,
                container_limits=self._limits(),
                # RUN steps on the firewalled build network, not docker0: no host services.
                network_mode=BUILD_NETWORK,
            ),
            {**self._cpu_params(), **({"cgroupparent": parent} if parent else {})},
            install_step,
            pids_max if parent else 0,
        )
        await log(f"==> building image {tag}")
        await self._checkpoints.reached(Phase.BUILD)
        previous = await asyncio.to_thread(self._image_id_or_none, tag)
        try:
            await job.run(log, cancel, self._settings.build.timeout_s)
        except BaseException:
            # Like a failed build on Heroku: the cache keeps what earlier builds made, and
            # nothing of this one (no dangling layers on the engine).
            await asyncio.shield(asyncio.to_thread(self._remove_layers, job.created[::-1]))
            raise
        finally:
            await asyncio.to_thread(cgroup.remove)
        await self._log_install_cache(job.install_cached, log)
        image_id = await asyncio.to_thread(self._image_id, tag)
        if previous and previous != image_id:  # the tag moved on (a retried build): the old
            await asyncio.to_thread(self._remove_layers, [previous], True)  # image dangled
        await asyncio.to_thread(self._keep_stages, tag.rsplit(":", 1)[0], job.stages)
        duration = time.monotonic() - started
        await log(f"==> built {tag} ({image_id[:19]}) in {duration:.1f} s")
        result_plan = plan.to_dict()
        result_plan["install_cached"] = job.install_cached
        return BuildResult(image_id, tag, sha, result_plan, duration)

    async def _fetch(
        self, checkout: Path, request: BuildRequest, log: LogSink, cancel: asyncio.Event
    ) -> str:
        ref = request.branch or "default branch"
        await log(f"==> fetching {git.redact_url(request.repo_url)} ({ref})")
        await self._checkpoints.reached(Phase.CLONE)
        sha = await _cancellable(
            git.fetch(
                request.repo_url,
                request.branch,
                request.commit,
                checkout,
                timeout_s=self._settings.build.clone_timeout_s,
                max_bytes=self._settings.build.max_repo_mb * 1_000_000,
                allow_local=request.allow_local,
                allowed_schemes=[*self._settings.allowed_repo_schemes, *request.extra_schemes],
                guard=RepoGuard.from_settings(self._settings) if request.check_host else None,
                credentials=request.credentials,
            ),
            cancel,
        )
        # History is not part of the image; dropping it keeps the build context small.
        shutil.rmtree(checkout / ".git", ignore_errors=True)
        await log(f"==> commit {sha}")
        return sha

    def _prepare(
        self, work: Path, checkout: Path, request: BuildRequest, labels: dict[str, str]
    ) -> tuple[Plan, int | None, Path]:
        """Plan, write the Dockerfile (and CA certs) into a folder of our own, check a user
        Dockerfile's images, and write the context tar; return (plan, install step, tar)."""
        settings = self._settings.build
        max_read = settings.max_read_kb * 1024
        plan = detect_plan(checkout, request.options, settings.base_images, max_read_bytes=max_read)
        files = context_files(checkout, plan.root_directory, max_read)
        generated = work / "generated"
        generated.mkdir()
        install_step = None
        if plan.language == "dockerfile":
            assert plan.dockerfile is not None
            # The engine gets the very text checked here, not the repository's file.
            text = files.read_text(plan.dockerfile) or ""
            check_dockerfile(text, self._image_policy(request), request.build_args)
            check_user_dockerfile(text)
        else:
            has_ca = bool(stage_ca_certs(settings.extra_ca_certs, generated / "ca"))
            rendered = render(plan, with_ca=has_ca, build_args=request.build_args.keys())
            text, install_step = rendered.text + label_line(labels) + "\n", rendered.install_step
        (generated / "Dockerfile").write_text(text)
        ignore = IgnoreRules(files.read_text(".dockerignore") or "")
        context_tar = work / "context.tar"
        with context_tar.open("wb") as out:
            write_context(
                out,
                files.root,
                generated,
                ignore=ignore,
                max_bytes=settings.max_context_mb * 1_000_000,
            )
        return plan, install_step, context_tar

    def _image_policy(self, request: BuildRequest) -> ImagePolicy:
        return ImagePolicy(
            base_images=tuple(self._settings.build.base_images.values()),
            patterns=tuple(self._settings.build.allowed_base_images),
            own_repository=image_repository(request.app_name, request.app_id),
        )

    def _prepare_network(self) -> None:
        """The host firewall before every build (re-applied whenever its rules are gone), and
        the build network once per process (both idempotent)."""
        try:
            if self._settings.runtime.firewall and not (
                self._network_ready and self._firewall.installed()
            ):
                self._firewall.apply()
            if self._network_ready:
                return
            client = self._client_factory()
            try:
                # No container-to-container traffic: concurrent builds of different users
                # share this network.
                icc = {"com.docker.network.bridge.enable_icc": "false"}
                ensure_bridge_network(client, BUILD_NETWORK, {LABEL_PLATFORM: "1"}, icc)
            finally:
                client.close()
        except FirewallError as exc:
            raise BuildFailed(
                f"the host firewall could not be set up: {exc}",
                user_fault=False,
                code="firewall_unavailable",
            ) from exc
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise _exception_failure(exc) from exc
        self._network_ready = True

    def _limits(self) -> dict[str, int]:
        memory = self._settings.build.memory_mb * 1024 * 1024
        return {"memory": memory, "memswap": memory}

    def _cpu_params(self) -> dict[str, int]:
        """CPU quota of each build step's container (the /build API has cpuperiod/cpuquota;
        its pids cap comes from the parent cgroup, builds/cgroups.py)."""
        cpus = self._settings.build.cpus
        if cpus <= 0:
            return {}
        return {"cpuperiod": _CPU_PERIOD, "cpuquota": max(1000, int(cpus * _CPU_PERIOD))}

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

    def _image_id_or_none(self, tag: str) -> str | None:
        try:
            return self._image_id(tag)
        except BuildFailed:
            return None

    def _remove_layers(self, images: list[str], prune: bool = False) -> None:
        """Remove images that no tag names (newest first); one a container or a child
        layer still uses is left alone. `prune` also takes their unused untagged parents."""
        if not images:
            return
        try:
            client = self._client_factory()
        except (docker.errors.DockerException, requests.RequestException):
            return  # the engine is gone: its layers are the least of the build's problems
        try:
            for image in images:
                with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                    if not client.inspect_image(image).get("RepoTags"):
                        client.remove_image(image, noprune=not prune)
        finally:
            client.close()

    def _keep_stages(self, repository: str, stages: list[str]) -> None:
        """The earlier stages of a multi-stage build stay as untagged images: the next build's
        cache, and dangling for good once a newer build replaces them. Each gets a moving tag
        in the app's repository (`stage-1`, ...), removed with the app; the image a tag moves
        away from, and tags of stages the Dockerfile no longer has, go at once."""
        try:
            client = self._client_factory()
        except (docker.errors.DockerException, requests.RequestException):
            return
        try:
            wanted = {f"stage-{n}": image for n, image in enumerate(stages, 1)}
            for name, image in wanted.items():
                with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                    self._tag_stage(client, repository, name, image)
            for listed in client.images(name=repository):
                for tag in listed.get("RepoTags") or []:
                    name = tag.rsplit(":", 1)[1]
                    if name.startswith("stage-") and name not in wanted:
                        with contextlib.suppress(docker.errors.DockerException):
                            client.remove_image(tag)
        except (docker.errors.DockerException, requests.RequestException):
            pass  # a stage left untagged is cache, not a fault of this build
        finally:
            client.close()

    def _tag_stage(self, client: Any, repository: str, name: str, image: str) -> None:
        tags = client.inspect_image(image).get("RepoTags") or []
        if any(not t.startswith(f"{repository}:") for t in tags):
            return  # a stage with no step of its own is a base image, not ours to tag
        previous = self._image_id_or_none(f"{repository}:{name}")
        client.tag(image, repository, name, force=True)
        if previous and previous != client.inspect_image(image)["Id"]:
            self._remove_layers([previous], prune=True)

    async def _log_install_cache(self, cached: bool | None, log: LogSink) -> None:
        if cached is not None:
            await log(
                "==> dependencies: cached (install step reused)"
                if cached
                else "==> dependencies: installed"
            )


class _BuildJob:
    """One docker build stream, run in a worker thread, consumed on the event loop.

    Only the last TAIL_LINES lines are kept (for the failure reason); what the output says
    about the install step and success is noted as the lines pass.
    """

    def __init__(
        self,
        client_factory: Any,
        context_tar: Path,
        kwargs: dict[str, Any],
        extra_params: dict[str, Any],
        install_step: int | None,
        pids_max: int = 0,
    ) -> None:
        self._client_factory = client_factory
        self._context_tar = context_tar
        self._kwargs = kwargs
        self._extra_params = extra_params
        self._install_step = install_step
        self._stream = _Stream()
        self._lines: deque[str] = deque(maxlen=TAIL_LINES)
        self._step = ""
        self._built = False
        self._after_install = 0  # lines still to look at for the install step's cache verdict
        self.install_cached: bool | None = None
        # Layers this build committed itself (not reused from the cache): what it leaves on
        # the engine if it fails.
        self.created: list[str] = []
        self._fresh = False
        # The image of each stage but the last (a multi-stage build), which the classic
        # builder leaves untagged.
        self.stages: list[str] = []
        self._last_layer = ""
        self._memory_mb = kwargs["container_limits"]["memory"] // 2**20
        self._pids_max = pids_max

    def _note(self, line: str) -> None:
        self._lines.append(line)
        self._note_layer(line)
        if self._after_install:
            self._after_install -= 1
            if USING_CACHE in line:
                self.install_cached, self._after_install = True, 0
        if line.startswith("Step "):
            self._step = line
            if self._install_step is not None and line.startswith(f"Step {self._install_step}/"):
                # The classic builder prints ' ---> Using cache' right after a reused step.
                self.install_cached, self._after_install = False, 2
        elif line.startswith("Successfully built"):
            self._built = True

    def _note_layer(self, line: str) -> None:
        """The classic builder says ' ---> <image>' once a step's layer is committed, or
        found in the cache (' ---> Using cache' first). Every step but FROM commits one: COPY
        and ADD too, which print no ' ---> Running in <container>'."""
        if line.startswith("Step "):
            new_stage = bool(_FROM_STEP_RE.match(line))
            self._fresh = not new_stage  # FROM names an image, it makes none
            if new_stage and self._last_layer:
                # The last layer so far is the image of the stage before.
                self.stages.append(self._last_layer)
        elif USING_CACHE in line:
            self._fresh = False
        elif layer := _LAYER_RE.search(line):
            self._last_layer = layer.group(1)
            if self._fresh:
                self.created.append(layer.group(1))
                self._fresh = False

    async def run(self, log: LogSink, cancel: asyncio.Event, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        thread = threading.Thread(target=self._worker, args=(put,), daemon=True)
        thread.start()
        deadline = loop.time() + timeout_s
        try:
            await self._consume(queue, log, cancel, deadline, timeout_s)
        finally:
            self._stream.stop()  # no-op after a normal end; aborts the build otherwise

    async def _consume(
        self,
        queue: asyncio.Queue[tuple[str, Any]],
        log: LogSink,
        cancel: asyncio.Event,
        deadline: float,
        timeout_s: float,
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
                self._note(value)
                await log(value)
            elif kind == "error":
                raise self._failure(value)
            elif kind == "exception":
                raise _exception_failure(value)
            elif kind == "done":
                if not self._built:
                    # The stream ended without a verdict: the engine dropped the connection.
                    raise BuildFailed(
                        "the build output ended before the image was built",
                        user_fault=False,
                        code="engine_error",
                    )
                return

    def _failure(self, message: str) -> BuildFailed:
        lower = message.lower()
        if any(marker in lower for marker in _PLATFORM_ERRORS):
            return BuildFailed(f"engine error: {message}", user_fault=False, code="engine_error")
        code = "build_failed"
        install_step = self._install_step
        if install_step is not None and self._step.startswith(f"Step {install_step}/"):
            code = "install_failed"
        headline = message.strip()[:MAX_LINE_CHARS]
        if "non-zero code: 137" in message:  # SIGKILL: in a build, the memory cap
            code = "build_out_of_memory"
            headline += (
                f" (killed: most likely out of memory; builds may use "
                f"{self._memory_mb} MB, the build.memory_mb setting)"
            )
        tail = "\n".join(self._lines)
        if self._pids_max and any(_FORK_FAILED in line.lower() for line in self._lines):
            code = "build_too_many_processes"
            headline += (
                f" (a step could not start more processes: builds may run {self._pids_max},"
                " the build.pids_limit setting)"
            )
        return BuildFailed(
            f"{headline}\n--- last build output ---\n{tail}", user_fault=True, code=code
        )

    def _worker(self, put: Any) -> None:
        """Thread body: stream the build, turning chunks into whole lines."""
        pending = ""
        try:
            client = self._client_factory()
            client.stream = self._stream
            client.extra_build_params = self._extra_params
            try:
                with self._context_tar.open("rb") as context:
                    stream = client.build(
                        fileobj=context,
                        custom_context=True,
                        decode=True,
                        rm=True,
                        forcerm=True,
                        pull=False,
                        **self._kwargs,
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
                        put("line", _clean(line[:MAX_LINE_CHARS]))
                    while len(pending) > MAX_LINE_CHARS:  # a line without end: pass it in parts
                        put("line", _clean(pending[:MAX_LINE_CHARS]))
                        pending = pending[MAX_LINE_CHARS:]
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
