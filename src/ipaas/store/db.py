"""Engine and sessions. SQLite gets WAL and a busy timeout so the API and workers share it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other stores and in-memory databases)."""
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            return Path(path)
    return None


def secure_sqlite_file(url: str) -> None:
    """Create the SQLite file mode 0600 (its folder 0700) before SQLite does it with the umask;
    SQLite gives its -wal and -shm files the database file's mode."""
    path = sqlite_path(url)
    if path is None:
        return
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    if not path.exists():
        # Only a file nobody uses yet is opened here: closing any descriptor of a SQLite file
        # drops every POSIX lock this process holds on it, and other connections of this
        # process (or their writers elsewhere) would then corrupt the database.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def make_engine(url: str) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    secure_sqlite_file(url)
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
        # Sessions end their own transactions; a second rollback on check-in costs a thread hop.
        kwargs["pool_reset_on_return"] = None
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def holds_encrypted_data(url: str) -> bool:
    """Does the store hold values encrypted with the platform key (env values, provider
    tokens)? Asked once, when secrets.json is missing; runs on a thread of its own so it works
    with or without a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _probe_encrypted(url)).result()


async def _probe_encrypted(url: str) -> bool:
    from ipaas.store.models import Application, Database, GitHubAppRecord, Identity

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            probes = []
            if "applications" in tables:
                probes.append(select(Application.id).where(Application.envs_encrypted != ""))
            if "databases" in tables:
                probes.append(select(Database.id))
            if "identities" in tables:
                probes.append(select(Identity.id).where(Identity.token_encrypted.is_not(None)))
            if "github_apps" in tables:
                probes.append(select(GitHubAppRecord.host))
            for stmt in probes:
                if (await conn.execute(stmt.limit(1))).first() is not None:
                    return True
            return False
    finally:
        await engine.dispose()
