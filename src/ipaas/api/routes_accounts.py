"""Accounts: the e-mail address (confirmed by a single-use link), password change and reset,
and the admins' user management."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from ipaas.admin.removal import AccountRemoval
from ipaas.api.deps import (
    access_tokens,
    account_mail,
    account_removal,
    admin_user,
    current_user,
    user_store,
)
from ipaas.api.errors import Problem, problem_response
from ipaas.api.routes_auth import Sessions, too_many_attempts
from ipaas.api.schemas import Strict, TokenPair
from ipaas.apps.service import Principal
from ipaas.auth.login import BadCredentials, LoginRefused, PasswordLogin
from ipaas.auth.throttle import retry_after_header
from ipaas.auth.tokens import API_TOKEN_PREFIX, AccessTokens, hash_token
from ipaas.domain.errors import Conflict, InvalidInput, NotFoundError
from ipaas.notify.accounts import AccountMail
from ipaas.store.models import User, new_id
from ipaas.store.users import UsernameTaken, UserStore

router = APIRouter(tags=["accounts"])
EMAIL = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
PASSWORD = Field(min_length=8, max_length=1024)
TOKEN = Field(min_length=10, max_length=200)


class EmailSet(Strict):
    email: str = Field(max_length=254, pattern=EMAIL)


class AccountOut(BaseModel):
    id: str
    username: str
    email: str | None
    email_verified: bool
    role: str
    disabled: bool
    created_at: datetime


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = PASSWORD


class ResetRequest(Strict):
    email: str = Field(max_length=254)


class ResetConfirm(Strict):
    token: str = TOKEN
    new_password: str = PASSWORD


class TokenIn(Strict):
    token: str = TOKEN


class AdminUserCreate(Strict):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    # No password: the user gets an invitation at `email` to set one.
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL)
    role: Literal["user", "admin"] = "user"


class AdminUserChange(Strict):
    role: Literal["user", "admin"] | None = None
    disabled: bool | None = None


class UserPage(BaseModel):
    items: list[AccountOut]
    total: int


def _out(user: User) -> AccountOut:
    return AccountOut.model_validate(user, from_attributes=True)


async def _me(users: UserStore, who: Principal) -> User:
    user = await users.get(who.user_id)
    if user is None:
        raise NotFoundError.of("user")
    return user


def end_sessions_now(request: Request, tokens: AccessTokens, user_id: str) -> None:
    """The user's access tokens issued until now stop working, and no API token of theirs is
    answered from memory (the store says which still exist, and the role)."""
    tokens.end_sessions(user_id, time.time())
    request.app.state.token_cache.evict_user(user_id)


# --- the caller's own account ---------------------------------------------------------------
@router.get("/users/me/account", response_model=AccountOut)
async def my_account(
    who: Principal = Depends(current_user), users: UserStore = Depends(user_store)
) -> AccountOut:
    return _out(await _me(users, who))


@router.put("/users/me/email", response_model=AccountOut, status_code=202)
async def set_email(
    body: EmailSet,
    who: Principal = Depends(current_user),
    users: UserStore = Depends(user_store),
    mail: AccountMail = Depends(account_mail),
) -> AccountOut:
    """The address is saved unconfirmed and a confirmation link is mailed to it; notices go
    to it once confirmed."""
    await mail.send_verification(await _me(users, who), body.email)
    return _out(await _me(users, who))


@router.post("/auth/verify-email", response_model=AccountOut)
async def verify_email(body: TokenIn, users: UserStore = Depends(user_store)) -> AccountOut:
    user = await users.verify_email(hash_token(body.token))
    if user is None:
        raise Problem(400, "invalid_token", "the link is unknown, used, expired or outdated")
    return _out(user)


@router.post("/users/me/password", response_model=TokenPair)
async def change_password(
    body: PasswordChange,
    request: Request,
    who: Principal = Depends(current_user),
    p: Sessions = Depends(),
) -> TokenPair | Response:
    """Needs the current password (guesses are throttled like logins). Every other session
    and API token ends; the answer is a new session for the caller."""
    logins: PasswordLogin = request.app.state.password_login
    user = await _me(p.users, who)
    address = request.client.host if request.client else "unknown"
    try:
        await logins.authenticate(user.username, body.current_password, address)
    except BadCredentials:
        raise Problem(403, "wrong_password", "the current password is not right") from None
    except LoginRefused as exc:
        return too_many_attempts(exc.retry_after_s)
    keep = await _calling_api_token(request, p.users)
    await p.users.change_password(user.id, await logins.pool.hash(body.new_password), keep)
    end_sessions_now(request, p.tokens, user.id)
    return await p.issue_pair(user.id, user.role, new_id())


async def _calling_api_token(request: Request, users: UserStore) -> str | None:
    """The id of the API token this request came with, if it came with one."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    if not token.startswith(API_TOKEN_PREFIX):
        return None
    found = await users.api_token_owner(hash_token(token))
    return found[1].id if found else None


# --- forgotten passwords --------------------------------------------------------------------
@router.post("/auth/password-reset", status_code=202)
async def request_reset(
    body: ResetRequest,
    request: Request,
    background: BackgroundTasks,
    mail: AccountMail = Depends(account_mail),
) -> Response:
    """The same answer whether or not the address belongs to an account (the link is made
    after the answer, so the time taken tells nothing either)."""
    client = request.client.host if request.client else "unknown"
    wait = mail.admit_reset(body.email, client)
    if wait is not None:
        seconds = retry_after_header(wait)
        detail = f"too many reset requests; try again in {seconds} s"
        return problem_response(429, "too_many_requests", detail, {"Retry-After": seconds})
    background.add_task(mail.send_reset, body.email)
    detail = "if the address belongs to an account, a link to set a new password is on its way"
    return problem_response(202, "reset_requested", detail)


@router.post("/auth/password-reset/confirm", response_model=AccountOut)
async def confirm_reset(
    body: ResetConfirm,
    request: Request,
    users: UserStore = Depends(user_store),
    tokens: AccessTokens = Depends(access_tokens),
) -> AccountOut:
    pool = request.app.state.password_login.pool
    done = await users.reset_password(hash_token(body.token), await pool.hash(body.new_password))
    if done is None:
        raise Problem(400, "invalid_token", "the link is unknown, used or expired")
    end_sessions_now(request, tokens, done.id)
    return _out(done)


_FORM = """<!doctype html><html><body style="font-family: sans-serif">
<h2>{title}</h2><form id="f">{field}<button>{button}</button></form><p id="r"></p>
<script>
document.getElementById("f").onsubmit = async (e) => {{
  e.preventDefault();
  const body = {{token: new URLSearchParams(location.search).get("token")}};
  const pw = document.getElementById("pw"); if (pw) body.new_password = pw.value;
  const r = await fetch("{action}", {{method: "POST",
    headers: {{"Content-Type": "application/json"}}, body: JSON.stringify(body)}});
  document.getElementById("r").textContent = r.ok ? "Done." : (await r.json()).detail;
}};
</script></body></html>"""


@router.get("/auth/verify-email", response_class=HTMLResponse, include_in_schema=False)
async def verify_email_page(token: str = Query(max_length=200)) -> HTMLResponse:
    """The mailed link opens a page whose button confirms: mail scanners that fetch links
    must not use up the single-use token."""
    page = _FORM.format(
        title="Confirm your e-mail address", field="", button="Confirm", action="verify-email"
    )
    return HTMLResponse(page, headers={"Referrer-Policy": "no-referrer"})


@router.get("/auth/password-reset", response_class=HTMLResponse, include_in_schema=False)
async def reset_page(token: str = Query(max_length=200)) -> HTMLResponse:
    field = '<input id="pw" type="password" minlength="8" placeholder="new password" required>'
    page = _FORM.format(
        title="Set a new password", field=field, button="Set", action="password-reset/confirm"
    )
    return HTMLResponse(page, headers={"Referrer-Policy": "no-referrer"})


# --- admins ---------------------------------------------------------------------------------
@router.get("/admin/users", response_model=UserPage)
async def list_users(
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
    _: Principal = Depends(admin_user),
    users: UserStore = Depends(user_store),
) -> UserPage:
    rows, total = await users.list_users(limit, offset)
    return UserPage(items=[_out(u) for u in rows], total=total)


@router.post("/admin/users", response_model=AccountOut, status_code=201)
async def admin_create_user(
    body: AdminUserCreate,
    request: Request,
    _: Principal = Depends(admin_user),
    users: UserStore = Depends(user_store),
    mail: AccountMail = Depends(account_mail),
) -> AccountOut:
    """With a password, or an invitation to `email` to set one. An address an admin gives
    counts as confirmed."""
    if body.password is None and body.email is None:
        raise Problem(422, "password_or_email", "give a password, or an e-mail to invite")
    pool = request.app.state.password_login.pool
    hashed = await pool.hash(body.password) if body.password else None
    try:
        user = await users.create(body.username, hashed, body.role, email=body.email)
    except UsernameTaken:
        raise Problem(409, "username_taken", f"{body.username!r} is taken") from None
    if body.email:
        await users.set_email(user.id, body.email, verified=True)
        user.email_verified = True
    if body.password is None:
        await mail.send_invitation(user)
    return _out(user)


@router.patch("/admin/users/{user_id}", response_model=AccountOut)
async def admin_change_user(
    user_id: str,
    body: AdminUserChange,
    request: Request,
    who: Principal = Depends(admin_user),
    users: UserStore = Depends(user_store),
    tokens: AccessTokens = Depends(access_tokens),
) -> AccountOut:
    """Role and disabling; a disabled user's tokens stop working at once."""
    if user_id == who.user_id:
        raise Conflict("admins do not change their own role or disable themselves", "own_account")
    if await users.get(user_id) is None:
        raise NotFoundError.of("user")
    if body.role is not None:
        await users.set_role(user_id, body.role)
        end_sessions_now(
            request, tokens, user_id
        )  # access tokens carry the role: new ones are needed
    if body.disabled is not None:
        await users.set_disabled(user_id, body.disabled)
        if body.disabled:
            end_sessions_now(request, tokens, user_id)
    user = await users.get(user_id)
    assert user is not None
    return _out(user)


class RemovedOut(BaseModel):
    apps: int
    databases: int


@router.delete("/admin/users/{user_id}", response_model=RemovedOut)
async def admin_delete_user(
    user_id: str,
    request: Request,
    confirm: str = Query(max_length=64, description="the user's name, typed to confirm"),
    who: Principal = Depends(admin_user),
    users: UserStore = Depends(user_store),
    tokens: AccessTokens = Depends(access_tokens),
    removal: AccountRemoval = Depends(account_removal),
) -> RemovedOut:
    """The user and everything they own: apps (containers, routes, images, volumes) and
    databases. Their tokens stop working at once; asking again finishes an interrupted one."""
    if user_id == who.user_id:
        raise Conflict("admins do not delete their own account", "own_account")
    user = await users.get(user_id)
    if user is None:
        raise NotFoundError.of("user")
    if confirm != user.username:
        raise InvalidInput(
            "type the user's name in `confirm` to delete them and everything they own",
            code="confirmation_mismatch",
        )
    end_sessions_now(request, tokens, user_id)
    removed = await removal.remove(user_id)
    return RemovedOut(apps=removed.apps, databases=removed.databases)
