"""Repository URLs through the API: internal hosts refused for users (not admins), and
credentials pasted in a URL kept encrypted, never shown. Nothing here connects anywhere."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from ipaas.builds import repo_guard
from ipaas.builds.repo_guard import RepoGuard
from ipaas.domain.repo_access import RepoCredentials, decode_credentials
from ipaas.platform import ControlPlane
from tests.builds.conftest import GitHttp, serve_git_http
from tests.conftest import UserMaker, auth

APPS = "/api/v1/applications"
TOKEN = "ghp_S3cretTokenValue42"
GIT_HTTP_TOKEN = "tok-3xYz9-secret"  # what the git_http server accepts
INTERNAL = [
    "https://127.0.0.1/acme/app.git",
    "https://127.8.9.10/acme/app.git",
    "https://[::1]/acme/app.git",
    "https://[::ffff:127.0.0.1]/acme/app.git",
    "https://2130706433/acme/app.git",
    "https://0x7f000001/acme/app.git",
    "https://0177.0.0.1/acme/app.git",
    "https://127.1/acme/app.git",
    "https://169.254.169.254/latest/meta-data/",
    "https://[fe80::1]/x.git",
    "https://10.0.0.8/acme/app.git",
    "https://172.20.1.1/acme/app.git",
    "https://192.168.1.20/acme/app.git",
    "https://[fd00::5]/x.git",
    "https://100.64.1.1/x.git",
    "https://0.0.0.0/x.git",
    "https://224.0.0.1/x.git",
    "https://localhost/acme/app.git",
    "https://repo.localhost/acme/app.git",
    "git://127.0.0.1/app.git",
    "ssh://git@10.1.1.1/acme/app.git",
    "git@192.168.0.2:acme/app.git",
    "https://user:pw@127.0.0.1/acme/app.git",
]


def unique_name() -> str:
    return f"host-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def git_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttp]:
    with serve_git_http(tmp_path_factory.mktemp("git-http")) as site:
        yield site


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Name lookups answered here (example.com names public), so no query leaves the machine."""
    answers: dict[str, list[str]] = {"public.example.com": ["93.184.216.34"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers.get(host, [])

    monkeypatch.setattr(repo_guard, "system_resolve", resolve)
    return answers


def operator_sets(monkeypatch: pytest.MonkeyPatch, core: ControlPlane, **changes: Any) -> None:
    """What an operator's settings change: the settings, and the policy and guard built from
    them when the control plane was wired (undone after the test)."""
    for key, value in changes.items():
        monkeypatch.setattr(core.settings, key, value)
    service = core.app_service
    monkeypatch.setattr(service, "repo_guard", RepoGuard.from_settings(core.settings))
    schemes = tuple(core.settings.allowed_repo_schemes)
    monkeypatch.setattr(service, "policy", replace(service.policy, allowed_repo_schemes=schemes))


@pytest.mark.parametrize("repo", INTERNAL)
async def test_users_cannot_create_apps_on_internal_hosts(
    client: httpx.AsyncClient, make_user: UserMaker, repo: str
) -> None:
    user = await make_user()
    r = await client.post(APPS, json={"name": unique_name(), "repo": repo}, headers=auth(user))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "repo_host_forbidden"
    assert "pw" not in r.text
    assert (await client.get(APPS, headers=auth(user))).json()["total"] == 0


async def test_a_name_resolving_to_an_internal_address_is_refused(
    client: httpx.AsyncClient, make_user: UserMaker, no_dns: dict[str, list[str]]
) -> None:
    user = await make_user()
    no_dns["git.attacker.example"] = ["93.184.216.34", "169.254.169.254"]
    body = {"name": unique_name(), "repo": "https://git.attacker.example/x.git"}
    r = await client.post(APPS, json=body, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "repo_host_forbidden"
    assert "169.254.169.254" in r.json()["detail"]


async def test_users_cannot_move_an_app_to_an_internal_host(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    body = {"name": unique_name(), "repo": "https://public.example.com/acme/app.git"}
    r = await client.post(APPS, json=body, headers=auth(user))
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    patch = {"repo": "https://169.254.169.254/latest/meta-data/"}
    r = await client.patch(f"{APPS}/{app_id}", json=patch, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "repo_host_forbidden"
    r = await client.get(f"{APPS}/{app_id}", headers=auth(user))
    assert r.json()["repo"] == "https://public.example.com/acme/app.git"


@pytest.mark.parametrize("repo", ["https://127.0.0.1/x.git", "git://10.0.0.1/x.git"])
async def test_validate_refuses_internal_hosts_before_connecting(
    client: httpx.AsyncClient, make_user: UserMaker, repo: str
) -> None:
    user = await make_user()
    r = await client.post("/api/v1/validate/repo", json={"repo": repo}, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "repo_host_forbidden"


async def test_admins_are_not_checked(client: httpx.AsyncClient, make_user: UserMaker) -> None:
    admin = await make_user("admin")
    for repo in ("https://127.0.0.1/acme/app.git", "https://10.0.0.8/acme/app.git"):
        body = {"name": unique_name(), "repo": repo}
        r = await client.post(APPS, json=body, headers=auth(admin))
        assert r.status_code == 201, r.text


async def test_operator_allowed_networks_let_users_in(
    client: httpx.AsyncClient,
    core: ControlPlane,
    make_user: UserMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator_sets(monkeypatch, core, repo_allowed_networks=["10.20.0.0/16"])
    user = await make_user()
    ok = {"name": unique_name(), "repo": "https://10.20.3.4/acme/app.git"}
    assert (await client.post(APPS, json=ok, headers=auth(user))).status_code == 201
    other = {"name": unique_name(), "repo": "https://10.21.0.1/acme/app.git"}
    r = await client.post(APPS, json=other, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "repo_host_forbidden"


# --- credentials ----------------------------------------------------------------------------


async def test_credentials_in_the_url_are_stored_encrypted_and_never_shown(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    url = f"https://alice:{TOKEN}@public.example.com/acme/private.git"
    r = await client.post(APPS, json={"name": unique_name(), "repo": url}, headers=auth(user))
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    shown = [
        r.text,
        (await client.get(f"{APPS}/{app_id}", headers=auth(user))).text,
        (await client.get(APPS, headers=auth(user))).text,
        (await client.get(f"{APPS}/{app_id}/events", headers=auth(user))).text,
    ]
    assert all(TOKEN not in text and "alice" not in text for text in shown)
    assert json.loads(shown[1])["repo"] == "https://public.example.com/acme/private.git"
    row = await core.stores.apps.get(app_id)
    assert row.repo == "https://public.example.com/acme/private.git"
    assert row.repo_credentials_encrypted and TOKEN not in row.repo_credentials_encrypted
    stored = decode_credentials(core.stores.cipher, row.repo_credentials_encrypted)
    assert stored == RepoCredentials("alice", TOKEN)
    # The builder is handed them apart from the URL.
    build = await core.stores.builds.new_build(app_id)
    request = await core.worker._request(row, build, by_admin=False)
    assert request.repo_url == row.repo and request.credentials == stored
    assert request.check_host and TOKEN not in repr(request)


async def test_credentials_follow_the_url_on_update(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    url = f"https://alice:{TOKEN}@public.example.com/acme/private.git"
    r = await client.post(APPS, json={"name": unique_name(), "repo": url}, headers=auth(user))
    app_id = r.json()["id"]
    # Sending back what GET shows keeps the credentials.
    same = {"repo": "https://public.example.com/acme/private.git"}
    r = await client.patch(f"{APPS}/{app_id}", json=same, headers=auth(user))
    assert r.status_code == 200, r.text
    row = await core.stores.apps.get(app_id)
    assert decode_credentials(core.stores.cipher, row.repo_credentials_encrypted) is not None
    # New credentials replace them, and are not shown either.
    new = {"repo": "https://bob:other-Token-77@public.example.com/acme/private.git"}
    r = await client.patch(f"{APPS}/{app_id}", json=new, headers=auth(user))
    assert r.status_code == 200 and "other-Token-77" not in r.text
    row = await core.stores.apps.get(app_id)
    stored = decode_credentials(core.stores.cipher, row.repo_credentials_encrypted)
    assert stored == RepoCredentials("bob", "other-Token-77")
    # Another repository without credentials: the old ones are dropped, not sent elsewhere.
    moved = {"repo": "https://public.example.com/acme/other.git"}
    r = await client.patch(f"{APPS}/{app_id}", json=moved, headers=auth(user))
    assert r.status_code == 200
    assert (await core.stores.apps.get(app_id)).repo_credentials_encrypted is None


async def test_validate_uses_credentials_without_echoing_them(
    client: httpx.AsyncClient,
    core: ControlPlane,
    make_user: UserMaker,
    git_http: GitHttp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator_sets(monkeypatch, core, allowed_repo_schemes=["https", "http"])
    admin = await make_user("admin")  # the test server is on loopback: only admins reach it
    git_http.add("validate.git", files={"index.html": "x"})
    body = {"repo": git_http.url("validate.git", userinfo=f"alice:{GIT_HTTP_TOKEN}@")}
    seen = len(git_http.authorizations)
    r = await client.post("/api/v1/validate/repo", json=body, headers=auth(admin))
    assert r.status_code == 200, r.text
    assert r.json()["branches"] == ["main"] and GIT_HTTP_TOKEN not in r.text
    assert git_http.expected in git_http.authorizations[seen:]
    # A user's token for an internal host is refused before anything is sent.
    user = await make_user()
    r = await client.post("/api/v1/validate/repo", json=body, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "repo_host_forbidden"
    assert GIT_HTTP_TOKEN not in r.text


async def test_a_row_from_before_the_split_is_shown_redacted_and_cleaned_on_update(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    r = await client.post(
        APPS,
        json={"name": unique_name(), "repo": "https://public.example.com/a.git"},
        headers=auth(user),
    )
    app_id = r.json()["id"]
    legacy = f"https://alice:{TOKEN}@public.example.com/a.git"
    await core.stores.apps.set_fields(app_id, repo=legacy, repo_credentials_encrypted=None)
    r = await client.get(f"{APPS}/{app_id}", headers=auth(user))
    assert TOKEN not in r.text and r.json()["repo"] == "https://***@public.example.com/a.git"
    # Sending back what GET showed moves the credentials out of the URL, keeping them.
    patch = {"repo": r.json()["repo"]}
    r = await client.patch(f"{APPS}/{app_id}", json=patch, headers=auth(user))
    assert r.status_code == 200, r.text
    row = await core.stores.apps.get(app_id)
    assert row.repo == "https://public.example.com/a.git"
    stored = decode_credentials(core.stores.cipher, row.repo_credentials_encrypted)
    assert stored == RepoCredentials("alice", TOKEN)


async def test_a_resolver_that_does_not_answer_does_not_fail_the_request(
    client: httpx.AsyncClient,
    core: ControlPlane,
    make_user: UserMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def hang(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return []

    monkeypatch.setattr(repo_guard, "system_resolve", hang)
    operator_sets(monkeypatch, core, repo_resolve_timeout_s=0.2)
    user = await make_user()
    body = {"name": unique_name(), "repo": "https://slow.example.com/acme/app.git"}
    # Accepted: nothing was reached, and the clone resolves and checks again (and pins).
    assert (await client.post(APPS, json=body, headers=auth(user))).status_code == 201
    # A literal internal address needs no resolver: still refused at once.
    body = {"name": unique_name(), "repo": "https://10.0.0.1/acme/app.git"}
    r = await client.post(APPS, json=body, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "repo_host_forbidden"
