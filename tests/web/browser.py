"""A browser without JavaScript, over httpx: cookies kept, forms posted with the CSRF token of
the page they are on — what a user with scripts off does."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from ipaas.platform import ControlPlane
from ipaas.web.auth import SESSION_COOKIE

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def field_error(page: str, field: str) -> str:
    """The error shown next to a form's field (as text)."""
    found = re.search(rf'<p class="error" id="error-{field}"[^>]*>(.*?)</p>', page, re.S)
    assert found, page
    return html.unescape(found.group(1))


class Browser:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def submit(self, page: str, action: str, fields: dict[str, Any]) -> httpx.Response:
        """Open `page`, then post `fields` to `action` as its form would (token included)."""
        shown = await self.get(page)
        assert shown.status_code == 200, (page, shown.status_code)
        return await self.post(action, {"csrf_token": csrf_of(shown.text), **fields})

    async def post(self, action: str, fields: dict[str, Any]) -> httpx.Response:
        return await self.client.post(action, data=fields)

    async def sign_in_as(self, plane: ControlPlane, user_id: str) -> None:
        """A session as signing in leaves it (the form itself is tested on its own)."""
        user = await plane.stores.users.get(user_id)
        assert user is not None
        token = await plane.stores.web_sessions.open(user)
        self.client.cookies.set(SESSION_COOKIE, token, domain="ipaas.test")
