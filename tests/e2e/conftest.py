"""The whole platform for real: API, builder, Docker runtime, Caddy router and warden, in one
process (a thread with its own loop), with apps deployed from local git repositories."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from ipaas.auth.passwords import hash_password
from ipaas.config import RuntimeSettings, Settings
from ipaas.domain.states import State
from ipaas.platform import api_process
from ipaas.runtime.base import LABEL_APP
from ipaas.runtime.docker import DockerRuntime, network_name
from ipaas.store.migrate import upgrade
from tests.builds.conftest import base_images, build_network, commit_all, make_repo
from tests.conftest import _fresh_database, make_settings
from tests.e2e.load import ClientLoad
from tests.hygiene import new_instance
from tests.live import Live, free_port, start_live
from tests.services import need

__all__ = ["base_images", "build_network", "commit_all", "make_repo"]
ADMIN_PASSWORD = "correct horse battery"
TERMINAL = {"running", "failed", "crashed", "stopped"}


def e2e_settings(
    data_dir: Path, database_url: str, router: dict[str, Any] | None = None, **overrides: Any
) -> Settings:
    """`router` adds to (or replaces) the free ports given to Caddy; `runtime`, `warden`,
    `build` and `databases` add to (or replace) the quick timings set here."""
    sections: dict[str, dict[str, Any]] = {
        "router": {"admin_address": f"127.0.0.1:{free_port()}", "http_port": free_port()},
        "runtime": {
            "health_timeout_s": 30,
            "stop_timeout_s": 3,
            "memory_mb": 256,
            "instance": new_instance(),
        },
        "warden": {
            "reconcile_interval_s": 2,
            "backoff_base_s": 0.5,
            "backoff_cap_s": 4,
            "crash_limit": 3,
            "crash_window_s": 60,
        },
        "build": {"lease_s": 30, "retry_base_s": 0.5},
        # The scheduled-backup test takes one a second.
        "databases": {"min_backup_interval_s": 0},
    }
    sections["router"].update(router or {})
    for name in ("runtime", "warden", "build", "databases"):
        sections[name].update(overrides.pop(name, {}))
    return make_settings(
        data_dir,
        database_url,
        port=free_port(),  # the API: Caddy asks it about requests to private apps
        **sections,
        **overrides,
    )


@dataclass
class E2E:
    live: Live
    settings: Settings
    headers: dict[str, str]
    repos: Path
    admin_name: str = ""
    admin_password: str = ADMIN_PASSWORD

    @property
    def api(self) -> str:
        return f"{self.live.base}/api/v1/applications"

    def repo(self, sample: str | None = None, files: dict[str, str] | None = None) -> Path:
        return make_repo(self.repos / uuid.uuid4().hex[:8], sample, files)

    def create(self, repo: Path, **body: Any) -> str:
        payload = {"name": f"e2e-{uuid.uuid4().hex[:8]}", "repo": f"file://{repo}", **body}
        r = httpx.post(self.api, json=payload, headers=self.headers, timeout=30)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def get(self, app_id: str, suffix: str = "") -> Any:
        r = httpx.get(f"{self.api}/{app_id}{suffix}", headers=self.headers, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def patch(self, app_id: str, body: dict[str, Any]) -> Any:
        """Change settings; the app as the PATCH left it."""
        r = httpx.patch(f"{self.api}/{app_id}", json=body, headers=self.headers, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def reasons(self, app_id: str) -> list[str]:
        """The reasons of the app's events, oldest first."""
        return [e["reason"] or "" for e in self.get(app_id, "/events?limit=1000")]

    def post(self, app_id: str, action: str, body: Any = None) -> httpx.Response:
        return httpx.post(f"{self.api}/{app_id}/{action}", json=body, headers=self.headers)

    def wait(self, app_id: str, states: set[str] | None = None, timeout_s: float = 240) -> Any:
        """Long-poll the status until the app is in one of `states` (default: a resting one)."""
        wanted = states or TERMINAL
        etag = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            headers = {**self.headers, **({"If-None-Match": etag} if etag else {})}
            r = httpx.get(f"{self.api}/{app_id}/status?wait=5", headers=headers, timeout=30)
            if r.status_code == 200:
                etag, status = r.headers["etag"], r.json()
                if status["state"] in wanted:
                    return status
        raise AssertionError(f"{app_id} never reached {wanted}: {self.get(app_id, '/events')}")

    def make_user(self, password: str = ADMIN_PASSWORD) -> tuple[str, str]:
        """A user (not an admin): (id, name)."""
        name = f"u{uuid.uuid4().hex[:8]}"
        user = self.live.run(self.live.plane.stores.users.create(name, hash_password(password)))
        return user.id, name

    def load(self, name: str, path: str = "/") -> ClientLoad:
        """Client load on the app's host through Caddy (`with e2e.load(name) as load:`)."""
        return ClientLoad(self.settings.router.http_port, self.host_of(name), path)

    def host_of(self, name: str) -> str:
        return f"{name}.{self.settings.base_domain}"

    def via_router(self, name: str, path: str = "/") -> httpx.Response:
        url = f"http://127.0.0.1:{self.settings.router.http_port}{path}"
        return httpx.get(url, headers={"Host": self.host_of(name)}, timeout=10)


@pytest.fixture
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Here, a store of each test's own: these tests run whole platforms (`ipaas up`), whose
    wardens act on every app in their store (other tests' apps run on fakes, or on platforms
    already gone)."""
    async for url in _fresh_database(tmp_path_factory):
        yield url


@pytest.fixture(scope="module")
def e2e(
    module_database_url: str, base_images: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2E]:
    settings = e2e_settings(tmp_path_factory.mktemp("e2e"), module_database_url)
    with running_platform(settings, tmp_path_factory) as platform:
        yield platform


@contextlib.contextmanager
def running_platform(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    """The whole platform on `settings` (its store migrated here), with an admin; at the end
    the apps' containers, images and network go."""
    need("docker")
    upgrade(settings.effective_database_url)
    plane = api_process(settings)
    live = start_live(plane, port=settings.port)
    admin = live.run(
        plane.stores.users.create(
            f"a{uuid.uuid4().hex[:8]}", hash_password(ADMIN_PASSWORD), "admin"
        )
    )
    token = plane.stores.access_tokens.issue(admin.id, "admin")
    try:
        yield E2E(
            live,
            settings,
            {"Authorization": f"Bearer {token}"},
            tmp_path_factory.mktemp("repos"),
            admin_name=admin.username,
        )
    finally:
        app_ids = [a.id for a in live.run(plane.stores.apps.all_in_states(list(State)))]
        live.stop()
        remove_leftovers(app_ids, admin.id)


def remove_leftovers(app_ids: list[str], owner_id: str) -> None:
    client = docker.from_env()
    for app_id in app_ids:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_APP}={app_id}"}):
            c.remove(force=True, v=True)
        # As the platform does when it deletes an app (build stages included).
        with contextlib.suppress(docker.errors.APIError):
            asyncio.run(DockerRuntime(RuntimeSettings()).remove_app_images(app_id))
        # Named volumes outlive their containers (a test that did not delete its app).
        for volume in client.volumes.list(filters={"label": f"{LABEL_APP}={app_id}"}):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
    for net in client.networks.list(names=[network_name(owner_id)]):
        with contextlib.suppress(docker.errors.APIError):
            net.remove()
