"""Branches of any git repository through the API (the generic provider): of a URL, through the
platform's git runner against a real `git http-backend`, with the repository rules, host checks
and timeout every clone has; and of an app's repository with the credentials kept for it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ipaas.platform import ControlPlane
from tests.builds.conftest import GitHttp, git, serve_git_http
from tests.conftest import UserMaker, auth
from tests.test_repo_hosts_api import GIT_HTTP_TOKEN, operator_sets, unique_name

BRANCHES = "/api/v1/providers/git/branches"
APPS = "/api/v1/applications"


@pytest.fixture(scope="module")
def git_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttp]:
    with serve_git_http(tmp_path_factory.mktemp("git-http")) as site:
        yield site


@pytest.fixture(scope="module")
def repo(git_http: GitHttp) -> str:
    """A private repository (Basic auth) on loopback with main and five other branches."""
    name = f"branches-{unique_name()}.git"
    git_http.add(name, files={"index.html": "x"})
    for branch in ("zeta", "alpha", "release/2", "mid", "beta"):
        git(Path(git_http.base / name), "branch", branch)
    return name


@pytest.fixture
def loopback_allowed(core: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator lets users reach repositories on loopback over http (the test server)."""
    operator_sets(
        monkeypatch, core, allowed_repo_schemes=["https", "http"],
        repo_allowed_networks=["127.0.0.0/8"],
    )  # fmt: skip


def with_token(git_http: GitHttp, name: str) -> str:
    return git_http.url(name, userinfo=f"alice:{GIT_HTTP_TOKEN}@")


async def test_a_private_urls_branches_default_first_then_by_name_in_pages(
    client: httpx.AsyncClient, make_user: UserMaker, git_http: GitHttp, repo: str,
    loopback_allowed: None,
) -> None:  # fmt: skip
    user = await make_user()
    seen = len(git_http.authorizations)
    pages = []
    for page in (1, 2, 3):
        body = {"repo": with_token(git_http, repo), "page": page, "per_page": 2}
        r = await client.post(BRANCHES, json=body, headers=auth(user))
        assert r.status_code == 200, r.text
        assert GIT_HTTP_TOKEN not in r.text
        pages.append(r.json())
    names = [b["name"] for p in pages for b in p["items"]]
    assert names == ["main", "alpha", "beta", "mid", "release/2", "zeta"]
    assert [p["has_next"] for p in pages] == [True, True, False]
    assert pages[0]["items"][0]["default"] and len(pages[0]["items"][0]["commit"]) == 40
    assert git_http.expected in git_http.authorizations[seen:]  # the token, given to git aside
    anonymous = await client.post(BRANCHES, json={"repo": git_http.url(repo)}, headers=auth(user))
    assert anonymous.status_code == 422 and anonymous.json()["code"]


async def test_users_cannot_list_internal_hosts_local_paths_or_other_schemes(
    client: httpx.AsyncClient, make_user: UserMaker, git_http: GitHttp, repo: str,
    core: ControlPlane, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    operator_sets(monkeypatch, core, allowed_repo_schemes=["https", "http"])
    user = await make_user()
    seen = len(git_http.authorizations)
    refused = {
        with_token(git_http, repo): (422, "repo_host_forbidden"),  # loopback, not allowed
        "https://169.254.169.254/latest/meta-data/": (422, "repo_host_forbidden"),
        str(git_http.base / repo): (403, None),  # a path on the platform's own disk
        "file:///etc": (403, None),
        "ftp://example.com/x.git": (422, None),
        "acme/shop": (422, "not_a_url"),  # a GitHub name: its own listing
    }
    for url, (status, code) in refused.items():
        r = await client.post(BRANCHES, json={"repo": url}, headers=auth(user))
        assert r.status_code == status, (url, r.text)
        assert code is None or r.json()["code"] == code, r.text
        assert GIT_HTTP_TOKEN not in r.text
    assert git_http.authorizations[seen:] == []  # nothing was sent
    admin = await make_user("admin")  # admins are not checked (their own infrastructure)
    r = await client.post(BRANCHES, json={"repo": with_token(git_http, repo)}, headers=auth(admin))
    assert r.status_code == 200 and r.json()["items"][0]["name"] == "main"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


async def test_a_host_that_never_answers_is_given_up_after_the_clone_timeout(
    client: httpx.AsyncClient, make_user: UserMaker, core: ControlPlane,
    monkeypatch: pytest.MonkeyPatch, silent_server: int, loopback_allowed: None,
) -> None:  # fmt: skip
    monkeypatch.setattr(core.settings.build, "clone_timeout_s", 1.5)
    user = await make_user()
    started = time.monotonic()
    body = {"repo": f"http://127.0.0.1:{silent_server}/stuck.git"}
    r = await client.post(BRANCHES, json=body, headers=auth(user))
    assert time.monotonic() - started < 10
    assert r.status_code == 422 and r.json()["code"] == "fetch_failed", r.text
    assert "timed out" in r.json()["detail"]


async def test_an_apps_branches_are_listed_with_its_kept_credentials(
    client: httpx.AsyncClient, make_user: UserMaker, git_http: GitHttp, repo: str,
    loopback_allowed: None,
) -> None:  # fmt: skip
    owner = await make_user()
    body = {"name": unique_name(), "repo": with_token(git_http, repo)}
    created = await client.post(APPS, json=body, headers=auth(owner))
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]
    r = await client.get(f"{APPS}/{app_id}/branches?per_page=3", headers=auth(owner))
    assert r.status_code == 200, r.text
    assert [b["name"] for b in r.json()["items"]] == ["main", "alpha", "beta"]
    assert r.json()["has_next"] and GIT_HTTP_TOKEN not in r.text
    stranger = await make_user()
    assert (
        await client.get(f"{APPS}/{app_id}/branches", headers=auth(stranger))
    ).status_code == 404
