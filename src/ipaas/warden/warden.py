"""The warden: follows the engine's events, restarts crashed apps with exponential backoff,
gives up on a crash loop, and reconciles the store with what runs (at start and periodically)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from ipaas.apps.deployer import Deployer
from ipaas.apps.scheduler import BuildScheduler
from ipaas.config import WardenSettings
from ipaas.domain.reconcile import GAVE_UP, Action, Do, reconcile_actions
from ipaas.domain.states import IllegalTransition, State
from ipaas.runtime.base import Runtime, RuntimeEvent, RuntimeUnavailable
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.builds import BuildStore
from ipaas.store.models import Application
from ipaas.warden.policy import CrashPolicy

log = structlog.get_logger()
S = State


class Warden:
    def __init__(
        self,
        apps: AppStore,
        builds: BuildStore,
        runtime: Runtime,
        deployer: Deployer,
        scheduler: BuildScheduler,
        settings: WardenSettings,
        log_max_age_s: float,
    ) -> None:
        self.apps = apps
        self.builds = builds
        self.runtime = runtime
        self.deployer = deployer
        self.scheduler = scheduler
        self.settings = settings
        self.log_max_age_s = log_max_age_s
        w = settings
        self.policy = CrashPolicy(
            w.backoff_base_s, w.backoff_cap_s, w.crash_limit, w.crash_window_s
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._restarts: dict[str, asyncio.Task[None]] = {}
        # One crash is seen by its "die" event and may be by a reconcile too: count it once.
        self._crash_lock = asyncio.Lock()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow_events(), name="warden-events"),
            asyncio.create_task(self._reconcile_loop(), name="warden-reconcile"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._restarts.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._restarts.values(), return_exceptions=True)

    # --- crashes ------------------------------------------------------------------------------
    async def _follow_events(self) -> None:
        while True:
            try:
                async for event in self.runtime.events():
                    if event.action == "die":  # an "oom" comes first, while it still runs
                        await self._on_death(event)
            except RuntimeUnavailable:
                pass
            except Exception as exc:  # noqa: BLE001 - the warden must outlive any one event
                log.warning("warden event loop error", error=repr(exc))
            await asyncio.sleep(2)  # the engine went away: reconnect

    async def _on_death(self, event: RuntimeEvent) -> None:
        try:
            app = await self.apps.get(event.app_id)
        except NotFound:
            return
        if app.state != S.RUNNING or app.container_id != event.container_id:
            return  # an old container retired by a deploy, a stop, or a delete
        await self.crashed(app, event.container_id)

    async def crashed(self, app: Application, container_id: str | None) -> None:
        """`app` as the caller saw it, running on the container that died."""
        async with self._crash_lock:
            try:
                fresh = await self.apps.get(app.id)
            except NotFound:
                return
            if fresh.state != S.RUNNING or fresh.container_id != app.container_id:
                return  # handled already, or the user acted
            await self._record_crash(fresh, container_id)

    async def _record_crash(self, app: Application, container_id: str | None) -> None:
        reason = await self._crash_reason(container_id)
        count = self.policy.record(app.id, time.monotonic())
        if self.policy.gives_up(count):
            reason = (
                f"{GAVE_UP} crashed {count} times within {self.policy.window_s:.0f} s; "
                f"restart it yourself once fixed. Last crash: {reason}"
            )
        with contextlib.suppress(IllegalTransition, NotFound):
            await self.apps.transition(app.id, S.CRASHED, reason, expected=S.RUNNING)
        log.info("app crashed", app_id=app.id, count=count, reason=reason[:200])
        if not self.policy.gives_up(count):
            self._schedule_restart(app.id, self.policy.delay(count))

    async def _crash_reason(self, container_id: str | None) -> str:
        info = await self.runtime.inspect(container_id) if container_id else None
        if info is None:
            return "the container is gone"
        what = "killed: out of memory (OOM)" if info.oom_killed else f"exited with {info.exit_code}"
        tail = await self.runtime.last_log_lines(info.id, 10)
        return f"{what}; last log lines:\n{tail}" if tail.strip() else what

    def _schedule_restart(self, app_id: str, delay_s: float) -> None:
        old = self._restarts.pop(app_id, None)
        if old is not None:
            old.cancel()
        self._restarts[app_id] = asyncio.create_task(self._restart_later(app_id, delay_s))

    async def _restart_later(self, app_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            app = await self.apps.get(app_id)
        except NotFound:
            return
        if app.state != S.CRASHED or app.current_release is None:
            return  # the user acted meanwhile
        release = await self.builds.release(app_id, app.current_release)
        if release is None:
            return
        reason = await self.deployer.bring_up(app, release, (S.CRASHED,))
        if reason:
            # Could not even start: count it as another crash.
            fresh = await self.apps.get(app_id)
            await self.apps.set_fields(app_id, state_reason=reason)
            count = self.policy.record(app_id, time.monotonic())
            if not self.policy.gives_up(count) and fresh.state == S.CRASHED:
                self._schedule_restart(app_id, self.policy.delay(count))
        self._restarts.pop(app_id, None)

    # --- reconciliation -----------------------------------------------------------------------
    async def _reconcile_loop(self) -> None:
        """Every `recover_interval_s`: finish what is half-done — deploys whose release is
        built (by this process, a separate builder, or one killed mid-way) and deletes. Every
        `reconcile_interval_s`: the full comparison with the engine."""
        requeued = False
        last_reconcile = float("-inf")
        while True:
            await self._guarded("recovery", self.deployer.recover)
            if not requeued:  # a broker may be down at start: again each round until done
                requeued = await self._guarded("requeue", self.scheduler.requeue_all)
            if time.monotonic() - last_reconcile >= self.settings.reconcile_interval_s:
                last_reconcile = time.monotonic()
                await self._guarded("reconcile", self.reconcile)
            await asyncio.sleep(self.settings.recover_interval_s)

    async def _guarded(self, what: str, step: Callable[[], Awaitable[None]]) -> bool:
        """One step of the loop; a failure is logged and the loop goes on."""
        try:
            await step()
            return True
        except RuntimeUnavailable:
            return False
        except Exception as exc:  # noqa: BLE001 - the warden must outlive any one failure
            log.warning(f"{what} failed", error=repr(exc))
            return False

    async def reconcile(self) -> None:
        """Apps that should run get a container; stray containers go; routes match the store."""
        containers = await self.runtime.list_containers()
        known = {a.id: a for a in await self.apps.all_in_states(list(S))}
        now = datetime.now(UTC)
        actions = reconcile_actions(known, containers, self._restarts, now, self.log_max_age_s)
        for action in actions:
            await self._carry_out(action, known)
        await self.deployer.sync_routes()

    async def _carry_out(self, action: Action, known: dict[str, Application]) -> None:
        if action.do in (Do.REMOVE_STRAY, Do.REMOVE_EXPIRED):
            log.info("removing a container", why=action.do.value, container=action.container_id)
            with contextlib.suppress(Exception):
                await self.runtime.remove(action.container_id or "")
        elif action.do == Do.REPORT_CRASH:
            await self.crashed(known[action.app_id], action.container_id)
        elif action.do == Do.RESTART:
            self._schedule_restart(action.app_id, 0)
