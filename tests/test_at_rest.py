"""Secrets at rest: private files, no new key beside data encrypted with a lost one, and no
password in what the platform prints or logs."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipaas.api.schemas import EnvVar
from ipaas.apps.envs import encode_envs
from ipaas.auth.keys import SecretsMissing
from ipaas.cli.up import migrate_in_child
from ipaas.config import Settings
from ipaas.platform import admin_process
from ipaas.redact import redact_url
from ipaas.store.models import Application, GitHubAppRecord, new_id
from tests.services import need


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def own_settings(data_dir: Path) -> Settings:
    """The embedded defaults in `data_dir`: SQLite and secrets.json inside it."""
    return Settings(data_dir=data_dir, database_url=None, secrets_file=None)  # type: ignore[call-arg]


def clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPAAS_")}
    return {**env, "IPAAS_DATA_DIR": str(data_dir), "IPAAS_ROUTER__KIND": "transparent"}


async def store_a_secret_env(settings: Settings) -> None:
    platform = admin_process(settings)
    try:
        envs = encode_envs(platform.cipher, [EnvVar(key="DB_PASSWORD", value="hunter2")])
        user = await platform.users.create(f"u{new_id()[:8]}", None)
        await platform.apps.create(
            Application(
                id=new_id(),
                name=f"a{new_id()[:8]}",
                owner_id=user.id,
                repo="https://example.invalid/r.git",
                envs_encrypted=envs,
                state="pending",
            )
        )
    finally:
        await platform.engine.dispose()


@pytest.fixture
def umask_022() -> object:
    old = os.umask(0o022)  # the usual umask: files would be world-readable by default
    yield
    os.umask(old)


async def test_data_dir_database_and_secrets_are_private(tmp_path: Path, umask_022: None) -> None:
    data_dir = tmp_path / "state"
    settings = own_settings(data_dir)
    migrate_in_child(settings.effective_database_url)  # what `ipaas up` does first
    await store_a_secret_env(settings)  # writes through WAL
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "secrets.json") == 0o600
    assert mode(data_dir / "ipaas.db") == 0o600
    for extra in ("ipaas.db-wal", "ipaas.db-shm"):
        if (data_dir / extra).exists():
            assert mode(data_dir / extra) == 0o600


async def test_loose_modes_left_by_a_restore_are_tightened(tmp_path: Path, umask_022: None) -> None:
    data_dir = tmp_path / "restored"
    settings = own_settings(data_dir)
    migrate_in_child(settings.effective_database_url)
    await store_a_secret_env(settings)
    data_dir.chmod(0o755)
    (data_dir / "secrets.json").chmod(0o644)
    (data_dir / "ipaas.db").chmod(0o644)
    await admin_process(settings).engine.dispose()
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "secrets.json") == 0o600
    assert mode(data_dir / "ipaas.db") == 0o600


async def test_a_lost_secrets_file_beside_encrypted_data_stops_the_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    settings = own_settings(data_dir)
    migrate_in_child(settings.effective_database_url)
    await store_a_secret_env(settings)
    (data_dir / "secrets.json").unlink()
    with pytest.raises(SecretsMissing, match="secrets.json is missing"):
        admin_process(settings)
    assert not (data_dir / "secrets.json").exists()  # nothing regenerated


async def test_a_lost_secrets_file_beside_a_github_app_stops_the_start(tmp_path: Path) -> None:
    """The GitHub App made with the manifest flow is encrypted data too (its key, secrets)."""
    data_dir = tmp_path / "state"
    settings = own_settings(data_dir)
    migrate_in_child(settings.effective_database_url)
    stores = admin_process(settings)
    try:
        sealed = stores.cipher.encrypt("-----BEGIN RSA PRIVATE KEY-----")
        await stores.github_apps.save(
            GitHubAppRecord(
                host="https://github.com", app_id="1", slug="s", name="s", owner="o",
                html_url="https://github.com/apps/s", client_id="Iv1.x",
                client_secret_encrypted=sealed, private_key_encrypted=sealed, state_nonce="n",
            )
        )  # fmt: skip
    finally:
        await stores.engine.dispose()
    (data_dir / "secrets.json").unlink()
    with pytest.raises(SecretsMissing, match="secrets.json is missing"):
        admin_process(settings)


@pytest.mark.slow  # starts a process of its own: `make test`, not `make fast`
def test_ipaas_up_refuses_to_start_without_its_key(tmp_path: Path) -> None:
    import asyncio

    data_dir = tmp_path / "state"
    settings = own_settings(data_dir)
    migrate_in_child(settings.effective_database_url)
    asyncio.run(store_a_secret_env(settings))
    (data_dir / "secrets.json").unlink()
    cmd = [sys.executable, "-m", "ipaas.cli.main", "up", "--no-bootstrap", "--port", "1"]
    done = subprocess.run(cmd, env=clean_env(data_dir), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "secrets.json is missing" in done.stderr and "Traceback" not in done.stderr
    assert not (data_dir / "secrets.json").exists()


async def test_an_empty_store_gets_a_new_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    settings = own_settings(data_dir)
    migrate_in_child(settings.effective_database_url)
    await admin_process(settings).engine.dispose()
    assert (data_dir / "secrets.json").exists()


def test_passwords_are_redacted_from_urls_and_settings() -> None:
    assert redact_url("amqp://ipaas:s3cret@mq:5672/vh") == "amqp://ipaas:***@mq:5672/vh"
    assert redact_url("postgresql+asyncpg://u:p%40ss@db/x") == "postgresql+asyncpg://u:***@db/x"
    assert redact_url("amqp://guest@mq/") == "amqp://guest@mq/"
    assert redact_url("db") == "db"
    settings = Settings(  # type: ignore[call-arg]
        queue_url="amqp://ipaas:q-pass-1@mq:5672/",
        database_url="postgresql+asyncpg://ipaas:d-pass-2@db/ipaas",
        smtp={"host": "smtp.invalid", "password": "s-pass-3"},
    )
    shown = repr(settings) + str(settings)
    for secret in ("q-pass-1", "d-pass-2", "s-pass-3"):
        assert secret not in shown
    assert "amqp://ipaas:***@mq:5672/" in shown


@pytest.mark.slow  # starts a process of its own: `make test`, not `make fast`
def test_the_build_worker_does_not_print_the_queue_password(tmp_path: Path) -> None:
    need("rabbitmq")
    data_dir = tmp_path / "worker"
    migrate_in_child(own_settings(data_dir).effective_database_url)
    queue = "amqp://guest:guest@127.0.0.1:5672/"
    cmd = [sys.executable, "-m", "ipaas.cli.main", "worker", "build", "--queue", queue]
    proc = subprocess.Popen(
        cmd, env=clean_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()
        time.sleep(2)  # let it connect, lease and log for a while
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    output = first + rest
    assert "is taking jobs from amqp://guest:***@127.0.0.1:5672/" in first, output
    assert ":guest@" not in output


def test_securing_the_database_file_keeps_the_locks_of_open_connections(tmp_path: Path) -> None:
    """Closing any descriptor of a SQLite file drops the process's locks on it: checking the
    file's mode while this process holds a transaction must not let another writer in (that
    corrupted the test suite's shared database once)."""
    import sqlite3
    import subprocess
    import sys

    from ipaas.store.db import secure_sqlite_file

    path = tmp_path / "ipaas.db"
    url = f"sqlite+aiosqlite:///{path}"
    secure_sqlite_file(url)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    secure_sqlite_file(url)  # what every new engine on this file does
    other_writer = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0);"
        "c.execute('INSERT INTO t VALUES (2)'); c.commit()"
    )
    result = subprocess.run(
        [sys.executable, "-c", other_writer, str(path)], capture_output=True, text=True
    )
    holder.execute("COMMIT")
    holder.close()
    assert result.returncode != 0 and "locked" in result.stderr
