"""GitHub in the dashboard, without JavaScript, against the stand-in GitHub: "Sign in with
GitHub" through the one callback GitHub knows, a callback from another browser refused,
linking a local account, and the New app page's repository picker."""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from ipaas.platform import ControlPlane
from ipaas.web.site import create_site
from tests.conftest import signed_in_user
from tests.github.conftest import approve, new_login, repo_files
from tests.github_standin import StandInGitHub
from tests.web.browser import Browser, csrf_of


@pytest.fixture(scope="module")
async def site_transport(plane: ControlPlane) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_site(plane, manage_lifecycle=False))


@pytest.fixture
async def browser(site_transport: httpx.ASGITransport) -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(transport=site_transport, base_url="http://ipaas.test") as c:
        yield Browser(c)


async def github_sign_in(browser: Browser, github: StandInGitHub, login: str) -> httpx.Response:
    """The login page's GitHub button, GitHub approving, and the way back: the last answer."""
    github.browser_user = login
    r = await browser.submit("/login?next=/new", "/login/github", {"next": "/new"})
    assert r.status_code == 303, r.text
    back = urlsplit(await approve(r.headers["location"]))
    assert back.path == "/api/v1/auth/github/callback"  # the one URL GitHub knows
    hop = await browser.get(f"{back.path}?{back.query}")
    assert hop.status_code == 303 and hop.headers["location"].startswith("/login/github/callback")
    return await browser.get(hop.headers["location"])


async def test_sign_in_with_github_from_the_login_page(
    browser: Browser, github: StandInGitHub, plane: ControlPlane
) -> None:
    page = await browser.get("/login")
    assert "Sign in with GitHub" in page.text
    # The form's answer leads to GitHub: allowed as a form target, and nothing else is.
    assert f"form-action 'self' {github.web_url};" in page.headers["content-security-policy"]
    login = new_login()
    github.add_user(login)
    done = await github_sign_in(browser, github, login)
    assert done.status_code == 303 and done.headers["location"] == "/new"
    page = await browser.get("/new")
    assert page.status_code == 200 and login in page.text  # signed in, as the new account
    user = await plane.stores.users.by_username(login)
    assert user is not None and user.password_hash is None


async def test_a_callback_in_another_browser_is_refused(
    browser: Browser, github: StandInGitHub, site_transport: httpx.ASGITransport
) -> None:
    """Login CSRF: an attacker's own approved callback, opened in a victim's browser (which
    has no cookie of that flow), signs nobody in."""
    attacker = new_login()
    github.add_user(attacker)
    github.browser_user = attacker
    r = await browser.submit("/login", "/login/github", {"next": "/apps"})
    back = urlsplit(await approve(r.headers["location"]))
    hop = await browser.get(f"{back.path}?{back.query}")
    async with httpx.AsyncClient(transport=site_transport, base_url="http://ipaas.test") as c:
        victim = Browser(c)
        refused = await victim.get(hop.headers["location"])
        assert refused.status_code == 403
        assert "started by another browser" in html.unescape(refused.text)
        assert "ipaas_session" not in c.cookies
        assert (await victim.get("/apps")).status_code == 303
    forged = hop.headers["location"].replace("state=", "state=x")
    assert (await browser.get(forged)).status_code == 403


async def test_the_picker_lists_repos_and_branches_and_fills_the_form(
    browser: Browser, github: StandInGitHub, plane: ControlPlane
) -> None:
    login = new_login()
    github.add_user(login)
    for name in ("alpha", "beta"):
        github.add_repo(f"{login}/{name}", files=repo_files(name))
    github.push(f"{login}/beta", {"x": "1"}, branch="dev")
    github.add_repo(f"someone-{uuid.uuid4().hex[:6]}/hidden", private=True)
    await github_sign_in(browser, github, login)

    page = await browser.get("/new")
    assert "Pick a GitHub repository" in page.text
    picker = await browser.get("/new/github", headers={"HX-Request": "true"})
    assert "<html" not in picker.text and "hidden" not in picker.text
    repos = (
        picker.text.index(f'data-repo="{login}/beta"'),
        picker.text.index(f'data-repo="{login}/alpha"'),
    )
    assert repos[0] < repos[1]  # newest push first
    narrowed = (await browser.get("/new/github?q=alp")).text
    assert f"{login}/alpha" in narrowed and f"{login}/beta" not in narrowed and "<html" in narrowed

    branches = (await browser.get(f"/new/github/branches?repo={login}/beta")).text
    assert branches.index(">main</a>") < branches.index(">dev</a>")  # the default first
    filled = html.unescape(branches).split('data-fill-branch="dev"')[0].rsplit('href="', 1)[1]
    form = await browser.get(filled.split('"')[0])
    assert f'value="{login}/beta"' in form.text and 'value="dev"' in form.text

    r = await browser.submit("/new", "/new", {"name": f"pick-{uuid.uuid4().hex[:6]}",
                                              "repo": f"{login}/beta", "branch": "dev"})  # fmt: skip
    assert r.status_code == 303, r.text
    app = await plane.stores.apps.get(r.headers["location"].rsplit("/", 1)[1])
    assert (app.provider, app.repo, app.branch) == ("github", f"{login}/beta", "dev")
    missing = await browser.get(f"/new/github/branches?repo={login}/nope")
    assert "error" in missing.text and "nope" in missing.text


async def test_a_local_account_connects_github_from_the_picker(
    browser: Browser, github: StandInGitHub, plane: ControlPlane
) -> None:
    local = await signed_in_user(plane)
    await browser.sign_in_as(plane, local["id"])
    picker = await browser.get("/new/github")
    assert "Connect GitHub" in picker.text and "sign in with GitHub first" in picker.text
    login = new_login()
    github.add_user(login)
    github.browser_user = login
    r = await browser.post("/login/github", {"csrf_token": csrf_of(picker.text), "next": "/new"})
    back = urlsplit(await approve(r.headers["location"]))
    hop = await browser.get(f"{back.path}?{back.query}")
    done = await browser.get(hop.headers["location"])
    assert done.status_code == 303 and done.headers["location"] == "/new"
    identity = await plane.stores.identities.of_user(local["id"], "github")
    assert identity is not None and identity.login == login  # linked to the local account
    assert local["username"] in (await browser.get("/new")).text  # still that account
