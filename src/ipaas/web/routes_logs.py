"""The log streams the dashboard's viewer follows: the API's Server-Sent Events, signed in by
the session cookie instead of a bearer token (an EventSource cannot send headers)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from ipaas.api.deps import app_service, log_service
from ipaas.api.routes_logs import make_cursor, respond
from ipaas.api.schemas import BuildNumber
from ipaas.apps.service import AppService
from ipaas.logs.service import LogService
from ipaas.store.models import Application
from ipaas.web.routes_app import owned

router = APIRouter(prefix="/apps/{app_id}")


@router.get("/logs/stream")
async def app_log_stream(
    request: Request,
    from_: str | None = Query(None, alias="from", max_length=64),
    stream: Literal["stdout", "stderr"] | None = None,
    cursor: str | None = Query(None, max_length=512),
    app: Application = Depends(owned),
    logs: LogService = Depends(log_service),
) -> Response:
    start = make_cursor(request, _resumed(request, cursor), from_, None, stream)
    return await respond(request, logs.app_pager(app.id), start, 1000, follow=True)


@router.get("/builds/{number}/log/stream")
async def build_log_stream(
    number: BuildNumber,
    request: Request,
    cursor: str | None = Query(None, max_length=512),
    app: Application = Depends(owned),
    svc: AppService = Depends(app_service),
    logs: LogService = Depends(log_service),
) -> Response:
    build = await svc.build(app, number)
    start = make_cursor(request, _resumed(request, cursor), "1970-01-01T00:00:00Z", None, None)

    async def finished() -> bool:
        return await logs.build_done(build.id)

    pager = logs.build_pager(build.id)
    return await respond(request, pager, start, 1000, follow=True, finished=finished)


def _resumed(request: Request, cursor: str | None) -> str | None:
    """An EventSource reconnects to the same URL: its Last-Event-ID, the newer resume point,
    must win over the cursor the page started from."""
    return None if request.headers.get("last-event-id") else cursor
