"""The warden: follows the engine's events, restarts crashed apps with exponential backoff,
gives up on a crash loop, and reconciles the store with what runs (at start and periodically)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Histogram

from ipaas.apps.deployer import Deployer
from ipaas.apps.scheduler import BuildScheduler
from ipaas.config import WardenSettings
from ipaas.domain.deadlines import overdue_build
from ipaas.domain.reconcile import (
    GAVE_UP,
    Action,
    Do,
    finish_times_needed,
    moved_addresses,
    reconcile_actions,
)
from ipaas.domain.states import IllegalTransition, State
from ipaas.runtime.base import ContainerInfo, Runtime, RuntimeEvent, RuntimeUnavailable
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.builds import BuildStore
from ipaas.store.identity import StoreIdentity
from ipaas.store.models import Application, utcnow
from ipaas.warden.policy import CrashPolicy

log = structlog.get_logger()
S = State
# After the engine went away, deaths seen for this long are blamed on it, not on the apps.
ENGINE_GRACE_S = 60.0

# How the warden's cost grows with the apps it watches (bench/scale.py reads these on /metrics).
RECONCILE_SECONDS = Histogram(
    "ipaas_warden_reconcile_seconds", "One full comparison of the store with the engine"
)
EVENT_SECONDS = Histogram(
    "ipaas_warden_event_seconds",
    "Handling of one engine event, from its arrival to done",
    ["action"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


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
        identity: StoreIdentity,
        no_builder_s: float = 600.0,
        deploy_deadline_s: float = 600.0,
    ) -> None:
        self.apps = apps
        self.builds = builds
        self.runtime = runtime
        self.deployer = deployer
        self.scheduler = scheduler
        self.settings = settings
        self.log_max_age_s = log_max_age_s
        self.no_builder_s = no_builder_s
        self.deploy_deadline_s = deploy_deadline_s
        self.identity = identity
        w = settings
        self.policy = CrashPolicy(
            w.backoff_base_s, w.backoff_cap_s, w.crash_limit, w.crash_window_s
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._engine_lost_at: float | None = None
        self._restarts: dict[str, asyncio.Task[None]] = {}
        # One crash is seen by its "die" event and may be by a reconcile too: count it once.
        self._crash_lock = asyncio.Lock()
        # When retired containers stopped (None: gone), asked once each: a stopped container
        # is never started again (restarts make new ones), so the answer stays true.
        self._stopped_at: dict[str, datetime | None] = {}

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
                    with EVENT_SECONDS.labels(event.action).time():
                        if event.action == "die":  # an "oom" comes first, while it still runs
                            await self._on_death(event)
            except RuntimeUnavailable:
                self.engine_lost()
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
        if self._engine_recently_lost():
            # The engine went away and took the container with it: the platform's fault. No
            # crash is counted against the app, which is restarted as soon as possible.
            reason = f"the container engine went away; restarting. Last state: {reason}"
            await self._mark_crashed(app.id, reason)
            self._schedule_restart(app.id, self.policy.delay(1))
            return
        count = self.policy.record(app.id, time.monotonic())
        if self.policy.gives_up(count):
            reason = self._give_up_reason(count, reason)
        await self._mark_crashed(app.id, reason)
        log.info("app crashed", app_id=app.id, count=count, reason=reason[:200])
        if not self.policy.gives_up(count):
            self._schedule_restart(app.id, self.policy.delay(count))

    async def _mark_crashed(self, app_id: str, reason: str) -> None:
        with contextlib.suppress(IllegalTransition, NotFound):
            await self.apps.transition(app_id, S.CRASHED, reason, expected=S.RUNNING)

    def _give_up_reason(self, count: int, last: str) -> str:
        return (
            f"{GAVE_UP} crashed {count} times within {self.policy.window_s:.0f} s; "
            f"restart it yourself once fixed. Last crash: {last}"
        )

    def engine_lost(self) -> None:
        """The engine did not answer: crashes seen in the next while are the platform's."""
        self._engine_lost_at = time.monotonic()

    def _engine_recently_lost(self) -> bool:
        lost = self._engine_lost_at
        return lost is not None and time.monotonic() - lost < ENGINE_GRACE_S

    async def _crash_reason(self, container_id: str | None) -> str:
        info = await self.runtime.inspect(container_id) if container_id else None
        if info is None:
            return "the container is gone"
        what = "killed: out of memory (OOM)" if info.oom_killed else f"exited with {info.exit_code}"
        tail = await self.runtime.last_log_lines(info.id, 10)
        return f"{what}; last log lines:\n{tail}" if tail.strip() else what

    def _schedule_restart(self, app_id: str, delay_s: float) -> None:
        old = self._restarts.pop(app_id, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        self._restarts[app_id] = asyncio.create_task(self._restart_later(app_id, delay_s))

    async def _restart_later(self, app_id: str, delay_s: float) -> None:
        """One restart attempt after `delay_s`; whatever happens, either the app runs, the user
        acted, the warden gave up (and says so), or another attempt is scheduled."""
        await asyncio.sleep(delay_s)
        again: float | None
        try:
            again = await self._restart(app_id)
        except RuntimeUnavailable:
            self.engine_lost()
            again = self.policy.delay(1)  # the engine's fault: try again, count nothing
        except Exception as exc:  # noqa: BLE001 - an attempt that raised is retried, never dropped
            log.warning("restart attempt failed", app_id=app_id, error=repr(exc))
            again = self.policy.delay(max(self.policy.count(app_id, time.monotonic()), 1))
        if self._restarts.get(app_id) is asyncio.current_task():
            del self._restarts[app_id]
        if again is not None:
            self._schedule_restart(app_id, again)

    async def _restart(self, app_id: str) -> float | None:
        """Bring the app's current release back. Returns the wait before another attempt, or
        None when there is nothing more to do."""
        try:
            app = await self.apps.get(app_id)
        except NotFound:
            return None
        if app.state != S.CRASHED or app.current_release is None:
            return None  # the user acted meanwhile
        release = await self.builds.release(app_id, app.current_release)
        if release is None:
            return None
        reason = await self.deployer.bring_up(app, release, (S.CRASHED,))
        if not reason:
            log.info("app restarted", app_id=app_id, release=release.number)
            return None
        # Could not even start: another crash.
        count = self.policy.record(app_id, time.monotonic())
        if self.policy.gives_up(count):
            await self.apps.set_fields(app_id, state_reason=self._give_up_reason(count, reason))
            return None
        await self.apps.set_fields(app_id, state_reason=f"restart failed: {reason}")
        return self.policy.delay(count)

    # --- reconciliation -----------------------------------------------------------------------
    async def _reconcile_loop(self) -> None:
        """Every `recover_interval_s`: finish what is half-done — deploys whose release is
        built (by this process, a separate builder, or one killed mid-way) and deletes. Every
        `reconcile_interval_s`: the full comparison with the engine."""
        last_reconcile = float("-inf")
        while True:
            await self._guarded("recovery", self.deployer.recover)
            await self._guarded("deadlines", self.sweep_deadlines)
            await self._guarded("deploy deadlines", self.sweep_deploys)
            if self.scheduler.behind:  # a broker was down: again each round until it takes them
                await self._guarded("requeue", self.scheduler.requeue_all)
            if time.monotonic() - last_reconcile >= self.settings.reconcile_interval_s:
                last_reconcile = time.monotonic()
                await self._guarded("reconcile", self.reconcile)
            await asyncio.sleep(self.settings.recover_interval_s)

    async def sweep_deadlines(self) -> None:
        """Builds that waited too long for a builder fail, and so does what waited on them."""
        now = utcnow()
        for build in await self.builds.overdue(now - timedelta(seconds=self.no_builder_s)):
            late = overdue_build(
                build.status, build.not_before, build.lease_until, now, self.no_builder_s
            )
            if late is None or not await self.builds.fail_if_still(build, late.reason, late.code):
                continue
            log.warning("build past its deadline", build=build.id, code=late.code)
            await self._settle_build_failure(build.app_id, f"build {build.number}", late.reason)

    async def sweep_deploys(self) -> None:
        """Apps `starting` or `rolling_out` past their deadline, with no build under way (builds
        have deadlines of their own), stop waiting: the old release serves, or the app fails."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.deploy_deadline_s)
        moving = [S.STARTING, S.ROLLING_OUT]
        for app in await self.apps.in_state_since_before(moving, cutoff):
            latest = await self.builds.of_app(app.id, limit=1)
            if latest and (latest[0].finished_at is None or latest[0].finished_at > cutoff):
                continue  # building, or built recently: the deploy itself is younger
            reason = f"the release did not come up within {self.deploy_deadline_s:g} s"
            log.warning("deploy past its deadline", app_id=app.id)
            await self.deployer.abandon(app.id, reason)

    async def _settle_build_failure(self, app_id: str, what: str, reason: str) -> None:
        with contextlib.suppress(IllegalTransition, NotFound):
            app = await self.apps.get(app_id)
            if app.state not in (S.PENDING, S.BUILDING, S.ROLLING_OUT):
                return
            if not await self.deployer.keep_serving(app, f"{what} failed", reason):
                await self.apps.transition(app_id, S.FAILED, f"{what} failed: {reason}")

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
        started = time.monotonic()
        await self._reconcile()
        took = time.monotonic() - started
        RECONCILE_SECONDS.observe(took)
        log.debug("warden.reconcile", duration_s=round(took, 4))

    async def _reconcile(self) -> None:
        try:
            # One engine call, however many containers: no inspect per container.
            listed = await self.runtime.list_containers(detail=False)
        except RuntimeUnavailable:
            self.engine_lost()
            raise
        known = {a.id: a for a in await self.apps.all_in_states(list(S))}
        now = datetime.now(UTC)
        containers = await self._with_stop_times(known, listed, now)
        store_id = await self.identity.id()
        actions = reconcile_actions(
            known, containers, self._restarts, now, self.log_max_age_s, store_id
        )
        for action in actions:
            await self._carry_out(action, known)
        await self.deployer.move_routes(moved_addresses(known, containers))
        await self.deployer.sync_routes()

    async def _with_stop_times(
        self, known: Mapping[str, Application], listed: Sequence[ContainerInfo], now: datetime
    ) -> list[ContainerInfo]:
        """The listing, with the stop times that log retention needs: from the engine for a
        container not asked about before, from memory otherwise."""
        needed = set(finish_times_needed(known, listed, now, self.log_max_age_s))
        present = {c.id for c in listed}
        self._stopped_at = {k: v for k, v in self._stopped_at.items() if k in present}
        for container_id in sorted(needed - self._stopped_at.keys()):
            info = await self.runtime.inspect(container_id)
            self._stopped_at[container_id] = info.finished_at if info else None
        return [
            replace(c, finished_at=self._stopped_at[c.id]) if c.id in needed else c for c in listed
        ]

    async def _carry_out(self, action: Action, known: dict[str, Application]) -> None:
        if action.do in (Do.REMOVE_STRAY, Do.REMOVE_EXPIRED):
            log.info("removing a container", why=action.do.value, container=action.container_id)
            with contextlib.suppress(Exception):
                await self.runtime.remove(action.container_id or "")
        elif action.do == Do.RETIRE_EXTRA:
            await self.deployer.retire(action.app_id, keep=known[action.app_id].container_id)
        elif action.do == Do.REPORT_CRASH:
            await self.crashed(known[action.app_id], action.container_id)
        elif action.do == Do.RESTART:
            self._schedule_restart(action.app_id, 0)
