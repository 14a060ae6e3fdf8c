"""Password guessing and login floods through the API: throttled with 429 + Retry-After, and
hashing never blocks the event loop (other requests keep answering)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from ipaas.api.app import create_app
from ipaas.platform import ControlPlane
from tests.conftest import UserMaker, auth

LOGIN = "/api/v1/auth/login"
ClientMaker = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def fresh_client(core: ControlPlane) -> AsyncIterator[ClientMaker]:
    """An API of its own (its own throttle and hashing pool), reached from `address`."""
    clients: list[httpx.AsyncClient] = []

    async def make(address: str = "192.0.2.10", **auth_settings: Any) -> httpx.AsyncClient:
        settings = core.settings.model_copy(deep=True)
        settings.auth = settings.auth.model_copy(update=auth_settings)
        app = create_app(dataclasses.replace(core, settings=settings), manage_lifecycle=False)
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://ipaas.test")
        client.app = app  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.aclose()


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


async def test_the_attempt_after_five_wrong_passwords_waits_even_with_the_right_one(
    fresh_client: ClientMaker, make_user: UserMaker
) -> None:
    client = await fresh_client()
    alice, bob = await make_user(), await make_user()
    for _ in range(5):
        assert (await login(client, alice["username"], "wrong")).status_code == 401
    r = await login(client, alice["username"], "wrong")
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "too_many_attempts"
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 30 and r.json()["retry_after"] == wait
    # The right password does not get through during the lockout: guessing gains nothing.
    r = await login(client, alice["username"], alice["password"])
    assert r.status_code == 429 and "access_token" not in r.text
    # Someone else, from the same address, is not affected.
    assert (await login(client, bob["username"], bob["password"])).status_code == 200


async def test_a_success_resets_the_count_for_that_username(
    fresh_client: ClientMaker, make_user: UserMaker
) -> None:
    client = await fresh_client()
    alice = await make_user()
    for _ in range(4):
        assert (await login(client, alice["username"], "wrong")).status_code == 401
    assert (await login(client, alice["username"], alice["password"])).status_code == 200
    for _ in range(4):
        assert (await login(client, alice["username"], "wrong")).status_code == 401
    assert (await login(client, alice["username"], alice["password"])).status_code == 200


async def test_one_address_guessing_many_names_is_throttled_too(
    fresh_client: ClientMaker, make_user: UserMaker
) -> None:
    attacker = await fresh_client("198.51.100.7", login_address_max_failures=8)
    for i in range(8):
        r = await login(attacker, f"guess-{i}-{uuid.uuid4().hex[:6]}", "password1")
        assert r.status_code == 401
    victim = await make_user()
    r = await login(attacker, victim["username"], victim["password"])
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


async def test_refused_attempts_cost_no_hashing(
    fresh_client: ClientMaker, make_user: UserMaker
) -> None:
    client = await fresh_client()
    user = await make_user()
    pool = client.app.state.password_login.pool  # type: ignore[attr-defined]
    calls = 0
    verify = pool.verify

    async def counting(*args: Any) -> bool:
        nonlocal calls
        calls += 1
        return bool(await verify(*args))

    pool.verify = counting
    results = await asyncio.gather(*(login(client, user["username"], "wrong") for _ in range(40)))
    codes = [r.status_code for r in results]
    assert codes.count(401) == 5 and codes.count(429) == 35
    assert calls == 5  # concurrent guesses past the limit were refused before any hash


async def test_a_login_flood_does_not_stall_other_requests(
    fresh_client: ClientMaker, make_user: UserMaker
) -> None:
    client = await fresh_client("203.0.113.9", login_address_max_failures=10_000)
    user = await make_user()
    r = await client.post(
        "/api/v1/applications",
        json={"name": f"flood-{uuid.uuid4().hex[:8]}", "repo": "https://example.invalid/x.git"},
        headers=auth(user),
    )
    app_id = r.json()["id"]
    await client.get(f"/api/v1/applications/{app_id}/status", headers=auth(user))  # warm
    longest_gap = 0.0
    flooding = True

    async def ticker() -> None:
        """How long the event loop goes without running anything else."""
        nonlocal longest_gap
        last = time.perf_counter()
        while flooding:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest_gap = max(longest_gap, now - last)
            last = now

    async def poll() -> list[float]:
        latencies = []
        while flooding:
            start = time.perf_counter()
            s = await client.get(f"/api/v1/applications/{app_id}/status", headers=auth(user))
            assert s.status_code == 200
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.01)
        return latencies

    # 32 hashes: unknown users and wrong passwords (each is one full argon2 verification).
    names = [f"nobody-{uuid.uuid4().hex[:8]}" for _ in range(16)] + [user["username"]] * 16
    tick, polling = asyncio.create_task(ticker()), asyncio.create_task(poll())
    started = time.perf_counter()
    results = await asyncio.gather(*(login(client, name, "wrong guess") for name in names))
    flood_s = time.perf_counter() - started
    flooding = False
    latencies = await polling
    await tick
    assert {r.status_code for r in results} <= {401, 429}
    assert sum(r.status_code == 401 for r in results) >= 16 + 5
    # Hashes on the loop hold it for one argon2 run after another: 700 ms and more here. Off
    # the loop, the gaps are scheduling noise: mostly under 150 ms, 254 ms once in CI on a
    # 2-core box also running PostgreSQL; the bound keeps clear of both.
    assert longest_gap < 0.45, f"event loop blocked for {longest_gap * 1000:.0f} ms"
    assert latencies and max(latencies) < 0.45, f"status took {max(latencies) * 1000:.0f} ms"
    assert flood_s > 0.1  # the hashes really ran (on the pool's threads)


async def test_a_refused_login_is_held_then_answered_with_what_is_left_to_wait(
    fresh_client: ClientMaker, make_user: UserMaker
) -> None:
    client = await fresh_client("192.0.2.44", login_refusal_delay_s=0.5)
    user = await make_user()
    for _ in range(5):
        await login(client, user["username"], "wrong")
    started = time.perf_counter()
    r = await login(client, user["username"], "wrong")
    held = time.perf_counter() - started
    # One answer per half second per connection for a hammering client, and no CPU spent.
    assert r.status_code == 429 and held >= 0.45
    assert int(r.headers["Retry-After"]) == 30  # 29.5 s left, rounded up


async def test_past_the_hashing_queue_logins_get_503_busy_at_once(
    fresh_client: ClientMaker, make_user: UserMaker
) -> None:
    client = await fresh_client(
        "192.0.2.45", hash_workers=1, hash_max_waiting=0, login_address_max_failures=100
    )
    names = [f"nobody-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    results = await asyncio.gather(*(login(client, name, "x") for name in names))
    codes = sorted(r.status_code for r in results)
    assert codes[0] == 401 and codes[-1] == 503, codes
    busy = next(r for r in results if r.status_code == 503)
    assert busy.json()["code"] == "busy" and busy.headers["Retry-After"] == "1"
