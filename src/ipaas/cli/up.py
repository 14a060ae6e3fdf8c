"""`ipaas up` and `ipaas worker build`: processes of the platform."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import typer

from ipaas.config import Settings

if TYPE_CHECKING:
    from ipaas.platform import Stores


def run_up(settings: Settings, *, bootstrap: bool = True) -> None:
    import uvicorn

    from ipaas.api.app import create_app
    from ipaas.platform import admin_process, api_process

    migrate_in_child(settings.effective_database_url)
    if bootstrap:
        _bootstrap_images(settings)
    asyncio.run(_first_admin(admin_process(settings)))
    typer.echo(f"ipaas is up: {settings.api_url}  (API docs: {settings.api_url}/docs)")
    uvicorn.run(
        create_app(api_process(settings)),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        ws="none",  # no WebSocket endpoints (logs follow over SSE): not loaded at all
    )


def migrate_in_child(database_url: str) -> None:
    """`ipaas migrate` in a child process: Alembic (~10 MB) never loads into the platform."""
    env = {**os.environ, "IPAAS_DATABASE_URL": database_url}
    cmd = [sys.executable, "-m", "ipaas.cli.main", "migrate"]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        raise typer.Exit(1)


def _bootstrap_images(settings: Settings) -> None:
    from ipaas.builds.images import bootstrap, missing_base_images

    missing = missing_base_images(settings)
    if missing:
        typer.echo(f"building base images: {', '.join(missing)} (once; about a minute each)")
        asyncio.run(bootstrap(settings))


async def _first_admin(stores: Stores) -> None:
    from ipaas.auth.passwords import hash_password

    try:
        if await stores.users.count() == 0:
            password = secrets.token_urlsafe(12)
            await stores.users.create("admin", hash_password(password), "admin")
            typer.echo(f"created the first admin: user 'admin', password '{password}' (shown once)")
    finally:
        await stores.engine.dispose()


def run_build_worker(settings: Settings) -> None:
    from ipaas.platform import builder_process

    async def main() -> None:
        process = builder_process(settings)
        await process.lifecycle.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker_id = process.worker.worker_id
        typer.echo(f"build worker {worker_id} is taking jobs from {settings.queue_url}")
        await stop.wait()
        await process.lifecycle.close()

    asyncio.run(main())
