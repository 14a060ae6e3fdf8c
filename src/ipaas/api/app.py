"""The FastAPI application: routes, problem-details errors, body limit, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipaas import __version__
from ipaas.api import (
    errors,
    openapi,
    routes_accounts,
    routes_apps,
    routes_auth,
    routes_branches,
    routes_databases,
    routes_domains,
    routes_gate,
    routes_github,
    routes_github_app,
    routes_hooks,
    routes_logs,
    routes_nodes,
    routes_notices,
    routes_quotas,
    routes_validate,
)
from ipaas.api.deps import TokenCache
from ipaas.api.errors import problem_response
from ipaas.auth.login import password_login
from ipaas.platform import ControlPlane

REQUESTS = Counter("ipaas_http_requests_total", "HTTP requests", ["method", "status"])
LATENCY = Histogram("ipaas_http_request_seconds", "HTTP request latency", ["method"])


class BodyLimit:
    """Refuses bodies over the limit with 413 before reading them into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            response = problem_response(400, "bad_request", "NUL characters are not allowed")
            await response(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413, "body_too_large", f"the request body is over {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class Metrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            REQUESTS.labels(scope["method"], str(status)).inc()
            LATENCY.labels(scope["method"]).observe(time.perf_counter() - start)


def create_app(plane: ControlPlane, *, manage_lifecycle: bool = True) -> FastAPI:
    """The HTTP edge over the parts of `plane` it serves; with `manage_lifecycle` it also
    starts and stops the process's loops (builder, warden) with the server."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await plane.lifecycle.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await plane.lifecycle.close()

    app = FastAPI(
        title="ipaas",
        version=__version__,
        description="A self-hosted platform-as-a-service: git repository in, running app out.",
        lifespan=lifespan,
    )
    app.state.settings = plane.settings
    app.state.app_service = plane.app_service
    app.state.log_service = plane.log_service
    app.state.users = plane.stores.users
    app.state.access_tokens = plane.stores.access_tokens
    app.state.token_cache = TokenCache(plane.settings.auth.token_cache_ttl_s)
    app.state.quotas = plane.stores.quotas
    app.state.app_gate = plane.app_gate
    app.state.database_service = plane.database_service
    app.state.backup_service = plane.backup_service
    app.state.domain_service = plane.domain_service
    app.state.notices = plane.stores.notices
    app.state.notice_sender = plane.notice_sender
    app.state.account_mail = plane.account_mail
    app.state.account_removal = plane.account_removal
    app.state.rotation = plane.rotation
    app.state.data_viewer = plane.data_viewer
    app.state.push_hooks = plane.push_hooks
    app.state.sources = plane.sources
    app.state.nodes = plane.adapters.nodes
    app.state.github_signin = plane.github_signin
    app.state.github_app = plane.github_app
    app.state.password_login = password_login(plane.settings.auth, plane.stores.users)
    errors.install(app)
    openapi.install(app)
    api = APIRouter(prefix="/api/v1")
    api.include_router(routes_auth.router)
    api.include_router(routes_accounts.router)
    api.include_router(routes_notices.router)
    api.include_router(routes_apps.router)
    api.include_router(routes_domains.router)
    api.include_router(routes_validate.router)
    api.include_router(routes_logs.router)
    api.include_router(routes_databases.router)
    api.include_router(routes_github.router)
    api.include_router(routes_github_app.router)
    api.include_router(routes_branches.router)
    api.include_router(routes_hooks.router)
    api.include_router(routes_nodes.router)
    app.include_router(api)
    app.include_router(routes_gate.router)
    app.include_router(routes_domains.ask_router)
    routes_quotas.install(app)
    _meta_routes(app)
    app.add_middleware(BodyLimit, max_bytes=plane.settings.max_body_bytes)
    app.add_middleware(Metrics)
    return app


def _meta_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", tags=["meta"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
