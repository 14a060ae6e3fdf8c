"""Chaos: the control plane is SIGKILLed at each phase of a deploy, a rollout and a delete,
and the broker is killed under it. The next process converges: the app ends in a state the
user can act on within its deadline, served by exactly one live container, and nothing it
started is lost or left running.

The test picks the phase with the platform's checkpoints (`pause_at`): the process holds at
that point and says so in a marker file, and only then is it killed.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from ipaas.checkpoints import Phase
from ipaas.config import Settings
from ipaas.domain.labels import LABEL_APP
from tests.builds.conftest import make_repo
from tests.e2e.apps import DOCKERFILE, SERVER
from tests.e2e.plane import (
    ControlPlane,
    admin_token,
    reap_orphans,  # noqa: F401 - autouse: reaps what a kill left
    status,
    wait_for,
    wait_gone,
)
from tests.hygiene import new_instance
from tests.live import free_port
from tests.services import need

pytestmark = pytest.mark.slow
CONVERGE_S = 120  # well inside every deadline a user would wait for


class Chaos:
    """One platform (store, data, instance, Caddy ports) run by successive processes."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.data_dir = tmp_path / "data"
        self.database_url = database_url
        self.headers = {"Authorization": f"Bearer {admin_token(self.data_dir, database_url)}"}
        self.router_port = free_port()
        self.env = {
            "IPAAS_ROUTER__HTTP_PORT": str(self.router_port),
            "IPAAS_ROUTER__ADMIN_ADDRESS": f"127.0.0.1:{free_port()}",
            "IPAAS_RUNTIME__INSTANCE": new_instance(),
            "IPAAS_BUILD__LEASE_S": "3",
            "IPAAS_WARDEN__RECONCILE_INTERVAL_S": "2",
        }
        self.repo = make_repo(
            tmp_path / "repo", files={"Dockerfile": DOCKERFILE, "server.py": SERVER}
        )
        self.plane: ControlPlane | None = None

    def start(self, pause_at: Phase | None = None, **env: str) -> ControlPlane:
        extra = {"IPAAS_PAUSE_AT": pause_at.value} if pause_at else {}
        self.plane = ControlPlane(self.data_dir, self.database_url, **self.env, **extra, **env)
        self.plane.start()
        return self.plane

    def kill_when_paused(self, phase: Phase) -> None:
        """Wait until the process holds at `phase`, then SIGKILL it there."""
        assert self.plane is not None and self.plane.proc is not None
        marker = self.data_dir / f"paused-at-{phase}"
        deadline = time.monotonic() + CONVERGE_S
        while not marker.exists():
            assert self.plane.proc.poll() is None, "the control plane exited on its own"
            assert time.monotonic() < deadline, f"never reached {phase}"
            time.sleep(0.1)
        self.plane.kill()
        marker.unlink()

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        assert self.plane is not None
        url = f"{self.plane.base}/api/v1{path}"
        kwargs.setdefault("timeout", 30)
        return httpx.request(method, url, headers=self.headers, **kwargs)  # type: ignore[arg-type]

    def create(self) -> tuple[str, str]:
        assert self.plane is not None
        name = f"chaos-{uuid.uuid4().hex[:6]}"
        return self.plane.create_app(self.headers, name, self.repo, health_check="/health"), name

    def settled(self, app_id: str) -> dict[str, str]:
        assert self.plane is not None
        states = {"running", "failed", "crashed", "stopped"}
        return wait_for(self.plane.base, self.headers, app_id, states, CONVERGE_S)

    def answers(self, name: str) -> bool:
        try:
            r = httpx.get(
                f"http://127.0.0.1:{self.router_port}/health",
                headers={"Host": f"{name}.localhost"},
                timeout=5,
            )
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.text.strip() == "ok"

    def stop(self) -> None:
        if self.plane is not None:
            self.plane.stop()


def containers_of(app_id: str) -> list[docker.models.containers.Container]:
    return docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_APP}={app_id}"})


def live_containers(app_id: str) -> list[str]:
    return [c.id for c in containers_of(app_id) if c.status in ("running", "restarting", "created")]


def served_by_one(chaos: Chaos, app_id: str, name: str) -> dict[str, object]:
    """The app runs, its route answers, and its current container is the only live one;
    returns what `/runtime` says of that container."""
    done = chaos.settled(app_id)
    assert done["state"] == "running", done
    app = chaos.api("GET", f"/applications/{app_id}/runtime").json()
    deadline = time.monotonic() + 10  # the warden retires leftovers on its next pass (2 s)
    while live_containers(app_id) != [app["container_id"]] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert live_containers(app_id) == [app["container_id"]]
    assert chaos.answers(name)
    return dict(app)


def delete_and_check_gone(chaos: Chaos, app_id: str) -> None:
    assert chaos.api("DELETE", f"/applications/{app_id}").status_code in (200, 202, 204)
    assert chaos.plane is not None
    wait_gone(chaos.plane.base, chaos.headers, app_id)
    assert containers_of(app_id) == []


@pytest.fixture
def chaos(database_url: str, base_images: Settings, tmp_path: Path) -> Iterator[Chaos]:
    need("docker")
    platform = Chaos(tmp_path, database_url)
    yield platform
    platform.stop()


@pytest.mark.parametrize(
    "phase", [Phase.CLONE, Phase.BUILD, Phase.START, Phase.HEALTH_CHECK, Phase.ROUTE_SWITCH]
)
def test_killed_during_the_first_deploy(chaos: Chaos, phase: Phase) -> None:
    chaos.start(pause_at=phase)
    app_id, name = chaos.create()
    chaos.kill_when_paused(phase)
    chaos.start()
    served_by_one(chaos, app_id, name)
    delete_and_check_gone(chaos, app_id)


@pytest.mark.parametrize("phase", [Phase.HEALTH_CHECK, Phase.ROUTE_SWITCH, Phase.RETIRE])
def test_killed_during_a_rollout(chaos: Chaos, phase: Phase) -> None:
    chaos.start()
    app_id, name = chaos.create()
    before = served_by_one(chaos, app_id, name)
    chaos.stop()
    chaos.start(pause_at=phase)
    r = chaos.api("PATCH", f"/applications/{app_id}", json={"envs": [{"key": "V", "value": "2"}]})
    assert r.status_code == 200, r.text
    chaos.kill_when_paused(phase)
    chaos.start()
    after = served_by_one(chaos, app_id, name)
    # The change is what runs now, whichever side of the kill the switch happened on.
    current = docker.from_env().containers.get(str(after["container_id"]))
    assert "V=2" in current.attrs["Config"]["Env"]
    assert after["container_id"] != before["container_id"]
    delete_and_check_gone(chaos, app_id)


def test_killed_during_a_delete(chaos: Chaos) -> None:
    chaos.start(pause_at=Phase.DELETE)
    app_id, name = chaos.create()
    served_by_one(chaos, app_id, name)
    # The delete holds (in the request) at the checkpoint, so its answer never comes.
    with contextlib.suppress(httpx.ReadTimeout):
        chaos.api("DELETE", f"/applications/{app_id}", timeout=3)
    chaos.kill_when_paused(Phase.DELETE)
    chaos.start()
    assert chaos.plane is not None
    wait_gone(chaos.plane.base, chaos.headers, app_id)
    assert containers_of(app_id) == []
    assert not chaos.answers(name)


def broker_down() -> None:
    subprocess.run(["pkill", "-9", "-f", "beam.smp"], check=False)
    subprocess.run(["pkill", "-9", "-x", "epmd"], check=False)


def broker_up() -> None:
    subprocess.run(["rabbitmq-server", "-detached"], check=False, capture_output=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        check = subprocess.run(["rabbitmqctl", "-q", "await_startup"], capture_output=True)
        if check.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError("RabbitMQ did not come back")


@pytest.mark.broker_restart
def test_builds_asked_for_while_the_broker_is_down_run_once_it_is_back(chaos: Chaos) -> None:
    need("rabbitmq")
    chaos.start(IPAAS_QUEUE_URL="amqp://guest:guest@127.0.0.1:5672/")
    broker_down()
    try:
        app_id, name = chaos.create()  # accepted: the build waits in the store
        assert chaos.plane is not None
        assert status(chaos.plane.base, chaos.headers, app_id)["state"] == "pending"
    finally:
        broker_up()
    served_by_one(chaos, app_id, name)
    delete_and_check_gone(chaos, app_id)
