"""The apps list (live status, URL, last deploy, search) and the new-app form (name checked as
it is typed, repository checked on request)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from ipaas.api.deps import app_service
from ipaas.apps.service import AppService
from ipaas.domain.errors import IpaasError
from ipaas.domain.repo_access import redact_url
from ipaas.domain.specs import AppCreate
from ipaas.web.auth import Form, Visitor, checked_form, visitor
from ipaas.web.forms import Errors, error_of, errors_of, given, number, parse_env_lines
from ipaas.web.pages import redirect, render
from ipaas.web.routes_session import github_form_targets

router = APIRouter()
MAX_LISTED = 500
NEW_APP_FIELDS = ("name", "repo", "branch", "root_directory", "port", "health_check")


async def _listed(svc: AppService, who: Visitor, query: str) -> dict[str, Any]:
    apps, total = await svc.list_apps(who.principal, "web", None, MAX_LISTED, 0)
    needle = query.strip().lower()
    if needle:
        apps = [a for a in apps if needle in a.name or needle in a.repo.lower()]
    deploys = await svc.last_deploys(apps)
    return {"apps": apps, "deploys": deploys, "total": total, "query": query}


@router.get("/apps")
async def apps_page(
    request: Request,
    q: str = "",
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    listed = await _listed(svc, who, q[:100])
    template = "_apps_table.html" if request.headers.get("hx-request") else "apps.html"
    return render(request, template, **listed)


@router.get("/new")
async def new_app_page(
    request: Request,
    repo: str = Query("", max_length=2048),
    branch: str = Query("", max_length=255),
    _: Visitor = Depends(visitor),
) -> Response:
    """The form, filled with the repository and branch the picker chose (without JS)."""
    values = {k: v for k, v in (("repo", repo.strip()), ("branch", branch.strip())) if v}
    return await _new(request, 200, values, {})


async def _new(request: Request, status: int, values: dict[str, str], errors: Errors) -> Response:
    """With GitHub configured, the repository picker (whose "Connect GitHub" leads there)."""
    targets = await github_form_targets(request)
    return render(
        request, "new.html", status, values=values, errors=errors, github=bool(targets),
        form_targets=targets,
    )  # fmt: skip


@router.post("/new")
async def create_app(
    request: Request,
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    values = given(form, *NEW_APP_FIELDS, "memory_mb", "cpus", "visibility", "envs")
    errors: Errors
    try:
        body = AppCreate(**_create_request(values))
        app = await svc.create(who.principal, body)
    except ValidationError as exc:
        errors = errors_of(exc)
    except IpaasError as exc:
        errors = error_of(exc)
    else:
        return redirect(f"/apps/{app.id}")
    return await _new(request, 422, values, errors)


def _create_request(values: dict[str, str]) -> dict[str, Any]:
    request: dict[str, Any] = {k: v for k, v in values.items() if k in NEW_APP_FIELDS}
    if "port" in request:
        request["port"] = number(request["port"])
    resources = {k: number(values.get(k)) for k in ("memory_mb", "cpus") if k in values}
    if resources:
        request["resources"] = resources
    if "visibility" in values:
        request["visibility"] = values["visibility"]
    if "envs" in values:
        request["envs"] = parse_env_lines(values["envs"])
    return request


@router.get("/new/name-check")
async def name_check(
    request: Request,
    name: str = "",
    _: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    name = name.strip()[:100]
    problem = svc.name_problem(name) if name else None
    if name and problem is None and await svc.name_taken(name):
        problem = "the name is taken"
    return render(request, "_name_check.html", name=name, problem=problem)


@router.get("/new/repo-check")
async def repo_check(
    request: Request,
    repo: str = "",
    who: Visitor = Depends(visitor),
    svc: AppService = Depends(app_service),
) -> Response:
    repo = repo.strip()[:2048]
    info, problem = None, None
    if repo:
        try:
            info = await svc.check_repo(who.principal, repo)
        except IpaasError as exc:
            problem = exc.detail
    return render(request, "_repo_check.html", repo=redact_url(repo), info=info, problem=problem)
