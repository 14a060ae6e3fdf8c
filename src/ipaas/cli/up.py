"""`ipaas up` and `ipaas worker build`: processes of the platform."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from ipaas.auth.keys import SecretsMissing
from ipaas.config import Settings
from ipaas.redact import redact_url

if TYPE_CHECKING:
    from ipaas.platform import Stores

T = TypeVar("T")


def run_up(settings: Settings, *, bootstrap: bool = True) -> None:
    from ipaas.platform import admin_process

    migrate_in_child(settings.effective_database_url)
    if bootstrap:
        _bootstrap_images(settings)
    asyncio.run(_first_admin(_or_exit(admin_process, settings)))
    url = settings.api_url
    typer.echo(f"ipaas is up: {url}  (dashboard: {url}/, API docs: {url}/docs)")
    sys.stdout.flush()
    sys.stderr.flush()
    # The same pid goes on as the platform, without the CLI's modules (cli/serve.py); the
    # address given on the command line travels in the environment, like every other setting.
    os.environ["IPAAS_HOST"] = settings.host
    os.environ["IPAAS_PORT"] = str(settings.port)
    os.execv(sys.executable, [sys.executable, "-m", "ipaas.cli.serve"])


def _or_exit(build: Callable[[Settings], T], settings: Settings) -> T:
    """The process's parts, or a clear message and exit status 2 when its secrets are missing."""
    try:
        return build(settings)
    except SecretsMissing as exc:
        typer.echo(f"ipaas cannot start: {exc}", err=True)
        raise typer.Exit(2) from None


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
        process = _or_exit(builder_process, settings)
        await process.lifecycle.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        queue = redact_url(settings.queue_url)
        typer.echo(f"build worker {process.worker.worker_id} is taking jobs from {queue}")
        await stop.wait()
        await process.lifecycle.close()

    asyncio.run(main())
