"""/applications: the application resource of SPEC §2."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from ipaas.api.deps import app_service, current_user, owned_app
from ipaas.api.schemas import (
    MAX_ROW_ID,
    AppCreate,
    AppCreated,
    AppOut,
    AppPage,
    AppUpdate,
    BuildNumber,
    BuildOut,
    DeleteOptions,
    EnvOut,
    EventOut,
    ReleaseOut,
    RollbackRequest,
    StatusOut,
)
from ipaas.apps.service import AppService, Principal
from ipaas.domain.repo_access import redact_url
from ipaas.domain.states import State
from ipaas.store.apps import StatusRow
from ipaas.store.models import Application, Release

router = APIRouter(prefix="/applications", tags=["applications"])
StateName = Literal[
    "pending", "building", "starting", "running", "failed", "crashed", "rolling_out",
    "stopped", "deleting",
]  # fmt: skip


def app_out(svc: AppService, app: Application, reveal: bool = False) -> AppOut:
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
        envs=[EnvOut(**e) for e in svc.shown_envs(app, reveal)],
        build=app.build,
        health_check=app.health_check,
        volumes=app.volumes,
        resources=app.resources,
        replicas=app.replicas,
        visibility=app.visibility,
        provider=app.provider or "git",
        previews=bool(app.previews),
        preview_of=app.preview_of,
        state=app.state,
        state_reason=app.state_reason,
        current_release=app.current_release,
        url=app.url,
        address=app.address,
        dns_name=svc.hosts.host(app.name),
        created_at=app.created_at,
        updated_at=app.updated_at,
    )


@router.post("", status_code=201, response_model=AppCreated)
async def create_app(
    body: AppCreate, who: Principal = Depends(current_user), svc: AppService = Depends(app_service)
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
    svc: AppService = Depends(app_service),
) -> AppPage:
    rows, total = await svc.list_apps(who, kind, state, limit, offset)
    return AppPage(items=[app_out(svc, a) for a in rows], total=total, limit=limit, offset=offset)


@router.get("/{app_id}", response_model=AppOut)
async def get_app(
    reveal_secrets: bool = False,
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> AppOut:
    return app_out(svc, app, reveal_secrets)


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
    svc: AppService = Depends(app_service),
) -> Response:
    row = await svc.status(who, app_id)
    known = request.headers.get("if-none-match")
    deadline = time.monotonic() + wait
    while known == _etag(row) and (remaining := deadline - time.monotonic()) > 0:
        # Changes made in this process wake us at once; other processes' within a second.
        await svc.wait_for_change(app_id, min(remaining, 1.0))
        row = await svc.status(who, app_id)
    headers = {"ETag": _etag(row), "Cache-Control": "no-cache"}
    if known == _etag(row):
        return Response(status_code=304, headers=headers)
    return Response(_status_body(row), media_type="application/json", headers=headers)


@router.patch("/{app_id}", response_model=AppOut)
async def update_app(
    body: AppUpdate,
    who: Principal = Depends(current_user),
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> AppOut:
    return app_out(svc, await svc.update(who, app, body))


@router.get("/{app_id}/events", response_model=list[EventOut])
async def app_events(
    after: int = Query(0, ge=0, le=MAX_ROW_ID),
    limit: int = Query(100, ge=1, le=1000),
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> list[EventOut]:
    rows = await svc.events(app, after=after, limit=limit)
    return [EventOut.model_validate(e, from_attributes=True) for e in rows]


async def _accepted(svc: AppService, app_id: str, state: str | None = None) -> Response:
    """202 with the state the request put the app in (what happens next is for the status
    to tell: a deploy that fails at once must not hide that the start was accepted)."""
    state = state or await svc.current_state(app_id)
    return Response(
        json.dumps({"id": app_id, "state": state}), status_code=202, media_type="application/json"
    )


@router.post("/{app_id}/restart", status_code=202, response_model=AppCreated)
async def restart_app(
    app: Application = Depends(owned_app), svc: AppService = Depends(app_service)
) -> Response:
    await svc.restart(app)
    return await _accepted(svc, app.id, State.ROLLING_OUT.value)


@router.post("/{app_id}/stop", status_code=202, response_model=AppCreated)
async def stop_app(
    app: Application = Depends(owned_app), svc: AppService = Depends(app_service)
) -> Response:
    await svc.stop(app)
    return await _accepted(svc, app.id, State.STOPPED.value)


@router.post("/{app_id}/start", status_code=202, response_model=AppCreated)
async def start_app(
    app: Application = Depends(owned_app), svc: AppService = Depends(app_service)
) -> Response:
    await svc.start(app)
    return await _accepted(svc, app.id, State.STARTING.value)


@router.post("/{app_id}/rollout", status_code=202, response_model=AppCreated)
async def rollout_app(
    who: Principal = Depends(current_user),
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> Response:
    await svc.rollout(who, app)
    return await _accepted(svc, app.id)


@router.post("/{app_id}/rollback", status_code=202, response_model=AppCreated)
async def rollback_app(
    body: RollbackRequest,
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> Response:
    await svc.rollback(app, body.release)
    return await _accepted(svc, app.id, State.ROLLING_OUT.value)


@router.delete("/{app_id}", status_code=204)
async def delete_app(
    volumes: bool = False,
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> Response:
    await svc.delete(app, DeleteOptions(volumes=volumes).volumes)
    return Response(status_code=204)


@router.get("/{app_id}/releases", response_model=list[ReleaseOut])
async def list_releases(
    app: Application = Depends(owned_app), svc: AppService = Depends(app_service)
) -> list[ReleaseOut]:
    return [_release_out(r, app) for r in await svc.releases(app)]


@router.get("/{app_id}/releases/{number}", response_model=ReleaseOut)
async def get_release(
    number: BuildNumber,
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> ReleaseOut:
    return _release_out(await svc.release(app, number), app)


def _release_out(r: Release, app: Application) -> ReleaseOut:
    return ReleaseOut(
        number=r.number,
        commit=r.commit,
        image_id=r.image_id,
        image_tag=r.image_tag,
        plan=r.plan,
        build_duration_s=r.build_duration_s,
        created_at=r.created_at,
        current=app.current_release == r.number,
    )


@router.get("/{app_id}/builds", response_model=list[BuildOut])
async def list_builds(
    app: Application = Depends(owned_app), svc: AppService = Depends(app_service)
) -> list[BuildOut]:
    return [BuildOut.model_validate(b, from_attributes=True) for b in await svc.builds_of(app)]


@router.get("/{app_id}/builds/{number}", response_model=BuildOut)
async def get_build(
    number: BuildNumber,
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> BuildOut:
    return BuildOut.model_validate(await svc.build(app, number), from_attributes=True)


@router.post("/{app_id}/builds/{number}/cancel", status_code=202, response_model=BuildOut)
async def cancel_build(
    number: BuildNumber,
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
) -> BuildOut:
    build = await svc.cancel_build(app, number)
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


@router.get("/{app_id}/runtime", response_model=RuntimeOut)
async def app_runtime(
    app: Application = Depends(owned_app), svc: AppService = Depends(app_service)
) -> RuntimeOut:
    """The serving container as the engine sees it, with memory and CPU use."""
    info, stats = await svc.observe(app)
    return RuntimeOut(
        container_id=info.id if info else None,
        image=info.image if info else None,
        state=info.state if info else None,
        started_at=info.started_at if info else None,
        restart_count=await svc.crash_count(app),
        last_exit_code=info.exit_code if info else None,
        oom_killed=info.oom_killed if info else False,
        memory_bytes=stats.memory_bytes if stats else None,
        memory_limit_bytes=stats.memory_limit_bytes if stats else None,
        cpu_percent=stats.cpu_percent if stats else None,
    )
