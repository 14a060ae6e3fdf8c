"""`ipaas up` as a separate process the tests can really kill, and what they ask it over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ipaas.auth.passwords import hash_password
from ipaas.config import Settings
from ipaas.domain.states import State
from ipaas.platform import admin_process
from ipaas.store.migrate import upgrade
from tests.e2e.apps import DOCKERFILE
from tests.hygiene import reap, remove_containers_of
from tests.live import free_port

INSTANCES: set[str] = set()  # the platform instances the test started


@pytest.fixture(autouse=True)
def reap_orphans(tmp_path: Path) -> Iterator[None]:
    """These tests SIGKILL `ipaas up`: its Caddy child lives on (as after a real crash, where
    the next start adopts it), and its apps' containers too. Both go once the test is over."""
    yield
    reap(tmp_path)
    remove_containers_of(INSTANCES)
    INSTANCES.clear()


def slow_dockerfile() -> str:
    """A 12 s build step of its own, so no earlier run's cached layer makes the build quick."""
    return DOCKERFILE.replace("WORKDIR /srv", f"WORKDIR /srv\nRUN sleep 12 # {uuid.uuid4().hex}")


class ControlPlane:
    """`ipaas up` as a separate process, so it can really be killed."""

    def __init__(self, data_dir: Path, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "IPAAS_DATA_DIR": str(data_dir),
            "IPAAS_DATABASE_URL": database_url,
            "IPAAS_PORT": str(self.port),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        INSTANCES.add(self.env.get("IPAAS_RUNTIME__INSTANCE", "default"))

    def start(self) -> None:
        cmd = [sys.executable, "-m", "ipaas.cli.main", "up", "--no-bootstrap"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("ipaas up did not answer")

    def create_app(self, headers: dict[str, str], name: str, repo: Path, **body: str) -> str:
        r = httpx.post(
            f"{self.base}/api/v1/applications",
            json={"name": name, "repo": f"file://{repo}", **body},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def admin_token(data_dir: Path, database_url: str) -> str:
    upgrade(database_url)

    async def make() -> str:
        p = admin_process(Settings(data_dir=data_dir, database_url=database_url))
        user = await p.users.create(f"a{uuid.uuid4().hex[:8]}", hash_password("x"), "admin")
        await p.engine.dispose()
        return p.access_tokens.issue(user.id, "admin")

    return asyncio.run(make())


def status(base: str, headers: dict[str, str], app_id: str) -> dict[str, str]:
    r = httpx.get(f"{base}/api/v1/applications/{app_id}/status", headers=headers, timeout=10)
    return dict(r.json())


def wait_for(
    base: str, headers: dict[str, str], app_id: str, states: set[str], timeout_s: float
) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = status(base, headers, app_id)
        if current["state"] in states:
            return current
        time.sleep(0.3)
    raise AssertionError(f"{app_id} stayed {status(base, headers, app_id)}")


def kill_engine() -> None:
    """The machine's engine dies: only its dockerd (by pid file) and containerd, so that other
    dockerds (the session's Swarm nodes) live on."""
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(Path("/var/run/docker.pid").read_text().strip()), signal.SIGKILL)
    subprocess.run(["pkill", "-9", "-f", "/var/run/docker/containerd/containerd.toml"], check=False)
    time.sleep(1)


def start_engine() -> None:
    subprocess.run(["scripts/ensure-docker.sh"], check=True, cwd=Path(__file__).parents[2])


def builds_of(base: str, headers: dict[str, str], app_id: str) -> list[dict[str, object]]:
    r = httpx.get(f"{base}/api/v1/applications/{app_id}/builds", headers=headers, timeout=10)
    return list(r.json())


def wait_for_build(
    base: str, headers: dict[str, str], app_id: str, number: int, state: str
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(
            b["number"] == number and b["status"] == state for b in builds_of(base, headers, app_id)
        ):
            return
        time.sleep(0.3)
    raise AssertionError(f"build {number} never {state}: {builds_of(base, headers, app_id)}")


def build_log(base: str, headers: dict[str, str], app_id: str, number: int) -> str:
    url = f"{base}/api/v1/applications/{app_id}/builds/{number}/log"
    lines = httpx.get(url, headers=headers, timeout=10).json()["lines"]
    return "\n".join(line["line"] for line in lines)


def wait_gone(base: str, headers: dict[str, str], app_id: str) -> None:
    deadline = time.monotonic() + 30
    url = f"{base}/api/v1/applications/{app_id}"
    while httpx.get(url, headers=headers).status_code != 404:
        assert time.monotonic() < deadline, status(base, headers, app_id)
        time.sleep(0.3)


def mark_deleting(data_dir: Path, database_url: str, app_id: str) -> None:
    """What a process killed right after accepting a DELETE leaves behind."""

    async def mark() -> None:
        p = admin_process(Settings(data_dir=data_dir, database_url=database_url))
        await p.apps.transition(app_id, State.DELETING, "deleted by the user")
        await p.engine.dispose()

    asyncio.run(mark())
