"""The account pages: who you are, your password, your personal API tokens, (admins) the
platform's GitHub App, made from here with GitHub's manifest flow; and which notices come to
you by e-mail (the API's notice preferences), with the last ones sent."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from ipaas.admin.github_app import GitHubAppSetup
from ipaas.api.deps import account_mail, notice_store, settings, user_store
from ipaas.api.routes_accounts import EmailSet, end_sessions_now
from ipaas.api.routes_github import set_state_cookie
from ipaas.api.routes_github_app import COOKIE_PATH, STATE_COOKIE
from ipaas.api.routes_notices import Preferences, my_preferences, set_preferences
from ipaas.auth.login import BadCredentials, LoginRefused, PasswordLogin
from ipaas.auth.tokens import hash_token, new_api_token
from ipaas.config import Settings
from ipaas.domain.errors import NotFoundError
from ipaas.domain.github import install_url
from ipaas.domain.notices import CHOOSABLE_KINDS, PREFERENCE_OF
from ipaas.notify.accounts import AccountMail
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
    "email": "A link to confirm the address is on its way to it; notices go there once confirmed.",
    "notices": "Notice preferences saved.",
    "github-app": "The GitHub App was made: install it on the accounts and repositories to deploy.",
}
# Kinds whose preference is another's (a crash digest follows the crash notice): not shown.
SHOWN_KINDS = [k for k in CHOOSABLE_KINDS if k not in PREFERENCE_OF]


async def _page(
    request: Request, who: Visitor, users: UserStore, status: int = 200, **context: Any
) -> Response:
    context.setdefault("errors", {})
    context.setdefault("new_token", None)
    tokens = await users.list_api_tokens(who.user.id)
    note = NOTES.get(request.query_params.get("done", ""))
    setup: GitHubAppSetup | None = request.app.state.github_app
    github = None
    if who.is_admin and setup is not None:
        made = await setup.current()
        github = {
            "in_settings": setup.github.configured_in_settings,
            "app": made,
            "install_url": install_url(made.html_url) if made else None,
        }
    return render(
        request, "account.html", status, tokens=tokens, notice=note, github=github, **context
    )


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


@router.post("/email")
async def change_email(
    request: Request,
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    users: UserStore = Depends(user_store),
    mail: AccountMail = Depends(account_mail),
) -> Response:
    """As the API's: the address is saved unconfirmed and a confirmation link mailed to it."""
    wanted = first(form, "email", 254).strip()
    try:
        email = EmailSet(email=wanted).email
    except ValidationError:
        errors = {"email": "that is not an e-mail address"}
        return await _page(request, who, users, 422, errors=errors, email=wanted)
    await mail.send_verification(who.user, email)
    return redirect("/account?done=email")


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


@router.post("/github-app")
async def start_github_app(
    request: Request,
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    config: Settings = Depends(settings),
) -> Response:
    """Admins: the page whose button posts the App's manifest to GitHub; GitHub sends the
    browser back to the API's callback, which makes the App and comes back to this page."""
    setup: GitHubAppSetup | None = request.app.state.github_app
    if not who.is_admin or setup is None:
        raise NotFoundError.of("page")
    org = first(form, "org", 100).strip() or None
    start = await setup.start(
        who.user.id,
        redirect_url=f"{config.api_url.rstrip('/')}{COOKIE_PATH}/callback",
        org=org,
        name=first(form, "name", 100).strip() or None,
        replace=first(form, "replace", 8) == "on",
        then="/account",
    )
    # This page's one form goes to GitHub: its origin (only) joins the form targets.
    github = urlsplit(start.post_url)
    page = render(
        request, "github_app.html", manifest=json.dumps(start.manifest), post_url=start.post_url,
        app_name=str(start.manifest["name"]), org=org,
        form_targets=(f"{github.scheme}://{github.netloc}",),
    )  # fmt: skip
    set_state_cookie(page, STATE_COOKIE, start.nonce, COOKIE_PATH, config)
    return page


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
