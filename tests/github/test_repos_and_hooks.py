"""Through the API: a signed-in GitHub user's repositories and branches, an app from a
private repository (credentials minted per clone, never stored), and its push webhook."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ipaas.builds.git import fetch
from ipaas.domain.pushes import sign
from ipaas.platform import ControlPlane
from tests.github.conftest import GitHubUser, new_login, repo_files, sign_in
from tests.github_standin import StandInGitHub

APPS = "/api/v1/applications"


@pytest.fixture
async def user(client: httpx.AsyncClient, github: StandInGitHub) -> GitHubUser:
    login = new_login()
    github.add_user(login)
    return await sign_in(client, github, login)


async def make_app(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser, **body: Any
) -> tuple[str, str]:
    """A private repository with the App installed on it, and an app from it: (id, repo)."""
    full_name = f"{user.login}/{uuid.uuid4().hex[:6]}"
    github.add_repo(full_name, files=repo_files())
    github.install_app(user.login, [full_name])
    payload = {"name": f"gh-{uuid.uuid4().hex[:8]}", "repo": full_name, **body}
    r = await client.post(APPS, json=payload, headers=user.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"], full_name


async def test_repos_and_branches_through_the_api(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser
) -> None:
    for name in ("one", "two", "three"):
        github.add_repo(f"{user.login}/{name}", files=repo_files(name))
    github.push(f"{user.login}/one", {"x": "1"})  # now the newest push
    r = await client.get("/api/v1/providers/github/repos?per_page=2", headers=user.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["full_name"] for i in body["items"]][0] == f"{user.login}/one"
    assert body["has_next"] and body["rate_limit"]["remaining"] > 0
    found = await client.get("/api/v1/providers/github/repos?q=thr", headers=user.headers)
    assert [i["full_name"] for i in found.json()["items"]] == [f"{user.login}/three"]
    github.push(f"{user.login}/two", {"a": "b"}, branch="dev")
    branches = await client.get(
        f"/api/v1/providers/github/repos/{user.login}/two/branches", headers=user.headers
    )
    assert [(b["name"], b["default"]) for b in branches.json()["items"]] == [
        ("main", True), ("dev", False),
    ]  # fmt: skip
    # GraphQL's own limit: one query so far (the REST one was used by the listings above).
    assert branches.json()["rate_limit"]["remaining"] == github.rate_limit - 1
    file = await client.get(
        f"/api/v1/providers/github/repos/{user.login}/two/contents/version.txt",
        headers=user.headers,
    )
    assert file.json()["content"] == "two"
    limit = await client.get("/api/v1/providers/github/rate_limit", headers=user.headers)
    assert limit.json()["limit"] == github.rate_limit


async def test_without_a_linked_github_account_the_listing_says_so(
    client: httpx.AsyncClient, plane: ControlPlane
) -> None:
    from tests.conftest import auth, signed_in_user

    local = await signed_in_user(plane)
    r = await client.get("/api/v1/providers/github/repos", headers=auth(local))
    assert r.status_code == 422 and r.json()["code"] == "github_not_linked"


async def test_rate_limit_exhausted_is_a_429_with_retry_after(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser, plane: ControlPlane
) -> None:
    token = plane.stores.cipher.decrypt(
        (await plane.stores.identities.of_user(user.user_id, "github")).token_encrypted  # type: ignore[union-attr,arg-type]
    )
    github.remaining[token] = 0
    r = await client.get("/api/v1/providers/github/repos?q=zz", headers=user.headers)
    assert r.status_code == 429 and r.json()["code"] == "github_rate_limited"
    assert int(r.headers["retry-after"]) > 0
    github.remaining[token] = 100


async def test_app_from_a_private_repo_stores_no_credentials_and_clones_with_a_minted_token(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser, plane: ControlPlane,
    tmp_path: Path,
) -> None:  # fmt: skip
    app_id, full_name = await make_app(client, github, user)
    shown = (await client.get(f"{APPS}/{app_id}", headers=user.headers)).json()
    assert shown["repo"] == full_name and shown["provider"] == "github"
    row = await plane.stores.apps.get(app_id)
    assert row.repo_credentials_encrypted is None and "ghs_" not in row.repo
    # What the builder does for each build: a fresh installation token, given to git aside.
    source = await plane.sources.of_app(row)
    second = await plane.sources.of_app(row)
    assert source.credentials and second.credentials
    assert source.credentials.password != second.credentials.password  # one per clone
    assert source.url == f"{github.web_url}/{full_name}.git"
    dest = tmp_path / "checkout"
    await fetch(source.url, None, None, dest, timeout_s=30, max_bytes=10**7,
                allowed_schemes=source.extra_schemes, credentials=source.credentials)  # fmt: skip
    assert (dest / "version.txt").read_text() == "v1"


async def test_a_repo_the_user_cannot_see_is_refused_at_create(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser
) -> None:
    other = new_login()
    github.add_user(other)
    github.add_repo(f"{other}/hidden", files=repo_files())
    r = await client.post(
        APPS, json={"name": f"gh-{uuid.uuid4().hex[:8]}", "repo": f"{other}/hidden"},
        headers=user.headers,
    )  # fmt: skip
    assert r.status_code == 422 and r.json()["code"] == "repo_not_found"


# --- webhooks -------------------------------------------------------------------------------
async def webhook(client: httpx.AsyncClient, user: GitHubUser, app_id: str) -> dict[str, str]:
    r = await client.get(f"{APPS}/{app_id}/webhook", headers=user.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def deliver(
    client: httpx.AsyncClient, url: str, event: str, payload: dict[str, Any], secret: str,
    delivery: str | None = None,
) -> httpx.Response:  # fmt: skip
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json", "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "X-Hub-Signature-256": sign(secret, body),
    }  # fmt: skip
    return await client.post(url, content=body, headers=headers)


async def builds(client: httpx.AsyncClient, user: GitHubUser, app_id: str) -> list[Any]:
    return list((await client.get(f"{APPS}/{app_id}/builds", headers=user.headers)).json())


async def test_a_push_to_the_branch_builds_exactly_that_commit_once(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser, plane: ControlPlane
) -> None:
    app_id, full_name = await make_app(client, github, user)
    hook = await webhook(client, user, app_id)
    assert hook["url"].endswith(f"/api/v1/hooks/{app_id}") and len(hook["secret"]) > 30
    ping = await deliver(client, hook["url"], "ping", {"zen": "Keep it simple."}, hook["secret"])
    assert ping.status_code == 200 and ping.json()["outcome"] == "pong"
    payload = github.push(full_name, {"version.txt": "v2"})
    delivery = str(uuid.uuid4())
    r = await deliver(client, hook["url"], "push", payload, hook["secret"], delivery)
    assert r.status_code == 202 and r.json()["outcome"] == "rebuild", r.text
    number = r.json()["build"]
    build = await plane.stores.builds.get(app_id, number)
    assert build is not None and build.requested_commit == payload["after"]
    again = await deliver(client, hook["url"], "push", payload, hook["secret"], delivery)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert len(await builds(client, user, app_id)) == 2  # the first, and the push's
    seen = (await client.get(f"{APPS}/{app_id}/webhook/deliveries", headers=user.headers)).json()
    assert [(d["event"], d["outcome"]) for d in seen] == [("push", "rebuild"), ("ping", "pong")]
    assert seen[0]["commit"] == payload["after"] and seen[0]["build_number"] == number


async def test_other_branches_tags_and_events_are_ignored_with_a_reason(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser
) -> None:
    app_id, full_name = await make_app(client, github, user, root_directory="web")
    hook = await webhook(client, user, app_id)
    other = github.push(full_name, {"web/x": "1"}, branch="feature")
    tag = {**other, "ref": "refs/tags/v1"}
    outside = github.push(full_name, {"docs/readme": "1"})
    cases = [("push", other, "push to feature"), ("push", tag, "not a branch"),
             ("push", outside, "no change under web"), ("issues", {"action": "opened"}, "issues")]  # fmt: skip
    for event, payload, reason in cases:
        r = await deliver(client, hook["url"], event, payload, hook["secret"])
        assert r.status_code == 200 and r.json()["outcome"] == "ignored", r.text
        assert reason in r.json()["reason"]
    assert len(await builds(client, user, app_id)) == 1
    inside = github.push(full_name, {"web/index.html": "hi"})
    r = await deliver(client, hook["url"], "push", inside, hook["secret"])
    assert r.json()["outcome"] == "rebuild"


async def test_a_bad_signature_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser
) -> None:
    app_id, full_name = await make_app(client, github, user)
    hook = await webhook(client, user, app_id)
    payload = github.push(full_name, {"version.txt": "evil"})
    for secret in ("wrong-secret", ""):
        r = await deliver(client, hook["url"], "push", payload, secret)
        assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    body = json.dumps(payload).encode()
    unsigned = await client.post(hook["url"], content=body, headers={"X-GitHub-Event": "push"})
    assert unsigned.status_code == 401
    assert len(await builds(client, user, app_id)) == 1
    seen = await client.get(f"{APPS}/{app_id}/webhook/deliveries", headers=user.headers)
    assert seen.json() == []
    rotated = (await client.post(f"{APPS}/{app_id}/webhook/rotate", headers=user.headers)).json()
    old = await deliver(client, hook["url"], "push", payload, hook["secret"])
    assert old.status_code == 401 and rotated["secret"] != hook["secret"]


async def test_another_users_webhook_settings_are_not_found(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser
) -> None:
    app_id, _ = await make_app(client, github, user)
    stranger_login = new_login()
    github.add_user(stranger_login)
    stranger = await sign_in(client, github, stranger_login)
    for path in ("/webhook", "/webhook/deliveries"):
        r = await client.get(f"{APPS}/{app_id}{path}", headers=stranger.headers)
        assert r.status_code == 404
    r = await client.post(f"{APPS}/{app_id}/webhook/rotate", headers=stranger.headers)
    assert r.status_code == 404


async def test_gitlab_and_gitea_pushes_work_through_the_same_hook(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser
) -> None:
    app_id, full_name = await make_app(client, github, user)
    hook = await webhook(client, user, app_id)
    payload = github.push(full_name, {"version.txt": "v3"})
    gitlab = {**payload, "checkout_sha": payload["after"]}
    r = await client.post(hook["url"], json=gitlab, headers={
        "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": hook["secret"],
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
    })  # fmt: skip
    assert r.status_code == 202 and r.json()["commit"] == payload["after"]
    wrong = await client.post(hook["url"], json=gitlab, headers={
        "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess",
    })  # fmt: skip
    assert wrong.status_code == 401
    body = json.dumps(payload).encode()
    gitea = await client.post(hook["url"], content=body, headers={
        "X-Gitea-Event": "push", "X-Gitea-Delivery": str(uuid.uuid4()),
        "X-Gitea-Signature": sign(hook["secret"], body).removeprefix("sha256="),
    })  # fmt: skip
    assert gitea.status_code == 202


# --- previews -------------------------------------------------------------------------------
def pull_request(
    github: StandInGitHub, full_name: str, number: int, action: str, head: str, sha: str,
    fork: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    repo = github._repo_json(github.repos[full_name])
    head_repo = {**repo, "full_name": fork} if fork else repo
    return {
        "action": action, "number": number,
        "pull_request": {
            "number": number, "state": "closed" if action == "closed" else "open",
            "head": {"ref": head, "sha": sha, "repo": head_repo},
            "base": {"ref": "main", "sha": "0" * 40, "repo": repo},
        },
        "repository": repo,
    }  # fmt: skip


async def test_pull_requests_open_and_close_previews_within_the_limit(
    client: httpx.AsyncClient, github: StandInGitHub, user: GitHubUser, plane: ControlPlane
) -> None:
    app_id, full_name = await make_app(client, github, user, previews=True)
    app = (await client.get(f"{APPS}/{app_id}", headers=user.headers)).json()
    hook = await webhook(client, user, app_id)
    push = github.push(full_name, {"version.txt": "pr"}, branch="feature")
    opened = pull_request(github, full_name, 7, "opened", "feature", push["after"])
    r = await deliver(client, hook["url"], "pull_request", opened, hook["secret"])
    assert r.status_code == 202 and r.json()["outcome"] == "preview_deploy", r.text
    previews = await plane.stores.apps.previews_of(app_id)
    assert [(p.name, p.branch, p.preview_number) for p in previews] == [
        (f"{app['name']}-pr-7", "feature", 7)
    ]
    preview = previews[0]
    assert preview.resources["memory_mb"] <= 256 and preview.volumes == []
    build = await plane.stores.builds.get(preview.id, 1)
    assert build is not None and build.requested_commit == push["after"]
    fork = pull_request(github, full_name, 8, "opened", "x", push["after"], fork="evil/fork")
    r = await deliver(client, hook["url"], "pull_request", fork, hook["secret"])
    assert r.json()["outcome"] == "ignored" and "fork" in r.json()["reason"]
    for n in (9, 10, 11):  # the limit is 3 per app
        more = pull_request(github, full_name, n, "opened", "feature", push["after"])
        last = await deliver(client, hook["url"], "pull_request", more, hook["secret"])
    assert last.json()["outcome"] == "ignored" and "at most 3" in last.json()["reason"]
    closed = pull_request(github, full_name, 7, "closed", "feature", push["after"])
    r = await deliver(client, hook["url"], "pull_request", closed, hook["secret"])
    assert r.json()["outcome"] == "preview_delete"
    left = [p.id for p in await plane.stores.apps.previews_of(app_id) if p.state != "deleting"]
    assert preview.id not in left and len(left) == 2
