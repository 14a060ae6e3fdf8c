"""The pages without an engine behind them, in Debian's Chromium (Playwright): Sign in with
(stand-in) GitHub and pick a repository and branch on New app; the admin pages; the notice
preferences. A live dashboard on the in-memory runtime, GitHub played by the stand-in over
real HTTP. Each flow leaves screenshots; no page may log a script error or a CSP refusal."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ipaas.auth.passwords import hash_password
from ipaas.store.migrate import upgrade
from tests.chromium import chromium, screenshots, watched_page
from tests.conftest import make_settings
from tests.fakes import fake_plane
from tests.github.conftest import new_login, repo_files
from tests.github_standin import StandInGitHub
from tests.live import Live, start_live
from tests.support import free_port

__all__ = ["chromium"]
pytestmark = [pytest.mark.slow]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def live(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, github: StandInGitHub
) -> Iterator[Live]:
    upgrade(module_database_url)
    port = free_port()
    data = tmp_path_factory.mktemp("data")
    settings = make_settings(
        data, module_database_url, router={"kind": "transparent"}, port=port, host="127.0.0.1",
        github=github.settings("oauth"),
    )  # fmt: skip
    server = start_live(fake_plane(settings), manage_lifecycle=False, port=port)
    yield server
    server.stop()


@dataclass
class Tab:
    page: Any
    problems: list[str]
    shot: Any


@pytest.fixture
async def tab(chromium: Any, live: Live, tmp_path: Path) -> AsyncIterator[Tab]:
    context = await chromium.new_context(
        base_url=live.base, viewport={"width": 1200, "height": 800}
    )
    page, problems = await watched_page(context)
    yield Tab(page, problems, screenshots(page, tmp_path))
    await context.close()
    assert problems == [], problems


def local_user(live: Live, role: str = "user") -> str:
    name = f"u{uuid.uuid4().hex[:8]}"
    live.run(live.plane.stores.users.create(name, hash_password(PASSWORD), role))
    return name


async def sign_in(page: Any, name: str, wanted: str) -> None:
    from playwright.async_api import expect

    await page.goto(wanted)
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button:has-text('Sign in')")
    await expect(page).to_have_url(re.compile(rf"{re.escape(wanted)}$"))


async def test_sign_in_with_github_and_pick_a_repository(
    tab: Tab, live: Live, github: StandInGitHub
) -> None:
    from playwright.async_api import expect

    page = tab.page
    login = new_login()
    github.add_user(login)
    github.add_repo(f"{login}/shop", files=repo_files("shop"))
    github.push(f"{login}/shop", {"x": "1"}, branch="staging")
    github.browser_user = login  # signed in at GitHub, which approves at once

    await page.goto("/new")
    await expect(page).to_have_url(re.compile(r"/login\?next=/new$"))
    await tab.shot("login")
    await page.click("button:has-text('Sign in with GitHub')")
    await expect(page).to_have_url(re.compile(r"/new$"))
    await expect(page.locator("header .who")).to_have_text(login)

    await page.click("text=Pick a GitHub repository")
    await page.click(f'[data-repo="{login}/shop"] a')
    await page.click("a[data-fill-branch=staging]")
    await expect(page.locator("input[name=repo]")).to_have_value(f"{login}/shop")
    await expect(page.locator("input[name=branch]")).to_have_value("staging")
    await expect(page.locator("#picker")).to_contain_text("Chosen")
    assert page.url.endswith("/new")  # filled in place, no page load
    name = f"shop-{uuid.uuid4().hex[:6]}"
    await page.fill("input[name=name]", name)
    await tab.shot("picked")
    await page.click("button:has-text('Create app')")
    await expect(page).to_have_url(re.compile(r"/apps/[0-9a-f]+$"))
    await expect(page.locator(".apphead h1")).to_contain_text(name)
    await expect(page.locator("dd.mono").first).to_contain_text(f"{login}/shop @ staging")


async def test_an_admin_changes_a_quota_disables_a_user_and_sees_the_health(
    tab: Tab, live: Live
) -> None:
    from playwright.async_api import expect

    page = tab.page
    user = local_user(live)
    await sign_in(page, local_user(live, "admin"), "/admin/users")
    await page.click(f'tr[data-user="{user}"] a')
    await page.fill("form.quota input[name=apps]", "-3")
    await page.click("button:has-text('Save quota')")
    await expect(page.locator("#error-apps")).to_contain_text("greater than or equal to 0")
    await page.fill("form.quota input[name=apps]", "7")
    await page.click("button:has-text('Save quota')")
    await expect(page.locator(".notice")).to_have_text("Quota saved.")
    await expect(page.locator('#quota tr[data-kind="apps"] td').nth(2)).to_have_text("7")
    await page.click("button:has-text('Disable')")
    await expect(page.locator("[data-user-state]")).to_have_text("disabled")
    await tab.shot("user")
    remove = page.locator("button:has-text('Remove user')")
    await expect(remove).to_be_disabled()  # until the name is typed
    await page.click("nav.tabs >> text=Health")
    await expect(page.locator('#health tr[data-part="store"]')).to_have_attribute("data-ok", "yes")
    await tab.shot("health")
    await page.click("nav.tabs >> text=All apps")
    await expect(page.locator("#all-apps")).to_be_visible()


async def test_a_user_sees_no_admin_page_and_sets_notice_preferences(tab: Tab, live: Live) -> None:
    from playwright.async_api import expect

    page = tab.page
    await sign_in(page, local_user(live), "/account/notices")
    await expect(page.locator("header nav")).not_to_contain_text("Admin")
    box = page.locator("input[name=deploy_succeeded]")
    await expect(box).not_to_be_checked()
    await box.check()
    await page.uncheck("input[name=build_failed]")
    await page.click("button:has-text('Save preferences')")
    await expect(page.locator(".notice")).to_have_text("Notice preferences saved.")
    await expect(box).to_be_checked()
    await expect(page.locator("input[name=build_failed]")).not_to_be_checked()
    await tab.shot("notices")
    response = await page.goto("/admin")
    assert response is not None and response.status == 403
    tab.problems[:] = [p for p in tab.problems if "status of 403" not in p]
