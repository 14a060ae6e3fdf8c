"""The application resource through the HTTP API (no runtime: the states are driven here)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from tests.conftest import UserMaker, auth

APPS = "/api/v1/applications"


def unique_name(prefix: str = "app") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create(client: httpx.AsyncClient, user: dict[str, str], **body: Any) -> str:
    payload = {"name": unique_name(), "repo": "https://example.invalid/x.git", **body}
    r = await client.post(APPS, json=payload, headers=auth(user))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def drive(core: ControlPlane, app_id: str, *states: State) -> None:
    for state in states:
        await core.stores.apps.transition(app_id, state, "test")


async def test_create_answers_pending_and_queues_a_build(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    r = await client.post(
        APPS,
        json={"name": unique_name(), "repo": "https://example.invalid/r.git"},
        headers=auth(user),
    )
    assert r.status_code == 201
    assert r.json()["state"] == "pending"
    app_id = r.json()["id"]
    builds = (await client.get(f"{APPS}/{app_id}/builds", headers=auth(user))).json()
    assert [(b["number"], b["status"]) for b in builds] == [(1, "queued")]
    events = (await client.get(f"{APPS}/{app_id}/events", headers=auth(user))).json()
    assert [(e["from_state"], e["to_state"]) for e in events] == [(None, "pending")]


async def test_get_redacts_secret_envs_unless_asked(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    envs = [
        {"key": "DB_PASSWORD", "value": "hunter2"},
        {"key": "GREETING", "value": "hello"},
        {"key": "PLAIN", "value": "s3cr3t", "secret": True},
    ]
    app_id = await create(client, user, envs=envs, port=5000)
    body = (await client.get(f"{APPS}/{app_id}", headers=auth(user))).json()
    values = {e["key"]: e["value"] for e in body["envs"]}
    assert values == {"DB_PASSWORD": "********", "GREETING": "hello", "PLAIN": "********"}
    assert "hunter2" not in str(body)
    assert body["port"] == 5000 and body["dns_name"].startswith(body["name"] + ".")
    r = await client.get(f"{APPS}/{app_id}?reveal_secrets=true", headers=auth(user))
    assert {e["key"]: e["value"] for e in r.json()["envs"]}["DB_PASSWORD"] == "hunter2"


async def test_envs_are_encrypted_at_rest(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    app_id = await create(client, user, envs=[{"key": "API_TOKEN", "value": "plain-text-value"}])
    row = await core.stores.apps.get(app_id)
    assert "plain-text-value" not in row.envs_encrypted and row.envs_encrypted


async def test_list_is_paginated_filtered_and_own_only(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user, other = await make_user(), await make_user()
    ids = [await create(client, user) for _ in range(5)]
    await create(client, other)
    await drive(core, ids[0], State.FAILED)
    page = (await client.get(f"{APPS}?limit=2", headers=auth(user))).json()
    assert page["total"] == 5 and len(page["items"]) == 2
    rest = (await client.get(f"{APPS}?limit=2&offset=2", headers=auth(user))).json()["items"]
    last = (await client.get(f"{APPS}?limit=2&offset=4", headers=auth(user))).json()["items"]
    seen = [a["id"] for a in page["items"] + rest + last]
    assert sorted(seen) == sorted(ids)
    failed = (await client.get(f"{APPS}?state=failed", headers=auth(user))).json()
    assert [a["id"] for a in failed["items"]] == [ids[0]]
    assert (await client.get(f"{APPS}?kind=web", headers=auth(user))).json()["total"] == 5
    assert (await client.get(f"{APPS}?state=bogus", headers=auth(user))).status_code == 422


async def test_status_etag_304_and_long_poll(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    app_id = await create(client, user)
    r = await client.get(f"{APPS}/{app_id}/status", headers=auth(user))
    assert r.status_code == 200 and r.json()["state"] == "pending"
    etag = r.headers["etag"]
    r = await client.get(f"{APPS}/{app_id}/status", headers={**auth(user), "If-None-Match": etag})
    assert r.status_code == 304
    # A long poll returns as soon as the state changes.
    poll = asyncio.create_task(
        client.get(f"{APPS}/{app_id}/status?wait=20", headers={**auth(user), "If-None-Match": etag})
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    started = asyncio.get_running_loop().time()
    await drive(core, app_id, State.BUILDING)
    r = await asyncio.wait_for(poll, 5)
    assert asyncio.get_running_loop().time() - started < 1.5
    assert r.status_code == 200 and r.json()["state"] == "building"
    assert r.headers["etag"] != etag
    # Nothing changes: the long poll ends with 304 after the wait.
    r = await client.get(
        f"{APPS}/{app_id}/status?wait=0.5",
        headers={**auth(user), "If-None-Match": r.headers["etag"]},
    )
    assert r.status_code == 304


async def test_illegal_operation_is_409_naming_the_state(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    app_id = await create(client, user)
    for op in ("restart", "stop", "start"):
        r = await client.post(f"{APPS}/{app_id}/{op}", headers=auth(user))
        assert r.status_code == 409, op
        assert r.json()["code"] == "invalid_state" and r.json()["state"] == "pending"
    r = await client.post(f"{APPS}/{app_id}/rollback", json={"release": 1}, headers=auth(user))
    assert r.status_code == 404  # there is no release 1 yet


async def test_stop_and_start_follow_the_state_machine(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    app_id = await create(client, user)
    await drive(core, app_id, State.BUILDING, State.STARTING, State.RUNNING)
    r = await client.post(f"{APPS}/{app_id}/stop", headers=auth(user))
    assert r.status_code == 202 and r.json()["state"] == "stopped"
    r = await client.post(f"{APPS}/{app_id}/stop", headers=auth(user))
    assert r.status_code == 409 and r.json()["state"] == "stopped"
    r = await client.post(f"{APPS}/{app_id}/start", headers=auth(user))
    assert r.status_code == 202
    # This platform has no runtime: the start ends `failed`, with the reason, not stuck.
    for _ in range(50):
        status = (await client.get(f"{APPS}/{app_id}/status", headers=auth(user))).json()
        if status["state"] == "failed":
            break
        await asyncio.sleep(0.05)
    assert status["state"] == "failed" and status["reason"]
    events = (await client.get(f"{APPS}/{app_id}/events", headers=auth(user))).json()
    assert [e["to_state"] for e in events] == [
        "pending", "building", "starting", "running", "stopped", "starting", "failed"
    ]  # fmt: skip


async def test_update_applies_the_smallest_action(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    app_id = await create(client, user)
    await drive(core, app_id, State.FAILED)
    r = await client.patch(f"{APPS}/{app_id}", json={"visibility": "private"}, headers=auth(user))
    assert r.status_code == 200 and r.json()["visibility"] == "private"
    assert r.json()["state"] == "failed"  # nothing to redo for visibility
    new_name = unique_name("renamed")
    r = await client.patch(f"{APPS}/{app_id}", json={"name": new_name}, headers=auth(user))
    assert r.json()["name"] == new_name
    # A branch change on a failed app rebuilds: rolling_out with a new queued build.
    r = await client.patch(f"{APPS}/{app_id}", json={"branch": "dev"}, headers=auth(user))
    assert r.json()["state"] == "rolling_out" and r.json()["branch"] == "dev"
    builds = (await client.get(f"{APPS}/{app_id}/builds", headers=auth(user))).json()
    assert [(b["number"], b["status"]) for b in builds] == [(2, "queued"), (1, "superseded")]


async def test_null_fields_in_an_update_change_nothing(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    """Found by the stateful schemathesis run: `"repo": null` answered 500."""
    user = await make_user()
    app_id = await create(client, user)
    before = (await client.get(f"{APPS}/{app_id}", headers=auth(user))).json()
    body = {"repo": None, "name": None, "health_check": None, "build": None}
    r = await client.patch(f"{APPS}/{app_id}", json=body, headers=auth(user))
    assert r.status_code == 200, r.text
    after = r.json()
    for key in ("repo", "name", "health_check", "build", "version"):
        assert after.get(key) == before.get(key), key


async def test_duplicate_names_are_refused(client: httpx.AsyncClient, make_user: UserMaker) -> None:
    alice, bob = await make_user(), await make_user()
    name = unique_name()
    await create(client, alice, name=name)
    r = await client.post(
        APPS, json={"name": name, "repo": "https://x.invalid/r"}, headers=auth(bob)
    )
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    other = await create(client, bob)
    r = await client.patch(f"{APPS}/{other}", json={"name": name}, headers=auth(bob))
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    r = await client.post("/api/v1/validate/name", json={"name": name}, headers=auth(bob))
    assert r.json() == {
        "name": name,
        "valid": True,
        "available": False,
        "reason": "the name is taken",
    }
    r = await client.post("/api/v1/validate/name", json={"name": "-bad-"}, headers=auth(bob))
    assert r.status_code == 200 and r.json()["valid"] is False


async def test_delete_removes_the_app(client: httpx.AsyncClient, make_user: UserMaker) -> None:
    user = await make_user()
    app_id = await create(client, user)
    r = await client.delete(f"{APPS}/{app_id}", headers=auth(user))
    assert r.status_code == 204
    assert (await client.get(f"{APPS}/{app_id}", headers=auth(user))).status_code == 404


async def test_cancel_a_queued_build_fails_the_app(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    app_id = await create(client, user)
    r = await client.post(f"{APPS}/{app_id}/builds/1/cancel", headers=auth(user))
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    status = (await client.get(f"{APPS}/{app_id}/status", headers=auth(user))).json()
    assert status["state"] == "failed" and "cancel" in status["reason"]
    r = await client.post(f"{APPS}/{app_id}/builds/1/cancel", headers=auth(user))
    assert r.status_code == 409 and r.json()["code"] == "not_cancellable"


ENDPOINTS = [
    ("GET", ""),
    ("GET", "/status"),
    ("GET", "/events"),
    ("GET", "/releases"),
    ("GET", "/releases/1"),
    ("GET", "/builds"),
    ("GET", "/builds/1"),
    ("POST", "/builds/1/cancel"),
    ("PATCH", ""),
    ("POST", "/restart"),
    ("POST", "/stop"),
    ("POST", "/start"),
    ("POST", "/rollout"),
    ("POST", "/rollback"),
    ("DELETE", ""),
]


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
async def test_another_users_app_is_404_everywhere(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker, method: str, suffix: str
) -> None:
    owner, intruder = await make_user(), await make_user()
    app_id = await create(client, owner)
    await drive(core, app_id, State.BUILDING, State.STARTING, State.RUNNING)
    body: dict[str, Any] | None = {"visibility": "private"} if method == "PATCH" else None
    if suffix == "/rollback":
        body = {"release": 1}
    r = await client.request(method, f"{APPS}/{app_id}{suffix}", json=body, headers=auth(intruder))
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    # ... and nothing happened to it.
    app = (await client.get(f"{APPS}/{app_id}", headers=auth(owner))).json()
    assert app["state"] == "running" and app["visibility"] == "public"


BAD_BODIES = [
    {"name": "Upper", "repo": "https://x.invalid/r"},
    {"name": "a", "repo": "https://x.invalid/r"},
    {"name": "a" * 64, "repo": "https://x.invalid/r"},
    {"name": "-lead", "repo": "https://x.invalid/r"},
    {"name": "trail-", "repo": "https://x.invalid/r"},
    {"name": "under_score", "repo": "https://x.invalid/r"},
    {"name": "ok-name", "repo": "https://x.invalid/r", "port": 70000},
    {"name": "ok-name", "repo": "https://x.invalid/r", "port": 0},
    {"name": "ok-name", "repo": "https://x.invalid/r", "port": "eighty"},
    {"name": "ok-name", "repo": "https://x.invalid/r", "surprise": True},
    {"name": "ok-name", "repo": 12},
    {"name": "ok-name", "repo": "https://x.invalid/r", "envs": [{"key": "1BAD", "value": ""}]},
    {"name": "ok-name", "repo": "https://x.invalid/r", "envs": [{"key": "A", "value": "x"}] * 2},
    {"name": "ok-name", "repo": "https://x.invalid/r", "commit": "not-a-sha"},
    {"name": "ok-name", "repo": "https://x.invalid/r", "root_directory": "../etc"},
    {"name": "ok-name", "repo": "https://x.invalid/r", "volumes": [{"name": "v1", "mount_path": "/"}]},
    {"name": "ok-name", "repo": "https://x.invalid/r", "resources": {"memory_mb": 10**9}},
    {"name": "ok-name", "repo": "https://x.invalid/r", "replicas": 1000},
    {"name": "ok-name", "repo": "https://x.invalid/r", "replicas": 2},  # max_replicas is 1
    {"name": "ok-name", "repo": "https://x.invalid/r", "health_check": "udp"},
    {"name": "ok-name", "repo": "--upload-pack=touch /tmp/pwned"},
    {"name": "ok-name", "repo": "ext::sh -c touch% /tmp/pwned"},
    {"name": "ok-name", "repo": "ftp://x.invalid/r"},
    {"name": "ok-name", "repo": "https://x.invalid/r", "envs": [{"key": f"K{i}", "value": ""} for i in range(101)]},
]  # fmt: skip


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_input_is_4xx_with_a_code_and_creates_nothing(
    client: httpx.AsyncClient, make_user: UserMaker, body: dict[str, Any]
) -> None:
    user = await make_user()
    r = await client.post(APPS, json=body, headers=auth(user))
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] in {
        "validation_error",
        "invalid_repo",
        "local_repo_forbidden",
        "too_many_envs",
        "too_many_replicas",
    }
    assert (await client.get(APPS, headers=auth(user))).json()["total"] == 0


async def test_local_repos_are_for_admins_only(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user, admin = await make_user(), await make_user("admin")
    body = {"name": unique_name(), "repo": "/srv/git/app"}
    r = await client.post(APPS, json=body, headers=auth(user))
    assert r.status_code == 403 and r.json()["code"] == "local_repo_forbidden"
    r = await client.post(APPS, json=body, headers=auth(admin))
    assert r.status_code == 201


async def test_huge_and_malformed_bodies(client: httpx.AsyncClient, make_user: UserMaker) -> None:
    user = await make_user()
    huge = b'{"name": "ok-name", "repo": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = await client.post(
        APPS, content=huge, headers={**auth(user), "content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    r = await client.post(
        APPS, content=b"{not json", headers={**auth(user), "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = await client.post(
        APPS, content=b"[]", headers={**auth(user), "content-type": "application/json"}
    )
    assert r.status_code == 422


async def test_unknown_routes_and_methods_have_codes(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await client.put("/healthz")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


async def test_healthz_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    r = await client.get("/metrics")
    assert r.status_code == 200 and "ipaas_http_requests_total" in r.text


async def test_nul_characters_are_refused_not_stored(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    r = await client.post("/api/v1/users/me/tokens", json={"name": "a\x00b"}, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = await client.post(
        APPS, json={"name": "nul-app", "repo": "https://x.invalid/r\x00"}, headers=auth(user)
    )
    assert r.status_code == 422
    r = await client.get(f"{APPS}/abc%00def", headers=auth(user))
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    r = await client.get(f"{APPS}?state=running%00", headers=auth(user))
    assert r.status_code == 400


async def test_env_count_is_capped_by_max_envs(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user, limit = await make_user(), core.settings.max_envs
    envs = [{"key": f"K{i}", "value": str(i)} for i in range(limit + 1)]
    r = await client.post(
        APPS,
        json={"name": unique_name(), "repo": "https://x.invalid/r.git", "envs": envs},
        headers=auth(user),
    )
    assert r.status_code == 422 and r.json()["code"] == "too_many_envs"
    assert (await client.get(APPS, headers=auth(user))).json()["total"] == 0  # nothing created
    app_id = await create(client, user, envs=envs[:limit])
    r = await client.patch(f"{APPS}/{app_id}", json={"envs": envs}, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "too_many_envs"
    kept = (await client.get(f"{APPS}/{app_id}", headers=auth(user))).json()["envs"]
    assert len(kept) == limit


HUGE = str(2**70)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", f"/releases/{HUGE}", None),
        ("GET", f"/builds/{HUGE}", None),
        ("GET", f"/builds/{HUGE}/log", None),
        ("POST", f"/builds/{HUGE}/cancel", None),
        ("GET", f"/events?after={HUGE}", None),
        ("POST", "/rollback", {"release": 2**70}),
        ("GET", "/releases/0", None),
    ],
)
async def test_numbers_beyond_what_the_store_holds_are_4xx(
    client: httpx.AsyncClient,
    make_user: UserMaker,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    user = await make_user()
    app_id = await create(client, user)
    r = await client.request(method, f"{APPS}/{app_id}{suffix}", json=body, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text


@pytest.mark.parametrize(
    "window",
    [
        {"from": "1500-01-01T00:00:00Z"},
        {"to": "0001-01-01T00:00:00Z", "from": "0001-01-01T00:00:00Z"},
        {"from": "9999-12-31T23:59:59Z"},
        {"from": "now-99999999999d"},
    ],
)
async def test_times_beyond_what_the_store_holds_mean_its_edge(
    client: httpx.AsyncClient, make_user: UserMaker, window: dict[str, str]
) -> None:
    user = await make_user()
    app_id = await create(client, user)
    await client.post(f"{APPS}/{app_id}/builds/1/cancel", headers=auth(user))
    for suffix in ("/logs", "/builds/1/log"):
        r = await client.get(f"{APPS}/{app_id}{suffix}", params=window, headers=auth(user))
        assert r.status_code == 200 and r.json()["lines"] == [], r.text
