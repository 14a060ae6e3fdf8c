"""Rendering pages: Jinja2 templates with autoescaping on for every template (imported with the
first page, not at start), and the headers every page carries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ipaas import __version__
from ipaas.web.auth import csrf_token, remember_browser

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# No inline script or style, no eval: every script is a file of ours under /static.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'{forms}; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


def page_headers(form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    """The headers of every page. `form_targets`: origins a form may lead to besides ours
    (a browser holds the redirect of a form's answer to `form-action` too: the "Sign in with
    GitHub" form's answer is a redirect to GitHub)."""
    return {
        "Content-Security-Policy": CSP.format(forms="".join(f" {o}" for o in form_targets)),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


PAGE_HEADERS = page_headers()

_env: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    global _env
    if _env is None:
        import jinja2

        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # every template, whatever its name
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _env.filters["ago"] = ago
        _env.filters["when"] = when
        _env.filters["logtime"] = log_time
        _env.filters["cell"] = cell
        _env.globals["version"] = __version__
    return _env


def render(
    request: Request,
    template: str,
    status: int = 200,
    *,
    form_targets: tuple[str, ...] = (),
    **context: Any,
) -> HTMLResponse:
    """The template as a page (or an htmx fragment), with this browser's CSRF token.
    `form_targets`: origins besides ours this page's forms may lead to (`page_headers`)."""
    context.setdefault("visitor", getattr(request.state, "visitor", None))
    context.setdefault("notice", None)
    html = (
        environment()
        .get_template(template)
        .render(request=request, csrf=csrf_token(request), path=request.url.path, **context)
    )
    headers = page_headers(form_targets) if form_targets else PAGE_HEADERS
    response = HTMLResponse(html, status_code=status, headers=headers)
    remember_browser(request, response)
    return response


def redirect(url: str) -> RedirectResponse:
    """After a POST: 303 to the page that shows the result (htmx follows it too)."""
    return RedirectResponse(url, status_code=303)


def when(at: datetime | None) -> str:
    if at is None:
        return "—"
    return _aware(at).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(at: datetime | None) -> str:
    if at is None:
        return "never"
    seconds = int((datetime.now(UTC) - _aware(at)).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now" if seconds < 5 else f"{seconds} s ago"


def log_time(ts_ns: int) -> str:
    """A log line's time as the viewer shows it: UTC, to the millisecond."""
    at = datetime.fromtimestamp(ts_ns / 1e9, UTC)
    return at.strftime("%H:%M:%S.") + f"{at.microsecond // 1000:03d}"


CELL_CHARS = 2000


def cell(value: Any) -> str:
    """A value of the data viewer as text: JSON for lists and objects, cut when long."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
