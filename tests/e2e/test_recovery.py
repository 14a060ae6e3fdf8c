"""Nothing stuck: a control plane killed with SIGKILL mid-build, or killed together with the
container engine, comes back and finishes / converges."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest

from ipaas.config import Settings
from ipaas.domain.states import State
from ipaas.platform import admin_process
from ipaas.runtime.base import LABEL_APP
from ipaas.store.models import Application, new_id
from tests.builds.conftest import make_repo
from tests.e2e.apps import SERVER
from tests.e2e.plane import (
    ControlPlane,
    admin_token,
    build_log,
    builds_of,
    kill_engine,
    mark_deleting,
    reap_orphans,  # noqa: F401 - autouse: reaps what a kill left
    slow_dockerfile,
    start_engine,
    status,
    wait_for,
    wait_for_build,
    wait_gone,
)
from tests.hygiene import new_instance
from tests.live import free_port
from tests.services import need


def test_sigkill_mid_build_is_finished_by_the_next_process(
    database_url: str, base_images: Settings, tmp_path: Path
) -> None:
    need("docker")
    data_dir = tmp_path / "data"
    token = admin_token(data_dir, database_url)
    headers = {"Authorization": f"Bearer {token}"}
    env = {
        "IPAAS_ROUTER__KIND": "transparent",
        "IPAAS_BUILD__LEASE_S": "3",
        "IPAAS_RUNTIME__INSTANCE": new_instance(),
    }
    repo = make_repo(
        tmp_path / "repo", files={"Dockerfile": slow_dockerfile(), "server.py": SERVER}
    )
    first = ControlPlane(data_dir, database_url, **env)
    first.start()
    try:
        app_id = first.create_app(headers, f"kill-{uuid.uuid4().hex[:6]}", repo)
        wait_for(first.base, headers, app_id, {"building"}, 60)
        time.sleep(3)  # inside the 12 s build step
    finally:
        first.kill()
    second = ControlPlane(data_dir, database_url, **env)
    second.start()
    try:
        done = wait_for(second.base, headers, app_id, {"running", "failed"}, 180)
        assert done["state"] == "running", done
        builds = httpx.get(
            f"{second.base}/api/v1/applications/{app_id}/builds", headers=headers
        ).json()
        assert builds[0]["attempt"] == 2 and builds[0]["status"] == "succeeded"
        log = httpx.get(
            f"{second.base}/api/v1/applications/{app_id}/builds/1/log", headers=headers
        ).json()["lines"]
        assert any("attempt 2" in line["line"] for line in log)
        address = httpx.get(f"{second.base}/api/v1/applications/{app_id}", headers=headers).json()[
            "address"
        ]
        assert httpx.get(f"http://{address}/health", timeout=5).text.strip() == "ok"
        httpx.delete(f"{second.base}/api/v1/applications/{app_id}", headers=headers)
    finally:
        second.stop()


@pytest.mark.engine_restart
def test_control_plane_and_engine_killed_converge_again(
    database_url: str, base_images: Settings, tmp_path: Path
) -> None:
    need("docker")
    data_dir = tmp_path / "data"
    token = admin_token(data_dir, database_url)
    headers = {"Authorization": f"Bearer {token}"}
    router_port = free_port()
    env = {
        "IPAAS_ROUTER__HTTP_PORT": str(router_port),
        "IPAAS_ROUTER__ADMIN_ADDRESS": f"127.0.0.1:{free_port()}",
        "IPAAS_RUNTIME__INSTANCE": new_instance(),
        "IPAAS_WARDEN__RECONCILE_INTERVAL_S": "2",
    }
    plane = ControlPlane(data_dir, database_url, **env)
    plane.start()
    names = []
    try:
        ids = []
        for sample in ("static-site", "python-flask"):
            repo = make_repo(tmp_path / sample, sample)
            name = f"conv-{uuid.uuid4().hex[:6]}"
            ids.append(plane.create_app(headers, name, repo, health_check="/health"))
            names.append(name)
        for app_id in ids:
            assert (
                wait_for(plane.base, headers, app_id, {"running", "failed"}, 240)["state"]
                == "running"
            )
    finally:
        plane.kill()
    # The engine dies too (its containers with it); Caddy, orphaned, keeps running.
    kill_engine()
    start_engine()
    plane = ControlPlane(data_dir, database_url, **env)
    plane.start()
    try:
        for app_id, name in zip(ids, names, strict=True):
            deadline = time.monotonic() + 90
            answer = None
            while time.monotonic() < deadline:
                try:
                    answer = httpx.get(
                        f"http://127.0.0.1:{router_port}/health",
                        headers={"Host": f"{name}.localhost"},
                        timeout=5,
                    )
                    if answer.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            assert answer is not None and answer.status_code == 200, status(
                plane.base, headers, app_id
            )
            # The route reaches the restarted container a moment before the state says so.
            assert wait_for(plane.base, headers, app_id, {"running"}, 15)["state"] == "running"
        for app_id in ids:
            httpx.delete(f"{plane.base}/api/v1/applications/{app_id}", headers=headers)
    finally:
        plane.stop()


def test_builds_travel_through_rabbitmq_to_a_separate_builder(
    database_url: str, base_images: Settings, tmp_path: Path
) -> None:
    """The API process builds nothing itself; `ipaas worker build` takes the job from RabbitMQ."""
    need("docker")
    need("rabbitmq")
    data_dir = tmp_path / "data"
    token = admin_token(data_dir, database_url)
    headers = {"Authorization": f"Bearer {token}"}
    queue = "amqp://guest:guest@127.0.0.1:5672/"
    env = {
        "IPAAS_ROUTER__KIND": "transparent",
        "IPAAS_QUEUE_URL": queue,
        "IPAAS_BUILD__EMBEDDED_WORKER": "false",
        "IPAAS_RUNTIME__INSTANCE": new_instance(),
    }
    api = ControlPlane(data_dir, database_url, **env)
    api.start()
    # Told to use Caddy, a builder still starts none: it only builds, and the control plane
    # (here the API process, whose warden picks the release up) starts and routes the app.
    caddy_admin = f"127.0.0.1:{free_port()}"
    worker_env = {
        **api.env,
        "IPAAS_ROUTER__KIND": "caddy",
        "IPAAS_ROUTER__ADMIN_ADDRESS": caddy_admin,
        "IPAAS_ROUTER__HTTP_PORT": str(free_port()),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "ipaas.cli.main", "worker", "build", "--queue", queue],
        env=worker_env,
        stdout=subprocess.DEVNULL,
    )
    try:
        repo = make_repo(tmp_path / "repo", "static-site")
        app_id = api.create_app(headers, f"rmq-{uuid.uuid4().hex[:6]}", repo)
        done = wait_for(api.base, headers, app_id, {"running", "failed"}, 180)
        assert done["state"] == "running", done
        children = subprocess.run(
            ["pgrep", "-a", "-P", str(worker.pid)], capture_output=True, text=True
        ).stdout
        assert "caddy" not in children, children
        host, port = caddy_admin.split(":")
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=1).close()
    finally:
        worker.terminate()
        worker.wait(20)
        api.kill()
    # The API process dies in the middle of a delete; it comes back, with no builder running,
    # and finishes it: the app and its container go.
    mark_deleting(data_dir, database_url, app_id)
    api = ControlPlane(data_dir, database_url, **env)
    api.start()
    try:
        wait_gone(api.base, headers, app_id)
        left = docker.from_env().containers.list(
            all=True, filters={"label": f"{LABEL_APP}={app_id}"}
        )
        assert left == []
    finally:
        api.stop()


@pytest.mark.engine_restart
def test_engine_stopped_mid_build_retries_then_fails_or_succeeds_once_back(
    database_url: str, base_images: Settings, tmp_path: Path
) -> None:
    """The engine dies under a running build while the control plane stays up. Left down, the
    build is retried, then the app ends `failed` with the engine as the reason (not stuck in
    `building`); back in time, a retry builds it and the app runs."""
    need("docker")
    data_dir = tmp_path / "data"
    token = admin_token(data_dir, database_url)
    headers = {"Authorization": f"Bearer {token}"}
    repo = make_repo(
        tmp_path / "repo", files={"Dockerfile": slow_dockerfile(), "server.py": SERVER}
    )
    instance = new_instance()
    common = {"IPAAS_ROUTER__KIND": "transparent", "IPAAS_RUNTIME__INSTANCE": instance}

    # 1. The engine stays down: three attempts 1 s and 2 s apart, then `failed`.
    plane = ControlPlane(data_dir, database_url, **common, IPAAS_BUILD__RETRY_BASE_S="1")
    plane.start()
    try:
        app_id = plane.create_app(headers, f"eng-{uuid.uuid4().hex[:6]}", repo)
        wait_for(plane.base, headers, app_id, {"building"}, 60)
        time.sleep(3)  # inside the 12 s build step
        kill_engine()
        try:
            done = wait_for(plane.base, headers, app_id, {"failed", "running"}, 60)
        finally:
            start_engine()
        assert done["state"] == "failed", done
        assert "gave up after retries" in done["reason"], done
        [build] = builds_of(plane.base, headers, app_id)
        assert build["status"] == "failed" and build["attempt"] == 3, build
        log = build_log(plane.base, headers, app_id, 1)
        assert "Step " in log and "--- attempt 3 of 3" in log, log
    finally:
        plane.stop()

    # 2. The engine comes back before the next attempt: that attempt builds it.
    plane = ControlPlane(data_dir, database_url, **common, IPAAS_BUILD__RETRY_BASE_S="20")
    plane.start()
    try:
        r = httpx.post(f"{plane.base}/api/v1/applications/{app_id}/rollout", headers=headers)
        assert r.status_code in (200, 202), r.text
        wait_for_build(plane.base, headers, app_id, 2, "running")
        time.sleep(3)
        kill_engine()
        start_engine()
        done = wait_for(plane.base, headers, app_id, {"running", "failed"}, 180)
        assert done["state"] == "running", done
        build = builds_of(plane.base, headers, app_id)[0]
        assert build["number"] == 2 and build["attempt"] == 2, build
        assert build["status"] == "succeeded", build
        assert "--- attempt 2 of 3" in build_log(plane.base, headers, app_id, 2)
        address = httpx.get(f"{plane.base}/api/v1/applications/{app_id}", headers=headers).json()[
            "address"
        ]
        assert httpx.get(f"http://{address}/health", timeout=5).text.strip() == "ok"
        httpx.delete(f"{plane.base}/api/v1/applications/{app_id}", headers=headers)
    finally:
        plane.stop()


def test_an_unreachable_broker_at_start_does_not_stop_recovery(
    database_url: str, base_images: Settings, tmp_path: Path
) -> None:
    """The API starts beside separate builders while RabbitMQ cannot be reached and a build is
    still queued: it answers, and still finishes a delete a killed process left half-done."""
    need("docker")
    data_dir = tmp_path / "data"
    token = admin_token(data_dir, database_url)
    headers = {"Authorization": f"Bearer {token}"}

    async def leftovers() -> tuple[str, str]:
        p = admin_process(Settings(data_dir=data_dir, database_url=database_url))
        owner = p.access_tokens.verify(token).user_id
        ids = []
        for name in ("queued", "deleting"):
            app = Application(
                id=new_id(),
                name=f"{name}-{uuid.uuid4().hex[:6]}",
                owner_id=owner,
                repo="https://x.invalid/r.git",
                state=State.PENDING.value,
                envs_encrypted="",
            )
            await p.apps.create(app)
            await p.builds.new_build(app.id)
            ids.append(app.id)
        await p.apps.transition(ids[1], State.DELETING, "deleted by the user")
        await p.engine.dispose()
        return ids[0], ids[1]

    queued, deleting = asyncio.run(leftovers())
    api = ControlPlane(
        data_dir,
        database_url,
        IPAAS_ROUTER__KIND="transparent",
        IPAAS_QUEUE_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/",  # nothing listens
        IPAAS_BUILD__EMBEDDED_WORKER="false",
        IPAAS_RUNTIME__INSTANCE=new_instance(),
    )
    api.start()
    try:
        wait_gone(api.base, headers, deleting)
        assert status(api.base, headers, queued)["state"] == "pending"
    finally:
        api.stop()
