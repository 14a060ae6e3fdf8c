"""`ipaas account ...` (your address, password, notices and webhooks) and `ipaas admin users
...` (admins: list, create or invite, disable, enable, change role), over the HTTP API."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import typer

from ipaas.cli.client import API, Client
from ipaas.cli.ui import OUTPUT_OPTION, Output, console, fail, handles_errors, print_json, table

account_app = typer.Typer(no_args_is_help=True, help="Your account, notices and webhooks.")
webhooks_app = typer.Typer(no_args_is_help=True, help="Webhooks that receive your notices.")
users_app = typer.Typer(no_args_is_help=True, help="Users (admins only).")
tokens_app = typer.Typer(no_args_is_help=True, help="Your API tokens (for scripts and CI).")
account_app.add_typer(webhooks_app, name="webhooks")
account_app.add_typer(tokens_app, name="tokens")
ME = f"{API}/users/me"
USERS = f"{API}/admin/users"
URL_OPTION = typer.Option(None, "--url", help="the ipaas server (default: the saved login's)")


def _put(client: Client, path: str, body: Any) -> Any:
    return client.request("PUT", path, json=body).json()


def _show(data: Any, output: Output, line: str) -> None:
    if output == Output.json:
        print_json(data)
    else:
        console().print(line)


def _listing(
    path: str, output: Output, columns: list[str], row: Callable[[dict[str, Any]], tuple[Any, ...]]
) -> None:
    """A list from the API: as JSON, or a table of one row per item."""
    with Client.from_login() as client:
        items = client.get(path)
    if output == Output.json:
        print_json(items)
        return
    table(columns, [row(item) for item in items])


def _server(url: str | None) -> str:
    """The server for commands without a login (reset, verify)."""
    from ipaas.cli.client import load_config

    saved = load_config()
    found = url or os.environ.get("IPAAS_URL") or (saved.url if saved else None)
    if not found:
        raise fail("which server? give --url (or set IPAAS_URL, or log in)", 2)
    return found


# --- the account ----------------------------------------------------------------------------
@account_app.command("show")
@handles_errors
def show(output: Output = OUTPUT_OPTION) -> None:
    """Your account: name, role, e-mail address and whether it is confirmed."""
    with Client.from_login() as client:
        me = client.get(f"{ME}/account")
    state = "confirmed" if me["email_verified"] else "not confirmed"
    email = f"{me['email']} ({state})" if me["email"] else "no e-mail address"
    _show(me, output, f"[bold]{me['username']}[/bold] ({me['role']}), {email}")


@account_app.command("email")
@handles_errors
def set_email(address: str) -> None:
    """Set your e-mail address; a confirmation link is mailed to it."""
    with Client.from_login() as client:
        _put(client, f"{ME}/email", {"email": address})
    console().print(f"a confirmation link was sent to {address}")


@account_app.command("verify")
@handles_errors
def verify(token: str, url: str = URL_OPTION) -> None:
    """Confirm an address with the token from the mailed link."""
    with Client(_server(url)) as client:
        me = client.post(f"{API}/auth/verify-email", {"token": token})
    console().print(f"{me['email']} is confirmed")


@account_app.command("password")
@handles_errors
def change_password(
    current: str = typer.Option(None, "--current", help="prompted (hidden) when missing"),
    new: str = typer.Option(None, "--new", help="prompted (hidden, twice) when missing"),
) -> None:
    """Change your password; every other session and API token ends (this login stays)."""
    current = current or typer.prompt("current password", hide_input=True)
    new = new or typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    with Client.from_login() as client:
        client.post(f"{ME}/password", {"current_password": current, "new_password": new})
    console().print("password changed; your other sessions and tokens have ended")


@account_app.command("reset-password")
@handles_errors
def reset_password(
    email: str = typer.Argument(None, help="ask for a link to be mailed to this address"),
    token: str = typer.Option(None, "--token", help="set the password with a mailed token"),
    new: str = typer.Option(None, "--new", help="prompted (hidden, twice) when missing"),
    url: str = URL_OPTION,
) -> None:
    """Forgot your password? Ask for a link by e-mail, then set a new one with its token."""
    with Client(_server(url)) as client:
        if token is None:
            if not email:
                raise fail("give your e-mail address, or --token from the mail", 2)
            answer = client.post(f"{API}/auth/password-reset", {"email": email})
            console().print(answer["detail"])
            return
        new = new or typer.prompt("new password", hide_input=True, confirmation_prompt=True)
        client.post(f"{API}/auth/password-reset/confirm", {"token": token, "new_password": new})
    console().print("password set; log in with it")


@account_app.command("notices")
@handles_errors
def notices(
    on: list[str] = typer.Option([], "--on", help="e-mail this kind of notice (repeatable)"),
    off: list[str] = typer.Option([], "--off", help="stop e-mailing this kind (repeatable)"),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Which notices you get by e-mail (change them with --on/--off), and the latest sent."""
    with Client.from_login() as client:
        if on or off:
            choice = {kind: True for kind in on} | {kind: False for kind in off}
            _put(client, f"{ME}/notice-preferences", {"email": choice})
        prefs = client.get(f"{ME}/notice-preferences")["email"]
        sent = client.get(f"{ME}/notices", limit=10)
    if output == Output.json:
        print_json({"email": prefs, "recent": sent})
        return
    table(["notice", "e-mail"], [(kind, "on" if v else "off") for kind, v in prefs.items()])
    rows = [
        (m["created_at"][:19], m["kind"], m["channel"], m["status"], m["last_reply"]) for m in sent
    ]
    if rows:
        console().print()
        table(["when", "kind", "channel", "status", "last reply"], rows)


@account_app.command("test-mail")
@handles_errors
def test_mail() -> None:
    """Send a test notice to your confirmed address now; shows the SMTP server's reply."""
    with Client.from_login() as client:
        _print_reply(client.post(f"{ME}/notices/test", {"channel": "email"}))


def _print_reply(reply: dict[str, Any]) -> None:
    if reply["ok"]:
        console().print(f"[green]delivered[/green]: {reply['reply']}")
        return
    raise fail(
        f"not delivered ({'temporary' if reply['temporary'] else 'refused'}): {reply['reply']}"
    )


# --- webhooks -------------------------------------------------------------------------------
@webhooks_app.command("list")
@handles_errors
def list_webhooks(output: Output = OUTPUT_OPTION) -> None:
    _listing(
        f"{ME}/webhooks", output, ["id", "mode", "kinds", "url"],
        lambda h: (h["id"], h["mode"], ",".join(h["kinds"]) or "all", h["url"]),
    )  # fmt: skip


@webhooks_app.command("add")
@handles_errors
def add_webhook(
    url: str,
    mode: str = typer.Option("json", "--mode", help="json, slack or discord"),
    kind: list[str] = typer.Option([], "--kind", help="only these kinds (repeatable)"),
) -> None:
    """Add a webhook; its signing secret is shown once."""
    with Client.from_login() as client:
        hook = client.post(f"{ME}/webhooks", {"url": url, "mode": mode, "kinds": kind})
    console().print(f"webhook {hook['id']} added")
    console().print(f"signing secret (shown once): [bold]{hook['secret']}[/bold]")


@webhooks_app.command("remove")
@handles_errors
def remove_webhook(webhook_id: str) -> None:
    with Client.from_login() as client:
        client.delete(f"{ME}/webhooks/{webhook_id}")
    console().print(f"webhook {webhook_id} removed")


@webhooks_app.command("test")
@handles_errors
def test_webhook(webhook_id: str) -> None:
    """POST a signed test event now; shows the receiver's HTTP reply."""
    with Client.from_login() as client:
        _print_reply(client.post(f"{ME}/webhooks/{webhook_id}/test"))


# --- API tokens -----------------------------------------------------------------------------
@tokens_app.command("list")
@handles_errors
def list_tokens(output: Output = OUTPUT_OPTION) -> None:
    """Your API tokens (their secrets are never shown again, only how they start)."""
    _listing(
        f"{ME}/tokens", output, ["name", "token", "created", "expires", "last used", "id"],
        lambda t: (t["name"], f"{t['prefix']}…", t["created_at"][:19],
                   (t["expires_at"] or "never")[:19], (t["last_used_at"] or "never")[:19], t["id"]),
    )  # fmt: skip


@tokens_app.command("create")
@handles_errors
def create_token(
    name: str,
    days: int = typer.Option(None, "--days", min=1, max=3650, help="expires after (default never)"),
    output: Output = OUTPUT_OPTION,
) -> None:
    """A new API token: shown once, here; use it as `Authorization: Bearer <token>`."""
    with Client.from_login() as client:
        created = client.post(f"{ME}/tokens", {"name": name, "expires_in_days": days})
    _show(created, output, created["token"])


@tokens_app.command("delete")
@handles_errors
def delete_token(token_id: str) -> None:
    """Revoke a token (by its id, from `tokens list`): it stops working at once."""
    with Client.from_login() as client:
        client.delete(f"{ME}/tokens/{token_id}")
    console().print("token revoked")


# --- admins ---------------------------------------------------------------------------------
def _user_id(client: Client, ref: str) -> str:
    """A user by id or username."""
    for user in client.get(USERS, limit=500)["items"]:
        if ref in (user["id"], user["username"]):
            return str(user["id"])
    raise fail(f"no user {ref!r}")


@users_app.command("list")
@handles_errors
def list_users(output: Output = OUTPUT_OPTION) -> None:
    with Client.from_login() as client:
        page = client.get(USERS, limit=500)
    if output == Output.json:
        print_json(page)
        return
    rows = [
        (
            u["username"],
            u["role"],
            "disabled" if u["disabled"] else "active",
            u["email"] or "",
            u["id"],
        )
        for u in page["items"]
    ]
    table(["user", "role", "state", "e-mail", "id"], rows)


@users_app.command("create")
@handles_errors
def create_user(
    username: str,
    email: str = typer.Option(None, "--email", help="without --password: invite by e-mail"),
    password: str = typer.Option(None, "--password", help="set a password instead of inviting"),
    admin: bool = typer.Option(False, "--admin", help="give the admin role"),
) -> None:
    """Create a user with a password, or invite them by e-mail to set their own."""
    body = {
        "username": username,
        "email": email,
        "password": password,
        "role": "admin" if admin else "user",
    }
    with Client.from_login() as client:
        user = client.post(USERS, body)
    how = "invited by e-mail" if password is None else "created"
    console().print(f"{user['username']} {how}")


def _change(ref: str, body: dict[str, Any], done: str) -> None:
    with Client.from_login() as client:
        user = client.patch(f"{USERS}/{_user_id(client, ref)}", body)
    console().print(f"{user['username']} {done}")


@users_app.command("disable")
@handles_errors
def disable(user: str) -> None:
    """Disable a user: their sessions and tokens stop working at once."""
    _change(user, {"disabled": True}, "disabled")


@users_app.command("enable")
@handles_errors
def enable(user: str) -> None:
    _change(user, {"disabled": False}, "enabled")


@users_app.command("role")
@handles_errors
def role(user: str, new_role: str = typer.Argument(..., metavar="user|admin")) -> None:
    """Change a user's role (they sign in again to use it)."""
    _change(user, {"role": new_role}, f"is now {new_role}")


@users_app.command("delete")
@handles_errors
def delete_user(
    user: str,
    confirm: str = typer.Option(
        None, "--confirm", help="the user's name again (otherwise you are asked to type it)"
    ),
) -> None:
    """Delete a user with everything they own: apps, their images and volumes, databases."""
    with Client.from_login() as client:
        user_id = _user_id(client, user)
        typed = confirm if confirm is not None else typer.prompt(f"type {user!r} to delete them")
        removed = client.request("DELETE", f"{USERS}/{user_id}", params={"confirm": typed}).json()
    what = f"{removed['apps']} app(s) and {removed['databases']} database(s)"
    console().print(f"{user} deleted, with {what}")


@users_app.command("quota")
@handles_errors
def set_quota(
    user: str,
    apps: int = typer.Option(None, "--apps", min=0),
    memory_mb: int = typer.Option(None, "--memory-mb", min=0),
    cpus: float = typer.Option(None, "--cpus", min=0),
    volumes: int = typer.Option(None, "--volumes", min=0),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Show a user's quota, or set limits of their own (an unset kind: the default)."""
    body = {"apps": apps, "memory_mb": memory_mb, "cpus": cpus, "volumes": volumes}
    with Client.from_login() as client:
        path = f"{API}/users/{_user_id(client, user)}/quota"
        if any(value is not None for value in body.values()):
            report = _put(client, path, body)
        else:
            report = client.get(path)
    if output == Output.json:
        print_json(report)
        return
    rows = [
        (kind, str(report["limits"][kind]), str(report["used"][kind]),
         "own" if report["overrides"].get(kind) is not None else "default")
        for kind in ("apps", "memory_mb", "cpus", "volumes")
    ]  # fmt: skip
    table(["kind", "limit", "used", "limit from"], rows)
