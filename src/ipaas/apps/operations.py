"""Deploy, stop, start, restart, roll out, roll back and delete: the state machine in motion.

Long steps run as background tasks; every one ends in a state the user can act on, and
`recover()` finishes whatever a killed process left half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from datetime import UTC, datetime

import structlog

from ipaas.api.errors import Problem
from ipaas.apps.envs import env_dict
from ipaas.domain.states import IllegalTransition, State
from ipaas.domain.updates import Action
from ipaas.platform import Platform
from ipaas.providers.base import RepoError
from ipaas.router.base import Route
from ipaas.runtime.base import ContainerInfo, ContainerSpec, StartFailed, VolumeMount
from ipaas.store.apps import NotFound
from ipaas.store.models import Application, Release

log = structlog.get_logger()
S = State
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
DEFAULT_PORT = 8080
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def host_of(p: Platform, name: str) -> str:
    return f"{name}.{p.settings.base_domain}"


async def apply_update(p: Platform, app: Application, action: Action) -> None:
    if action == Action.REBUILD:
        await rebuild(p, app.id, "settings changed")
    elif action == Action.RESTART and app.state in (S.RUNNING, S.CRASHED):
        await redeploy(p, app.id, None, "settings changed")
    elif action == Action.REROUTE and app.state in (S.RUNNING, S.CRASHED) and p.router:
        fresh = await p.apps.get(app.id)
        if fresh.address:
            url = await p.router.set_route(Route(host_of(p, fresh.name), fresh.address))
            await p.router.remove_route(host_of(p, app.name))
            await p.apps.set_fields(app.id, url=url)


async def rebuild(p: Platform, app_id: str, reason: str) -> int:
    from ipaas.apps.service import AppService

    app = await p.apps.get(app_id)
    if app.state in (S.RUNNING, S.FAILED, S.CRASHED, S.STOPPED):
        await p.apps.transition(app_id, S.ROLLING_OUT, reason, expected=State(app.state))
    elif app.state == S.DELETING:
        raise IllegalTransition(S.DELETING, S.ROLLING_OUT)
    return await AppService(p).enqueue_build(app_id)


async def redeploy(p: Platform, app_id: str, release: int | None, reason: str) -> None:
    """Start the release (default: the current one) beside the old container, then switch."""
    await p.apps.transition(app_id, S.ROLLING_OUT, reason, target_release=release)
    p.spawn(deploy(p, app_id), f"deploy-{app_id}")


async def stop(p: Platform, app_id: str) -> None:
    await p.apps.transition(
        app_id, S.STOPPED, "stopped by the user", address=None, container_id=None
    )
    app = await p.apps.get(app_id)
    if p.router:
        await p.router.remove_route(host_of(p, app.name))
    await _remove_containers(p, app_id, keep=None)


async def start(p: Platform, app_id: str) -> None:
    await p.apps.transition(app_id, S.STARTING, "started by the user")
    p.spawn(deploy(p, app_id), f"deploy-{app_id}")


async def rollout(p: Platform, app: Application) -> int:
    """Rebuild the branch head, but only when it differs from what is built."""
    if app.commit is None and app.built_commit:
        from ipaas.apps.service import is_local_repo
        from ipaas.domain.repos import decode_credentials

        try:
            owner = await p.users.get(app.owner_id)
            info = await p.git.inspect(
                app.repo,
                allow_local=is_local_repo(app.repo),
                check_host=owner is None or owner.role != "admin",
                credentials=decode_credentials(p.cipher, app.repo_credentials_encrypted),
            )
        except RepoError as exc:
            raise Problem(422, exc.code, exc.detail) from None
        head = info.heads.get(app.branch or info.default_branch or "") if info.heads else None
        if head == app.built_commit:
            raise Problem(409, "up_to_date", f"{app.built_commit[:12]} is already deployed")
    return await rebuild(p, app.id, "rollout")


async def rollback(p: Platform, app_id: str, number: int) -> None:
    if await p.builds.release(app_id, number) is None:
        raise Problem(404, "not_found", f"no release {number}")
    await redeploy(p, app_id, number, f"rollback to release {number}")


async def delete(p: Platform, app_id: str, volumes: bool) -> None:
    await p.apps.transition(app_id, S.DELETING, "deleted by the user")
    await p.builds.request_cancel(app_id)
    await finish_delete(p, app_id, volumes)


async def finish_delete(p: Platform, app_id: str, volumes: bool = False) -> None:
    app = await p.apps.get(app_id)
    async with _locks[app_id]:
        if p.router:
            await p.router.remove_route(host_of(p, app.name))
        if p.runtime:
            await _remove_containers(p, app_id, keep=None, remove_all=True)
            await p.runtime.remove_app_images(app_id)
            if volumes:
                await p.runtime.remove_volumes(app_id)
        await p.apps.delete(app_id)
        if p.runtime:
            _, left = await p.apps.list(app.owner_id, limit=1)
            if left == 0:
                await p.runtime.remove_network(app.owner_id)
    _locks.pop(app_id, None)


def container_spec(p: Platform, app: Application, release: Release) -> ContainerSpec:
    rt = p.settings.runtime
    port = app.port or DEFAULT_PORT
    env = env_dict(p.cipher, app.envs_encrypted)
    env["PORT"] = str(port)
    return ContainerSpec(
        app_id=app.id,
        app_name=app.name,
        owner_id=app.owner_id,
        release=release.number,
        image=release.image_id,
        port=port,
        env=env,
        memory_mb=int(app.resources.get("memory_mb") or rt.memory_mb),
        cpus=float(app.resources.get("cpus") or rt.cpus),
        pids_limit=rt.pids_limit,
        health_check=app.health_check,
        health_timeout_s=rt.health_timeout_s,
        volumes=tuple(VolumeMount(v["name"], v["mount_path"]) for v in app.volumes),
        log_max_size=rt.log_max_size,
        log_max_files=rt.log_max_files,
    )


async def deploy(p: Platform, app_id: str) -> None:
    """Bring the target release up and route to it: starting/rolling_out → running/failed."""
    async with _locks[app_id]:
        try:
            app = await p.apps.get(app_id)
        except NotFound:
            return
        if app.state not in (S.STARTING, S.ROLLING_OUT):
            return
        try:
            await _deploy_locked(p, app)
        except Exception as exc:  # noqa: BLE001 - whatever broke, the app must not stay starting
            log.exception("deploy crashed", app_id=app_id)
            await _fail(p, app_id, f"the platform failed while starting the release: {exc!r}")


async def _deploy_locked(p: Platform, app: Application) -> None:
    number = app.target_release or app.current_release
    release = await p.builds.release(app.id, number) if number else None
    if release is None:
        await _fail(p, app.id, "there is no release to run")
        return
    reason = await bring_up(p, app, release, (S.STARTING, S.ROLLING_OUT))
    if reason:
        await _fail(p, app.id, reason)


async def bring_up(
    p: Platform, app: Application, release: Release, expected: tuple[State, ...]
) -> str | None:
    """Start the release beside whatever runs, route to it, mark the app running, retire the
    old containers. Returns None on success, else why it did not come up."""
    if p.runtime is None:
        return "no container runtime is configured"
    info, reason = await _start_with_retries(p, container_spec(p, app, release))
    if info is None:
        return reason
    address = upstream_of(info, app.port or DEFAULT_PORT)
    try:
        async with p.routes_lock:
            url = f"http://{address}/"
            if p.router:
                url = await p.router.set_route(Route(host_of(p, app.name), address))
            await p.apps.transition(
                app.id,
                S.RUNNING,
                f"release {release.number} is healthy",
                expected=expected,
                address=address,
                url=url,
                current_release=release.number,
                target_release=None,
                container_id=info.id,
            )
    except (IllegalTransition, NotFound):
        # Stopped or deleted while we started it: the new container must not linger.
        await p.runtime.remove(info.id)
        return None
    await _remove_containers(p, app.id, keep=info.id, drain_s=0.5)
    return None


def upstream_of(info: ContainerInfo, port: int) -> str:
    """Where the app answers: its address on the owner's network (the engine is local, and
    this skips the engine's port-forwarding hop), else the port published on loopback."""
    if info.ip_address:
        return f"{info.ip_address}:{port}"
    return f"127.0.0.1:{info.host_port}"


async def _start_with_retries(p: Platform, spec: ContainerSpec) -> tuple[ContainerInfo | None, str]:
    from ipaas.runtime.base import RuntimeUnavailable

    assert p.runtime is not None
    reason = "the container did not start"
    attempts = p.settings.runtime.start_attempts
    for attempt in range(1, attempts + 1):
        try:
            return await p.runtime.start(spec), ""
        except StartFailed as exc:
            reason = f"start failed {attempt} times: {exc.reason}"
        except RuntimeUnavailable as exc:
            reason = f"the container engine is unavailable: {exc}"
            await asyncio.sleep(min(2**attempt, 10))
    return None, reason


async def _fail(p: Platform, app_id: str, reason: str) -> None:
    with contextlib.suppress(IllegalTransition, NotFound):
        await p.apps.transition(app_id, S.FAILED, reason, target_release=None)
    log.warning("deploy failed", app_id=app_id, reason=reason)


async def _remove_containers(
    p: Platform, app_id: str, keep: str | None, drain_s: float = 0.0, remove_all: bool = False
) -> None:
    """Stop every container of the app but `keep`. The newest stopped ones stay (without
    ports or memory) so that their logs remain readable; older ones are removed."""
    if p.runtime is None:
        return
    others = [c for c in await p.runtime.list_containers(app_id) if c.id != keep]
    running = [c for c in others if c.state in ("running", "restarting", "created")]
    if running and drain_s:
        await asyncio.sleep(drain_s)  # let requests already sent to the old one finish
    for c in running:
        with contextlib.suppress(Exception):
            await p.runtime.stop(c.id, p.settings.runtime.stop_timeout_s)
    retained = 0 if remove_all else p.settings.runtime.retained_containers
    by_age = sorted(others, key=lambda c: c.started_at or _EPOCH, reverse=True)
    for c in by_age[retained:]:
        with contextlib.suppress(Exception):
            await p.runtime.remove(c.id)


async def recover(p: Platform) -> None:
    """After a restart: finish deploys and deletes that a killed process left half-done."""
    for app in await p.apps.all_in_states([S.STARTING, S.ROLLING_OUT, S.DELETING]):
        if app.state == S.DELETING:
            p.spawn(finish_delete(p, app.id), f"delete-{app.id}")
        elif await p.builds.active_for(app.id) is None:
            p.spawn(deploy(p, app.id), f"deploy-{app.id}")


async def requeue(p: Platform) -> None:
    """Hand queued builds to the queue again (a broker may have lost or never got them)."""
    from ipaas.queue.base import BuildJob

    for build in await p.builds.queued():
        await p.queue.enqueue(BuildJob(id=build.id, app_id=build.app_id, attempt=build.attempt))


async def build_cancelled(p: Platform, app: Application) -> None:
    """A queued build was cancelled before any builder took it."""
    if app.state in (S.PENDING, S.BUILDING, S.ROLLING_OUT):
        with contextlib.suppress(IllegalTransition, NotFound):
            await p.apps.transition(app.id, S.FAILED, "build cancelled")
