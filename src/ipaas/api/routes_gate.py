"""The pages a private app's host serves from the control plane (Caddy sends `/.ipaas/*` of
such hosts here, and checks every other request with `/.ipaas/check` first).

- GET /.ipaas/check: 204 lets the request through to the app; otherwise a browser is sent to
  sign in (302), other clients get 401, and a signed-in stranger 403.
- GET/POST /.ipaas/login: a plain form (no JavaScript); a good sign-in by the owner or an admin
  sets a pass cookie for this host only and goes back to the page asked for.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from ipaas.api.deps import app_gate, settings
from ipaas.api.errors import problem_response
from ipaas.apps.gate import AppGate
from ipaas.auth.login import BadCredentials, LoginRefused, PasswordLogin
from ipaas.auth.passwords import PoolBusy
from ipaas.config import Settings
from ipaas.domain.access import PASS_COOKIE, Gate, safe_next

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 8192


@router.get("/.ipaas/check")
async def check(request: Request, gate: AppGate = Depends(app_gate)) -> Response:
    verdict = await gate.check(request.headers.get("host", ""), request.cookies.get(PASS_COOKIE))
    if verdict.gate == Gate.ALLOW:
        return Response(status_code=204)
    if verdict.app is None:
        return problem_response(404, "not_found", "no app at this address")
    if verdict.gate == Gate.LOGIN:
        if "text/html" in request.headers.get("accept", ""):
            wanted = safe_next(request.headers.get("x-forwarded-uri"))
            return RedirectResponse(f"/.ipaas/login?next={quote(wanted)}", status_code=302)
        return problem_response(401, "sign_in_required", "this app is private: sign in first")
    return problem_response(403, "forbidden", "this app is private to its owner")


@router.get("/.ipaas/login")
async def login_page(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
    return _form(request.headers.get("host", ""), safe_next(next))


@router.post("/.ipaas/login")
async def sign_in(
    request: Request, gate: AppGate = Depends(app_gate), config: Settings = Depends(settings)
) -> Response:
    host = request.headers.get("host", "")
    form = parse_qs((await request.body())[:MAX_FORM_BYTES].decode(errors="replace"))
    username, password = _field(form, "username"), _field(form, "password")
    wanted = safe_next(_field(form, "next"))
    app = await gate.app_at(host)
    if app is None:
        return problem_response(404, "not_found", "no app at this address")
    logins: PasswordLogin = request.app.state.password_login
    address = request.client.host if request.client else "unknown"
    try:
        user = await logins.authenticate(username, password, address)
    except BadCredentials:
        return _form(host, wanted, "Wrong user name or password.", 401)
    except LoginRefused as exc:
        return _form(host, wanted, f"Too many attempts: wait {int(exc.retry_after_s) + 1} s.", 429)
    except PoolBusy:
        return _form(host, wanted, "Too many sign-ins at once: try again.", 503)
    token = gate.grant(app, user.id, user.role)
    if token is None:
        return _form(host, wanted, f"{user.username} may not open this app.", 403)
    response = RedirectResponse(wanted, status_code=303)
    response.set_cookie(
        PASS_COOKIE,
        token,
        max_age=config.auth.app_pass_ttl_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.headers.get("x-forwarded-proto") == "https",
    )
    return response


@router.post("/.ipaas/logout")
async def sign_out() -> Response:
    response = RedirectResponse("/.ipaas/login", status_code=303)
    response.delete_cookie(PASS_COOKIE, path="/")
    return response


def _field(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0][:1024]


def _form(host: str, wanted: str, error: str = "", status: int = 200) -> HTMLResponse:
    safe = html.escape
    message = f'<p role="alert">{safe(error)}</p>' if error else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — {safe(host)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{safe(host)} is private</h1>
<p>Sign in with your ipaas account: only the app's owner and admins may open it.</p>{message}
<form method="post" action="/.ipaas/login">
<input type="hidden" name="next" value="{safe(wanted)}">
<label>User name <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password"
required></label>
<button type="submit">Sign in</button></form></main></body></html>
"""
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
