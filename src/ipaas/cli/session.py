"""`ipaas login`, `logout`, `whoami`: a personal API token saved for the other commands.

The password is used once, to get a short-lived access token that creates a personal API token
named `cli@<hostname>`; only that token is saved. Deleting it server-side is `logout`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING

import typer

from ipaas.cli.ui import OUTPUT_OPTION, Output, console, handles_errors, print_json

if TYPE_CHECKING:
    from ipaas.cli.client import CliConfig, Client

DEFAULT_URL = "http://127.0.0.1:8000"


def register_session_commands(app: typer.Typer) -> None:
    """Add login, logout and whoami to the root `ipaas` command."""
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)


@handles_errors
def login(
    url: str = typer.Option(None, "--url", help="the ipaas server (also IPAAS_URL)"),
    username: str = typer.Option(None, "--username", "-u", help="prompted when missing"),
    password: str = typer.Option(None, "--password", help="prompted (hidden) when missing"),
) -> None:
    """Log in and save a personal API token for the other commands."""
    from ipaas.cli.client import API, CliConfig, Client, config_path, save_config

    previous = _previous_login()
    url = url or os.environ.get("IPAAS_URL") or (previous.url if previous else "")
    url = url or typer.prompt("ipaas server", default=DEFAULT_URL)
    username = username or typer.prompt("username")
    password = password or typer.prompt("password", hide_input=True)
    with Client(url) as anonymous:
        pair = anonymous.post(f"{API}/auth/login", {"username": username, "password": password})
    with Client(url, pair["access_token"]) as client:
        created = client.post(f"{API}/users/me/tokens", {"name": f"cli@{socket.gethostname()}"})
        # The CLI never uses the refresh token: revoke it now rather than leave it valid.
        client.request("POST", f"{API}/auth/logout", json={"refresh_token": pair["refresh_token"]})
        if previous and previous.url == client.url and previous.token_id:
            _forget_token(client, previous.token_id)  # logging in again replaces the old token
    save_config(CliConfig(client.url, created["token"], username, created["id"]))
    console().print(f"logged in to {client.url} as [bold]{username}[/bold]")
    console().print(f"[dim]token saved in {config_path()}[/dim]")


def _previous_login() -> CliConfig | None:
    """The saved login; None when there is none or it is unreadable (login overwrites it)."""
    from ipaas.cli.client import NotLoggedIn, load_config

    try:
        return load_config()
    except NotLoggedIn:
        return None


def _forget_token(client: Client, token_id: str) -> bool:
    """Delete a personal token; a token already gone (or a login already invalid) is fine."""
    from ipaas.cli.client import API, ApiError

    try:
        client.delete(f"{API}/users/me/tokens/{token_id}")
    except ApiError as exc:
        if exc.status not in (401, 404):
            raise
        return False
    return True


@handles_errors
def logout() -> None:
    """Delete the saved token on the server and the saved login here."""
    from ipaas.cli.client import Client, delete_config

    saved = _previous_login()
    if saved is None:
        console().print("not logged in")
        return
    with Client(saved.url, saved.token) as client:
        token_id = saved.token_id or _token_id_by_prefix(client, saved.token)
        with contextlib.suppress(Exception):
            # A server that is gone for good must not keep the user from logging out here.
            if token_id:
                _forget_token(client, token_id)
    delete_config()
    console().print(f"logged out of {saved.url}")


def _token_id_by_prefix(client: Client, token: str) -> str:
    """For logins saved without the token id: the server keeps each token's first 14 chars."""
    from ipaas.cli.client import API

    for row in client.get(f"{API}/users/me/tokens"):
        if token.startswith(row["prefix"]):
            return str(row["id"])
    return ""


@handles_errors
def whoami(output: Output = OUTPUT_OPTION) -> None:
    """Show who the saved login (or IPAAS_TOKEN) is."""
    from ipaas.cli.client import API, Client, current_login

    login = current_login()
    with Client(login.url, login.token) as client:
        me = client.get(f"{API}/users/me")
    if output == Output.json:
        print_json({**me, "url": login.url})
        return
    console().print(f"[bold]{me['username']}[/bold] ({me['role']}) on {login.url}")
