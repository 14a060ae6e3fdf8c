"""End to end with (stand-in) GitHub in App mode, on real Docker and Caddy: an admin makes the
platform's GitHub App with the manifest flow (no GitHub setting but where GitHub is), a user
signs in through it, pages through over 100 repositories and branches in order, deploys a
private repository with an installation token minted for the clone, pushes, and the App's
webhook rolls the new commit out; a pull request opens and closes a preview. No token, nor the
App's client secret, webhook secret or private key, may appear in the store, an API answer, an
event, a log line, a build log or `ps`."""

from __future__ import annotations

import html.parser
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ipaas.auth.passwords import hash_password
from ipaas.config import GitHubSettings, Settings
from ipaas.domain.states import State
from ipaas.platform import api_process
from ipaas.store.migrate import upgrade
from ipaas.store.models import Base
from tests.e2e.apps import settings_app
from tests.e2e.conftest import ADMIN_PASSWORD, E2E, e2e_settings, remove_leftovers
from tests.github_standin import StandInApp, StandInGitHub, standin_github
from tests.live import start_live
from tests.services import need

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@dataclass
class GitHubE2E:
    hub: StandInGitHub
    e2e: E2E
    owners: list[str]
    admin: dict[str, str]  # an admin's Authorization header


@pytest.fixture(scope="module")
def gh(
    module_database_url: str, base_images: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GitHubE2E]:
    need("docker")
    upgrade(module_database_url)
    data = tmp_path_factory.mktemp("gh-e2e")
    with standin_github(tmp_path_factory.mktemp("github")) as hub:
        settings = e2e_settings(data, module_database_url)
        # Only where GitHub is: the App is made by an admin, through the manifest flow.
        settings.github = GitHubSettings(api_url=hub.api_url, web_url=hub.web_url)
        plane = api_process(settings)
        live = start_live(plane, port=settings.port)
        admin = live.run(plane.stores.users.create(
            f"a{uuid.uuid4().hex[:8]}", hash_password(ADMIN_PASSWORD), "admin"
        ))  # fmt: skip
        token = plane.stores.access_tokens.issue(admin.id, "admin")
        found = GitHubE2E(
            hub, E2E(live, settings, {}, data), [], {"Authorization": f"Bearer {token}"}
        )
        try:
            yield found
        finally:
            app_ids = [a.id for a in live.run(plane.stores.apps.all_in_states(list(State)))]
            live.stop()
            for owner in found.owners:
                remove_leftovers(app_ids, owner)


class _Form(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action, self.fields = "", dict[str, str]()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = found["action"]
        elif tag == "input" and "name" in found:
            self.fields[found["name"]] = found.get("value", "")


def make_github_app(gh: GitHubE2E) -> tuple[StandInApp, list[str]]:
    """The admin's browser: the platform's page → GitHub's new-App form → back with a code.
    The App made, and what the platform answered along the way."""
    login = f"admin{uuid.uuid4().hex[:6]}"
    gh.hub.add_user(login)
    gh.hub.browser_user = login
    with httpx.Client(base_url=gh.e2e.live.base, timeout=30) as browser:
        page = browser.get("/api/v1/admin/github/app/manifest", headers=gh.admin)
        assert page.status_code == 200, page.text
        form = _Form()
        form.feed(page.text)
        made = httpx.post(form.action, data={"manifest": form.fields["manifest"]}, timeout=30)
        assert made.status_code == 302, made.text
        back = browser.get(made.headers["location"])
    assert back.status_code == 201, back.text
    return gh.hub.apps[back.json()["app_id"]], [page.text, back.text]


def sign_in(gh: GitHubE2E, login: str) -> dict[str, str]:
    """A browser's OAuth round trip: ipaas → the stand-in's authorize page → the callback."""
    gh.hub.browser_user = login
    with httpx.Client(base_url=gh.e2e.live.base, timeout=30) as browser:
        start = browser.get("/api/v1/auth/github/login")
        back = httpx.get(start.headers["location"]).headers["location"]
        tokens = browser.get(back)
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    gh.owners.append(httpx.get(f"{gh.e2e.live.base}/api/v1/users/me", headers=headers).json()["id"])
    return headers


def everything_stored(gh: GitHubE2E) -> str:
    """Every row of every table, as text."""

    async def dump() -> str:
        async with gh.e2e.live.plane.stores.engine.connect() as conn:
            rows = [(await conn.execute(select(t))).all() for t in Base.metadata.sorted_tables]
        return repr(rows)

    return gh.e2e.live.run(dump())


def wait_built(e2e: E2E, app_id: str, commit: str, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app = e2e.get(app_id)
        if app["built_commit"] == commit and app["state"] == "running":
            return app
        time.sleep(0.3)
    raise AssertionError(f"{commit} never ran: {e2e.get(app_id, '/events')}")


def create_and_read_ps(e2e: E2E, hub: StandInGitHub, body: dict[str, Any]) -> tuple[str, str]:
    """Create the app and, while its first clone talks to GitHub, read `ps` with every
    process's arguments and environment: (app id, what ps showed)."""
    hub.git_waiting.clear()
    hub.git_hold = threading.Event()
    try:
        created = httpx.post(e2e.api, json=body, headers=e2e.headers, timeout=30)
        assert created.status_code == 201, created.text
        assert hub.git_waiting.wait(60), "git never reached the stand-in"
        ps = ["ps", "-e", "e", "-ww", "-o", "args"]
        listing = subprocess.run(ps, capture_output=True, text=True, check=True).stdout
    finally:
        hub.git_hold.set()
        hub.git_hold = None
    # Taken while git ran, and showing its environment too (where a token would be visible).
    assert "clone" in listing and "GIT_TERMINAL_PROMPT=0" in listing
    return str(created.json()["id"]), listing


def test_sign_in_deploy_a_private_repo_push_and_preview_without_leaking_a_token(
    gh: GitHubE2E, capfd: pytest.CaptureFixture[str]
) -> None:
    hub, e2e = gh.hub, gh.e2e
    github_app, setup_answers = make_github_app(gh)
    login = f"dev{uuid.uuid4().hex[:6]}"
    hub.add_user(login)
    full_name = f"{login}/shop"
    hub.add_repo(full_name, files=settings_app("v1"))
    hub.install_app(login, [full_name], app_id=github_app.id)
    e2e.headers = sign_in(gh, login)

    # Over 100 repositories, newest push first, page by page; over 100 branches, the default
    # first, then by last commit.
    listed = _list_repos(gh, login, full_name)
    _list_branches(gh, full_name)

    # Create: the first clone, with `ps` read while git fetches (token in no argv, no env).
    name = f"gh-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "repo": full_name, "health_check": "/health", "previews": True}
    app_id, seen_in_ps = create_and_read_ps(e2e, hub, body)
    assert e2e.wait(app_id)["state"] == "running", e2e.get(app_id, "/events")
    assert "from v1" in e2e.via_router(name).text

    # Push → the App's signed webhook → exactly that commit built and serving.
    app_hook = github_app.manifest["hook_attributes"]["url"]
    assert app_hook == f"{e2e.live.base}/api/v1/hooks/github"
    payload = hub.push(full_name, {"version.txt": "v2"})
    forged = hub.deliver(app_hook, "push", {**payload, "after": "f" * 40}, "not-the-secret")
    assert forged.status_code == 401 and e2e.get(app_id, "/webhook/deliveries") == []
    delivered = hub.deliver(app_hook, "push", payload, github_app.webhook_secret or "")
    assert delivered.status_code == 202, delivered.text
    app = wait_built(e2e, app_id, payload["after"])
    assert "from v2" in e2e.via_router(name).text and len(e2e.get(app_id, "/builds")) == 2

    # A pull request (to the app's own webhook) opens a preview of its head; closing it
    # removes the preview.
    hook = e2e.get(app_id, "/webhook")
    feature = hub.push(full_name, {"version.txt": "pr-1"}, branch="feature")
    pr = _pull_request(hub, full_name, 1, "opened", feature["after"])
    assert hub.deliver(hook["url"], "pull_request", pr, hook["secret"]).status_code == 202
    every = httpx.get(f"{e2e.api}?limit=500", headers=e2e.headers).json()["items"]
    previews = [a for a in every if a["preview_of"] == app_id]
    assert [p["name"] for p in previews] == [f"{name}-pr-1"]
    assert e2e.wait(previews[0]["id"])["state"] == "running"
    assert "from pr-1" in e2e.via_router(f"{name}-pr-1").text
    closed = _pull_request(hub, full_name, 1, "closed", feature["after"])
    assert hub.deliver(hook["url"], "pull_request", closed, hook["secret"]).status_code == 200
    _wait_gone(e2e, previews[0]["id"])

    # No token of this user or of the App's installations anywhere, nor the App's secrets.
    secrets = [t for t, who in hub.tokens.items() if who == login] + list(hub.installation_tokens)
    assert len(secrets) >= 4  # the sign-in's, and one installation token per clone (3)
    key_lines = github_app.pem().splitlines()[1:-1]  # each line of the private key on its own
    secrets += [github_app.client_secret, github_app.webhook_secret or "", *key_lines]
    assert len(key_lines) > 20 and github_app.webhook_secret
    admin_view = httpx.get(f"{e2e.live.base}/api/v1/admin/github/app", headers=gh.admin)
    answers = [e2e.get(app_id), e2e.get(app_id, "/events?limit=1000"), e2e.get(app_id, "/builds"),
               e2e.get(app_id, "/webhook/deliveries"), app, listed, admin_view.json(),
               setup_answers]  # fmt: skip
    build_logs = [e2e.get(app_id, f"/builds/{n}/log?limit=5000") for n in (1, 2)]
    assert "fetching" in str(build_logs)
    haystacks = {
        "store": everything_stored(gh), "api": repr(answers), "build logs": repr(build_logs),
        "ps": seen_in_ps, "logs": "".join(capfd.readouterr()),
    }  # fmt: skip
    leaks = [(where, t[:8]) for where, text in haystacks.items() for t in secrets if t in text]
    assert leaks == []


def _list_repos(gh: GitHubE2E, login: str, newest: str) -> list[Any]:
    """104 more repositories of the user's, pushed before `newest`, paged by 50 through the
    API: every one once, newest push first. The answers."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(104):
        gh.hub.add_repo(f"{login}/lib{i:03d}", pushed_at=start + timedelta(hours=(i * 53) % 104))
    pages = []
    for page in (1, 2, 3):
        r = httpx.get(
            f"{gh.e2e.live.base}/api/v1/providers/github/repos",
            params={"page": page, "per_page": 50}, headers=gh.e2e.headers, timeout=30,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        pages.append(r.json())
    assert [p["has_next"] for p in pages] == [True, True, False]
    names = [r["full_name"] for p in pages for r in p["items"]]
    assert len(names) == len(set(names)) == 105 and names[0] == newest
    pushed = [r["pushed_at"] for p in pages for r in p["items"]]
    assert pushed == sorted(pushed, reverse=True)
    return pages


def _list_branches(gh: GitHubE2E, full_name: str) -> None:
    """120 branches committed at distinct times, read back 100 a page: the default branch
    first, then every other one newest commit first."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    dated = {f"topic-{i:03d}": start + timedelta(minutes=(i * 47) % 120) for i in range(120)}
    gh.hub.add_branches(full_name, dated)
    url = f"{gh.e2e.live.base}/api/v1/providers/github/repos/{full_name}/branches"
    pages = [
        httpx.get(url, params={"page": n, "per_page": 100}, headers=gh.e2e.headers, timeout=30)
        for n in (1, 2)
    ]
    assert all(p.status_code == 200 for p in pages), pages[0].text
    assert [p.json()["has_next"] for p in pages] == [True, False]
    names = [b["name"] for p in pages for b in p.json()["items"]]
    assert names == ["main", *sorted(dated, key=lambda b: dated[b], reverse=True)]


def _pull_request(
    hub: StandInGitHub, full_name: str, number: int, action: str, sha: str
) -> dict[str, Any]:
    repo = hub._repo_json(hub.repos[full_name])
    return {
        "action": action, "number": number, "repository": repo,
        "pull_request": {
            "number": number, "head": {"ref": "feature", "sha": sha, "repo": repo},
            "base": {"ref": "main", "repo": repo},
        },
    }  # fmt: skip


def _wait_gone(e2e: E2E, app_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(f"{e2e.api}/{app_id}", headers=e2e.headers).status_code == 404:
            return
        time.sleep(0.3)
    raise AssertionError(f"preview {app_id} was not deleted")
