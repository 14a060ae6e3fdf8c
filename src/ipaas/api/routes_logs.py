"""Logs: GET /applications/{id}/logs and /applications/{id}/builds/{n}/log (SPEC §5).

Window: `from` (inclusive) and `to`, RFC 3339 or `now` / `now-15m`; default the last hour.
`X-Last-Log-Nano: <time>` means "I have every line up to this time": nothing at or before it
comes back. A page never ends inside a group of lines sharing one timestamp, so that loop never
repeats nor drops a line. `next` is an opaque cursor; `?follow=1` streams Server-Sent Events
whose ids are cursors (reconnect with Last-Event-ID).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from ipaas.api.deps import app_service, log_service, owned_app
from ipaas.api.errors import Problem
from ipaas.api.schemas import BuildNumber
from ipaas.apps.service import AppService
from ipaas.domain.logpages import Cursor
from ipaas.domain.timeparse import (
    BadTime,
    clamp_ns,
    format_ns,
    parse_rfc3339_ns,
    parse_time_param,
)
from ipaas.logs import service as logs
from ipaas.logs.service import LogService
from ipaas.store.models import Application

router = APIRouter(prefix="/applications", tags=["logs"])
HOUR_NS = 3600 * 1_000_000_000


class LogLineOut(BaseModel):
    timestamp: str
    stream: str
    container: str | None
    line: str


class LogPageOut(BaseModel):
    lines: list[LogLineOut]
    next: str
    has_more: bool


def _time(value: str, what: str) -> int:
    try:
        return parse_time_param(value)
    except BadTime:
        raise Problem(400, "bad_time", f"{what}: use RFC 3339, 'now' or 'now-15m'") from None


def make_cursor(
    request: Request,
    cursor: str | None,
    from_: str | None,
    to: str | None,
    stream: str | None,
) -> Cursor:
    last_event = request.headers.get("last-event-id")
    token = cursor or last_event
    if token:
        try:
            base = Cursor.decode(token)
        except ValueError:
            raise Problem(400, "bad_cursor", "the cursor is not one this server gave") from None
    else:
        start = _time(from_, "from") if from_ else _time("now-1h", "from")
        end = _time(to, "to") if to else None
        if end is not None and start > end:
            raise Problem(400, "bad_window", "`from` is after `to`")
        base = Cursor(start - 1, end, stream)
    header = request.headers.get("x-last-log-nano")
    if header:
        try:
            seen = clamp_ns(parse_rfc3339_ns(header))
        except BadTime:
            raise Problem(400, "bad_last_log_nano", "X-Last-Log-Nano must be RFC 3339") from None
        base = Cursor(max(base.after_ns, seen), base.to_ns, base.stream)
    return base


async def respond(
    request: Request,
    fetch: logs.PageFn,
    cursor: Cursor,
    limit: int,
    follow: bool,
    finished: Any = None,
) -> Response:
    if follow:
        events = logs.follow(fetch, cursor, request.is_disconnected, finished)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    result = await logs.read_page(fetch, cursor, limit)
    # LogPageOut's shape, serialized directly: a model per line costs more than the read.
    body = {
        "lines": [logs.line_json(line) for line in result.lines],
        "next": result.next.encode(),
        "has_more": result.has_more,
    }
    headers = {"X-Last-Log-Nano": format_ns(result.next.after_ns)} if result.lines else {}
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, media_type="application/json", headers=headers)


@router.get("/{app_id}/logs", response_model=LogPageOut)
async def app_logs(
    request: Request,
    from_: str | None = Query(None, alias="from", max_length=64),
    to: str | None = Query(None, max_length=64),
    limit: int = Query(1000, ge=1, le=10_000),
    stream: Literal["stdout", "stderr"] | None = None,
    cursor: str | None = Query(None, max_length=512),
    follow: bool = False,
    app: Application = Depends(owned_app),
    log_svc: LogService = Depends(log_service),
) -> Response:
    start = make_cursor(request, cursor, from_, to, stream)
    return await respond(request, log_svc.app_pager(app.id), start, limit, follow)


@router.get("/{app_id}/builds/{number}/log", response_model=LogPageOut)
async def build_log(
    number: BuildNumber,
    request: Request,
    from_: str | None = Query(None, alias="from", max_length=64),
    to: str | None = Query(None, max_length=64),
    limit: int = Query(1000, ge=1, le=10_000),
    cursor: str | None = Query(None, max_length=512),
    follow: bool = False,
    app: Application = Depends(owned_app),
    svc: AppService = Depends(app_service),
    log_svc: LogService = Depends(log_service),
) -> Response:
    build = await svc.build(app, number)
    # A build's log is short and bounded: by default all of it, not the last hour.
    start = make_cursor(request, cursor, from_ or "1970-01-01T00:00:00Z", to, None)

    async def finished() -> bool:
        return await log_svc.build_done(build.id)

    return await respond(request, log_svc.build_pager(build.id), start, limit, follow, finished)
