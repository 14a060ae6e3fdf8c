"""`ipaas account ...` (your address, password, notices and webhooks) and `ipaas admin users
...` (admins: list, create or invite, disable, enable, change role), over the HTTP API."""

from __future__ import annotations

import os
from typing import Any

import typer

from ipaas.cli.client import API, Client
from ipaas.cli.ui import OUTPUT_OPTION, Output, console, fail, handles_errors, print_json, table

account_app = typer.Typer(no_args_is_help=True, help="Your account, notices and webhooks.")
webhooks_app = typer.Typer(no_args_is_help=True, help="Webhooks that receive your notices.")
users_app = typer.Typer(no_args_is_help=True, help="Users (admins only).")
account_app.add_typer(webhooks_app, name="webhooks")
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
    with Client.from_login() as client:
        hooks = client.get(f"{ME}/webhooks")
    if output == Output.json:
        print_json(hooks)
        return
    table(
        ["id", "mode", "kinds", "url"],
        [(h["id"], h["mode"], ",".join(h["kinds"]) or "all", h["url"]) for h in hooks],
    )


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
