"""The `ipaas` command. Heavy modules are imported inside the commands that use them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ipaas.cli.account import account_app, users_app
from ipaas.cli.apps import apps_app
from ipaas.cli.db import db_app
from ipaas.cli.images import images_app
from ipaas.cli.nodes import nodes_app
from ipaas.cli.repos import repos_app
from ipaas.cli.session import register_session_commands

if TYPE_CHECKING:
    from ipaas.config import Settings

app = typer.Typer(no_args_is_help=True, help="ipaas: a self-hosted platform-as-a-service.")
admin_app = typer.Typer(no_args_is_help=True, help="Operator commands.")
worker_app = typer.Typer(no_args_is_help=True, help="Run parts of the platform on their own.")
app.add_typer(admin_app, name="admin")
app.add_typer(worker_app, name="worker")

app.add_typer(apps_app, name="apps", help="Your applications.")
app.add_typer(db_app, name="db", help="Your databases.")
app.add_typer(repos_app, name="repos", help="Your GitHub repositories and branches.")
app.add_typer(images_app, name="images", help="Base images for builds.")
app.add_typer(nodes_app, name="nodes", help="The Swarm's nodes (admins only).")
app.add_typer(account_app, name="account", help="Your account, notices and webhooks.")
admin_app.add_typer(users_app, name="users", help="Users, over the API (admins only).")
register_session_commands(app)


@app.callback()
def main(
    config: Path | None = typer.Option(
        None, "--config", help="YAML settings file (also IPAAS_CONFIG)", exists=True
    ),
) -> None:
    if config is not None:
        os.environ["IPAAS_CONFIG"] = str(config)


def _settings() -> Settings:
    from ipaas.config import get_settings

    return get_settings()


@app.command()
def migrate() -> None:
    """Bring the state store's schema up to date."""
    from ipaas.store.migrate import upgrade

    upgrade(_settings().effective_database_url)
    typer.echo("the state store is up to date")


@admin_app.command("create-user")
def create_user(
    username: str,
    password: str = typer.Option(None, help="default: generated and printed once"),
    admin: bool = typer.Option(False, "--admin", help="give the admin role"),
) -> None:
    """Create a local account."""
    import asyncio

    from ipaas.store.migrate import upgrade

    settings = _settings()
    upgrade(settings.effective_database_url)
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    asyncio.run(_create_user(settings, username, password, "admin" if admin else "user"))
    typer.echo(f"created {username}" + (f", password: {password}" if generated else ""))


async def _create_user(settings: Settings, username: str, password: str, role: str) -> None:
    from ipaas.auth.passwords import hash_password
    from ipaas.platform import admin_process

    stores = admin_process(settings)
    try:
        await stores.users.create(username, hash_password(password), role)
    finally:
        await stores.engine.dispose()


@app.command()
def up(
    host: str = typer.Option(None, help="API address (default from settings: 127.0.0.1)"),
    port: int = typer.Option(None, help="API port (default from settings: 8000)"),
    bootstrap: bool = typer.Option(True, help="build missing base images first"),
) -> None:
    """Run the whole platform in this process: API, builder, runtime, router, warden."""
    from ipaas.cli.up import run_up

    settings = _settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    run_up(settings, bootstrap=bootstrap)


@worker_app.command("build")
def worker_build(
    queue: str = typer.Option(None, "--queue", help="amqp://user:pass@host:5672/ (RabbitMQ)"),
) -> None:
    """A standalone image builder taking jobs from the queue."""
    from ipaas.cli.up import run_build_worker

    settings = _settings()
    if queue:
        settings.queue_url = queue
    run_build_worker(settings)


if __name__ == "__main__":
    app()
