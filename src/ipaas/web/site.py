"""The whole HTTP face of a control plane: the API (`/api/v1`) and the dashboard at `/`.

Errors raised under the dashboard's routes become pages (a 404 page, a sign-in redirect, a
refused form); everywhere else they stay problem details.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ipaas.api.app import create_app
from ipaas.domain.errors import Forbidden, IpaasError, NotFoundError
from ipaas.platform import ControlPlane
from ipaas.web import (
    routes_account,
    routes_admin,
    routes_app,
    routes_apps,
    routes_databases,
    routes_dbdata,
    routes_github,
    routes_logs,
    routes_session,
)
from ipaas.web.auth import CsrfRefused, SignInNeeded, sign_in_url
from ipaas.web.pages import STATIC, redirect, render

Handler = Callable[[Request, Exception], Awaitable[Response]]


def create_site(plane: ControlPlane, *, manage_lifecycle: bool = True) -> FastAPI:
    """`create_app`'s API with the dashboard beside it (what `ipaas up` serves)."""
    app = create_app(plane, manage_lifecycle=manage_lifecycle)
    install(app, plane)
    return app


def _mark_web(request: Request) -> None:
    request.state.web = True


def install(app: FastAPI, plane: ControlPlane) -> None:
    app.state.web_sessions = plane.stores.web_sessions
    app.state.platform_health = plane.health
    app.state.app_store = plane.stores.apps
    web = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_web)])
    for module in (
        routes_session, routes_apps, routes_app, routes_logs, routes_account, routes_databases,
        routes_dbdata, routes_admin, routes_github,
    ):  # fmt: skip
        web.include_router(module.router)
    app.include_router(web)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(SignInNeeded, _sign_in)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    for kind in (IpaasError, StarletteHTTPException):
        app.add_exception_handler(kind, _as_page(cast(Handler, app.exception_handlers[kind])))


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInNeeded)
    if request.headers.get("hx-request"):  # a fragment must not become the sign-in page
        return Response(status_code=401, headers={"HX-Redirect": sign_in_url(exc.wanted)})
    return redirect(sign_in_url(exc.wanted))


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    message = "This form has expired or did not come from this site. Reload the page and retry."
    return render(request, "error.html", 403, title="Form refused", message=message)


def _as_page(api_handler: Handler) -> Handler:
    """Dashboard requests get the error as a page; the API keeps its problem details."""

    async def handle(request: Request, exc: Exception) -> Response:
        if not _wants_page(request):
            return await api_handler(request, exc)
        if isinstance(exc, NotFoundError) or (
            isinstance(exc, StarletteHTTPException) and exc.status_code == 404
        ):
            return render(request, "error.html", 404, title="Not found", message=_missing())
        if isinstance(exc, Forbidden):
            return render(request, "error.html", 403, title="Not allowed", message=exc.detail)
        if isinstance(exc, IpaasError):
            return render(request, "error.html", 409, title="Not possible", message=exc.detail)
        return await api_handler(request, exc)

    return handle


def _wants_page(request: Request) -> bool:
    if getattr(request.state, "web", False):
        return True
    api_paths = ("/api/", "/.ipaas/", "/static/", "/healthz", "/metrics", "/docs", "/openapi")
    if request.url.path.startswith(api_paths):
        return False
    return "text/html" in request.headers.get("accept", "")


def _missing() -> str:
    return "There is nothing here, or it is not yours."
