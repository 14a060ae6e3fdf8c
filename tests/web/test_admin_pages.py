"""The admin pages without JavaScript, on the session's plane: refused (403) to anyone but
admins, users' quotas, disabling and removal through the API's own rules, every app on the
platform, and the platform's health."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from tests.factories import stored_app
from tests.web.browser import csrf_of, field_error
from tests.web.conftest import BrowserMaker


async def test_the_admin_pages_are_refused_to_users(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    for path in ("/admin", "/admin/users", "/admin/apps", "/admin/health",
                 f"/admin/users/{user['id']}"):  # fmt: skip
        r = await browser.get(path)
        assert r.status_code == 403, path
        assert "for admins only" in r.text and user["username"] not in r.text.split("</header>")[1]
    token = csrf_of((await browser.get("/apps")).text)
    for action, fields in [("quota", {"apps": "1000"}), ("change", {"what": "admin"}),
                           ("remove", {"confirm": user["username"]})]:  # fmt: skip
        r = await browser.post(
            f"/admin/users/{user['id']}/{action}", {"csrf_token": token, **fields}
        )
        assert r.status_code == 403, action
    me = await core.stores.users.get(user["id"])
    assert me is not None and me.role == "user"
    assert (await core.stores.quotas.report(user["id"])).overrides["apps"] is None  # type: ignore[union-attr]
    assert "/admin" not in (await browser.get("/apps")).text  # no link to it either


async def test_an_admin_changes_a_users_quota(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    admin, _ = await new_browser("admin")
    _, user = await new_browser()
    page = f"/admin/users/{user['id']}"
    listing = (await admin.get("/admin/users?offset=0")).text
    assert f"/admin/users/{user['id']}" in listing or "Next" in listing
    r = await admin.submit(page, f"{page}/quota", {"apps": "3", "memory_mb": "2048", "cpus": ""})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=quota")
    report = await core.stores.quotas.report(user["id"])
    assert report is not None and report.limits.apps == 3 and report.limits.memory_mb == 2048
    assert report.overrides["cpus"] is None  # left empty: the platform's default
    shown = (await admin.get(r.headers["location"])).text
    assert "Quota saved." in shown and 'name="apps" value="3"' in shown
    bad = await admin.submit(page, f"{page}/quota", {"apps": "-1", "memory_mb": "many"})
    assert bad.status_code == 422
    assert "greater than or equal to 0" in field_error(bad.text, "apps")
    assert "valid integer" in field_error(bad.text, "memory_mb")
    assert (await core.stores.quotas.report(user["id"])).limits.apps == 3  # type: ignore[union-attr]


async def test_disabling_a_user_ends_their_sessions_and_enabling_lets_them_back(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    admin, _ = await new_browser("admin")
    browser, user = await new_browser()
    assert (await browser.get("/apps")).status_code == 200
    page = f"/admin/users/{user['id']}"
    r = await admin.submit(page, f"{page}/change", {"what": "disable"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=disabled")
    assert (await browser.get("/apps")).status_code == 303  # sent to sign in
    assert "data-user-state>disabled" in (await admin.get(page)).text
    await admin.submit(page, f"{page}/change", {"what": "enable"})
    me = await core.stores.users.get(user["id"])
    assert me is not None and not me.disabled


async def test_an_admin_cannot_disable_themselves(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    admin, me = await new_browser("admin")
    page = f"/admin/users/{me['id']}"
    shown = (await admin.get(page)).text
    assert "Disable</button>" not in shown and "Remove user" not in shown
    r = await admin.submit(page, f"{page}/change", {"what": "disable"})
    assert r.status_code == 409 and "admins do not change their own role" in field_error(
        r.text, "form"
    )
    assert not (await core.stores.users.get(me["id"])).disabled  # type: ignore[union-attr]


async def test_removing_a_user_needs_their_name_and_takes_their_apps(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    admin, _ = await new_browser("admin")
    _, user = await new_browser()
    app = await stored_app(core.stores, user["id"])
    page = f"/admin/users/{user['id']}"
    r = await admin.submit(page, f"{page}/remove", {"confirm": "someone-else"})
    assert r.status_code == 422 and "type the user's name" in field_error(r.text, "confirm")
    assert await core.stores.users.get(user["id"]) is not None
    r = await admin.submit(page, f"{page}/remove", {"confirm": user["username"]})
    assert r.status_code == 303 and r.headers["location"] == "/admin/users?done=removed"
    assert await core.stores.users.get(user["id"]) is None
    assert app.id not in {a.id for a in (await core.stores.apps.all_in_states(list(State)))}
    assert (await admin.get(page)).status_code == 404


async def test_all_apps_lists_every_users_apps_with_their_owner(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    admin, _ = await new_browser("admin")
    _, one = await new_browser()
    _, two = await new_browser()
    first = await stored_app(core.stores, one["id"])
    second = await stored_app(core.stores, two["id"])
    page = (await admin.get("/admin/apps")).text
    for app, owner in ((first, one), (second, two)):
        row = page.split(f'<tr data-app="{app.name}">')[1].split("</tr>")[0]
        assert owner["username"] in row and "pending" in row


async def test_the_health_page_asks_each_part(new_browser: BrowserMaker) -> None:
    admin, _ = await new_browser("admin")
    page = (await admin.get("/admin/health")).text
    for part in ("store", "engine", "router", "queue", "disk (data)", "disk (backups)"):
        assert f'<tr data-part="{part}" data-ok="yes">' in page, part
    assert "apps stored" in page and "GiB free" in page and "queued" in page


async def test_a_part_that_fails_or_hangs_is_reported_without_holding_up_the_rest(
    core: ControlPlane, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ipaas.admin import health
    from ipaas.runtime.base import RuntimeUnavailable

    class GoneEngine:
        async def list_containers(self, app_id: str | None = None, detail: bool = True) -> Any:
            raise RuntimeUnavailable("the Docker engine does not answer")

    class HungRouter:
        async def health(self) -> str:
            await asyncio.sleep(60)
            return "never"

    monkeypatch.setattr(health, "PROBE_TIMEOUT_S", 0.3)
    probe = health.PlatformHealth(
        core.stores.apps, core.stores.builds, GoneEngine(), HungRouter(),  # type: ignore[arg-type]
        {"data": tmp_path / "not-made-yet"}, health.HealthLimits(600, True),
    )  # fmt: skip
    started = time.monotonic()
    checks = {c.part: c for c in await probe.check()}
    assert time.monotonic() - started < 2
    assert not checks["engine"].ok and "does not answer" in checks["engine"].summary
    assert not checks["router"].ok and "no answer within 0.3 s" in checks["router"].summary
    assert checks["store"].ok and checks["disk (data)"].ok
