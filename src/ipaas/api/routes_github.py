"""/auth/github (sign in with GitHub) and /providers/github (the caller's repositories)."""

from __future__ import annotations

import base64
from typing import Any, Literal, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from ipaas.api.deps import current_user, settings, user_store
from ipaas.api.errors import Problem
from ipaas.api.routes_auth import Sessions
from ipaas.api.schemas import TokenPair
from ipaas.apps.service import Principal
from ipaas.apps.signin import GitHubSignIn
from ipaas.apps.sources import GITHUB, Sources, user_error
from ipaas.config import Settings
from ipaas.providers.base import ProviderError, RateLimit, RepoProvider
from ipaas.store.users import UserStore

router = APIRouter(tags=["github"])
STATE_COOKIE = "ipaas_github_state"
COOKIE_PATH = "/api/v1/auth/github"
DASHBOARD_CALLBACK = "/login/github/callback"
OwnerName = Query(..., pattern=r"^[A-Za-z0-9-]{1,39}$")


def sources(request: Request) -> Sources:
    return cast(Sources, request.app.state.sources)


def signin(request: Request) -> GitHubSignIn:
    found = cast(GitHubSignIn | None, request.app.state.github_signin)
    if found is None:
        raise Problem(404, "no_provider", "GitHub sign-in is not configured on this platform")
    return found


async def _maybe_user(request: Request) -> Principal | None:
    """The caller when they sent credentials (they link GitHub to their account), else None."""
    if not request.headers.get("authorization"):
        return None
    return await current_user(request)


class LoginStart(BaseModel):
    authorize_url: str


@router.get("/auth/github/login", responses={302: {"description": "to GitHub"}})
async def github_login(
    request: Request,
    format: Literal["redirect", "json"] = "redirect",  # noqa: A002 - the query's name
    flow: GitHubSignIn = Depends(signin),
    config: Settings = Depends(settings),
) -> Response:
    """Start the OAuth web flow; a signed-in caller links GitHub to their own account."""
    who = await _maybe_user(request)
    start = await flow.start(who.user_id if who else None)
    response: Response
    if format == "json":
        response = JSONResponse(LoginStart(authorize_url=start.authorize_url).model_dump())
    else:
        response = RedirectResponse(start.authorize_url, status_code=302)
    set_state_cookie(response, STATE_COOKIE, start.nonce, COOKIE_PATH, config)
    return response


def set_state_cookie(
    response: Response, name: str, nonce: str, path: str, config: Settings
) -> None:
    """The nonce of a round trip through GitHub, for the browser that starts it only: GitHub
    sends that browser back with the state, and both must match."""
    response.set_cookie(
        name, nonce, max_age=config.github.state_ttl_s, path=path, httponly=True,
        samesite="lax", secure=config.api_url.startswith("https://"),
    )  # fmt: skip


@router.get("/auth/github/callback", response_model=TokenPair)
async def github_callback(
    request: Request,
    code: str = Query(..., min_length=1, max_length=512),
    state: str = Query(..., min_length=1, max_length=4096),
    flow: GitHubSignIn = Depends(signin),
    p: Sessions = Depends(),
) -> Response:
    if flow.dashboard_page(state) is not None:
        # Started from the dashboard (GitHub knows one callback): its own callback finishes
        # it, with the cookie it set, and signs the browser in there.
        query = urlencode({"code": code, "state": state})
        return RedirectResponse(f"{DASHBOARD_CALLBACK}?{query}", status_code=303)
    user = await flow.finish(code, state, request.cookies.get(STATE_COOKIE))
    from ipaas.store.models import new_id

    pair = await p.issue_pair(user.id, user.role, new_id())
    response = JSONResponse(pair.model_dump())
    response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response


@router.delete("/auth/github", status_code=204)
async def github_unlink(
    who: Principal = Depends(current_user), users: UserStore = Depends(user_store),
    found: Sources = Depends(sources),
) -> Response:  # fmt: skip
    user = await users.get(who.user_id)
    if user is not None and user.password_hash is None:
        raise Problem(
            409, "last_login", "set a password first: GitHub is this account's only login"
        )
    if not await found.identities.unlink(who.user_id, GITHUB):
        raise Problem(404, "not_found", "no GitHub account is linked")
    return Response(status_code=204)


# --- the caller's repositories ----------------------------------------------------------------
class RateLimitOut(BaseModel):
    limit: int
    remaining: int
    reset_at: float


class RepoOut(BaseModel):
    full_name: str
    private: bool
    default_branch: str | None
    pushed_at: str | None
    html_url: str


class BranchOut(BaseModel):
    name: str
    commit: str
    default: bool
    committed_at: str | None


class ListingOut(BaseModel):
    items: list[dict[str, Any]]
    page: int
    per_page: int
    has_next: bool
    rate_limit: RateLimitOut | None


class FileOut(BaseModel):
    path: str
    ref: str | None
    size: int
    encoding: Literal["utf-8", "base64"]
    content: str


async def _github(who: Principal, found: Sources) -> tuple[RepoProvider, str]:
    return await found.provider(GITHUB), await found.require_token(who.user_id)


def _limit(value: RateLimit | None) -> RateLimitOut | None:
    return RateLimitOut(**value.__dict__) if value else None


@router.get("/providers/github/repos", response_model=ListingOut)
async def github_repos(
    page: int = Query(1, ge=1, le=1000),
    per_page: int = Query(30, ge=1, le=100),
    q: str | None = Query(None, max_length=100, description="a part of owner/name"),
    who: Principal = Depends(current_user),
    found: Sources = Depends(sources),
) -> ListingOut:
    """The caller's repositories on GitHub, newest push first."""
    github, token = await _github(who, found)
    try:
        listing = await github.repos(token, page=page, per_page=per_page, search=q)
    except ProviderError as exc:
        raise user_error(exc) from None
    items = [RepoOut(**r.__dict__).model_dump() for r in listing.items]
    return ListingOut(
        items=items, page=page, per_page=per_page, has_next=listing.has_next,
        rate_limit=_limit(github.rate_limit(token)),
    )  # fmt: skip


@router.get("/providers/github/repos/{owner}/{repo}/branches", response_model=ListingOut)
async def github_branches(
    owner: str,
    repo: str,
    page: int = Query(1, ge=1, le=1000),
    per_page: int = Query(30, ge=1, le=100),
    who: Principal = Depends(current_user),
    found: Sources = Depends(sources),
) -> ListingOut:
    """A repository's branches: its default branch first, then by last commit, newest first."""
    github, token = await _github(who, found)
    try:
        listing = await github.branches(token, f"{owner}/{repo}", page=page, per_page=per_page)
    except ProviderError as exc:
        raise user_error(exc) from None
    items = [BranchOut(**b.__dict__).model_dump() for b in listing.items]
    return ListingOut(
        items=items, page=page, per_page=per_page, has_next=listing.has_next,
        rate_limit=_limit(github.rate_limit(token, "graphql")),
    )  # fmt: skip


@router.get("/providers/github/repos/{owner}/{repo}/contents/{path:path}", response_model=FileOut)
async def github_file(
    owner: str,
    repo: str,
    path: str,
    ref: str | None = Query(None, max_length=255),
    who: Principal = Depends(current_user),
    found: Sources = Depends(sources),
) -> FileOut:
    """One file of a repository (to preview what the platform would detect)."""
    github, token = await _github(who, found)
    try:
        data = await github.read_file(token, f"{owner}/{repo}", path, ref)
    except ProviderError as exc:
        raise user_error(exc) from None
    try:
        return FileOut(path=path, ref=ref, size=len(data), encoding="utf-8", content=data.decode())
    except UnicodeDecodeError:
        text = base64.b64encode(data).decode()
        return FileOut(path=path, ref=ref, size=len(data), encoding="base64", content=text)


@router.get("/providers/github/rate_limit", response_model=RateLimitOut | None)
async def github_rate_limit(
    who: Principal = Depends(current_user), found: Sources = Depends(sources)
) -> RateLimitOut | None:
    """GitHub's rate limit of the caller's token, as GitHub last reported it."""
    github, token = await _github(who, found)
    return _limit(github.rate_limit(token))
