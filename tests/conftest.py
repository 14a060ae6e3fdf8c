"""Shared fixtures. IPAAS_TEST_DB=sqlite (default) or postgres picks the state store; every run
gets a fresh database (a new SQLite file, or a new PostgreSQL database dropped afterwards)."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ipaas.api.app import create_app
from ipaas.auth.passwords import hash_password
from ipaas.auth.tokens import hash_token, new_refresh_token
from ipaas.config import Settings
from ipaas.platform import ControlPlane
from ipaas.runtime.firewall import HostFirewall
from ipaas.store.migrate import upgrade
from ipaas.store.models import new_id
from tests.fakes import fake_plane
from tests.host_listener import HostListener
from tests.hygiene import EngineThings, engine_things
from tests.services import need

# The multi-node Swarm and what runs on it: one per session, whichever tests ask for it.
pytest_plugins = ["tests.swarm.fixtures"]

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
# Every platform of a run (and every process it starts) shares one state store, so they share
# one key too: a second key would make what the first encrypted unreadable, and ipaas refuses to
# start beside encrypted data it cannot read.
os.environ.setdefault(
    "IPAAS_SECRETS_FILE", str(Path(tempfile.mkdtemp(prefix="ipaas-test-keys-")) / "secrets.json")
)
BACKEND = os.environ.get("IPAAS_TEST_DB", "sqlite")


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fresh_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if BACKEND == "postgres":
        need("postgres")
        name = f"ipaas_t_{uuid.uuid4().hex[:10]}"
        await _pg(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        finally:
            await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'ipaas.db'}"


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The run's store, shared by the tests that need no platform of their own."""
    async for url in _fresh_database(tmp_path_factory):
        yield url


@pytest.fixture(scope="module")
async def module_database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A store of the module's own, for a whole platform with a warden: the warden acts on
    every app in its store, so it must not see other modules' apps (running on fakes)."""
    async for url in _fresh_database(tmp_path_factory):
        yield url


@pytest.fixture(scope="session", autouse=True)
def no_dns_queries() -> Iterator[None]:
    """The platform resolves users' repository hosts; in tests no query may leave the machine,
    so names are answered here: IP literals and RFC 6761 names as the platform answers them,
    every other name as unknown. Tests that need a name give their own resolver."""
    from ipaas.builds import repo_guard

    async def resolve(host: str, port: int) -> list[str]:
        return repo_guard.known_answer(host) or []

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(repo_guard, "system_resolve", resolve)
        yield


def make_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    settings = Settings(data_dir=data_dir, database_url=database_url, **overrides)  # type: ignore[arg-type]
    return settings


@pytest.fixture(scope="session")
async def core(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControlPlane]:
    """The real store and queue, in-memory runtime and router, no builder or warden running:
    apps stay where the API (or the test) puts them."""
    async for plane in core_plane(database_url, tmp_path_factory):
        yield plane


async def core_plane(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControlPlane]:
    """`core` on the store at `database_url` (migrated here)."""
    upgrade(database_url)
    settings = make_settings(
        tmp_path_factory.mktemp("data"), database_url, router={"kind": "transparent"}
    )
    plane = fake_plane(settings)
    yield plane
    await plane.lifecycle.close()


@pytest.fixture(scope="session")
async def client(core: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(core, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ipaas.test") as c:
        yield c


UserMaker = Callable[..., Awaitable[dict[str, str]]]


@functools.cache
def hashed(password: str) -> str:
    """One Argon2 hash per password for the whole run (each costs ~50 ms; salts differ per
    call, and nothing here depends on two users' hashes differing)."""
    return hash_password(password)


async def signed_in_user(
    plane: ControlPlane, role: str = "user", password: str = "correct horse battery"
) -> dict[str, str]:
    """A new user with a signed-in session on `plane`, as a login would leave it (the login
    itself is tested in test_auth/test_login; here it would cost an Argon2 check per user);
    returns {"id", "username", "password", "Authorization", "refresh_token"}."""
    stores = plane.stores
    username = f"u{uuid.uuid4().hex[:10]}"
    user = await stores.users.create(username, hashed(password), role)
    refresh = new_refresh_token()
    ttl_s = plane.settings.auth.refresh_token_ttl_s
    await stores.users.add_refresh_token(user.id, new_id(), hash_token(refresh), ttl_s)
    return {
        "id": user.id,
        "username": username,
        "password": password,
        "Authorization": f"Bearer {stores.access_tokens.issue(user.id, role)}",
        "refresh_token": refresh,
    }


@pytest.fixture(scope="session")
def make_user(core: ControlPlane) -> UserMaker:
    """`signed_in_user` on the session's plane."""

    async def make(role: str = "user", password: str = "correct horse battery") -> dict[str, str]:
        return await signed_in_user(core, role, password)

    return make


def auth(user: dict[str, str]) -> dict[str, str]:
    return {"Authorization": user["Authorization"]}


@pytest.fixture(scope="session", autouse=True)
def _host_firewall_as_found() -> Iterator[None]:
    """The runtime and the builder install the host firewall; a run that installed it removes
    it again (one that found it, say beside a running `ipaas up`, leaves it)."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        yield
        return
    firewall = HostFirewall()
    found = firewall.installed()
    yield
    if not found:
        firewall.remove()


@pytest.fixture
def host_listener() -> Iterator[HostListener]:
    """A service of the host on 0.0.0.0 (like the API or PostgreSQL) that containers try."""
    listener = HostListener()
    listener.check()
    yield listener
    listener.close()


# `make test` has the engine to itself: there, whatever a run adds to it must be gone at the end.
STRICT_HYGIENE = os.environ.get("IPAAS_TEST_HYGIENE") == "strict"
ENGINE_BEFORE: list[EngineThings | None] = []


# Tests whose outcome does not depend on the store: the builder, the runtime and the router
# adapters, and end-to-end tests of the engine's side. `make test` runs them on SQLite only;
# what the store decides (leases, transitions, recovery, chaos, queues, the API) runs on both.
STORE_INDEPENDENT = (
    "tests/builds/",
    "tests/runtime/",
    "tests/router/",
    "tests/e2e/test_databases.py",
    "tests/e2e/test_logs.py",
    "tests/e2e/test_cli_e2e.py",
    "tests/e2e/test_github.py",
    "tests/e2e/test_private_apps.py",
    "tests/e2e/test_deploy.py",
    "tests/e2e/test_dashboard.py",
    "tests/e2e/test_domains.py",
    "tests/swarm/",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("IPAAS_TEST_STORE_ONLY") != "1":
        return
    root = Path(str(config.rootpath))
    keep, drop = [], []
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        # Whatever runs on the test Swarm is the runtime's and the engine's (the runtime
        # contract's Swarm half too): one Swarm per `make test`, not one per store.
        independent = where.startswith(STORE_INDEPENDENT) or item.get_closest_marker("swarm")
        (drop if independent else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionstart(session: pytest.Session) -> None:
    if STRICT_HYGIENE:
        ENGINE_BEFORE.append(engine_things())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The run fails if it left processes or test containers behind (they are removed too, so
    the next run starts clean); under `make test` also images, volumes and networks."""
    from tests.hygiene import containers_left, engine_leftovers, reap

    if hasattr(session.config, "workerinput"):
        return
    basetemp = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    leftovers = reap(basetemp) + containers_left()
    if ENGINE_BEFORE:
        leftovers += engine_leftovers(ENGINE_BEFORE[0])
    if leftovers:
        print("\nthis run left behind:\n  " + "\n  ".join(leftovers))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
