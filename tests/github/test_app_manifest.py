"""The platform's GitHub App made with GitHub's manifest flow, against the stand-in: an admin
starts it, GitHub (stand-in) makes the App and sends the browser back with a code, the platform
converts it and keeps the App encrypted, and App mode works with no setting edited: sign-in,
listings, installation tokens minted with the new key (in another process too), the App's
webhook. Forged, foreign, replayed and other browsers' states are refused."""

from __future__ import annotations

import contextlib
import html.parser
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from ipaas.api.app import create_app
from ipaas.api.routes_github_app import STATE_COOKIE
from ipaas.builds.git import fetch
from ipaas.domain.pushes import sign
from ipaas.platform import ControlPlane
from ipaas.store.migrate import upgrade
from ipaas.store.models import Base
from ipaas.web.site import create_site
from tests.conftest import auth, make_settings, signed_in_user
from tests.fakes import fake_plane
from tests.github.conftest import new_login, repo_files, sign_in
from tests.github_standin import StandInApp, StandInGitHub
from tests.web.browser import Browser

APP = "/api/v1/admin/github/app"


@pytest.fixture(scope="module")
async def bare(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, github: StandInGitHub
) -> AsyncIterator[ControlPlane]:
    """A platform told only where GitHub is: no App, no client id, no key."""
    upgrade(module_database_url)
    data = tmp_path_factory.mktemp("data")
    settings = make_settings(
        data, module_database_url, router={"kind": "transparent"},
        github={"api_url": github.api_url, "web_url": github.web_url},
    )  # fmt: skip
    plane = fake_plane(settings)
    yield plane
    await plane.lifecycle.close()


@pytest.fixture
async def browser(bare: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    """The admin's browser at the platform (a cookie jar of its own)."""
    transport = httpx.ASGITransport(app=create_app(bare, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url=bare.settings.api_url) as c:
        yield c


@pytest.fixture
async def admin(bare: ControlPlane, github: StandInGitHub) -> dict[str, str]:
    """An admin of the platform, signed in to (stand-in) GitHub in the same browser."""
    found = await signed_in_user(bare, role="admin")
    login = new_login("admin")
    github.add_user(login, orgs=[f"org-{login}"])
    github.browser_user = login
    return {**auth(found), "login": login, "id": found["id"]}


class _Form(html.parser.HTMLParser):
    """The action and fields of the one form of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")


async def start(
    browser: httpx.AsyncClient, admin: dict[str, str], **query: Any
) -> tuple[str, dict[str, Any]]:
    """The page the admin opens: (where its form posts, the manifest it posts). The App gets
    a name of its own (names are unique on GitHub) unless `name=None` asks for the default."""
    query.setdefault("name", f"ipaas {uuid.uuid4().hex[:8]}")
    query = {k: v for k, v in query.items() if v is not None}
    page = await browser.get(f"{APP}/manifest", params=query, headers=_bearer(admin))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    form = _Form()
    form.feed(page.text)
    return form.action, json.loads(form.fields["manifest"])


async def at_github(action: str, manifest: dict[str, Any]) -> str:
    """The browser posts the form to GitHub, which makes the App and sends it back: where."""
    async with httpx.AsyncClient() as outside:
        made = await outside.post(action, data={"manifest": json.dumps(manifest)})
    assert made.status_code == 302, made.text
    return made.headers["location"]


async def come_back(browser: httpx.AsyncClient, location: str) -> httpx.Response:
    back = urlsplit(location)
    return await browser.get(f"{back.path}?{back.query}")


async def make_app(
    browser: httpx.AsyncClient, admin: dict[str, str], **query: Any
) -> tuple[httpx.Response, str]:
    """The whole round trip: (the callback's answer, where GitHub sent the browser)."""
    action, manifest = await start(browser, admin, replace=True, **query)
    location = await at_github(action, manifest)
    return await come_back(browser, location), location


def _bearer(admin: dict[str, str]) -> dict[str, str]:
    return {"Authorization": admin["Authorization"]}


def made(github: StandInGitHub, answer: httpx.Response) -> StandInApp:
    return github.apps[answer.json()["app_id"]]


async def stored_rows(plane: ControlPlane) -> str:
    async with plane.stores.engine.connect() as conn:
        rows = [(await conn.execute(select(t))).all() for t in Base.metadata.sorted_tables]
    return repr(rows)


async def test_the_manifest_flow_makes_the_app_and_app_mode_works_without_settings(
    bare: ControlPlane, browser: httpx.AsyncClient, admin: dict[str, str],
    github: StandInGitHub, tmp_path: Path,
) -> None:  # fmt: skip
    await bare.github_app.remove()  # type: ignore[union-attr]
    assert (await browser.get("/api/v1/auth/github/login")).json()["code"] == "no_provider"
    assert (await browser.get(APP, headers=_bearer(admin))).status_code == 404

    action, manifest = await start(browser, admin, name=None)
    assert action.startswith(f"{github.web_url}/settings/apps/new?state=")
    assert manifest["name"] == "ipaas 127.0.0.1"  # the platform's host
    api = bare.settings.api_url
    assert manifest["redirect_url"] == f"{api}{APP}/callback"
    assert manifest["callback_urls"] == [f"{api}/api/v1/auth/github/callback"]
    assert manifest["hook_attributes"] == {"url": f"{api}/api/v1/hooks/github", "active": True}
    assert manifest["default_permissions"] == {
        "contents": "read", "metadata": "read", "pull_requests": "read",
    }  # fmt: skip
    assert manifest["public"] is False
    answer = await come_back(browser, await at_github(action, manifest))
    assert answer.status_code == 201, answer.text
    app = made(github, answer)
    shown = answer.json()
    assert (shown["slug"], shown["owner"]) == (app.slug, admin["login"])
    assert shown["install_url"] == f"{github.web_url}/apps/{app.slug}/installations/new"
    assert (await browser.get(APP, headers=_bearer(admin))).json()["app_id"] == app.id

    # Kept encrypted: neither secret nor the key is in the store in clear, nor answered.
    key_body = "".join(app.pem().splitlines()[1:-1])
    secrets = [app.client_secret, app.webhook_secret or "", key_body[:64], key_body[-64:]]
    stored = await stored_rows(bare)
    assert app.client_id in stored and not [s[:8] for s in secrets if s in stored]
    assert not [s[:8] for s in secrets if s in answer.text]

    # App mode: sign-in through the new App, and a clone with a token its key minted.
    login = new_login()
    github.add_user(login)
    start_signin = await browser.get("/api/v1/auth/github/login?format=json")
    assert parse_qs(urlsplit(start_signin.json()["authorize_url"]).query)["client_id"] == [
        app.client_id
    ]
    user = await sign_in(browser, github, login)
    full_name = f"{login}/site"
    github.add_repo(full_name, files=repo_files("made"))
    github.install_app(login, [full_name], app_id=app.id)
    listed = await browser.get("/api/v1/providers/github/repos", headers=user.headers)
    assert [r["full_name"] for r in listed.json()["items"]] == [full_name]
    created = await browser.post(
        "/api/v1/applications",
        json={"name": f"gh-{uuid.uuid4().hex[:8]}", "repo": full_name},
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    row = await bare.stores.apps.get(created.json()["id"])

    # Another process (a builder) on the same store reads the App from there.
    other = fake_plane(bare.settings)
    try:
        source = await other.sources.of_app(row)
    finally:
        await other.lifecycle.close()
    assert source.credentials is not None
    minted_for = github.installation_tokens[source.credentials.password][0]
    assert github.installations[minted_for].app_id == app.id  # with the new App's JWT
    dest = tmp_path / "checkout"
    await fetch(source.url, None, None, dest, timeout_s=30, max_bytes=10**7,
                allowed_schemes=source.extra_schemes, credentials=source.credentials)  # fmt: skip
    assert (dest / "version.txt").read_text() == "made"

    # The App's own webhook: signed with its secret, it rebuilds the pushed commit.
    push = github.push(full_name, {"version.txt": "v2"})
    hook = f"{api}/api/v1/hooks/github"
    forged = await _deliver(browser, hook, push, "not-the-secret")
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    assert await bare.stores.deliveries.of_app(row.id, 10) == []
    delivered = await _deliver(browser, hook, push, app.webhook_secret or "")
    assert delivered.status_code == 202, delivered.text
    assert delivered.json()["apps"][0]["app_id"] == row.id
    assert delivered.json()["apps"][0]["commit"] == push["after"]
    history = await bare.stores.deliveries.of_app(row.id, 10)
    assert [(d.outcome, d.commit) for d in history] == [("rebuild", push["after"])]


async def _deliver(
    browser: httpx.AsyncClient, url: str, payload: dict[str, Any], secret: str
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sign(secret, body),
    }  # fmt: skip
    return await browser.post(urlsplit(url).path, content=body, headers=headers)


@contextlib.asynccontextmanager
async def another_browser(
    plane: ControlPlane, cookie: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser without the admin's cookies (with this flow nonce in one, if given)."""
    transport = httpx.ASGITransport(app=create_app(plane, manage_lifecycle=False))
    headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie else {}
    async with httpx.AsyncClient(
        transport=transport, base_url=plane.settings.api_url, headers=headers
    ) as c:
        yield c


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


async def test_forged_foreign_replayed_and_other_browsers_states_are_refused(
    bare: ControlPlane, browser: httpx.AsyncClient, admin: dict[str, str],
    github: StandInGitHub,
) -> None:  # fmt: skip
    def refused(answer: httpx.Response) -> bool:
        return answer.status_code == 422 and answer.json()["code"] == "bad_state"

    # Replayed: the callback comes again with its cookie (the nonce is spent), and with a new
    # code GitHub gave for the same state, at another process of the platform (the store
    # remembers which flow made the App).
    action, manifest = await start(browser, admin, replace=True)
    nonce = browser.cookies.get(STATE_COOKIE)
    assert nonce
    location = await at_github(action, manifest)
    first = await come_back(browser, location)
    assert first.status_code == 201, first.text
    kept = first.json()["app_id"]
    async with another_browser(bare, nonce) as replay:
        assert refused(await come_back(replay, location))
    fresh_code = await at_github(action, {**manifest, "name": f"x{uuid.uuid4().hex[:8]}"})
    other = fake_plane(bare.settings)
    try:
        async with another_browser(other, nonce) as replay:
            assert refused(await come_back(replay, fresh_code))
    finally:
        await other.lifecycle.close()

    # Forged; a sign-in's state with its own nonce (another purpose); another browser's.
    code = parse_qs(urlsplit(fresh_code).query)["code"][0]
    async with another_browser(bare, nonce) as forger:
        forged = await forger.get(f"{APP}/callback", params={"code": code, "state": "x.y.z"})
        assert refused(forged)
    signin = await browser.get("/api/v1/auth/github/login?format=json")
    signin_state = state_of(signin.json()["authorize_url"])
    async with another_browser(bare, browser.cookies.get("ipaas_github_state")) as mixer:
        mixed = await mixer.get(f"{APP}/callback", params={"code": code, "state": signin_state})
        assert refused(mixed)
    action, manifest = await start(browser, admin, replace=True)
    elsewhere = await at_github(action, manifest)
    async with another_browser(bare) as stranger:  # the attacker's: no cookie of the admin's
        assert refused(await come_back(stranger, elsewhere))
    current = (await browser.get(APP, headers=_bearer(admin))).json()["app_id"]
    assert current == kept  # none of them made an App

    # A code GitHub does not know (used, or made up) with a good state: nothing is stored.
    action, manifest = await start(browser, admin, replace=True)
    params = {"code": "0" * 40, "state": state_of(action)}
    bad = await browser.get(f"{APP}/callback", params=params)
    assert bad.status_code == 422 and bad.json()["code"] == "bad_code"
    assert (await browser.get(APP, headers=_bearer(admin))).json()["app_id"] == kept


async def test_only_admins_start_it_once_unless_replacing_and_in_an_org(
    bare: ControlPlane, browser: httpx.AsyncClient, admin: dict[str, str],
    github: StandInGitHub,
) -> None:  # fmt: skip
    user = await signed_in_user(bare)
    denied = await browser.get(f"{APP}/manifest", headers=auth(user))
    assert denied.status_code == 403
    first, _ = await make_app(browser, admin)
    assert first.status_code == 201
    again = await browser.get(f"{APP}/manifest", headers=_bearer(admin))
    assert again.status_code == 409 and again.json()["code"] == "github_app_exists"
    bad_org = await browser.get(
        f"{APP}/manifest", params={"org": "-no-", "replace": True}, headers=_bearer(admin)
    )
    assert bad_org.status_code == 422 and bad_org.json()["code"] == "invalid_org"
    too_long = await browser.get(
        f"{APP}/manifest", params={"name": "n" * 35, "replace": True}, headers=_bearer(admin)
    )
    assert too_long.status_code == 422 and too_long.json()["code"] == "invalid_name"

    org = f"org-{admin['login']}"
    answer, _ = await make_app(browser, admin, org=org, name=f"ipaas {uuid.uuid4().hex[:8]}")
    assert answer.status_code == 201, answer.text
    assert answer.json()["owner"] == org
    as_json = await browser.get(
        f"{APP}/manifest", params={"org": org, "replace": True, "format": "json"},
        headers=_bearer(admin),
    )  # fmt: skip
    assert as_json.json()["post_url"].startswith(
        f"{github.web_url}/organizations/{org}/settings/apps/new?state="
    )
    assert (await browser.delete(APP, headers=_bearer(admin))).status_code == 204
    assert (await browser.get("/api/v1/auth/github/login")).json()["code"] == "no_provider"


async def test_with_an_app_in_the_settings_the_flow_is_refused(
    client: httpx.AsyncClient, plane: ControlPlane
) -> None:
    found = await signed_in_user(plane, role="admin")
    answer = await client.get(f"{APP}/manifest", headers=auth(found))
    assert answer.status_code == 409 and answer.json()["code"] == "github_configured"


async def test_an_admin_makes_it_from_the_dashboard_and_comes_back_there(
    bare: ControlPlane, admin: dict[str, str], github: StandInGitHub
) -> None:
    transport = httpx.ASGITransport(app=create_site(bare, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://ipaas.test") as client:
        browser = Browser(client)
        await browser.sign_in_as(bare, admin["id"])
        name = f"ipaas {uuid.uuid4().hex[:8]}"
        page = await browser.submit(
            "/account", "/account/github-app", {"name": name, "replace": "on"}
        )
        assert page.status_code == 200, page.text
        # The page's one form may go to GitHub; every other page's only to the platform.
        assert f"form-action 'self' {github.web_url};" in page.headers["content-security-policy"]
        form = _Form()
        form.feed(page.text)
        assert form.action.startswith(f"{github.web_url}/settings/apps/new?state=")
        location = await at_github(form.action, json.loads(form.fields["manifest"]))
        back = await come_back(client, location)
        assert back.status_code == 303 and back.headers["location"] == "/account?done=github-app"
        account = await browser.get(back.headers["location"])
        app = next(a for a in github.apps.values() if a.name == name)
        assert (
            name in account.text
            and f"{github.web_url}/apps/{app.slug}/installations/new" in account.text
        )
        assert app.client_secret not in account.text
    user = await signed_in_user(bare)
    async with httpx.AsyncClient(transport=transport, base_url="http://ipaas.test") as client:
        stranger = Browser(client)
        await stranger.sign_in_as(bare, user["id"])
        assert "GitHub App" not in (await stranger.get("/account")).text
        refused = await stranger.submit("/account", "/account/github-app", {"name": "x"})
        assert refused.status_code == 404
