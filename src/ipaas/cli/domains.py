"""`ipaas apps domains ...`: an app's custom domains, the DNS records that verify them, and
their certificates."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer

from ipaas.cli.client import APPS, Client
from ipaas.cli.ui import OUTPUT_OPTION, Output, console, handles_errors, print_json, table

domains_app = typer.Typer(no_args_is_help=True, help="An app's custom domains.")
APP = typer.Argument(..., help="id or name")
DOMAIN = typer.Argument(..., help="the domain, e.g. shop.example.com")


def _path(client: Client, app: str, domain: str | None = None) -> str:
    path = f"{APPS}/{client.resolve_app(app)['id']}/domains"
    return f"{path}/{quote(domain, safe='')}" if domain else path


def _certificate(d: dict[str, Any]) -> str:
    cert = d["certificate"]
    if cert["state"] == "issued":
        return f"issued by {cert['issuer']}, until {str(cert['not_after'])[:10]}"
    if cert["error"]:
        return f"{cert['state']}: {cert['error']}"
    return str(cert["state"])


def _out(rows: list[dict[str, Any]], output: Output, one: bool = False) -> None:
    if output == Output.json:
        print_json(rows[0] if one else rows)
    else:
        _show(rows)


def _show(rows: list[dict[str, Any]]) -> None:
    table(
        ["DOMAIN", "VERIFIED", "CERTIFICATE", "URL"],
        [
            (
                d["domain"] + (f" → {d['redirect_to']}" if d["redirect_to"] else ""),
                d["verified_by"] if d["verified"] else "no",
                _certificate(d),
                d["url"],
            )
            for d in rows
        ],
    )
    _missing(rows)


def _missing(rows: list[dict[str, Any]]) -> None:
    """What DNS still lacks, as records to copy into the zone (any one per domain)."""
    waiting = [d for d in rows if not d["verified"]]
    if not waiting:
        return
    console().print("\nNot served until verified. Set one of these records per domain, then")
    console().print("run `ipaas apps domains verify APP DOMAIN`:")
    table(
        ["DOMAIN", "TYPE", "NAME", "VALUE"],
        [(d["domain"], r["type"], r["name"], r["value"]) for d in waiting for r in d["missing"]],
    )


@domains_app.command("add")
@handles_errors
def add(
    app: str = APP,
    domain: str = DOMAIN,
    redirect_www: bool = typer.Option(
        False, "--redirect-www", help="also answer on the www/apex partner, redirecting here"
    ),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Add a domain to the app; it is served once its DNS verifies it."""
    with Client.from_login() as client:
        rows = client.post(_path(client, app), {"domain": domain, "redirect_www": redirect_www})
    _out(rows, output)


@domains_app.command("list")
@handles_errors
def list_domains(app: str = APP, output: Output = OUTPUT_OPTION) -> None:
    """The app's domains, their verification and certificates."""
    with Client.from_login() as client:
        rows = client.get(_path(client, app))
    _out(rows, output)


@domains_app.command("verify")
@handles_errors
def verify(app: str = APP, domain: str = DOMAIN, output: Output = OUTPUT_OPTION) -> None:
    """Check the domain's DNS again (after setting the record)."""
    with Client.from_login() as client:
        row = client.post(f"{_path(client, app, domain)}/verify")
    _out([row], output, one=True)


@domains_app.command("remove")
@handles_errors
def remove(app: str = APP, domain: str = DOMAIN) -> None:
    """Remove the domain (and its www/apex partner): no longer served, certificate dropped."""
    with Client.from_login() as client:
        client.delete(_path(client, app, domain))
    console().print(f"removed {domain}")
