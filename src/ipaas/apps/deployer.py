"""Releases in motion: start one beside what runs, switch the route, retire the old containers;
stop, start and delete; finish what a killed process left half-done.

Long steps run in the background and every one ends in a state the user can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import structlog

from ipaas.apps.background import Background
from ipaas.apps.envs import env_dict
from ipaas.auth.keys import Cipher
from ipaas.checkpoints import Checkpoints, PassThrough, Phase
from ipaas.config import RuntimeSettings
from ipaas.domain.access import Visibility
from ipaas.domain.hosts import HostNames
from ipaas.domain.rollout import plan_retirement, release_to_deploy, start_retry_delay_s
from ipaas.domain.states import IllegalTransition, State
from ipaas.domain.statuses import LIVE_CONTAINERS
from ipaas.router.base import Route, Router
from ipaas.runtime.base import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    Runtime,
    RuntimeUnavailable,
    StartFailed,
    VolumeMount,
)
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.builds import BuildStore
from ipaas.store.identity import StoreIdentity
from ipaas.store.models import AppDomain, Application, Release

log = structlog.get_logger()
S = State
DEFAULT_PORT = 8080
STATS_TTL_S = 5.0


class LinkedEnv(Protocol):
    """Env vars an app gets from what is attached to it (database URLs), read at each start."""

    async def env_for(self, app_id: str) -> dict[str, str]: ...


class NoLinks:
    async def env_for(self, app_id: str) -> dict[str, str]:
        return {}


class VerifiedDomains(Protocol):
    """The custom domains an app's route carries: its verified ones."""

    async def verified_by_app(self, app_ids: Sequence[str]) -> dict[str, list[AppDomain]]: ...


class NoDomains:
    async def verified_by_app(self, app_ids: Sequence[str]) -> dict[str, list[AppDomain]]:
        return {}


def upstream_of(info: ContainerInfo, port: int) -> str:
    """Where the app answers: its tasks' addresses (a Swarm service: `a:p,b:p`), its address
    on the owner's network (the engine is local, and this skips the engine's port-forwarding
    hop), else the port published on loopback."""
    if info.upstreams:
        return ",".join(info.upstreams)
    if info.ip_address:
        return f"{info.ip_address}:{port}"
    return f"127.0.0.1:{info.host_port}"


class Deployer:
    def __init__(
        self,
        apps: AppStore,
        builds: BuildStore,
        runtime: Runtime,
        router: Router,
        cipher: Cipher,
        settings: RuntimeSettings,
        hosts: HostNames,
        background: Background,
        identity: StoreIdentity,
        checkpoints: Checkpoints | None = None,
        links: LinkedEnv | None = None,
        domains: VerifiedDomains | None = None,
    ) -> None:
        self.links = links or NoLinks()
        self.domains = domains or NoDomains()
        self.apps = apps
        self.builds = builds
        self.runtime = runtime
        self.router = router
        self.cipher = cipher
        self.settings = settings
        self.hosts = hosts
        self.background = background
        self.identity = identity
        self.checkpoints = checkpoints or PassThrough()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Held while a route changes together with the app's state, so a full sync of the
        # routes never sees one without the other.
        self.routes_lock = asyncio.Lock()
        self._stats_cache: dict[str, tuple[float, ContainerStats | None]] = {}

    # --- what users ask for -------------------------------------------------------------------
    async def redeploy(self, app_id: str, release: int | None, reason: str) -> None:
        """Start the release (default: the current one) beside the old container, then switch."""
        await self.apps.transition(app_id, S.ROLLING_OUT, reason, target_release=release)
        self.background.spawn(self.deploy(app_id), f"deploy-{app_id}")

    async def stop(self, app_id: str) -> None:
        await self.apps.transition(
            app_id, S.STOPPED, "stopped by the user", address=None, container_id=None
        )
        app = await self.apps.get(app_id)
        await self.router.remove_route(self.hosts.host(app.name))
        await self._retire(app_id, keep=None)

    async def start(self, app_id: str) -> None:
        await self.apps.transition(app_id, S.STARTING, "started by the user")
        self.background.spawn(self.deploy(app_id), f"deploy-{app_id}")

    async def reroute(self, app_id: str, old_name: str) -> None:
        """The app was renamed, or made private or public: its route follows."""
        async with self.routes_lock:  # read under it: a rollout may be switching the address
            app = await self.apps.get(app_id)
            if app.state in (S.RUNNING, S.CRASHED, S.ROLLING_OUT) and app.address:
                url = await self.router.set_route(await self._route(app, app.address))
                if old_name != app.name:
                    await self.router.remove_route(self.hosts.host(old_name))
                await self.apps.set_fields(app_id, url=url)

    async def move_routes(self, moved: Mapping[str, str]) -> None:
        """Apps that answer elsewhere now (app id -> address: the nodes a Swarm app may run
        on came or went): their address changes, and the routes follow at the next sync."""
        for app_id, address in moved.items():
            async with self.routes_lock:  # read under it: a rollout may be switching it
                try:
                    app = await self.apps.get(app_id)
                except NotFound:
                    continue
                if app.state != S.RUNNING or app.address == address:
                    continue
                await self.apps.set_fields(app_id, address=address)
            await self.apps.note(app_id, f"the nodes it runs on changed: routed to {address}")
            log.info("route moved", app_id=app_id, address=address)

    async def _route(self, app: Application, address: str) -> Route:
        domains = await self.domains.verified_by_app([app.id])
        return self._route_with(app, address, domains.get(app.id, []))

    def _route_with(self, app: Application, address: str, domains: list[AppDomain]) -> Route:
        private = app.visibility == Visibility.PRIVATE
        return Route(
            self.hosts.host(app.name),
            address,
            private=private,
            domains=tuple(d.host for d in domains if d.redirect_to is None),
            redirects=tuple((d.host, d.redirect_to) for d in domains if d.redirect_to),
        )

    async def delete(self, app_id: str, volumes: bool) -> None:
        await self.apps.transition(app_id, S.DELETING, "deleted by the user")
        await self.builds.request_cancel(app_id)
        await self.finish_delete(app_id, volumes)

    async def finish_delete(self, app_id: str, volumes: bool = False) -> None:
        app = await self.apps.get(app_id)
        async with self._locks[app_id]:
            domains = (await self.domains.verified_by_app([app_id])).get(app_id, [])
            await self.router.remove_route(self.hosts.host(app.name))
            for domain in domains:  # the rows go with the app; the certificates go now
                self.router.forget_certificate(domain.host)
            await self.checkpoints.reached(Phase.DELETE)
            await self._retire(app_id, keep=None, remove_all=True)
            await self.runtime.remove_app_images(app_id)
            if volumes:
                await self.runtime.remove_volumes(app_id)
            await self.apps.delete(app_id)
            _, left = await self.apps.list(app.owner_id, limit=1)
            if left == 0:
                await self.runtime.remove_network(app.owner_id)
        self._locks.pop(app_id, None)

    # --- bringing a release up ----------------------------------------------------------------
    async def deploy(self, app_id: str) -> None:
        """Bring the target release up and route to it: starting/rolling_out → running/failed."""
        async with self._locks[app_id]:
            try:
                app = await self.apps.get(app_id)
            except NotFound:
                return
            if app.state not in (S.STARTING, S.ROLLING_OUT):
                return
            try:
                await self._deploy_locked(app)
            except RuntimeUnavailable as exc:
                await self._fail(app_id, f"the container engine is unavailable: {exc}")
            except Exception as exc:  # noqa: BLE001 - whatever broke, the app must not stay starting
                log.exception("deploy crashed", app_id=app_id)
                await self._fail(app_id, f"the platform failed while starting the release: {exc!r}")

    async def _deploy_locked(self, app: Application) -> None:
        number = release_to_deploy(app.target_release, app.current_release)
        release = await self.builds.release(app.id, number) if number else None
        if release is None:
            await self._fail(app.id, "there is no release to run")
            return
        reason = await self.bring_up(app, release, (S.STARTING, S.ROLLING_OUT))
        what = f"release {release.number} did not come up"
        if reason and not await self.keep_serving(app, what, reason):
            await self._fail(app.id, reason)
        await self._catch_up(app, release)

    async def _catch_up(self, before: Application, release: Release) -> None:
        """Settings changed while the release was being brought up: restart it with them (a
        container setting), or move its route (a new name or visibility)."""
        app = await self.apps.get(before.id)
        if app.state not in (S.RUNNING, S.CRASHED, S.FAILED):
            return  # stopped, deleted, or already being redeployed
        store_id = await self.identity.id()
        tried = replace(self.container_spec(before, release, store_id), app_name=app.name)
        if self.container_spec(app, release, store_id) != tried:
            note = f"settings changed during the rollout: release {release.number} restarts"
            with contextlib.suppress(IllegalTransition, NotFound):
                await self.apps.transition(
                    app.id, S.ROLLING_OUT, note, expected=State(app.state),
                    target_release=release.number,
                )  # fmt: skip
                self.background.spawn(self.deploy(app.id), f"deploy-{app.id}")
        elif (app.name, app.visibility) != (before.name, before.visibility):
            await self.reroute(app.id, before.name)

    async def _serving(self, app: Application) -> bool:
        """Does the release the app ran before the rollout still answer?"""
        if not app.container_id or not app.address or app.current_release is None:
            return False
        info = await self.runtime.inspect(app.container_id)
        return info is not None and info.state in LIVE_CONTAINERS

    async def keep_serving(self, app: Application, what: str, reason: str) -> bool:
        """A rollout that failed (its build, or its release's start): when the release from
        before still answers, it goes on serving on its route and the app is `running` again,
        saying what failed and why. False when there is nothing to fall back on."""
        if app.state != S.ROLLING_OUT or not await self._serving(app):
            return False
        note = f"{what}: {reason}; release {app.current_release} still serves"
        try:
            await self.apps.transition(
                app.id, S.RUNNING, note, expected=S.ROLLING_OUT, target_release=None
            )
        except (IllegalTransition, NotFound):
            return False
        log.warning("rollout failed, the running release kept", app_id=app.id, what=what)
        return True

    async def abandon(self, app_id: str, reason: str) -> None:
        """A deploy past its deadline: the release from before goes on serving if it still
        answers, else the app fails. A deploy task still under way then finds the app moved
        on and removes what it started."""
        try:
            app = await self.apps.get(app_id)
        except NotFound:
            return
        if not await self.keep_serving(app, "the rollout did not finish", reason):
            await self._fail(app_id, reason)

    async def bring_up(
        self, app: Application, release: Release, expected: tuple[State, ...]
    ) -> str | None:
        """Start the release beside whatever runs, route to it, mark the app running, retire
        the old containers. Returns None on success, else why it did not come up."""
        spec = self.container_spec(app, release, await self.identity.id())
        linked = await self.links.env_for(app.id)
        if linked:  # an attachment the user made wins over a variable of the same name
            spec = replace(spec, env={**spec.env, **linked})
        await self.checkpoints.reached(Phase.START)
        info, reason = await self._start_with_retries(spec)
        if info is None:
            return reason
        if info.note:
            await self.apps.note(app.id, info.note)
        address = upstream_of(info, app.port or DEFAULT_PORT)
        try:
            async with self.routes_lock:
                url = await self.router.set_route(await self._route(app, address))
                await self.checkpoints.reached(Phase.ROUTE_SWITCH)
                await self.apps.transition(
                    app.id,
                    S.RUNNING,
                    f"release {release.number} is healthy",
                    expected=expected,
                    address=address,
                    url=url,
                    current_release=release.number,
                    target_release=None,
                    container_id=info.id,
                    # What runs, not what was last built: a rollout answers "up to date" only
                    # when the commit it would build is the one serving.
                    built_commit=release.commit,
                )
        except (IllegalTransition, NotFound):
            # Stopped or deleted while we started it: the new container must not linger.
            await self.runtime.remove(info.id)
            return None
        await self.checkpoints.reached(Phase.RETIRE)
        await self._retire(app.id, keep=info.id, drain_s=0.5)
        return None

    def container_spec(self, app: Application, release: Release, store_id: str) -> ContainerSpec:
        rt = self.settings
        port = app.port or DEFAULT_PORT
        env = env_dict(self.cipher, app.envs_encrypted)
        env["PORT"] = str(port)
        return ContainerSpec(
            app_id=app.id,
            app_name=app.name,
            owner_id=app.owner_id,
            release=release.number,
            image=release.image_id,
            port=port,
            replicas=app.replicas,
            env=env,
            memory_mb=int(app.resources.get("memory_mb") or rt.memory_mb),
            cpus=float(app.resources.get("cpus") or rt.cpus),
            pids_limit=rt.pids_limit,
            health_check=app.health_check,
            health_timeout_s=rt.health_timeout_s,
            volumes=tuple(VolumeMount(v["name"], v["mount_path"]) for v in app.volumes),
            log_max_size=rt.log_max_size,
            log_max_files=rt.log_max_files,
            store_id=store_id,
        )

    async def _start_with_retries(self, spec: ContainerSpec) -> tuple[ContainerInfo | None, str]:
        """Start the container, retrying; a start that fails is the release's fault (its
        reason comes back), an engine that does not answer is the platform's (raised)."""
        reason = "the container did not start"
        attempts = self.settings.start_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self.runtime.start(spec), ""
            except StartFailed as exc:
                reason = f"start failed {attempt} times: {exc.reason}"
                note = f"start attempt {attempt} of {attempts} failed: {exc.reason}"
                await self.apps.note(spec.app_id, note)
            except RuntimeUnavailable:
                if attempt == attempts:
                    raise
                await asyncio.sleep(start_retry_delay_s(attempt))
        return None, reason

    async def _fail(self, app_id: str, reason: str) -> None:
        with contextlib.suppress(IllegalTransition, NotFound):
            await self.apps.transition(app_id, S.FAILED, reason, target_release=None)
        log.warning("deploy failed", app_id=app_id, reason=reason)

    async def retire(self, app_id: str, keep: str | None) -> None:
        """Stop what a killed rollout left running beside the app's current container. A
        deploy under way in this process retires what it replaces itself (after its drain)."""
        lock = self._locks[app_id]
        if lock.locked():
            return
        async with lock:
            stopped = await self._retire(app_id, keep)
        if stopped:
            log.info("retired containers a killed rollout left", app_id=app_id, count=stopped)

    async def _retire(
        self, app_id: str, keep: str | None, drain_s: float = 0.0, remove_all: bool = False
    ) -> int:
        """Stop every container of the app but `keep`; keep the newest stopped ones (without
        ports or memory) so that their logs remain readable, remove older ones. Returns how
        many it stopped."""
        retained = 0 if remove_all else self.settings.retained_containers
        plan = plan_retirement(await self.runtime.list_containers(app_id), keep, retained)
        if plan.stop and drain_s:
            await asyncio.sleep(drain_s)  # let requests already sent to the old one finish
        for container_id in plan.stop:
            with contextlib.suppress(Exception):
                await self.runtime.stop(container_id, self.settings.stop_timeout_s)
        for container_id in plan.remove:
            with contextlib.suppress(Exception):
                await self.runtime.remove(container_id)
        return len(plan.stop)

    async def observe(
        self, container_id: str | None
    ) -> tuple[ContainerInfo | None, ContainerStats | None]:
        """A container as the engine sees it, and (while it runs) its resource use."""
        info = await self.runtime.inspect(container_id) if container_id else None
        if info is None or info.state != "running":
            return info, None
        return info, await self._stats(info.id)

    async def _stats(self, container_id: str) -> ContainerStats | None:
        """Engine stats take ~1 s to sample: served from a short cache."""
        hit = self._stats_cache.get(container_id)
        if hit and time.monotonic() - hit[0] < STATS_TTL_S:
            return hit[1]
        stats = await self.runtime.stats(container_id)
        if len(self._stats_cache) > 1000:
            self._stats_cache.clear()
        self._stats_cache[container_id] = (time.monotonic(), stats)
        return stats

    # --- the whole picture --------------------------------------------------------------------
    async def recover(self) -> None:
        """Finish deploys and deletes nobody is working on: left half-done by a killed process,
        or a release a separate builder recorded (the warden calls this every few seconds)."""
        for app in await self.apps.all_in_states([S.STARTING, S.ROLLING_OUT, S.DELETING]):
            lock = self._locks.get(app.id)
            if lock is not None and lock.locked():
                continue  # in hand in this process already
            if app.state == S.DELETING:
                self.background.spawn(self.finish_delete(app.id), f"delete-{app.id}")
            elif await self.builds.active_for(app.id) is None:
                self.background.spawn(self.deploy(app.id), f"deploy-{app.id}")

    async def sync_routes(self) -> None:
        """Routes exactly for the apps that have a serving address, read under the lock."""
        async with self.routes_lock:
            apps = await self.apps.all_in_states([S.RUNNING, S.CRASHED, S.ROLLING_OUT])
            domains = await self.domains.verified_by_app([a.id for a in apps])
            routes = [
                self._route_with(a, a.address, domains.get(a.id, [])) for a in apps if a.address
            ]
            await self.router.sync(routes)
