"""One app's pages, as Heroku lays them out: Overview, Deploy, Activity, Logs, Settings; and the
forms that act on it (each a POST with its CSRF token, answered by a redirect)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from ipaas.api.deps import app_service, log_service
from ipaas.api.routes_databases import database_service
from ipaas.apps.service import AppService
from ipaas.databases.service import DatabaseService
from ipaas.domain.errors import IpaasError, NotFoundError
from ipaas.domain.logpages import Cursor
from ipaas.domain.specs import MAX_NUMBER, AppUpdate, EnvVar
from ipaas.domain.timeparse import BadTime, parse_time_param
from ipaas.logs.service import LogService, read_page
from ipaas.store.models import Application
from ipaas.web.auth import Form, Visitor, checked_form, first, visitor
from ipaas.web.forms import Errors, error_of, errors_of, given, number, with_env, without_env
from ipaas.web.pages import redirect, render

router = APIRouter(prefix="/apps/{app_id}")
# What a redirect after a form says happened (never text from the request itself).
NOTES = {
    "restarted": "Restart requested.",
    "stopped": "Stop requested.",
    "started": "Start requested.",
    "rollout": "Rollout started: the branch head is being built.",
    "rollback": "Rollback requested.",
    "env": "Environment saved; the app restarts with it.",
    "settings": "Settings saved.",
    "renamed": "Renamed.",
}
WINDOWS = {"5m": "now-5m", "15m": "now-15m", "1h": "now-1h", "6h": "now-6h", "24h": "now-24h"}
LOG_PAGE_LINES = 1000


async def owned(
    app_id: str, who: Visitor = Depends(visitor), svc: AppService = Depends(app_service)
) -> Application:
    """The app if the visitor owns it; anyone else's is a 404 page like a missing one."""
    return await svc.get(who.principal, app_id[:64])


def _page(
    request: Request, template: str, app: Application, tab: str, status: int = 200, **context: Any
) -> Response:
    note = NOTES.get(request.query_params.get("done", ""))
    return render(request, template, status, app=app, tab=tab, notice=note, **context)


@router.get("")
async def overview(
    request: Request,
    app: Application = Depends(owned),
    svc: AppService = Depends(app_service),
    dbs: DatabaseService = Depends(database_service),
) -> Response:
    releases = await svc.releases(app)
    current = next((r for r in releases if r.number == app.current_release), None)
    attached = await dbs.attached_to(app.id)
    return _page(
        request, "app_overview.html", app, "overview", release=current, attached=attached,
        host=svc.hosts.host(app.name),
    )  # fmt: skip


@router.get("/status")
async def status_fragment(
    request: Request,
    app_id: str,
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    """The state badge, polled by htmx on every tab. Once the app is gone, htmx's "stop
    polling" status (286) rather than an error: a deleted app is no fault of the page."""
    try:
        app = await owned(app_id, who, svc)
    except NotFoundError:
        if not request.headers.get("hx-request"):
            raise
        return render(request, "_app_gone.html", 286)
    return render(request, "_app_status.html", app=app)


@router.get("/deploy")
async def deploy(
    request: Request,
    build: int | None = None,
    app: Application = Depends(owned),
    svc: AppService = Depends(app_service),
    logs: LogService = Depends(log_service),
) -> Response:
    builds = await svc.builds_of(app)
    shown = next((b for b in builds if b.number == build), builds[0] if builds else None)
    lines, resume = [], ""
    if shown is not None:
        page = await read_page(logs.build_pager(shown.id), Cursor(-1, None, None), 5000)
        lines, resume = page.lines, page.next.encode()
    return _page(
        request, "app_deploy.html", app, "deploy",
        builds=builds, shown=shown, lines=lines, resume=resume,
    )  # fmt: skip


@router.get("/activity")
async def activity(
    request: Request, app: Application = Depends(owned), svc: AppService = Depends(app_service)
) -> Response:
    events = await svc.events(app, after=0, limit=1000)
    releases = await svc.releases(app)
    return _page(
        request, "app_activity.html", app, "activity",
        events=list(reversed(events))[:200], releases=releases,
    )  # fmt: skip


@router.get("/logs")
async def logs_page(
    request: Request,
    since: str = "15m",
    stream: str = "",
    app: Application = Depends(owned),
    logs: LogService = Depends(log_service),
) -> Response:
    """The last lines of the window, rendered on the server (enough without JavaScript);
    the page's script then follows the stream live from where these end."""
    since = since if since in WINDOWS else "15m"
    chosen = stream if stream in ("stdout", "stderr") else None
    start = _start_ns(WINDOWS[since])
    page = await read_page(logs.app_pager(app.id), Cursor(start - 1, None, chosen), LOG_PAGE_LINES)
    return _page(
        request, "app_logs.html", app, "logs", lines=page.lines, more=page.has_more,
        since=since, stream=chosen or "", windows=list(WINDOWS), resume=page.next.encode(),
    )  # fmt: skip


def _start_ns(window: str) -> int:
    try:
        return parse_time_param(window)
    except BadTime:  # the windows are ours: cannot happen
        return 0


@router.get("/settings")
async def settings_page(
    request: Request, app: Application = Depends(owned), svc: AppService = Depends(app_service)
) -> Response:
    return _settings(request, svc, app)


def _settings(
    request: Request, svc: AppService, app: Application, status: int = 200, **context: Any
) -> Response:
    context.setdefault("errors", {})
    context.setdefault("values", {})
    context.setdefault("setting_values", None)
    envs = svc.shown_envs(app, reveal=False)  # secret values never reach the page
    return _page(request, "app_settings.html", app, "settings", status, envs=envs, **context)


# --- actions -----------------------------------------------------------------------------------
def _lifecycle(verb: str, done: str) -> None:
    """POST /apps/{id}/<verb>: the AppService call of that name, then back to the app."""

    async def act(
        app: Application = Depends(owned),
        _: Form = Depends(checked_form),
        svc: AppService = Depends(app_service),
    ) -> Response:
        await getattr(svc, verb)(app)
        return redirect(f"/apps/{app.id}?done={done}")

    router.add_api_route(f"/{verb}", act, methods=["POST"], name=verb)


for _verb, _done in (("restart", "restarted"), ("stop", "stopped"), ("start", "started")):
    _lifecycle(_verb, _done)


@router.post("/rollout")
async def rollout(
    app: Application = Depends(owned),
    _: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    await svc.rollout(who.principal, app)
    return redirect(f"/apps/{app.id}/deploy?done=rollout")


@router.post("/rollback")
async def rollback(
    app: Application = Depends(owned),
    form: Form = Depends(checked_form),
    svc: AppService = Depends(app_service),
) -> Response:
    release = number(first(form, "release", 12))
    if not isinstance(release, int) or not 1 <= release <= MAX_NUMBER:
        raise NotFoundError("no such release")
    await svc.rollback(app, release)
    return redirect(f"/apps/{app.id}/activity?done=rollback")


@router.post("/envs")
async def set_env(
    request: Request,
    app: Application = Depends(owned),
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    """Set one variable (added, or replacing the one of that key); a secret's field left
    empty keeps its value, which the page never showed."""
    key = first(form, "key", 200).strip()
    current = svc.shown_envs(app, reveal=True)
    old = next((e for e in current if e["key"] == key), None)
    value = first(form, "value", 40_000)
    if old is not None and old["secret"] and value == "":
        value = old["value"]
    secret = True if form.get("secret") else None
    try:
        new = EnvVar(key=key, value=value, secret=secret, build=bool(form.get("build")))
        await svc.update(who.principal, app, AppUpdate(envs=with_env(current, new)))
    except ValidationError as exc:
        return _settings(request, svc, app, 422, errors=errors_of(exc), values={"key": key})
    except IpaasError as exc:
        return _settings(request, svc, app, 422, errors=error_of(exc), values={"key": key})
    return redirect(f"/apps/{app.id}/settings?done=env")


@router.post("/envs/remove")
async def remove_env(
    app: Application = Depends(owned),
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    current = svc.shown_envs(app, reveal=True)
    remaining = without_env(current, first(form, "key", 200))
    if len(remaining) != len(current):
        await svc.update(who.principal, app, AppUpdate(envs=remaining))
    return redirect(f"/apps/{app.id}/settings?done=env")


SETTING_FIELDS = ("branch", "root_directory", "port", "health_check", "memory_mb", "cpus")


@router.post("/settings")
async def change_settings(
    request: Request,
    app: Application = Depends(owned),
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    values = given(form, *SETTING_FIELDS, "visibility")
    errors: Errors
    try:
        await svc.update(who.principal, app, AppUpdate(**_update_request(values, form)))
    except ValidationError as exc:
        errors = errors_of(exc)
    except IpaasError as exc:
        errors = error_of(exc)
    else:
        return redirect(f"/apps/{app.id}/settings?done=settings")
    return _settings(request, svc, app, 422, errors=errors, setting_values=values)


def _update_request(values: dict[str, str], form: Form) -> dict[str, Any]:
    """Every field of the form: an emptied one goes back to its default."""
    request: dict[str, Any] = {
        "branch": values.get("branch"),
        "root_directory": values.get("root_directory", ""),
        "port": number(values.get("port")),
        "health_check": values.get("health_check", "tcp"),
        "resources": {k: number(values.get(k)) for k in ("memory_mb", "cpus")},
    }
    if "visibility" in values:
        request["visibility"] = values["visibility"]
    return request


@router.post("/rename")
async def rename(
    request: Request,
    app: Application = Depends(owned),
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    name = first(form, "name", 100).strip()
    errors: Errors
    try:
        await svc.update(who.principal, app, AppUpdate(name=name))
    except ValidationError as exc:
        errors = errors_of(exc)
    except IpaasError as exc:
        errors = error_of(exc)
    else:
        return redirect(f"/apps/{app.id}/settings?done=renamed")
    return _settings(request, svc, app, 422, errors=errors, values={"name": name})


@router.post("/delete")
async def delete(
    request: Request,
    app: Application = Depends(owned),
    form: Form = Depends(checked_form),
    svc: AppService = Depends(app_service),
) -> Response:
    if first(form, "confirm", 100).strip() != app.name:
        errors = {"confirm": f"type {app.name} to confirm"}
        return _settings(request, svc, app, 422, errors=errors)
    await svc.delete(app, volumes=bool(form.get("volumes")))
    return redirect("/apps?deleted=1")
