"""The builder loop: take a job, build the image, record the release, hand over to deploy.

User faults fail the app at once; platform faults are retried with exponential backoff, at most
`build.max_attempts` times. The log goes to the store as it is produced, so it survives us.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from ipaas.apps.background import Background
from ipaas.apps.envs import env_dict
from ipaas.apps.handoff import Handoff
from ipaas.apps.sources import ProviderError, Sources
from ipaas.auth.keys import Cipher
from ipaas.builds.base import (
    BuildCancelled,
    BuildFailed,
    BuildOptions,
    BuildRequest,
    BuildResult,
    ImageBuilder,
)
from ipaas.config import BuildSettings
from ipaas.domain.states import IllegalTransition, State
from ipaas.domain.statuses import BuildStatus
from ipaas.queue.base import BuildJob, BuildQueue
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.builds import BuildStore
from ipaas.store.models import Application, Build, Release
from ipaas.store.users import UserStore

log = structlog.get_logger()
S = State


class BuildLogWriter:
    """Batches build output into the store (a line a row, with a sequence number)."""

    def __init__(self, builds: BuildStore, build_id: str, first_seq: int) -> None:
        self.builds = builds
        self.build_id = build_id
        self.seq = first_seq
        self.pending: list[tuple[int, str]] = []
        self.last_flush = time.monotonic()

    async def __call__(self, line: str) -> None:
        self.pending.append((time.time_ns(), line.rstrip("\n")[:8192]))
        if len(self.pending) >= 200 or time.monotonic() - self.last_flush > 0.3:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            await self.builds.append_log(self.build_id, self.seq, batch)
            self.seq += len(batch)
        self.last_flush = time.monotonic()


class BuildWorker:
    """Takes jobs from the queue while started; builds and hands each release over."""

    def __init__(
        self,
        apps: AppStore,
        builds: BuildStore,
        users: UserStore,
        queue: BuildQueue,
        builder: ImageBuilder,
        cipher: Cipher,
        handoff: Handoff,
        settings: BuildSettings,
        background: Background,
        worker_id: str,
        sources: Sources,
    ) -> None:
        self.apps = apps
        self.builds = builds
        self.users = users
        self.queue = queue
        self.builder = builder
        self.cipher = cipher
        self.handoff = handoff
        self.settings = settings
        self.background = background
        self.worker_id = worker_id
        self.sources = sources
        self.slots = asyncio.Semaphore(settings.concurrency)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="build-worker")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await self.slots.acquire()
            try:
                job = await self.queue.lease(self.worker_id)
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unavailable
                log.warning("lease failed", error=repr(exc))
                job = None
            if job is None:
                self.slots.release()
                await self.queue.wait(1.0)
                continue
            task = self.background.spawn(self.run(job), f"build-{job.id}")
            task.add_done_callback(lambda _t: self.slots.release())

    async def run(self, job: BuildJob) -> None:
        build = await self.builds.by_id(job.id)
        try:
            app = await self.apps.get(job.app_id)
        except NotFound:
            app = None
        if build is None or app is None or app.state == S.DELETING:
            if build is not None:
                await self.builds.finish(job.id, BuildStatus.CANCELLED, error="the app is gone")
            await self.queue.complete(job)
            return
        if build.status == BuildStatus.CANCELLING:
            await self._cancelled(job, app)
            return
        if job.attempt > self.settings.max_attempts:
            await self._failed(job, app, "the builder died too often", "builder_lost")
            return
        if await self._begin(app, build.number) not in (S.BUILDING, S.ROLLING_OUT, S.STARTING):
            await self.builds.finish(job.id, BuildStatus.SUPERSEDED)
            await self.queue.complete(job)
            return
        await self._build(job, build, app)

    async def _begin(self, app: Application, number: int) -> State:
        """Move the app into its build (a new app builds, one that served rolls out); the state
        it is in then. Its state may have moved since it was read (a restart asked for
        meanwhile): the build goes on from what it became, rather than dying under its lease."""
        state = State(app.state)
        if state == S.PENDING:
            target = S.BUILDING
        elif state in (S.RUNNING, S.CRASHED, S.FAILED):
            # Asked for while an earlier build or deploy was under way: the newest wins.
            target = S.ROLLING_OUT
        else:
            return state
        try:
            await self.apps.transition(app.id, target, f"build {number} started", expected=state)
        except IllegalTransition:
            return State((await self.apps.get(app.id)).state)
        return target

    async def _build(self, job: BuildJob, build: Build, app: Application) -> None:
        writer = BuildLogWriter(self.builds, build.id, await self.builds.next_log_seq(build.id))
        if job.attempt > 1:
            await writer(f"--- attempt {job.attempt} of {self.settings.max_attempts}")
        cancel = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(job, cancel))
        try:
            owner = await self.users.get(app.owner_id)
            request = await self._request(app, build, owner is not None and owner.role == "admin")
            result = await self.builder.build(request, writer, cancel)
        except BuildCancelled:
            await writer("--- build cancelled")
            await self._cancelled(job, app)
            return
        except BuildFailed as exc:
            await writer(f"--- build failed: {exc.reason}")
            await self._build_failed(job, app, exc)
            return
        finally:
            keeper.cancel()
            await writer.flush()
        await self._succeeded(job, build, app, result)

    async def _request(self, app: Application, build: Build, by_admin: bool) -> BuildRequest:
        b = app.build or {}
        try:
            source = await self.sources.of_app(app)
        except ProviderError as exc:
            # GitHub down or rate-limited: the platform's fault, retried; not linked: the user's.
            user_fault = exc.code not in ("provider_unavailable", "github_rate_limited")
            raise BuildFailed(exc.detail, user_fault=user_fault, code=exc.code) from None
        options = BuildOptions(
            builder=b.get("builder", "auto"),
            dockerfile_path=b.get("dockerfile_path") or "Dockerfile",
            language=b.get("language"),
            install_command=b.get("install_command"),
            build_command=b.get("build_command"),
            start_command=b.get("start_command"),
            root_directory=app.root_directory or "",
        )
        return BuildRequest(
            app_id=app.id,
            app_name=app.name,
            release=build.number,
            repo_url=source.url,
            branch=app.branch,
            commit=build.requested_commit or app.commit,
            options=options,
            build_args=env_dict(self.cipher, app.envs_encrypted, build_only=True),
            allow_local=source.allow_local,
            check_host=not by_admin and not source.trusted_host,
            credentials=source.credentials,
            extra_schemes=source.extra_schemes,
        )

    async def _keep_lease(self, job: BuildJob, cancel: asyncio.Event) -> None:
        lease_s = self.settings.lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            status = await self.builds.renew(job.id, self.worker_id, lease_s)
            await self.queue.renew(job)
            if status == BuildStatus.CANCELLING:
                cancel.set()

    async def _build_failed(self, job: BuildJob, app: Application, exc: BuildFailed) -> None:
        settings = self.settings
        if exc.user_fault or job.attempt >= settings.max_attempts:
            reason = exc.reason if exc.user_fault else f"{exc.reason} (gave up after retries)"
            await self._failed(job, app, reason, exc.code)
            return
        delay = settings.retry_base_s * 2 ** (job.attempt - 1)
        log.info("build retry", app_id=app.id, attempt=job.attempt, delay=delay)
        await self.queue.retry_later(job, delay, exc.reason)

    async def _failed(self, job: BuildJob, app: Application, reason: str, code: str) -> None:
        await self.builds.finish(job.id, BuildStatus.FAILED, error=reason, error_code=code)
        await self.queue.fail(job, reason)
        await self._settle(app.id, "build failed", reason)

    async def _cancelled(self, job: BuildJob, app: Application) -> None:
        await self.builds.finish(job.id, BuildStatus.CANCELLED, error="cancelled")
        await self.queue.complete(job)
        await self._settle(app.id, "build cancelled", "")

    async def _settle(self, app_id: str, what: str, reason: str) -> None:
        """The build will not become a release: a rollout falls back on the release that
        still serves; anything else ends failed with the reason."""
        with contextlib.suppress(IllegalTransition, NotFound):
            app = await self.apps.get(app_id)
            if app.state == S.ROLLING_OUT and app.target_release is not None:
                # Settings changed while it built (`AppService`): the release that serves
                # restarts with them all the same.
                note = f"{what}: {reason or 'by request'}; release {app.target_release} restarts"
                await self.apps.note(app_id, f"{note} with the settings changed meanwhile")
                await self.handoff.deploy(app_id)
                return
            if not await self.handoff.keep_serving(app, what, reason or "by request"):
                await self.apps.transition(
                    app_id, S.FAILED, f"{what}: {reason}" if reason else what
                )

    async def _succeeded(
        self, job: BuildJob, build: Build, app: Application, result: BuildResult
    ) -> None:
        await self.builds.add_release(
            Release(
                app_id=app.id,
                number=build.number,
                build_id=build.id,
                commit=result.commit,
                image_id=result.image_id,
                image_tag=result.image_tag,
                plan=result.plan,
                build_duration_s=result.duration_s,
            )
        )
        # The target is named before the build ends: a rolling-out app with neither a build
        # nor a target is a restart left half-done, which the warden redeploys as it was.
        deploy = await self._target(app.id, build.number)
        await self.builds.finish(job.id, BuildStatus.SUCCEEDED, commit=result.commit)
        await self.queue.complete(job)
        if deploy:
            await self.handoff.deploy(app.id)

    async def _target(self, app_id: str, number: int) -> bool:
        """Make the new release the one to deploy; False when it is not to be deployed."""
        if await self.builds.newer_active(app_id, number):
            # The app's settings changed while this build ran: the newer build is deployed,
            # not this one (its release stays, for rollbacks).
            log.info("release superseded by a newer build", app_id=app_id, release=number)
            return False
        current = State((await self.apps.get(app_id)).state)
        built = f"release {number} built"
        with contextlib.suppress(IllegalTransition, NotFound):
            if current == S.BUILDING:
                await self.apps.transition(app_id, S.STARTING, built, target_release=number)
            elif current == S.ROLLING_OUT:
                await self.apps.set_fields(app_id, target_release=number)
            elif current in (S.RUNNING, S.CRASHED, S.FAILED):
                # A restart (settings changed) ended while this built: it still goes out.
                await self.apps.transition(app_id, S.ROLLING_OUT, built, target_release=number)
            else:
                return False
            return True
        return False
