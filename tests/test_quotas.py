"""Per-user quotas through the API: apps, memory, CPUs and volumes; admins set them; updates
over them write nothing; concurrent creates cannot both pass."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.conftest import UserMaker, auth

APPS = "/api/v1/applications"
REPO = "https://example.invalid/x.git"


async def create(client: httpx.AsyncClient, user: dict[str, str], **body: Any) -> httpx.Response:
    payload = {"name": f"q-{uuid.uuid4().hex[:8]}", "repo": REPO, **body}
    return await client.post(APPS, json=payload, headers=auth(user))


async def user_with_quota(
    client: httpx.AsyncClient, make_user: UserMaker, **quota: Any
) -> dict[str, str]:
    admin, user = await make_user("admin"), await make_user()
    r = await client.put(f"/api/v1/users/{user['id']}/quota", json=quota, headers=auth(admin))
    assert r.status_code == 200, r.text
    return user


def assert_quota_exceeded(r: httpx.Response, kind: str, **left: float) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "quota_exceeded"
    assert kind in body["exceeded"] + body["too_large"]
    assert set(body["remaining"]) == {"apps", "memory_mb", "cpus", "volumes"}
    for key, value in left.items():
        assert body["remaining"][key] == value


async def app_count(client: httpx.AsyncClient, user: dict[str, str]) -> int:
    return int((await client.get(APPS, headers=auth(user))).json()["total"])


async def test_create_beyond_the_app_count_is_refused(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await user_with_quota(client, make_user, apps=2)
    for _ in range(2):
        assert (await create(client, user)).status_code == 201
    assert_quota_exceeded(await create(client, user), "apps", apps=0)
    assert await app_count(client, user) == 2


async def test_create_beyond_memory_counts_unset_limits_as_the_default(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await user_with_quota(client, make_user, memory_mb=1024)
    assert (await create(client, user, resources={"memory_mb": 256})).status_code == 201
    r = await create(client, user, resources={"memory_mb": 1024})
    assert_quota_exceeded(r, "memory_mb", memory_mb=768)
    # No memory_mb: the runtime default (512 MB) counts, and 256 + 512 fits.
    assert (await create(client, user)).status_code == 201
    assert_quota_exceeded(await create(client, user), "memory_mb", memory_mb=256)


async def test_create_beyond_cpus_is_refused(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await user_with_quota(client, make_user, cpus=1.5)
    assert (await create(client, user, resources={"cpus": 0.5})).status_code == 201
    assert (await create(client, user, resources={"cpus": 1.0})).status_code == 201
    assert_quota_exceeded(await create(client, user, resources={"cpus": 0.1}), "cpus", cpus=0.0)


async def test_create_beyond_volumes_is_refused(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await user_with_quota(client, make_user, volumes=2)
    vols = [{"name": "a1", "mount_path": "/a"}, {"name": "b1", "mount_path": "/b"}]
    assert (await create(client, user, volumes=vols)).status_code == 201
    assert_quota_exceeded(await create(client, user, volumes=vols[:1]), "volumes", volumes=0)
    assert (await create(client, user)).status_code == 201  # no volume: still fine


async def test_one_app_cannot_ask_for_more_than_the_per_app_ceiling(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    for resources in ({"memory_mb": 65_536}, {"cpus": 64}):
        r = await create(client, user, resources=resources)
        assert r.status_code == 422 and r.json()["code"] == "quota_exceeded"
        assert r.json()["too_large"] == list(resources)
    assert await app_count(client, user) == 0


async def test_an_update_beyond_the_quota_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await user_with_quota(client, make_user, memory_mb=1024, volumes=1)
    app_id = (await create(client, user, resources={"memory_mb": 512})).json()["id"]
    before = (await client.get(f"{APPS}/{app_id}", headers=auth(user))).json()
    r = await client.patch(
        f"{APPS}/{app_id}",
        json={"resources": {"memory_mb": 2048}, "port": 9999},
        headers=auth(user),
    )
    assert_quota_exceeded(r, "memory_mb", memory_mb=512)
    vols = [{"name": "a1", "mount_path": "/a"}, {"name": "b1", "mount_path": "/b"}]
    r = await client.patch(f"{APPS}/{app_id}", json={"volumes": vols}, headers=auth(user))
    assert_quota_exceeded(r, "volumes", volumes=1)
    after = (await client.get(f"{APPS}/{app_id}", headers=auth(user))).json()
    assert after == before  # not the resources, not the port, not the version
    # Within the quota (its own 512 MB are given back first), the update goes through.
    r = await client.patch(
        f"{APPS}/{app_id}", json={"resources": {"memory_mb": 1024}}, headers=auth(user)
    )
    assert r.status_code == 200 and r.json()["resources"] == {"memory_mb": 1024}


async def test_admins_set_quotas_users_only_read_their_own(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    admin, user = await make_user("admin"), await make_user()
    url = f"/api/v1/users/{user['id']}/quota"
    r = await client.put(url, json={"apps": 50}, headers=auth(user))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert (await client.get(url, headers=auth(user))).status_code == 403
    assert (await create(client, user, resources={"memory_mb": 256, "cpus": 0.5})).is_success
    mine = (await client.get("/api/v1/users/me/quota", headers=auth(user))).json()
    assert mine["limits"] == {"apps": 100, "memory_mb": 51200, "cpus": 100.0, "volumes": 100}
    assert mine["used"] == {"apps": 1, "memory_mb": 256, "cpus": 0.5, "volumes": 0}
    assert mine["remaining"]["apps"] == 99
    r = await client.put(url, json={"apps": 1, "memory_mb": 300}, headers=auth(admin))
    assert r.status_code == 200
    assert r.json()["limits"]["apps"] == 1 and r.json()["remaining"]["memory_mb"] == 44
    assert r.json()["overrides"] == {"apps": 1, "memory_mb": 300, "cpus": None, "volumes": None}
    assert_quota_exceeded(await create(client, user), "apps", apps=0)
    # Back to the operator's defaults.
    assert (await client.put(url, json={}, headers=auth(admin))).json()["limits"]["apps"] == 100
    assert (await create(client, user)).status_code == 201
    r = await client.put("/api/v1/users/nosuchuser/quota", json={}, headers=auth(admin))
    assert r.status_code == 404
    r = await client.put(url, json={"apps": -1}, headers=auth(admin))
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


async def test_concurrent_creates_cannot_both_pass_the_quota(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await user_with_quota(client, make_user, apps=3)
    results = await asyncio.gather(*(create(client, user) for _ in range(12)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 3 + [422] * 9, codes
    assert await app_count(client, user) == 3
