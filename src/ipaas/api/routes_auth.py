"""/auth and /users: login, refresh rotation, logout, personal API tokens, users."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request, Response

from ipaas.api.deps import admin_user, current_user, platform
from ipaas.api.errors import Problem, not_found, problem_response
from ipaas.api.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenOut,
    Login,
    Refresh,
    TokenPair,
    UserCreate,
    UserOut,
)
from ipaas.apps.service import Principal
from ipaas.auth.login import BadCredentials, LoginRefused, PasswordLogin
from ipaas.auth.passwords import PoolBusy
from ipaas.auth.throttle import retry_after_header
from ipaas.auth.tokens import hash_token, new_api_token, new_refresh_token
from ipaas.platform import Platform
from ipaas.store.models import new_id, utcnow
from ipaas.store.users import RefreshRejected, UsernameTaken

router = APIRouter(tags=["auth"])


async def issue_pair(p: Platform, user_id: str, role: str, family_id: str) -> TokenPair:
    refresh = new_refresh_token()
    await p.users.add_refresh_token(
        user_id, family_id, hash_token(refresh), p.settings.auth.refresh_token_ttl_s
    )
    return TokenPair(
        access_token=p.access_tokens.issue(user_id, role),
        refresh_token=refresh,
        expires_in=p.access_tokens.ttl_s,
    )


@router.post("/auth/login", response_model=TokenPair)
async def login(
    body: Login, request: Request, p: Platform = Depends(platform)
) -> TokenPair | Response:
    logins: PasswordLogin = request.app.state.password_login
    address = request.client.host if request.client else "unknown"
    try:
        user = await logins.authenticate(body.username, body.password, address)
    except BadCredentials:
        raise Problem(401, "invalid_credentials", "wrong user name or password") from None
    except LoginRefused as exc:
        return too_many_attempts(exc.retry_after_s)
    except PoolBusy:
        return problem_response(503, "busy", "too many logins at once", {"Retry-After": "1"})
    return await issue_pair(p, user.id, user.role, new_id())


def too_many_attempts(wait_s: float) -> Response:
    seconds = retry_after_header(wait_s)
    detail = f"too many failed logins; try again in {seconds} s"
    return problem_response(
        429, "too_many_attempts", detail, {"Retry-After": seconds}, retry_after=int(seconds)
    )


@router.post("/auth/refresh", response_model=TokenPair)
async def refresh(body: Refresh, p: Platform = Depends(platform)) -> TokenPair:
    try:
        used = await p.users.use_refresh_token(hash_token(body.refresh_token))
    except RefreshRejected as exc:
        raise Problem(401, exc.code, "the refresh token cannot be used") from None
    user = await p.users.get(used.user_id)
    if user is None or user.disabled:
        raise Problem(401, "invalid_token", "the account is gone")
    return await issue_pair(p, user.id, user.role, used.family_id)


@router.post("/auth/logout", status_code=204)
async def logout(body: Refresh, p: Platform = Depends(platform)) -> Response:
    await p.users.revoke_family_of(hash_token(body.refresh_token))
    return Response(status_code=204)


def _user_out(user: object) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


@router.get("/users/me", response_model=UserOut)
async def me(who: Principal = Depends(current_user), p: Platform = Depends(platform)) -> UserOut:
    user = await p.users.get(who.user_id)
    if user is None:
        raise not_found("user")
    return _user_out(user)


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(
    body: UserCreate,
    request: Request,
    _: Principal = Depends(admin_user),
    p: Platform = Depends(platform),
) -> UserOut:
    try:
        pool = request.app.state.password_login.pool
        user = await p.users.create(body.username, await pool.hash(body.password), body.role)
    except UsernameTaken:
        raise Problem(409, "username_taken", f"{body.username!r} is taken") from None
    return _user_out(user)


@router.post("/users/me/tokens", response_model=ApiTokenCreated, status_code=201)
async def create_token(
    body: ApiTokenCreate, who: Principal = Depends(current_user), p: Platform = Depends(platform)
) -> ApiTokenCreated:
    if len(await p.users.list_api_tokens(who.user_id)) >= 50:
        raise Problem(409, "quota_exceeded", "at most 50 API tokens per user")
    token = new_api_token()
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row = await p.users.add_api_token(
        who.user_id, body.name, hash_token(token), token[:14], expires
    )
    out = ApiTokenOut.model_validate(row, from_attributes=True)
    return ApiTokenCreated(**out.model_dump(), token=token)


@router.get("/users/me/tokens", response_model=list[ApiTokenOut])
async def list_tokens(
    who: Principal = Depends(current_user), p: Platform = Depends(platform)
) -> list[ApiTokenOut]:
    rows = await p.users.list_api_tokens(who.user_id)
    return [ApiTokenOut.model_validate(r, from_attributes=True) for r in rows]


@router.delete("/users/me/tokens/{token_id}", status_code=204)
async def delete_token(
    token_id: str,
    request: Request,
    who: Principal = Depends(current_user),
    p: Platform = Depends(platform),
) -> Response:
    digest = await p.users.delete_api_token(who.user_id, token_id)
    if digest is None:
        raise not_found("token")
    request.app.state.token_cache.evict(digest)
    return Response(status_code=204)
