"""A dashboard over the session's plane (fake runtime, real store), and browsers for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from ipaas.platform import ControlPlane
from ipaas.web.site import create_site
from tests.conftest import UserMaker
from tests.web.browser import Browser

BrowserMaker = Callable[..., Awaitable[tuple[Browser, dict[str, str]]]]


@pytest.fixture(scope="session")
def site(core: ControlPlane) -> FastAPI:
    return create_site(core, manage_lifecycle=False)


@pytest.fixture
async def new_browser(
    site: FastAPI, core: ControlPlane, make_user: UserMaker
) -> AsyncIterator[BrowserMaker]:
    """`await new_browser()`: a browser signed in as a new user, and that user."""
    clients: list[httpx.AsyncClient] = []

    async def make(role: str = "user", signed_in: bool = True) -> tuple[Browser, dict[str, str]]:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=site), base_url="http://ipaas.test"
        )
        clients.append(client)
        browser, user = Browser(client), await make_user(role)
        if signed_in:
            await browser.sign_in_as(core, user["id"])
        return browser, user

    yield make
    for client in clients:
        await client.aclose()
