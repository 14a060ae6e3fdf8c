"""Who is at the browser (the session cookie), and the CSRF check every form POST passes.

Two cookies, both HttpOnly and SameSite=Lax (Secure when the request came over HTTPS): the
session (set at sign-in) and a random browser id (set with the first page). A form carries the
HMAC of both (`WebSessions.csrf_token`); a POST whose token is missing or wrong is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request, Response

from ipaas.apps.service import Principal
from ipaas.auth.sessions import WebSessions, new_browser_id
from ipaas.domain.errors import Forbidden
from ipaas.store.models import User

SESSION_COOKIE = "ipaas_session"
BROWSER_COOKIE = "ipaas_browser"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 256 * 1024  # an env editor's worth; the API's body limit caps it anyway
BROWSER_ID_AGE_S = 365 * 86400


class SignInNeeded(Exception):
    """No live session: the browser is sent to sign in, and back here afterwards."""

    def __init__(self, wanted: str) -> None:
        super().__init__(wanted)
        self.wanted = wanted


class CsrfRefused(Exception):
    """A form POST without the token of this browser's session."""


@dataclass(frozen=True)
class Visitor:
    user: User
    session: str

    @property
    def principal(self) -> Principal:
        return Principal(self.user.id, self.user.role)

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


Form = dict[str, list[str]]


def web_sessions(request: Request) -> WebSessions:
    return cast(WebSessions, request.app.state.web_sessions)


def secure(request: Request) -> bool:
    """Served over HTTPS (directly, or behind the router that says so)?"""
    proto = request.headers.get("x-forwarded-proto") or request.url.scheme
    return proto == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, age_s: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )


def browser_id(request: Request) -> str:
    """This browser's random id: its cookie, or a new one that the page being rendered sets."""
    known = request.cookies.get(BROWSER_COOKIE)
    if known and 16 <= len(known) <= 64:
        return known
    fresh: str | None = getattr(request.state, "new_browser_id", None)
    if fresh is None:
        fresh = new_browser_id()
        request.state.new_browser_id = fresh
    return fresh


def remember_browser(request: Request, response: Response) -> None:
    """Set the browser id cookie when this request made one up."""
    fresh = getattr(request.state, "new_browser_id", None)
    if fresh:
        set_cookie(request, response, BROWSER_COOKIE, fresh, BROWSER_ID_AGE_S)


def csrf_token(request: Request) -> str:
    session = request.cookies.get(SESSION_COOKIE)
    return web_sessions(request).csrf_token(browser_id(request), session)


async def maybe_visitor(request: Request) -> Visitor | None:
    cached = getattr(request.state, "visitor", False)
    if cached is not False:
        return cast(Visitor | None, cached)
    token = request.cookies.get(SESSION_COOKIE)
    user = await web_sessions(request).user(token)
    visitor = Visitor(user, token) if user is not None and token else None
    request.state.visitor = visitor
    return visitor


async def visitor(request: Request) -> Visitor:
    """The signed-in user, else SignInNeeded (a redirect to the sign-in page)."""
    found = await maybe_visitor(request)
    if found is None:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(wanted)
    return found


async def admin(who: Visitor = Depends(visitor)) -> Visitor:
    if not who.is_admin:
        raise Forbidden("these pages are for admins only", code="forbidden")
    return who


async def read_form(request: Request) -> Form:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        body = body[:MAX_FORM_BYTES]
    return parse_qs(body.decode(errors="replace"), keep_blank_values=True)


async def checked_form(request: Request) -> Form:
    """The POSTed form, once its CSRF token matches this browser and session."""
    form = await read_form(request)
    sent = request.headers.get(CSRF_HEADER) or first(form, CSRF_FIELD)
    browser = request.cookies.get(BROWSER_COOKIE)
    session = request.cookies.get(SESSION_COOKIE)
    if not web_sessions(request).csrf_ok(sent, browser, session):
        raise CsrfRefused
    return form


def first(form: Form, name: str, max_len: int = 4096) -> str:
    values = form.get(name) or [""]
    return values[0][:max_len]


def sign_in_url(wanted: str) -> str:
    return f"/login?next={quote(wanted, safe='/')}"
