"""The warden: crashes are detected and restarted with backoff, crash loops end `crashed`
with a reason and no hot loop, OOM kills are reported."""

from __future__ import annotations

import asyncio
import contextlib
import time

import docker
import httpx

from tests.e2e.apps import CRASHY
from tests.e2e.conftest import E2E


def events(e2e: E2E, app_id: str) -> list[dict[str, str]]:
    return list(e2e.get(app_id, "/events?limit=1000"))


def test_killed_container_is_restarted(e2e: E2E) -> None:
    app_id = e2e.create(e2e.repo(files=CRASHY), health_check="/health")
    assert e2e.wait(app_id)["state"] == "running"
    first = e2e.get(app_id, "/runtime")["container_id"]
    warden = e2e.live.plane.warden
    app = e2e.live.run(e2e.live.plane.stores.apps.get(app_id))
    docker.from_env().containers.get(_serving(e2e, app_id)).kill()
    # The "die" event, a reconcile and a second report of it race: one crash is counted once.

    async def race() -> None:
        await asyncio.gather(warden.reconcile(), warden.crashed(app, first))

    e2e.live.run(race())
    crashed = e2e.wait(app_id, {"crashed", "running"}, timeout_s=30)
    assert warden.policy.count(app_id, time.monotonic()) == 1
    assert [e["to_state"] for e in events(e2e, app_id)].count("crashed") == 1
    assert "exited with" in crashed["reason"]
    assert e2e.wait(app_id, {"running"}, timeout_s=60)["state"] == "running"
    assert e2e.get(app_id, "/runtime")["container_id"] != first
    again = e2e.get(app_id)
    assert httpx.get(f"http://{again['address']}/health", timeout=5).text.strip() == "ok"
    assert e2e.via_router(again["name"], "/health").status_code == 200
    states = [e["to_state"] for e in events(e2e, app_id)]
    assert states[-2:] == ["crashed", "running"]


def test_crash_loop_ends_crashed_without_a_hot_loop(e2e: E2E) -> None:
    app_id = e2e.create(
        e2e.repo(files=CRASHY),
        health_check="/health",
        envs=[{"key": "CRASH_AFTER", "value": "1.5"}],
    )
    deadline = time.monotonic() + 120
    status = e2e.get(app_id, "/status")
    while time.monotonic() < deadline:
        status = e2e.get(app_id, "/status")
        if status["state"] == "crashed" and status["reason"].startswith("crash loop:"):
            break
        time.sleep(0.5)
    assert status["reason"].startswith("crash loop:"), events(e2e, app_id)
    assert "exited with 3" in status["reason"] and "crashing on purpose" in status["reason"]
    crashes = [e for e in events(e2e, app_id) if e["to_state"] == "crashed"]
    assert len(crashes) == e2e.settings.warden.crash_limit
    times = [e["at"] for e in crashes]
    assert times == sorted(times)
    time.sleep(6)  # well past the backoff cap: nothing restarts it any more
    assert len([e for e in events(e2e, app_id) if e["to_state"] == "crashed"]) == len(crashes)
    assert e2e.get(app_id, "/status")["state"] == "crashed"
    # The user fixes nothing but asks for a restart: allowed from crashed.
    assert e2e.post(app_id, "restart").status_code == 202


def test_oom_kill_is_reported(e2e: E2E) -> None:
    app_id = e2e.create(e2e.repo(files=CRASHY), health_check="/health", resources={"memory_mb": 64})
    assert e2e.wait(app_id)["state"] == "running"
    address = e2e.get(app_id)["address"]
    with contextlib.suppress(httpx.HTTPError):  # the process dies mid-request
        httpx.get(f"http://{address}/oom", timeout=20)
    crashed = e2e.wait(app_id, {"crashed"}, timeout_s=30)
    assert "OOM" in crashed["reason"]


def _serving(e2e: E2E, app_id: str) -> str:
    row = e2e.live.run(e2e.live.plane.stores.apps.get(app_id))
    assert row.container_id
    return row.container_id
