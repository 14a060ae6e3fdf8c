"""/admin/github/app: the platform's GitHub App, made with GitHub's manifest flow (admins)."""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Literal, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel

from ipaas.admin.github_app import GitHubAppSetup, ManifestStart
from ipaas.api.deps import admin_user, settings
from ipaas.api.errors import Problem
from ipaas.api.routes_github import set_state_cookie
from ipaas.apps.service import Principal
from ipaas.config import Settings
from ipaas.domain.github import install_url
from ipaas.store.models import GitHubAppRecord

router = APIRouter(prefix="/admin/github/app", tags=["github"])
STATE_COOKIE = "ipaas_github_app_state"
COOKIE_PATH = "/api/v1/admin/github/app"


def app_setup(request: Request) -> GitHubAppSetup:
    found = cast(GitHubAppSetup | None, request.app.state.github_app)
    if found is None:
        raise Problem(404, "no_provider", "GitHub is not available on this platform")
    return found


class GitHubAppOut(BaseModel):
    """The App made with the manifest flow (never its secrets)."""

    app_id: str
    slug: str
    name: str
    owner: str
    html_url: str
    install_url: str
    created_at: datetime


class ManifestOut(BaseModel):
    post_url: str  # POST the form field `manifest` (the JSON below) here, from the browser
    manifest: dict[str, object]


def _out(record: GitHubAppRecord) -> GitHubAppOut:
    return GitHubAppOut(
        app_id=record.app_id, slug=record.slug, name=record.name, owner=record.owner,
        html_url=record.html_url, install_url=install_url(record.html_url),
        created_at=record.created_at,
    )  # fmt: skip


@router.get("", response_model=GitHubAppOut)
async def github_app(
    _: Principal = Depends(admin_user), setup: GitHubAppSetup = Depends(app_setup)
) -> GitHubAppOut:
    """The GitHub App made with the manifest flow (404 when none was)."""
    record = await setup.current()
    if record is None:
        raise Problem(404, "not_found", "no GitHub App was made with the manifest flow")
    return _out(record)


@router.delete("", status_code=204)
async def forget_github_app(
    _: Principal = Depends(admin_user), setup: GitHubAppSetup = Depends(app_setup)
) -> Response:
    """Forget the App (delete it on GitHub too); GitHub then stops working until another
    App is made or configured."""
    if not await setup.remove():
        raise Problem(404, "not_found", "no GitHub App was made with the manifest flow")
    return Response(status_code=204)


@router.get("/manifest", responses={200: {"content": {"text/html": {}}}})
async def start_manifest_flow(
    request: Request,
    org: str | None = Query(None, max_length=39, description="make it in this organisation"),
    name: str | None = Query(None, max_length=100, description="the App's name on GitHub"),
    replace: bool = Query(False, description="make another App in place of the one made"),
    format: Literal["html", "json"] = "html",  # noqa: A002 - the query's name
    who: Principal = Depends(admin_user),
    setup: GitHubAppSetup = Depends(app_setup),
    config: Settings = Depends(settings),
) -> Response:
    """Start making the platform's GitHub App: a page whose form posts the App's manifest to
    GitHub (`format=json`: the URL and the manifest). The browser that opens it must be the
    one that comes back (a cookie)."""
    redirect = f"{config.api_url.rstrip('/')}{COOKIE_PATH}/callback"
    start = await setup.start(who.user_id, redirect_url=redirect, org=org, name=name,
                              replace=replace)  # fmt: skip
    response: Response
    if format == "json":
        response = JSONResponse(
            ManifestOut(post_url=start.post_url, manifest=start.manifest).model_dump()
        )
    else:
        response = HTMLResponse(_form(start, org))
    set_state_cookie(response, STATE_COOKIE, start.nonce, COOKIE_PATH, config)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/callback", response_model=GitHubAppOut)
async def manifest_callback(
    request: Request,
    code: str = Query(..., min_length=1, max_length=512),
    state: str = Query(..., min_length=1, max_length=4096),
    setup: GitHubAppSetup = Depends(app_setup),
) -> Response:
    """Where GitHub sends the browser back: the code becomes the App, kept encrypted. Started
    from the dashboard, the browser goes back there."""
    made = await setup.finish(code, state, request.cookies.get(STATE_COOKIE))
    response: Response
    if made.then:
        response = RedirectResponse(f"{made.then}?done=github-app", status_code=303)
    else:
        response = JSONResponse(_out(made.record).model_dump(mode="json"), status_code=201)
    response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response


def _form(start: ManifestStart, org: str | None) -> str:
    """The page: what will be made, and a button that posts the manifest to GitHub."""
    where = f"the organisation {org}" if org else "your GitHub account"
    name = str(start.manifest["name"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Create the GitHub App</title></head>
<body>
<h1>Create the platform's GitHub App</h1>
<p>GitHub will show you the App <strong>{html.escape(name)}</strong> to create in
{html.escape(where)}: read access to code, metadata and pull requests, and a webhook for
pushes and pull requests. You come back here when it is made.</p>
<form method="post" action="{html.escape(start.post_url)}">
<input type="hidden" name="manifest" value="{html.escape(json.dumps(start.manifest))}">
<button type="submit">Create the App on GitHub</button>
</form>
</body></html>
"""
