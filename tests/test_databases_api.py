"""/databases through the API on the real store (the engine side is in tests/e2e): bad input
answers 4xx with a code and stores nothing, databases count against the memory quota, and
another user's database or app answers 404."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from ipaas.domain.databases import Credentials, connection_url, engine_info, server_args
from ipaas.domain.errors import InvalidInput
from tests.conftest import UserMaker, auth
from tests.test_quotas import create as create_app
from tests.test_quotas import user_with_quota

DBS = "/api/v1/databases"


async def create(client: httpx.AsyncClient, user: dict[str, str], **body: Any) -> httpx.Response:
    payload = {"name": f"d-{uuid.uuid4().hex[:8]}", "engine": "postgres", **body}
    return await client.post(DBS, json=payload, headers=auth(user))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"engine": "oracle"}, "unknown_engine"),
        ({"engine": "postgres", "version": "9.6"}, "unknown_engine_version"),
        ({"name": "Not_A_Label"}, "validation_error"),
        ({"memory_mb": 16}, "too_small"),
        ({"password": "chosen"}, "validation_error"),  # credentials are never the user's
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, make_user: UserMaker, body: dict[str, Any], code: str
) -> None:
    user = await make_user()
    r = await create(client, user, **body)
    assert r.status_code == 422 and r.json()["code"] == code, r.text
    assert (await client.get(DBS, headers=auth(user))).json() == []


async def test_names_are_unique_per_user(client: httpx.AsyncClient, make_user: UserMaker) -> None:
    one, two = await make_user(), await make_user()
    assert (await create(client, one, name="shared-name")).status_code == 201
    r = await create(client, one, name="shared-name", engine="redis")
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    assert (await create(client, two, name="shared-name")).status_code == 201


async def test_databases_count_against_the_memory_quota(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await user_with_quota(client, make_user, memory_mb=1000)
    assert (await create(client, user, memory_mb=600)).status_code == 201
    r = await create(client, user, memory_mb=600)
    assert r.status_code == 422 and r.json()["code"] == "quota_exceeded"
    assert r.json()["remaining"]["memory_mb"] == 400
    r = await create_app(client, user, resources={"memory_mb": 600})
    assert r.status_code == 422 and "memory_mb" in r.json()["exceeded"]


async def test_another_users_database_and_app_answer_404(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    owner, other = await make_user(), await make_user()
    db = (await create(client, owner)).json()
    for method, path in [("GET", ""), ("GET", "/credentials"), ("DELETE", ""),
                         ("POST", "/restart"), ("GET", "/backups"), ("GET", "/attachments")]:  # fmt: skip
        r = await client.request(method, f"{DBS}/{db['id']}{path}", headers=auth(other))
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, path)
    # Nor can the owner attach it to someone else's app.
    app = (await create_app(client, other)).json()
    r = await client.post(
        f"{DBS}/{db['id']}/attachments", json={"app_id": app["id"]}, headers=auth(owner)
    )
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    own_app = (await create_app(client, owner)).json()
    r = await client.post(
        f"{DBS}/{db['id']}/attachments",
        json={"app_id": own_app["id"], "env_name": "lower case"},
        headers=auth(owner),
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_env_name"


def test_engine_memory_settings_grow_with_the_container() -> None:
    small, large = server_args("postgres", 256), server_args("postgres", 4096)
    assert "shared_buffers=64MB" in small and "shared_buffers=1024MB" in large
    assert "--innodb-buffer-pool-size=102M" in server_args("mariadb", 256)
    assert server_args("redis", 1000)[:2] == ["--maxmemory", "600mb"]


def test_urls_use_each_engines_scheme_and_escape_the_password() -> None:
    creds = Credentials("u1", "p/w@x", "app_db")
    assert connection_url("mariadb", creds, "db-1") == "mysql://u1:p%2Fw%40x@db-1:3306/app_db"
    assert connection_url("redis", Credentials("u1", "pw", "0"), "h") == "redis://u1:pw@h:6379/0"
    with pytest.raises(InvalidInput):
        engine_info("redis", "6")


async def test_backup_schedules_take_cron_or_an_interval_and_refuse_bad_cron(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    db = (await create(client, user)).json()
    assert (db["backup_cron"], db["backup_interval_s"]) == (None, 86400)  # the platform's
    path = f"{DBS}/{db['id']}/backup-schedule"

    async def put(body: dict[str, Any]) -> httpx.Response:
        return await client.put(path, json=body, headers=auth(user))

    r = await put({"cron": " 30 2 * * MON-FRI ", "keep": 3})
    assert r.status_code == 200, r.text
    assert (r.json()["backup_cron"], r.json()["backup_interval_s"]) == ("30 2 * * mon-fri", None)
    assert r.json()["backup_keep"] == 3
    for bad, says in (("0 25 * * *", "hour"), ("* * * *", "five fields"),
                      ("0 0 30 2 *", "never run"), ("0 0 * * * 2027", "five fields")):  # fmt: skip
        r = await put({"cron": bad, "keep": 3})
        assert r.status_code == 422 and r.json()["code"] == "invalid_cron", r.text
        assert says in r.json()["detail"]
    for body in ({"keep": 3}, {"cron": "@daily", "interval_s": 60, "keep": 3}):
        r = await put(body)
        assert r.status_code == 422 and r.json()["code"] == "invalid_schedule", r.text
    # Refusals changed nothing; an interval still works, and replaces the cron.
    got = (await client.get(f"{DBS}/{db['id']}", headers=auth(user))).json()
    assert got["backup_cron"] == "30 2 * * mon-fri"
    r = await put({"interval_s": 3600, "keep": 2})
    assert (r.json()["backup_cron"], r.json()["backup_interval_s"]) == (None, 3600)


async def test_backup_schedules_closer_than_the_minimum_are_refused_and_change_nothing(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    """databases.min_backup_interval_s (an hour by default) holds for every pair of runs, not
    only the next two: `0,1 * * * *` is tight once an hour."""
    user = await make_user()
    db = (await create(client, user)).json()
    path = f"{DBS}/{db['id']}/backup-schedule"
    ok = await client.put(path, json={"cron": "15 */2 * * *", "keep": 4}, headers=auth(user))
    assert ok.status_code == 200, ok.text
    refusals = [
        ({"cron": "* * * * *"}, 60),
        ({"cron": "0,1 * * * *"}, 60),
        ({"cron": "*/30 * * * *"}, 1800),
        ({"cron": "0,59 0,23 * * *"}, 60),  # 23:59, then 00:00 the next day
        ({"interval_s": 60}, 60),
        ({"interval_s": 3599}, 3599),
    ]
    for body, gap in refusals:
        r = await client.put(path, json={**body, "keep": 1}, headers=auth(user))
        assert r.status_code == 422, (body, r.text)
        problem = r.json()
        assert problem["code"] == "schedule_too_frequent", problem
        assert (problem["min_interval_s"], problem["shortest_gap_s"]) == (3600, gap), body
    # Nothing was changed by any of them.
    got = (await client.get(f"{DBS}/{db['id']}", headers=auth(user))).json()
    assert (got["backup_cron"], got["backup_interval_s"], got["backup_keep"]) == (
        "15 */2 * * *",
        None,
        4,
    )
    # The minimum itself, and no scheduled backups at all, are fine.
    fine = ({"cron": "@hourly"}, {"cron": "59 23,0 * * *"}, {"interval_s": 3600}, {"interval_s": 0})
    for body in fine:
        r = await client.put(path, json={**body, "keep": 1}, headers=auth(user))
        assert r.status_code == 200, (body, r.text)
