"""/auth and /users: login, refresh rotation, logout, personal API tokens, users."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request, Response

from ipaas.api.deps import access_tokens, admin_user, current_user, settings, user_store
from ipaas.api.errors import Problem, problem_response
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
from ipaas.auth.tokens import AccessTokens, hash_token, new_api_token, new_refresh_token
from ipaas.config import Settings
from ipaas.domain.errors import NotFoundError
from ipaas.store.models import new_id, utcnow
from ipaas.store.users import RefreshRejected, UsernameTaken, UserStore

router = APIRouter(tags=["auth"])


class Sessions:
    """What login and refresh need: the users, the token signer, the refresh lifetime."""

    def __init__(
        self,
        users: UserStore = Depends(user_store),
        tokens: AccessTokens = Depends(access_tokens),
        config: Settings = Depends(settings),
    ) -> None:
        self.users = users
        self.tokens = tokens
        self.refresh_ttl_s = config.auth.refresh_token_ttl_s

    async def issue_pair(self, user_id: str, role: str, family_id: str) -> TokenPair:
        refresh = new_refresh_token()
        await self.users.add_refresh_token(
            user_id, family_id, hash_token(refresh), self.refresh_ttl_s
        )
        return TokenPair(
            access_token=self.tokens.issue(user_id, role),
            refresh_token=refresh,
            expires_in=self.tokens.ttl_s,
        )


@router.post("/auth/login", response_model=TokenPair)
async def login(body: Login, request: Request, p: Sessions = Depends()) -> TokenPair | Response:
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
    return await p.issue_pair(user.id, user.role, new_id())


def too_many_attempts(wait_s: float) -> Response:
    seconds = retry_after_header(wait_s)
    detail = f"too many failed logins; try again in {seconds} s"
    return problem_response(
        429, "too_many_attempts", detail, {"Retry-After": seconds}, retry_after=int(seconds)
    )


@router.post("/auth/refresh", response_model=TokenPair)
async def refresh(body: Refresh, p: Sessions = Depends()) -> TokenPair:
    try:
        used = await p.users.use_refresh_token(hash_token(body.refresh_token))
    except RefreshRejected as exc:
        raise Problem(401, exc.code, "the refresh token cannot be used") from None
    user = await p.users.get(used.user_id)
    if user is None or user.disabled:
        raise Problem(401, "invalid_token", "the account is gone")
    return await p.issue_pair(user.id, user.role, used.family_id)


@router.post("/auth/logout", status_code=204)
async def logout(body: Refresh, users: UserStore = Depends(user_store)) -> Response:
    await users.revoke_family_of(hash_token(body.refresh_token))
    return Response(status_code=204)


def _user_out(user: object) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


@router.get("/users/me", response_model=UserOut)
async def me(
    who: Principal = Depends(current_user), users: UserStore = Depends(user_store)
) -> UserOut:
    user = await users.get(who.user_id)
    if user is None:
        raise NotFoundError.of("user")
    return _user_out(user)


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(
    body: UserCreate,
    request: Request,
    _: Principal = Depends(admin_user),
    users: UserStore = Depends(user_store),
) -> UserOut:
    try:
        pool = request.app.state.password_login.pool
        user = await users.create(body.username, await pool.hash(body.password), body.role)
    except UsernameTaken:
        raise Problem(409, "username_taken", f"{body.username!r} is taken") from None
    return _user_out(user)


@router.post("/users/me/tokens", response_model=ApiTokenCreated, status_code=201)
async def create_token(
    body: ApiTokenCreate,
    who: Principal = Depends(current_user),
    users: UserStore = Depends(user_store),
) -> ApiTokenCreated:
    if len(await users.list_api_tokens(who.user_id)) >= 50:
        raise Problem(409, "quota_exceeded", "at most 50 API tokens per user")
    token = new_api_token()
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row = await users.add_api_token(who.user_id, body.name, hash_token(token), token[:14], expires)
    out = ApiTokenOut.model_validate(row, from_attributes=True)
    return ApiTokenCreated(**out.model_dump(), token=token)


@router.get("/users/me/tokens", response_model=list[ApiTokenOut])
async def list_tokens(
    who: Principal = Depends(current_user), users: UserStore = Depends(user_store)
) -> list[ApiTokenOut]:
    rows = await users.list_api_tokens(who.user_id)
    return [ApiTokenOut.model_validate(r, from_attributes=True) for r in rows]


@router.delete("/users/me/tokens/{token_id}", status_code=204)
async def delete_token(
    token_id: str,
    request: Request,
    who: Principal = Depends(current_user),
    users: UserStore = Depends(user_store),
) -> Response:
    digest = await users.delete_api_token(who.user_id, token_id)
    if digest is None:
        raise NotFoundError.of("token")
    request.app.state.token_cache.evict(digest)
    return Response(status_code=204)
