"""The seed's performance item: hot paths make at most one query per request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import event

from ipaas.platform import ControlPlane
from tests.conftest import UserMaker, auth


@contextmanager
def count_queries(core: ControlPlane) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(core.stores.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(core.stores.engine.sync_engine, "before_cursor_execute", record)


async def create_app(client: httpx.AsyncClient, user: dict[str, str], name: str) -> str:
    body = {"name": name, "repo": "https://x.invalid/r"}
    r = await client.post("/api/v1/applications", json=body, headers=auth(user))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_status_poll_is_one_query(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    app_id = await create_app(client, user, "q-count-app")
    url = f"/api/v1/applications/{app_id}/status"
    r = await client.post("/api/v1/users/me/tokens", json={"name": "t"}, headers=auth(user))
    pat = {"Authorization": f"Bearer {r.json()['token']}"}
    await client.get(url, headers=pat)  # warms the token cache
    for headers in (auth(user), pat):
        with count_queries(core) as queries:
            r = await client.get(url, headers=headers)
        assert r.status_code == 200
        assert len(queries) <= 1, queries
        with count_queries(core) as queries:
            r = await client.get(url, headers={**headers, "If-None-Match": r.headers["etag"]})
        assert r.status_code == 304 and len(queries) <= 1, queries


async def test_many_pollers_of_an_expired_status_share_one_query(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    """When the cached status expires under load, 32 pollers do not all go to the store."""
    user = await make_user()
    app_id = await create_app(client, user, "q-count-herd")
    url = f"/api/v1/applications/{app_id}/status"
    await client.get(url, headers=auth(user))  # warms the token cache
    core.stores.apps.cache.evict(app_id)  # as when the entry expires
    with count_queries(core) as queries:
        answers = await asyncio.gather(*(client.get(url, headers=auth(user)) for _ in range(32)))
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["state"] for a in answers} == {"pending"}
    assert len(queries) == 1, queries
    # Another user's poll of it is still a 404, from the shared entry.
    other = await make_user()
    assert (await client.get(url, headers=auth(other))).status_code == 404


async def test_state_change_is_one_granular_update(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    from ipaas.domain.states import State

    user = await make_user()
    app_id = await create_app(client, user, "q-count-upd")
    with count_queries(core) as queries:
        await core.stores.apps.transition(app_id, State.BUILDING, "test")
    updates = [q for q in queries if q.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    # Only the state columns are written: no read-modify-write of the whole row.
    assert "envs_encrypted" not in updates[0] and "repo" not in updates[0]
    assert not any("SELECT applications.id, applications.name" in q for q in queries)
