"""/applications: the application resource of SPEC §2."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from ipaas.api.deps import current_user, platform
from ipaas.api.errors import not_found
from ipaas.api.schemas import (
    AppCreate,
    AppCreated,
    AppOut,
    AppPage,
    AppUpdate,
    BuildOut,
    DeleteOptions,
    EventOut,
    ReleaseOut,
    RollbackRequest,
    StatusOut,
)
from ipaas.apps import operations
from ipaas.apps.envs import env_out
from ipaas.apps.service import AppService, Principal
from ipaas.domain.repos import redact_url
from ipaas.domain.states import State
from ipaas.platform import Platform
from ipaas.runtime.base import ContainerStats
from ipaas.store.apps import NotFound, StatusRow
from ipaas.store.models import Application

router = APIRouter(prefix="/applications", tags=["applications"])
StateName = Literal[
    "pending", "building", "starting", "running", "failed", "crashed", "rolling_out",
    "stopped", "deleting",
]  # fmt: skip


async def service(p: Platform = Depends(platform)) -> AppService:
    return AppService(p)


def app_out(p: Platform, app: Application, reveal: bool = False) -> AppOut:
    return AppOut(
        id=app.id,
        name=app.name,
        kind=app.kind,
        owner=app.owner_id,
        repo=redact_url(app.repo),  # rows from before credentials were split off URLs
        branch=app.branch,
        commit=app.commit,
        built_commit=app.built_commit,
        root_directory=app.root_directory,
        port=app.port,
        envs=env_out(p.cipher, app.envs_encrypted, reveal),
        build=app.build,
        health_check=app.health_check,
        volumes=app.volumes,
        resources=app.resources,
        replicas=app.replicas,
        visibility=app.visibility,
        state=app.state,
        state_reason=app.state_reason,
        current_release=app.current_release,
        url=app.url,
        address=app.address,
        dns_name=f"{app.name}.{p.settings.base_domain}",
        created_at=app.created_at,
        updated_at=app.updated_at,
    )


@router.post("", status_code=201, response_model=AppCreated)
async def create_app(
    body: AppCreate, who: Principal = Depends(current_user), svc: AppService = Depends(service)
) -> AppCreated:
    app = await svc.create(who, body)
    return AppCreated(id=app.id, state=app.state)


@router.get("", response_model=AppPage)
async def list_apps(
    kind: Literal["web", "database", "viewer"] | None = None,
    state: StateName | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
    who: Principal = Depends(current_user),
    p: Platform = Depends(platform),
) -> AppPage:
    rows, total = await p.apps.list(who.user_id, kind=kind, state=state, limit=limit, offset=offset)
    return AppPage(items=[app_out(p, a) for a in rows], total=total, limit=limit, offset=offset)


@router.get("/{app_id}", response_model=AppOut)
async def get_app(
    app_id: str,
    reveal_secrets: bool = False,
    who: Principal = Depends(current_user),
    svc: AppService = Depends(service),
) -> AppOut:
    return app_out(svc.p, await svc.get(who, app_id), reveal_secrets)


def _etag(row: StatusRow) -> str:
    return f'"{row.version}"'


def _status_body(row: StatusRow) -> bytes:
    out = StatusOut(
        id=row.id,
        state=row.state,
        reason=row.state_reason,
        version=row.version,
        url=row.url,
        current_release=row.current_release,
        updated_at=row.updated_at,
    )
    return out.model_dump_json().encode()


@router.get(
    "/{app_id}/status",
    response_model=StatusOut,
    responses={304: {"description": "unchanged since If-None-Match"}},
)
async def app_status(
    app_id: str,
    request: Request,
    wait: float = Query(0, ge=0, le=60, description="long-poll: wait up to N s for a change"),
    who: Principal = Depends(current_user),
    p: Platform = Depends(platform),
) -> Response:
    try:
        row = await p.apps.status(app_id, who.user_id)
        known = request.headers.get("if-none-match")
        deadline = time.monotonic() + wait
        while known == _etag(row) and (remaining := deadline - time.monotonic()) > 0:
            # Changes made in this process wake us at once; other processes' within a second.
            await p.bus.wait(app_id, min(remaining, 1.0))
            row = await p.apps.status(app_id, who.user_id)
    except NotFound:
        raise not_found("application") from None
    headers = {"ETag": _etag(row), "Cache-Control": "no-cache"}
    if known == _etag(row):
        return Response(status_code=304, headers=headers)
    return Response(_status_body(row), media_type="application/json", headers=headers)


@router.patch("/{app_id}", response_model=AppOut)
async def update_app(
    app_id: str,
    body: AppUpdate,
    who: Principal = Depends(current_user),
    svc: AppService = Depends(service),
) -> AppOut:
    return app_out(svc.p, await svc.update(who, app_id, body))


@router.get("/{app_id}/events", response_model=list[EventOut])
async def app_events(
    app_id: str,
    after: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    who: Principal = Depends(current_user),
    svc: AppService = Depends(service),
) -> list[EventOut]:
    await svc.get(who, app_id)
    rows = await svc.p.apps.events(app_id, limit=limit, after=after)
    return [EventOut.model_validate(e, from_attributes=True) for e in rows]


def _accepted(app_id: str, state: str) -> Response:
    return Response(
        json.dumps({"id": app_id, "state": state}), status_code=202, media_type="application/json"
    )


async def _state(p: Platform, app_id: str) -> str:
    return (await p.apps.status(app_id, None)).state


@router.post("/{app_id}/restart", status_code=202, response_model=AppCreated)
async def restart_app(
    app_id: str, who: Principal = Depends(current_user), svc: AppService = Depends(service)
) -> Response:
    await svc.get(who, app_id)
    await operations.redeploy(svc.p, app_id, None, "restart requested")
    return _accepted(app_id, await _state(svc.p, app_id))


@router.post("/{app_id}/stop", status_code=202, response_model=AppCreated)
async def stop_app(
    app_id: str, who: Principal = Depends(current_user), svc: AppService = Depends(service)
) -> Response:
    await svc.get(who, app_id)
    await operations.stop(svc.p, app_id)
    return _accepted(app_id, State.STOPPED.value)


@router.post("/{app_id}/start", status_code=202, response_model=AppCreated)
async def start_app(
    app_id: str, who: Principal = Depends(current_user), svc: AppService = Depends(service)
) -> Response:
    await svc.get(who, app_id)
    await operations.start(svc.p, app_id)
    return _accepted(app_id, await _state(svc.p, app_id))


@router.post("/{app_id}/rollout", status_code=202, response_model=AppCreated)
async def rollout_app(
    app_id: str, who: Principal = Depends(current_user), svc: AppService = Depends(service)
) -> Response:
    app = await svc.get(who, app_id)
    await operations.rollout(svc.p, app)
    return _accepted(app_id, await _state(svc.p, app_id))


@router.post("/{app_id}/rollback", status_code=202, response_model=AppCreated)
async def rollback_app(
    app_id: str,
    body: RollbackRequest,
    who: Principal = Depends(current_user),
    svc: AppService = Depends(service),
) -> Response:
    await svc.get(who, app_id)
    await operations.rollback(svc.p, app_id, body.release)
    return _accepted(app_id, await _state(svc.p, app_id))


@router.delete("/{app_id}", status_code=204)
async def delete_app(
    app_id: str,
    volumes: bool = False,
    who: Principal = Depends(current_user),
    svc: AppService = Depends(service),
) -> Response:
    await svc.get(who, app_id)
    await operations.delete(svc.p, app_id, DeleteOptions(volumes=volumes).volumes)
    return Response(status_code=204)


@router.get("/{app_id}/releases", response_model=list[ReleaseOut])
async def list_releases(
    app_id: str, who: Principal = Depends(current_user), svc: AppService = Depends(service)
) -> list[ReleaseOut]:
    app = await svc.get(who, app_id)
    rows = await svc.p.builds.releases(app_id)
    return [_release_out(r, app) for r in rows]


@router.get("/{app_id}/releases/{number}", response_model=ReleaseOut)
async def get_release(
    app_id: str,
    number: int,
    who: Principal = Depends(current_user),
    svc: AppService = Depends(service),
) -> ReleaseOut:
    app = await svc.get(who, app_id)
    release = await svc.p.builds.release(app_id, number)
    if release is None:
        raise not_found("release")
    return _release_out(release, app)


def _release_out(r: object, app: Application) -> ReleaseOut:
    data = {
        k: getattr(r, k)
        for k in ("number", "commit", "image_id", "image_tag", "plan", "build_duration_s")
    }
    data["created_at"] = getattr(r, "created_at")  # noqa: B009
    return ReleaseOut(**data, current=app.current_release == data["number"])


@router.get("/{app_id}/builds", response_model=list[BuildOut])
async def list_builds(
    app_id: str, who: Principal = Depends(current_user), svc: AppService = Depends(service)
) -> list[BuildOut]:
    await svc.get(who, app_id)
    rows = await svc.p.builds.of_app(app_id)
    return [BuildOut.model_validate(b, from_attributes=True) for b in rows]


@router.get("/{app_id}/builds/{number}", response_model=BuildOut)
async def get_build(
    app_id: str,
    number: int,
    who: Principal = Depends(current_user),
    svc: AppService = Depends(service),
) -> BuildOut:
    await svc.get(who, app_id)
    build = await svc.p.builds.get(app_id, number)
    if build is None:
        raise not_found("build")
    return BuildOut.model_validate(build, from_attributes=True)


@router.post("/{app_id}/builds/{number}/cancel", status_code=202, response_model=BuildOut)
async def cancel_build(
    app_id: str,
    number: int,
    who: Principal = Depends(current_user),
    svc: AppService = Depends(service),
) -> BuildOut:
    app = await svc.get(who, app_id)
    build = await svc.p.builds.request_cancel(app_id, number)
    if build is None:
        from ipaas.api.errors import Problem

        raise Problem(409, "not_cancellable", "the build is not queued or running")
    if build.status == "cancelled":
        await operations.build_cancelled(svc.p, app)
    return BuildOut.model_validate(build, from_attributes=True)


class RuntimeOut(BaseModel):
    container_id: str | None
    image: str | None
    state: str | None
    started_at: datetime | None
    restart_count: int
    last_exit_code: int | None
    oom_killed: bool
    memory_bytes: int | None
    memory_limit_bytes: int | None
    cpu_percent: float | None


_stats_cache: dict[str, tuple[float, ContainerStats | None]] = {}
STATS_TTL_S = 5.0


async def _cached_stats(p: Platform, container_id: str) -> ContainerStats | None:
    """Engine stats take ~1 s to sample: serve them from a short cache."""
    hit = _stats_cache.get(container_id)
    if hit and time.monotonic() - hit[0] < STATS_TTL_S:
        return hit[1]
    assert p.runtime is not None
    stats = await p.runtime.stats(container_id)
    if len(_stats_cache) > 1000:
        _stats_cache.clear()
    _stats_cache[container_id] = (time.monotonic(), stats)
    return stats


@router.get("/{app_id}/runtime", response_model=RuntimeOut)
async def app_runtime(
    app_id: str, who: Principal = Depends(current_user), svc: AppService = Depends(service)
) -> RuntimeOut:
    """The serving container as the engine sees it, with memory and CPU use."""
    app = await svc.get(who, app_id)
    p = svc.p
    info = await p.runtime.inspect(app.container_id) if p.runtime and app.container_id else None
    stats = await _cached_stats(p, info.id) if info and info.state == "running" else None
    restarts = sum(1 for e in await p.apps.events(app_id, limit=1000) if e.to_state == "crashed")
    return RuntimeOut(
        container_id=info.id if info else None,
        image=info.image if info else None,
        state=info.state if info else None,
        started_at=info.started_at if info else None,
        restart_count=restarts,
        last_exit_code=info.exit_code if info else None,
        oom_killed=info.oom_killed if info else False,
        memory_bytes=stats.memory_bytes if stats else None,
        memory_limit_bytes=stats.memory_limit_bytes if stats else None,
        cpu_percent=stats.cpu_percent if stats else None,
    )
