"""Accounts end to end through the API and a real SMTP server: confirming an address,
changing and resetting a password, and what admins (and only admins) may do to users."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import update

from ipaas.platform import ControlPlane
from ipaas.store.models import AccountToken, utcnow
from tests.conftest import auth, signed_in_user
from tests.factories import running_app
from tests.fakes import FakeRuntime
from tests.mailserver import MailServer
from tests.support import unique_name

LINK = re.compile(r"https://paas\.example/api/v1/auth/(verify-email|password-reset)\?token=(\S+)")


async def mailed_token(plane: ControlPlane, server: MailServer, address: str) -> str:
    """Run the sender and read the token out of the newest link mailed to `address`."""
    await plane.notice_sender.run_once()
    [*_, last] = server.to(address)
    found = LINK.search(last.part("plain"))
    assert found, last.part("plain")
    return found.group(2)


async def confirmed_user(
    plane: ControlPlane, api: httpx.AsyncClient, server: MailServer, role: str = "user"
) -> dict[str, str]:
    user = await signed_in_user(plane, role)
    user["email"] = f"{user['username']}@example.test"
    assert (
        await api.put("/api/v1/users/me/email", json={"email": user["email"]}, headers=auth(user))
    ).status_code == 202
    token = await mailed_token(plane, server, user["email"])
    assert (await api.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 200
    return user


async def test_an_address_is_confirmed_by_a_single_use_link(
    plane: ControlPlane, api: httpx.AsyncClient, mail_server: MailServer
) -> None:
    user = await signed_in_user(plane)
    address = f"{user['username']}@example.test"
    r = await api.put("/api/v1/users/me/email", json={"email": address}, headers=auth(user))
    assert r.status_code == 202 and r.json()["email_verified"] is False
    token = await mailed_token(plane, mail_server, address)
    # Opening the link shows a page; only its button (a POST) uses the token.
    page = await api.get(f"/api/v1/auth/verify-email?token={token}")
    assert page.status_code == 200 and "Confirm" in page.text
    assert (await api.get("/api/v1/users/me/account", headers=auth(user))).json()[
        "email_verified"
    ] is False
    r = await api.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status_code == 200 and r.json()["email_verified"] is True
    again = await api.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400 and again.json()["code"] == "invalid_token"
    # The sent mail's link is not kept in the outbox once delivered.
    [sent] = await plane.stores.notices.messages_of(user["id"], kind="verify_email")
    assert sent.status == "sent" and token not in sent.body


async def test_a_link_for_an_address_since_replaced_confirms_nothing(
    plane: ControlPlane, api: httpx.AsyncClient, mail_server: MailServer
) -> None:
    user = await signed_in_user(plane)
    first, second = (f"{n}-{user['username']}@example.test" for n in ("a", "b"))
    await api.put("/api/v1/users/me/email", json={"email": first}, headers=auth(user))
    old = await mailed_token(plane, mail_server, first)
    await api.put("/api/v1/users/me/email", json={"email": second}, headers=auth(user))
    assert (await api.post("/api/v1/auth/verify-email", json={"token": old})).status_code == 400
    account = (await api.get("/api/v1/users/me/account", headers=auth(user))).json()
    assert (account["email"], account["email_verified"]) == (second, False)


async def test_password_change_needs_the_current_one_and_ends_other_sessions(
    plane: ControlPlane, api: httpx.AsyncClient
) -> None:
    user = await signed_in_user(plane)
    pat = (
        await api.post("/api/v1/users/me/tokens", json={"name": "ci"}, headers=auth(user))
    ).json()["token"]
    wrong = await api.post(
        "/api/v1/users/me/password",
        json={"current_password": "nope", "new_password": "a new password!"},
        headers=auth(user),
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_password"
    r = await api.post(
        "/api/v1/users/me/password",
        json={"current_password": user["password"], "new_password": "a new password!"},
        headers=auth(user),
    )
    assert r.status_code == 200
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    old = await api.get("/api/v1/users/me", headers=auth(user))
    assert old.status_code == 401 and old.json()["code"] == "session_ended"
    assert (
        await api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {pat}"})
    ).status_code == 401
    assert (
        await api.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    ).status_code == 401
    assert (await api.get("/api/v1/users/me", headers=fresh)).status_code == 200
    login = await api.post(
        "/api/v1/auth/login", json={"username": user["username"], "password": "a new password!"}
    )
    assert login.status_code == 200


async def test_password_reset_by_mail(
    plane: ControlPlane, api: httpx.AsyncClient, mail_server: MailServer
) -> None:
    user = await confirmed_user(plane, api, mail_server)
    unknown = await api.post(
        "/api/v1/auth/password-reset", json={"email": f"nobody-{user['username']}@example.test"}
    )
    known = await api.post("/api/v1/auth/password-reset", json={"email": user["email"].upper()})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    token = await mailed_token(plane, mail_server, user["email"])
    assert mail_server.to(f"nobody-{user['username']}@example.test") == []
    r = await api.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "reset password 1"},
    )
    assert r.status_code == 200
    assert (await api.get("/api/v1/users/me", headers=auth(user))).status_code == 401
    reuse = await api.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "reset password 2"},
    )
    assert reuse.status_code == 400 and reuse.json()["code"] == "invalid_token"
    login = await api.post(
        "/api/v1/auth/login", json={"username": user["username"], "password": "reset password 1"}
    )
    assert login.status_code == 200


async def test_an_expired_reset_link_does_nothing(
    plane: ControlPlane, api: httpx.AsyncClient, mail_server: MailServer
) -> None:
    user = await confirmed_user(plane, api, mail_server)
    await api.post("/api/v1/auth/password-reset", json={"email": user["email"]})
    token = await mailed_token(plane, mail_server, user["email"])
    async with plane.stores.users.sessions() as s:
        await s.execute(
            update(AccountToken)
            .where(AccountToken.user_id == user["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await s.commit()
    r = await api.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "too late password"},
    )
    assert r.status_code == 400
    assert (await api.get("/api/v1/users/me", headers=auth(user))).status_code == 200


async def test_reset_requests_are_throttled_per_address(
    plane: ControlPlane, api: httpx.AsyncClient
) -> None:
    address = f"{unique_name('flood')}@example.test"
    answers = [
        (await api.post("/api/v1/auth/password-reset", json={"email": address})).status_code
        for _ in range(4)
    ]
    assert answers == [202, 202, 202, 429]


async def test_normal_users_cannot_manage_users(
    plane: ControlPlane, api: httpx.AsyncClient
) -> None:
    user = await signed_in_user(plane)
    other = await signed_in_user(plane)
    assert (await api.get("/api/v1/admin/users", headers=auth(user))).status_code == 403
    r = await api.patch(
        f"/api/v1/admin/users/{other['id']}", json={"disabled": True}, headers=auth(user)
    )
    assert r.status_code == 403
    r = await api.post(
        "/api/v1/admin/users",
        json={"username": unique_name("x"), "password": "longenough"},
        headers=auth(user),
    )
    assert r.status_code == 403
    r = await api.patch(
        f"/api/v1/admin/users/{user['id']}", json={"role": "admin"}, headers=auth(user)
    )
    assert r.status_code == 403
    assert (await api.get("/api/v1/users/me", headers=auth(other))).status_code == 200


async def test_admin_disables_and_enables_a_user(
    plane: ControlPlane, api: httpx.AsyncClient
) -> None:
    admin = await signed_in_user(plane, "admin")
    user = await signed_in_user(plane)
    pat = (
        await api.post("/api/v1/users/me/tokens", json={"name": "ci"}, headers=auth(user))
    ).json()["token"]
    assert (
        await api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {pat}"})
    ).status_code == 200
    r = await api.patch(
        f"/api/v1/admin/users/{user['id']}", json={"disabled": True}, headers=auth(admin)
    )
    assert r.status_code == 200 and r.json()["disabled"] is True
    # At once: the access token, the (cached) API token and logins.
    assert (await api.get("/api/v1/users/me", headers=auth(user))).status_code == 401
    assert (
        await api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {pat}"})
    ).status_code == 401
    login = {"username": user["username"], "password": user["password"]}
    assert (await api.post("/api/v1/auth/login", json=login)).status_code == 401
    await api.patch(
        f"/api/v1/admin/users/{user['id']}", json={"disabled": False}, headers=auth(admin)
    )
    assert (await api.post("/api/v1/auth/login", json=login)).status_code == 200
    listed = (await api.get("/api/v1/admin/users?limit=500", headers=auth(admin))).json()
    assert user["id"] in {u["id"] for u in listed["items"]} and listed["total"] >= 2
    assert (
        await api.patch(
            "/api/v1/admin/users/" + "0" * 32, json={"disabled": True}, headers=auth(admin)
        )
    ).status_code == 404
    own = await api.patch(
        f"/api/v1/admin/users/{admin['id']}", json={"role": "user"}, headers=auth(admin)
    )
    assert own.status_code == 409 and own.json()["code"] == "own_account"


async def test_admin_invites_by_mail(
    plane: ControlPlane, api: httpx.AsyncClient, mail_server: MailServer
) -> None:
    admin = await signed_in_user(plane, "admin")
    name = unique_name("inv")
    r = await api.post(
        "/api/v1/admin/users",
        json={"username": name, "email": f"{name}@example.test", "role": "admin"},
        headers=auth(admin),
    )
    assert r.status_code == 201 and r.json()["email_verified"] is True
    token = await mailed_token(plane, mail_server, f"{name}@example.test")
    r = await api.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "first password"},
    )
    assert r.status_code == 200
    login = await api.post(
        "/api/v1/auth/login", json={"username": name, "password": "first password"}
    )
    assert login.status_code == 200
    me = await api.get(
        "/api/v1/admin/users", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.status_code == 200


async def test_admin_deletes_a_user_with_everything_they_own(
    plane: ControlPlane, api: httpx.AsyncClient
) -> None:
    admin = await signed_in_user(plane, "admin")
    user = await signed_in_user(plane)
    apps = [await running_app(plane, user["id"]) for _ in range(2)]
    runtime = plane.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    url = f"/api/v1/admin/users/{user['id']}"

    wrong = await api.delete(url, params={"confirm": "someone-else"}, headers=auth(admin))
    assert wrong.status_code == 422 and wrong.json()["code"] == "confirmation_mismatch"
    by_user = await api.delete(url, params={"confirm": user["username"]}, headers=auth(user))
    assert by_user.status_code == 403
    own = await api.delete(
        f"/api/v1/admin/users/{admin['id']}", params={"confirm": admin["username"]},
        headers=auth(admin),
    )  # fmt: skip
    assert own.status_code == 409 and own.json()["code"] == "own_account"
    assert (await api.get("/api/v1/users/me", headers=auth(user))).status_code == 200

    r = await api.delete(url, params={"confirm": user["username"]}, headers=auth(admin))
    assert r.status_code == 200 and r.json() == {"apps": 2, "databases": 0}
    assert (await api.get("/api/v1/users/me", headers=auth(user))).status_code == 401
    for app in apps:
        assert [c for c in runtime.containers.values() if c.app_id == app.id] == []
        listed, _ = await plane.stores.apps.list(None, limit=1000)
        assert app.id not in {a.id for a in listed}
    assert await plane.stores.users.get(user["id"]) is None
    again = await api.delete(url, params={"confirm": user["username"]}, headers=auth(admin))
    assert again.status_code == 404
