"""The account pages: who you are, your password, your personal API tokens; and which
notices come to you by e-mail (the API's notice preferences), with the last ones sent."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request, Response

from ipaas.api.deps import notice_store, user_store
from ipaas.api.routes_accounts import end_sessions_now
from ipaas.api.routes_notices import Preferences, my_preferences, set_preferences
from ipaas.auth.login import BadCredentials, LoginRefused, PasswordLogin
from ipaas.auth.tokens import hash_token, new_api_token
from ipaas.domain.notices import CHOOSABLE_KINDS, PREFERENCE_OF
from ipaas.store.models import utcnow
from ipaas.store.notices import NoticeStore
from ipaas.store.users import UserStore
from ipaas.web.auth import (
    SESSION_COOKIE,
    Form,
    Visitor,
    checked_form,
    first,
    set_cookie,
    visitor,
    web_sessions,
)
from ipaas.web.pages import redirect, render

router = APIRouter(prefix="/account")
MAX_TOKENS = 50
NOTES = {
    "password": "Password changed: your other sessions and API tokens were ended.",
    "notices": "Notice preferences saved.",
}
# Kinds whose preference is another's (a crash digest follows the crash notice): not shown.
SHOWN_KINDS = [k for k in CHOOSABLE_KINDS if k not in PREFERENCE_OF]


async def _page(
    request: Request, who: Visitor, users: UserStore, status: int = 200, **context: object
) -> Response:
    context.setdefault("errors", {})
    context.setdefault("new_token", None)
    tokens = await users.list_api_tokens(who.user.id)
    note = NOTES.get(request.query_params.get("done", ""))
    return render(request, "account.html", status, tokens=tokens, notice=note, **context)


@router.get("")
async def account(
    request: Request, who: Visitor = Depends(visitor), users: UserStore = Depends(user_store)
) -> Response:
    return await _page(request, who, users)


@router.post("/password")
async def change_password(
    request: Request,
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    users: UserStore = Depends(user_store),
) -> Response:
    """As the API's: the current password checked (throttled like a login), then every
    session and API token ended."""
    logins: PasswordLogin = request.app.state.password_login
    current, new = first(form, "current", 1024), first(form, "new", 1024)
    if not 8 <= len(new) <= 1024:
        errors = {"new": "a password has at least 8 characters"}
        return await _page(request, who, users, 422, errors=errors)
    address = request.client.host if request.client else "unknown"
    try:
        await logins.authenticate(who.user.username, current, address)
    except (BadCredentials, LoginRefused):
        errors = {"current": "the current password is not right (or too many tries: wait)"}
        return await _page(request, who, users, 422, errors=errors)
    await users.change_password(who.user.id, await logins.pool.hash(new), keep_token_id=None)
    end_sessions_now(request, request.app.state.access_tokens, who.user.id)
    # Every session ended, this one too: this browser gets a new one at once.
    sessions = web_sessions(request)
    response = redirect("/account?done=password")
    set_cookie(request, response, SESSION_COOKIE, await sessions.open(who.user), sessions.ttl_s)
    return response


@router.post("/tokens")
async def create_token(
    request: Request,
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    users: UserStore = Depends(user_store),
) -> Response:
    name = first(form, "name", 200).strip()
    days = first(form, "days", 8).strip()
    errors: dict[str, str] = {}
    if not 1 <= len(name) <= 100:
        errors["name"] = "a name of 1 to 100 characters"
    if days and not (days.isdigit() and 1 <= int(days) <= 3650):
        errors["days"] = "between 1 and 3650 days, or empty for no expiry"
    if not errors and len(await users.list_api_tokens(who.user.id)) >= MAX_TOKENS:
        errors["name"] = f"at most {MAX_TOKENS} API tokens per user"
    if errors:
        return await _page(request, who, users, 422, errors=errors)
    token = new_api_token()
    expires = utcnow() + timedelta(days=int(days)) if days else None
    await users.add_api_token(who.user.id, name, hash_token(token), token[:14], expires)
    return await _page(request, who, users, 201, new_token=token)


@router.post("/tokens/{token_id}/delete")
async def delete_token(
    token_id: str,
    request: Request,
    _: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    users: UserStore = Depends(user_store),
) -> Response:
    digest = await users.delete_api_token(who.user.id, token_id[:64])
    if digest is not None:
        request.app.state.token_cache.evict(digest)
    return redirect("/account")


# --- notices -------------------------------------------------------------------------------------
@router.get("/notices")
async def notices_page(
    request: Request,
    who: Visitor = Depends(visitor),
    notices: NoticeStore = Depends(notice_store),
) -> Response:
    chosen = (await my_preferences(who.principal, notices)).email
    sent = await notices.messages_of(who.user.id, 20)
    note = NOTES.get(request.query_params.get("done", ""))
    return render(
        request, "account_notices.html", kinds=[k.value for k in SHOWN_KINDS], chosen=chosen,
        sent=sent, notice=note,
    )  # fmt: skip


@router.post("/notices")
async def save_notices(
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    notices: NoticeStore = Depends(notice_store),
) -> Response:
    """Each kind shown: on when its box is ticked (an unticked box is not sent at all)."""
    body = Preferences(email={k.value: bool(form.get(k.value)) for k in SHOWN_KINDS})
    await set_preferences(body, who.principal, notices)
    return redirect("/account/notices?done=notices")
