"""Login, access-token expiry, refresh rotation and reuse detection, API tokens, logout."""

from __future__ import annotations

import httpx

from ipaas.auth.tokens import AccessTokens
from ipaas.platform import ControlPlane
from tests.conftest import UserMaker, auth

ME = "/api/v1/users/me"


async def test_login_gives_tokens_that_work(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    r = await client.get(ME, headers=auth(user))
    assert r.status_code == 200
    assert r.json()["username"] == user["username"]
    assert "password" not in r.text and "hash" not in r.text


async def test_wrong_password_and_unknown_user_are_401(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    for body in (
        {"username": user["username"], "password": "wrong"},
        {"username": "nobody-here", "password": "whatever"},
    ):
        r = await client.post("/api/v1/auth/login", json=body)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "invalid_credentials"


async def test_missing_or_garbage_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get(ME)).json()["code"] == "unauthorized"
    r = await client.get(ME, headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_expired_access_token_is_refused(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    keyed = AccessTokens(core.stores.access_tokens._key, ttl_s=-10)  # already expired when issued
    expired = keyed.issue(user["id"], "user")
    r = await client.get(ME, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["code"] == "token_expired"
    forged = AccessTokens("another key that is long enough for hs256!", ttl_s=600).issue(
        user["id"], "admin"
    )
    r = await client.get(ME, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    first = user["refresh_token"]
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 200
    second = r.json()["refresh_token"]
    assert second != first
    new_access = r.json()["access_token"]
    assert (
        await client.get(ME, headers={"Authorization": f"Bearer {new_access}"})
    ).status_code == 200
    # Using the first token again is theft: refused, and the whole family dies.
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 401 and r.json()["code"] == "token_reused"
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert r.status_code == 401 and r.json()["code"] == "token_revoked"


async def test_logout_revokes_the_refresh_token(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": user["refresh_token"]})
    assert r.status_code == 204
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert r.status_code == 401


async def test_api_tokens_are_shown_once_work_and_can_be_deleted(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    r = await client.post("/api/v1/users/me/tokens", json={"name": "cli"}, headers=auth(user))
    assert r.status_code == 201
    created = r.json()
    token = created["token"]
    assert token.startswith("ipaas_pat_")
    listed = (await client.get("/api/v1/users/me/tokens", headers=auth(user))).json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert token not in str(listed)
    pat = {"Authorization": f"Bearer {token}"}
    assert (await client.get(ME, headers=pat)).json()["id"] == user["id"]
    r = await client.delete(f"/api/v1/users/me/tokens/{created['id']}", headers=auth(user))
    assert r.status_code == 204
    r = await client.get(ME, headers=pat)
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_another_users_token_cannot_be_deleted(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    alice, bob = await make_user(), await make_user()
    r = await client.post("/api/v1/users/me/tokens", json={"name": "a"}, headers=auth(alice))
    token_id = r.json()["id"]
    r = await client.delete(f"/api/v1/users/me/tokens/{token_id}", headers=auth(bob))
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert len((await client.get("/api/v1/users/me/tokens", headers=auth(alice))).json()) == 1


async def test_expired_api_token_is_refused(
    client: httpx.AsyncClient, core: ControlPlane, make_user: UserMaker
) -> None:
    from datetime import timedelta

    from ipaas.auth.tokens import hash_token, new_api_token
    from ipaas.store.models import utcnow

    user = await make_user()
    token = new_api_token()
    await core.stores.users.add_api_token(
        user["id"], "old", hash_token(token), token[:14], utcnow() - timedelta(minutes=1)
    )
    r = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["code"] == "token_expired"


async def test_only_admins_create_users(client: httpx.AsyncClient, make_user: UserMaker) -> None:
    admin, user = await make_user("admin"), await make_user()
    body = {"username": "newcomer-" + user["id"][:6], "password": "long enough pw"}
    r = await client.post("/api/v1/users", json=body, headers=auth(user))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = await client.post("/api/v1/users", json=body, headers=auth(admin))
    assert r.status_code == 201 and r.json()["role"] == "user"
    r = await client.post("/api/v1/users", json=body, headers=auth(admin))
    assert r.status_code == 409 and r.json()["code"] == "username_taken"
    r = await client.post(
        "/api/v1/auth/login", json={"username": body["username"], "password": body["password"]}
    )
    assert r.status_code == 200
