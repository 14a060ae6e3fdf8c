"""The warden: follows the engine's events, restarts crashed apps with exponential backoff,
gives up on a crash loop, and reconciles the store with what runs (at start and periodically)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import structlog

from ipaas.apps import operations
from ipaas.domain.states import IllegalTransition, State
from ipaas.platform import Platform
from ipaas.router.base import Route
from ipaas.runtime.base import ContainerInfo, RuntimeEvent, RuntimeUnavailable
from ipaas.store.apps import NotFound
from ipaas.store.models import Application
from ipaas.warden.policy import CrashPolicy

log = structlog.get_logger()
S = State
LIVE = ("running", "restarting", "created")
GAVE_UP = "crash loop:"


class Warden:
    def __init__(self, p: Platform) -> None:
        self.p = p
        w = p.settings.warden
        self.policy = CrashPolicy(
            w.backoff_base_s, w.backoff_cap_s, w.crash_limit, w.crash_window_s
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._restarts: dict[str, asyncio.Task[None]] = {}
        # One crash is seen by its "die" event and may be by a reconcile too: count it once.
        self._crash_lock = asyncio.Lock()

    async def start(self) -> None:
        if self.p.runtime is None:
            return
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
        assert self.p.runtime is not None
        while True:
            try:
                async for event in self.p.runtime.events():
                    if event.action == "die":  # an "oom" comes first, while it still runs
                        await self._on_death(event)
            except RuntimeUnavailable:
                pass
            except Exception as exc:  # noqa: BLE001 - the warden must outlive any one event
                log.warning("warden event loop error", error=repr(exc))
            await asyncio.sleep(2)  # the engine went away: reconnect

    async def _on_death(self, event: RuntimeEvent) -> None:
        try:
            app = await self.p.apps.get(event.app_id)
        except NotFound:
            return
        if app.state != S.RUNNING or app.container_id != event.container_id:
            return  # an old container retired by a deploy, a stop, or a delete
        await self.crashed(app, event.container_id)

    async def crashed(self, app: Application, container_id: str | None) -> None:
        """`app` as the caller saw it, running on the container that died."""
        async with self._crash_lock:
            try:
                fresh = await self.p.apps.get(app.id)
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
            await self.p.apps.transition(app.id, S.CRASHED, reason, expected=S.RUNNING)
        log.info("app crashed", app_id=app.id, count=count, reason=reason[:200])
        if not self.policy.gives_up(count):
            self._schedule_restart(app.id, self.policy.delay(count))

    async def _crash_reason(self, container_id: str | None) -> str:
        assert self.p.runtime is not None
        info = await self.p.runtime.inspect(container_id) if container_id else None
        if info is None:
            return "the container is gone"
        what = "killed: out of memory (OOM)" if info.oom_killed else f"exited with {info.exit_code}"
        tail = await self.p.runtime.last_log_lines(info.id, 10)
        return f"{what}; last log lines:\n{tail}" if tail.strip() else what

    def _schedule_restart(self, app_id: str, delay_s: float) -> None:
        old = self._restarts.pop(app_id, None)
        if old is not None:
            old.cancel()
        self._restarts[app_id] = asyncio.create_task(self._restart_later(app_id, delay_s))

    async def _restart_later(self, app_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            app = await self.p.apps.get(app_id)
        except NotFound:
            return
        if app.state != S.CRASHED or app.current_release is None:
            return  # the user acted meanwhile
        release = await self.p.builds.release(app_id, app.current_release)
        if release is None:
            return
        reason = await operations.bring_up(self.p, app, release, (S.CRASHED,))
        if reason:
            # Could not even start: count it as another crash.
            fresh = await self.p.apps.get(app_id)
            await self.p.apps.set_fields(app_id, state_reason=reason)
            count = self.policy.record(app_id, time.monotonic())
            if not self.policy.gives_up(count) and fresh.state == S.CRASHED:
                self._schedule_restart(app_id, self.policy.delay(count))
        self._restarts.pop(app_id, None)

    # --- reconciliation -----------------------------------------------------------------------
    async def _reconcile_loop(self) -> None:
        # Here, not in the builder: the process that owns the runtime finishes what a killed
        # one left half-done, also when builds run on separate workers.
        try:
            await operations.recover(self.p)
        except Exception as exc:  # noqa: BLE001
            log.warning("recovery failed", error=repr(exc))
        requeued = False
        while True:
            if not requeued:  # a broker may be down at start: again each round until done
                try:
                    await operations.requeue(self.p)
                    requeued = True
                except Exception as exc:  # noqa: BLE001
                    log.warning("handing queued builds to the queue failed", error=repr(exc))
            try:
                await self.reconcile()
            except RuntimeUnavailable:
                pass
            except Exception as exc:  # noqa: BLE001
                log.warning("reconcile failed", error=repr(exc))
            await asyncio.sleep(self.p.settings.warden.reconcile_interval_s)

    async def reconcile(self) -> None:
        """Apps that should run get a container; stray containers go; routes match the store."""
        assert self.p.runtime is not None
        containers = await self.p.runtime.list_containers()
        by_app: dict[str, list[ContainerInfo]] = {}
        for c in containers:
            by_app.setdefault(c.app_id, []).append(c)
        known = {a.id: a for a in await self.p.apps.all_in_states(list(S))}
        await self._remove_strays(containers, known)
        await self._expire_retired(containers, known)
        for app in known.values():
            if app.state not in (S.RUNNING, S.CRASHED):
                continue
            current = next((c for c in by_app.get(app.id, []) if c.id == app.container_id), None)
            serving = current is not None and current.state in LIVE
            if app.state == S.RUNNING and not serving:
                await self.crashed(app, current.id if current else None)
            elif (
                app.state == S.CRASHED
                and app.id not in self._restarts
                and not (app.state_reason or "").startswith(GAVE_UP)
            ):
                self._schedule_restart(app.id, 0)
        await self.sync_routes()

    async def sync_routes(self) -> None:
        """Routes exactly for the apps that have a serving address, read under the lock."""
        if self.p.router is None:
            return
        async with self.p.routes_lock:
            apps = await self.p.apps.all_in_states([S.RUNNING, S.CRASHED, S.ROLLING_OUT])
            routes = [
                Route(operations.host_of(self.p, a.name), a.address) for a in apps if a.address
            ]
            await self.p.router.sync(routes)

    async def _expire_retired(
        self, containers: list[ContainerInfo], known: dict[str, Application]
    ) -> None:
        """Log retention by age: a retired container stopped longer ago than the maximum log
        age goes, its log with it (the app's current container always stays)."""
        assert self.p.runtime is not None
        max_age_s = self.p.settings.runtime.log_max_age_s
        if not max_age_s:
            return
        cutoff = datetime.now(UTC) - timedelta(seconds=max_age_s)
        for c in containers:
            app = known.get(c.app_id)
            if (
                app is not None
                and c.id != app.container_id
                and c.state in ("exited", "dead")
                and c.finished_at is not None
                and c.finished_at < cutoff
            ):
                log.info("removing a retired container past log retention", container=c.id)
                with contextlib.suppress(Exception):
                    await self.p.runtime.remove(c.id)

    async def _remove_strays(
        self, containers: list[ContainerInfo], known: dict[str, Application]
    ) -> None:
        assert self.p.runtime is not None
        for c in containers:
            if c.app_id not in known:
                log.info("removing a container of no app", container=c.id, app_id=c.app_id)
                with contextlib.suppress(Exception):
                    await self.p.runtime.remove(c.id)
