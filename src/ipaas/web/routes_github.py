"""GitHub in the dashboard: "Sign in with GitHub" (the API's OAuth flow, started and finished
here with a cookie of this browser; a signed-in visitor links GitHub to their account), and
the repository picker of the New app page (the visitor's repositories and branches, listed by
the API's own provider calls), which fills the form's repository and branch."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Depends, Query, Request, Response

from ipaas.api.routes_github import github_branches, github_repos, sources
from ipaas.apps.signin import GitHubSignIn
from ipaas.apps.sources import Sources
from ipaas.domain.access import safe_next
from ipaas.domain.errors import IpaasError, NotFoundError
from ipaas.web.auth import (
    SESSION_COOKIE,
    Form,
    Visitor,
    checked_form,
    first,
    maybe_visitor,
    secure,
    set_cookie,
    visitor,
    web_sessions,
)
from ipaas.web.pages import redirect, render
from ipaas.web.routes_session import github_form_targets, login_form

router = APIRouter()
STATE_COOKIE = "ipaas_github_web"
STATE_PATH = "/login/github"
PER_PAGE = 30
FULL_NAME = r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$"


def signin(request: Request) -> GitHubSignIn:
    found = cast(GitHubSignIn | None, request.app.state.github_signin)
    if found is None:
        raise NotFoundError("GitHub is not configured on this platform", code="no_provider")
    return found


@router.post("/login/github")
async def start(
    request: Request, form: Form = Depends(checked_form), flow: GitHubSignIn = Depends(signin)
) -> Response:
    """To GitHub; a signed-in visitor links GitHub to their own account."""
    who = await maybe_visitor(request)
    wanted = safe_next(first(form, "next") or "/apps")
    begun = await flow.start(who.user.id if who else None, dashboard=wanted)
    response = redirect(begun.authorize_url)
    response.set_cookie(  # only the callback below reads it
        STATE_COOKIE, begun.nonce, max_age=flow.states.ttl_s, path=STATE_PATH, httponly=True,
        samesite="lax", secure=secure(request),
    )  # fmt: skip
    return response


@router.get("/login/github/callback")
async def finish(
    request: Request,
    code: str = Query("", max_length=512),
    state: str = Query("", max_length=4096),
    flow: GitHubSignIn = Depends(signin),
) -> Response:
    """Where the API's callback sends a flow the dashboard started: signed in (or linked),
    and on to the page the flow was started for."""
    wanted = flow.dashboard_page(state)
    if wanted is None or not code:
        return await _refused(request, "This sign-in did not start here. Start it again.")
    try:
        user = await flow.finish(code, state, request.cookies.get(STATE_COOKIE))
    except IpaasError as exc:
        return await _refused(request, f"GitHub sign-in failed: {exc.detail}")
    response = redirect(safe_next(wanted))
    response.delete_cookie(STATE_COOKIE, path=STATE_PATH)
    who = await maybe_visitor(request)
    if who is None or who.user.id != user.id:
        sessions = web_sessions(request)
        set_cookie(request, response, SESSION_COOKIE, await sessions.open(user), sessions.ttl_s)
    return response


async def _refused(request: Request, error: str) -> Response:
    return await login_form(request, "/apps", "", error, 403)


# --- the repository picker -----------------------------------------------------------------------
@router.get("/new/github")
async def repos(
    request: Request,
    q: str = Query("", max_length=100),
    page: int = Query(1, ge=1, le=1000),
    who: Visitor = Depends(visitor),
    found: Sources = Depends(sources),
) -> Response:
    """The visitor's repositories, newest push first (a fragment for htmx, else a page)."""
    context: dict[str, Any] = {"q": q, "page": page, "listing": None, "problem": None}
    try:
        context["listing"] = await github_repos(
            page, PER_PAGE, q.strip() or None, who.principal, found
        )
    except IpaasError as exc:
        context["problem"], context["code"] = exc.detail, exc.code
    return await _picker(request, "_github_repos.html", context)


@router.get("/new/github/branches")
async def branches(
    request: Request,
    repo: str = Query(..., pattern=FULL_NAME),
    who: Visitor = Depends(visitor),
    found: Sources = Depends(sources),
) -> Response:
    owner, name = repo.split("/", 1)
    context: dict[str, Any] = {"repo": repo, "listing": None, "problem": None}
    try:
        context["listing"] = await github_branches(owner, name, 1, 100, who.principal, found)
    except IpaasError as exc:
        context["problem"], context["code"] = exc.detail, exc.code
    return await _picker(request, "_github_branches.html", context)


async def _picker(request: Request, fragment: str, context: dict[str, Any]) -> Response:
    """Its "Connect GitHub" form leads to GitHub (a page of its own without htmx)."""
    context.setdefault("code", None)
    if request.headers.get("hx-request"):
        return render(request, fragment, **context)
    targets = await github_form_targets(request)
    return render(request, "new_github.html", fragment=fragment, form_targets=targets, **context)
