"""Private apps at the control plane's door: what the router's check answers, and the sign-in
that gives a pass to one app's host (through a real router: tests/e2e/test_private_apps.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ipaas.api.app import create_app
from ipaas.platform import ControlPlane
from tests.conftest import UserMaker, auth
from tests.support import unique_name

APPS = "/api/v1/applications"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
async def door(core: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own (its own cookie jar and login throttle)."""
    app = create_app(core, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.77", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ipaas.test") as c:
        yield c


async def make_app(door: httpx.AsyncClient, owner: dict[str, str], visibility: str) -> str:
    name = unique_name("gate")
    body = {"name": name, "repo": "https://example.com/r.git", "visibility": visibility}
    r = await door.post(APPS, json=body, headers=auth(owner))
    assert r.status_code == 201, r.text
    return f"{name}.localhost"


async def sign_in(
    door: httpx.AsyncClient, host: str, user: dict[str, str], nxt: str = "/"
) -> httpx.Response:
    form = {"username": user["username"], "password": user["password"], "next": nxt}
    return await door.post("/.ipaas/login", data=form, headers={"Host": host})


async def check(door: httpx.AsyncClient, host: str, **headers: str) -> httpx.Response:
    return await door.get("/.ipaas/check", headers={"Host": host, **headers})


async def test_a_public_app_is_open_to_anyone(
    door: httpx.AsyncClient, make_user: UserMaker
) -> None:
    host = await make_app(door, await make_user(), "public")
    assert (await check(door, host)).status_code == 204


async def test_a_private_app_asks_browsers_to_sign_in_and_refuses_scripts(
    door: httpx.AsyncClient, make_user: UserMaker
) -> None:
    host = await make_app(door, await make_user(), "private")
    r = await check(door, host, **HTML, **{"X-Forwarded-Uri": "/orders?page=2"})
    assert r.status_code == 302
    assert r.headers["location"] == "/.ipaas/login?next=/orders%3Fpage%3D2"
    r = await check(door, host)
    assert r.status_code == 401 and r.json()["code"] == "sign_in_required"
    page = await door.get("/.ipaas/login?next=/orders", headers={"Host": host})
    assert page.status_code == 200 and 'name="password"' in page.text
    assert 'value="/orders"' in page.text


async def test_the_owner_signs_in_and_passes_with_a_cookie_for_that_host_only(
    door: httpx.AsyncClient, make_user: UserMaker
) -> None:
    owner = await make_user()
    host = await make_app(door, owner, "private")
    r = await sign_in(door, host, owner, "/orders")
    assert r.status_code == 303 and r.headers["location"] == "/orders"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("ipaas_pass=") and "HttpOnly" in cookie and "Domain" not in cookie
    token = r.cookies["ipaas_pass"]
    assert (await check(door, host, Cookie=f"ipaas_pass={token}")).status_code == 204
    # The pass opens that app only, and is no key to the API.
    other = await make_app(door, owner, "private")
    assert (await check(door, other, Cookie=f"ipaas_pass={token}")).status_code == 401
    api = await door.get(APPS, headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401


async def test_another_user_is_refused_and_gets_no_pass(
    door: httpx.AsyncClient, make_user: UserMaker
) -> None:
    host = await make_app(door, await make_user(), "private")
    stranger = await make_user()
    r = await sign_in(door, host, stranger)
    assert r.status_code == 403 and "may not open this app" in r.text
    assert "ipaas_pass" not in r.headers.get("set-cookie", "")
    # Nor does the stranger's API token open it.
    assert (
        await check(door, host, Cookie=f"ipaas_pass={stranger['Authorization'][7:]}")
    ).status_code == 401


async def test_admins_pass_and_wrong_passwords_do_not(
    door: httpx.AsyncClient, make_user: UserMaker
) -> None:
    host = await make_app(door, await make_user(), "private")
    admin = await make_user("admin")
    r = await sign_in(door, host, admin)
    assert r.status_code == 303
    assert (
        await check(door, host, Cookie=f"ipaas_pass={r.cookies['ipaas_pass']}")
    ).status_code == 204
    r = await sign_in(door, host, {**admin, "password": "not it"})
    assert r.status_code == 401 and "ipaas_pass" not in r.headers.get("set-cookie", "")


async def test_sign_in_never_redirects_off_the_host(
    door: httpx.AsyncClient, make_user: UserMaker
) -> None:
    owner = await make_user()
    host = await make_app(door, owner, "private")
    r = await sign_in(door, host, owner, "//evil.example/steal")
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_hosts_of_no_app_are_refused(door: httpx.AsyncClient) -> None:
    assert (await check(door, "nothing-here.localhost")).status_code == 404
    assert (await check(door, "localhost")).status_code == 404
