"""Webhooks against a real HTTP receiver on loopback that checks each signature; preferences
and "send a test" through the API, answering with the real SMTP or HTTP reply."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ipaas.config import NotifySettings
from ipaas.domain.errors import InvalidInput
from ipaas.domain.states import State
from ipaas.notify.webhooks import WebhookGuard
from ipaas.platform import ControlPlane
from tests.conftest import auth, signed_in_user
from tests.factories import stored_app
from tests.mailserver import MailServer, WebhookReceiver
from tests.notify.test_accounts_api import confirmed_user


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    yield hook
    hook.close()


async def hooked_user(
    api: httpx.AsyncClient, plane: ControlPlane, receiver: WebhookReceiver, mode: str = "json"
) -> dict[str, str]:
    user = await signed_in_user(plane)
    r = await api.post(
        "/api/v1/users/me/webhooks",
        json={"url": receiver.url, "mode": mode, "kinds": ["build_failed"]},
        headers=auth(user),
    )
    assert r.status_code == 201, r.text
    receiver.secret = r.json()["secret"]
    user["webhook_id"] = r.json()["id"]
    return user


async def failed_build(plane: ControlPlane, owner_id: str) -> str:
    app = await stored_app(plane.stores, owner_id)
    await plane.stores.apps.transition(app.id, State.BUILDING, "build 1 started")
    await plane.stores.apps.transition(app.id, State.FAILED, "build failed: exit status 2")
    return app.name


async def test_notice_is_posted_signed_as_json(
    plane: ControlPlane, api: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    user = await hooked_user(api, plane, receiver)
    name = await failed_build(plane, user["id"])
    await plane.notice_sender.run_once()
    [delivery] = receiver.deliveries
    assert delivery.signature_ok
    body = delivery.json()
    assert (body["kind"], body["app"]["name"], body["facts"]["reason"]) == (
        "build_failed",
        name,
        "build failed: exit status 2",
    )
    assert delivery.headers["x-ipaas-event"] == "build_failed"
    receiver.secret = "not the secret"
    assert not receiver.verify(delivery.headers["x-ipaas-signature"], delivery.body)


@pytest.mark.parametrize(("mode", "field"), [("slack", "text"), ("discord", "content")])
async def test_chat_modes(
    plane: ControlPlane, api: httpx.AsyncClient, receiver: WebhookReceiver, mode: str, field: str
) -> None:
    user = await hooked_user(api, plane, receiver, mode)
    name = await failed_build(plane, user["id"])
    await plane.notice_sender.run_once()
    [delivery] = receiver.deliveries
    assert delivery.signature_ok and list(delivery.json()) == [field]
    assert f"{name}: the build failed" in delivery.json()[field]


async def test_503_is_retried_and_410_fails(
    plane: ControlPlane, api: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    user = await hooked_user(api, plane, receiver)
    receiver.statuses = [503]
    await failed_build(plane, user["id"])
    await plane.notice_sender.run_once()
    [waiting] = await plane.stores.notices.messages_of(user["id"])
    assert (waiting.status, waiting.last_reply) == ("pending", "HTTP 503 ok")
    await plane.stores.notices.finish(
        waiting.id, "pending", "moved on", waiting.created_at
    )  # due now
    await plane.notice_sender.run_once()
    [sent] = await plane.stores.notices.messages_of(user["id"])
    assert (sent.status, sent.attempts, len(receiver.deliveries)) == ("sent", 2, 2)

    receiver.statuses = [410]
    await failed_build(plane, user["id"])
    await plane.notice_sender.run_once()
    gone = (await plane.stores.notices.messages_of(user["id"]))[0]
    assert (gone.status, gone.error) == ("failed", "HTTP 410 ok")


async def test_send_a_test_answers_with_the_real_replies(
    plane: ControlPlane, api: httpx.AsyncClient, receiver: WebhookReceiver, mail_server: MailServer
) -> None:
    user = await hooked_user(api, plane, receiver)
    receiver.statuses = [500]
    r = await api.post(f"/api/v1/users/me/webhooks/{user['webhook_id']}/test", headers=auth(user))
    assert r.json() == {"ok": False, "temporary": True, "reply": "HTTP 500 ok"}
    assert receiver.deliveries[-1].signature_ok and receiver.deliveries[-1].json()["kind"] == "test"

    unconfirmed = await api.post("/api/v1/users/me/notices/test", json={}, headers=auth(user))
    assert unconfirmed.status_code == 409 and unconfirmed.json()["code"] == "email_not_verified"
    confirmed = await confirmed_user(plane, api, mail_server)
    ok = (await api.post("/api/v1/users/me/notices/test", json={}, headers=auth(confirmed))).json()
    assert ok["ok"] and ok["reply"].startswith("250")
    mail_server.script.data_replies = ["550 5.7.1 relaying denied"]
    refused = (
        await api.post("/api/v1/users/me/notices/test", json={}, headers=auth(confirmed))
    ).json()
    assert refused == {"ok": False, "temporary": False, "reply": "550 5.7.1 relaying denied"}


async def test_another_users_webhook_is_not_found(
    plane: ControlPlane, api: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    owner = await hooked_user(api, plane, receiver)
    intruder = await signed_in_user(plane)
    hook = owner["webhook_id"]
    assert (
        await api.post(f"/api/v1/users/me/webhooks/{hook}/test", headers=auth(intruder))
    ).status_code == 404
    assert (
        await api.delete(f"/api/v1/users/me/webhooks/{hook}", headers=auth(intruder))
    ).status_code == 404
    assert (await api.get("/api/v1/users/me/webhooks", headers=auth(intruder))).json() == []
    assert receiver.deliveries == []
    assert (
        await api.delete(f"/api/v1/users/me/webhooks/{hook}", headers=auth(owner))
    ).status_code == 204


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:2019/load",  # the router's admin API
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/hook",
        "http://2130706433/hook",  # 127.0.0.1 in another spelling
        "http://localhost:8000/api/v1/users",
        "file:///etc/passwd",
        "http://user:pw@example.com/hook",
    ],
)
async def test_webhooks_may_not_reach_internal_addresses(url: str) -> None:
    guard = WebhookGuard(NotifySettings())  # the default: no exceptions
    with pytest.raises(InvalidInput):
        await guard.target(url)


async def test_refused_webhook_url_is_a_422(plane: ControlPlane, api: httpx.AsyncClient) -> None:
    user = await signed_in_user(plane)
    r = await api.post(
        "/api/v1/users/me/webhooks", json={"url": "http://169.254.169.254/x"}, headers=auth(user)
    )
    assert r.status_code == 422 and r.json()["code"] == "webhook_host_forbidden"


async def test_preferences(plane: ControlPlane, api: httpx.AsyncClient) -> None:
    user = await signed_in_user(plane)
    prefs = (await api.get("/api/v1/users/me/notice-preferences", headers=auth(user))).json()[
        "email"
    ]
    assert prefs["deploy_succeeded"] is False and prefs["app_crashed"] is True
    r = await api.put(
        "/api/v1/users/me/notice-preferences",
        json={"email": {"deploy_succeeded": True}},
        headers=auth(user),
    )
    assert r.json()["email"]["deploy_succeeded"] is True
    bad = await api.put(
        "/api/v1/users/me/notice-preferences",
        json={"email": {"password_reset": False}},
        headers=auth(user),
    )
    assert bad.status_code == 422
