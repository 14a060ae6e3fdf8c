"""Signing in and out of the dashboard (a plain form; the same throttled password check as the
API's login)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response

from ipaas.api.deps import account_mail
from ipaas.apps.signin import GitHubSignIn
from ipaas.auth.login import BadCredentials, LoginRefused, PasswordLogin
from ipaas.auth.passwords import PoolBusy
from ipaas.domain.access import safe_next
from ipaas.notify.accounts import AccountMail
from ipaas.web.auth import (
    SESSION_COOKIE,
    Form,
    checked_form,
    first,
    maybe_visitor,
    set_cookie,
    web_sessions,
)
from ipaas.web.pages import redirect, render

router = APIRouter()


@router.get("/")
async def home(request: Request) -> Response:
    return redirect("/apps" if await maybe_visitor(request) else "/login")


@router.get("/login")
async def login_page(request: Request, next: str = "/apps") -> Response:  # noqa: A002
    if await maybe_visitor(request):
        return redirect(safe_next(next))
    return await login_form(request, safe_next(next), "", None, 200)


@router.post("/login")
async def sign_in(request: Request, form: Form = Depends(checked_form)) -> Response:
    username, password = first(form, "username", 64), first(form, "password", 1024)
    wanted = safe_next(first(form, "next"))
    logins: PasswordLogin = request.app.state.password_login
    address = request.client.host if request.client else "unknown"
    try:
        user = await logins.authenticate(username, password, address)
    except BadCredentials:
        return await login_form(request, wanted, username, "Wrong user name or password.", 401)
    except LoginRefused as exc:
        wait = int(exc.retry_after_s) + 1
        return await login_form(
            request, wanted, username, f"Too many attempts: wait {wait} s.", 429
        )
    except PoolBusy:
        return await login_form(request, wanted, username, "Too many sign-ins at once: retry.", 503)
    sessions = web_sessions(request)
    token = await sessions.open(user)
    response = redirect(wanted)
    set_cookie(request, response, SESSION_COOKIE, token, sessions.ttl_s)
    return response


@router.get("/login/reset")
async def reset_page(request: Request) -> Response:
    return render(request, "reset.html", sent=False, email="", error=None)


@router.post("/login/reset")
async def ask_for_reset(
    request: Request,
    background: BackgroundTasks,
    form: Form = Depends(checked_form),
    mail: AccountMail = Depends(account_mail),
) -> Response:
    """As the API's: the same answer whether or not the address is an account's, the link
    made after the answer, and requests throttled per address and per client."""
    email = first(form, "email", 254).strip()
    if not email:
        error = "Give the e-mail address of your account."
        return render(request, "reset.html", 422, sent=False, email=email, error=error)
    client = request.client.host if request.client else "unknown"
    wait = mail.admit_reset(email, client)
    if wait is not None:
        error = f"Too many requests: try again in {int(wait) + 1} s."
        return render(request, "reset.html", 429, sent=False, email=email, error=error)
    background.add_task(mail.send_reset, email)
    return render(request, "reset.html", sent=True, email=email, error=None)


async def login_form(
    request: Request, wanted: str, username: str, error: str | None, status: int
) -> Response:
    targets = await github_form_targets(request)
    return render(
        request, "login.html", status, wanted=wanted, username=username, error=error,
        github=bool(targets), form_targets=targets,
    )  # fmt: skip


async def github_form_targets(request: Request) -> tuple[str, ...]:
    """GitHub's origin when GitHub sign-in is configured now (from the settings, or an App
    an admin made): a page with a "Sign in with GitHub" form may lead there. Else none."""
    flow: GitHubSignIn | None = request.app.state.github_signin
    if flow is None or not await flow.github.configured():
        return ()
    web = urlsplit(flow.settings.web_url)
    return (f"{web.scheme}://{web.netloc}",)


@router.post("/logout")
async def sign_out(request: Request, _: Form = Depends(checked_form)) -> Response:
    await web_sessions(request).close(request.cookies.get(SESSION_COOKIE))
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
