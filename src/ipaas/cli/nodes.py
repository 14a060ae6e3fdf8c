"""`ipaas nodes ...`: the Swarm's machines, for admins (docs/swarm.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer

from ipaas.cli.client import Client
from ipaas.cli.ui import OUTPUT_OPTION, Output, handles_errors, print_json, table

nodes_app = typer.Typer(no_args_is_help=True, help="The Swarm's nodes (admins only).")
NODE = typer.Argument(..., help="node id or host name")


def _show(rows: list[dict[str, Any]], output: Output) -> None:
    if output == Output.json:
        print_json(rows)
        return
    table(
        ["ID", "HOST", "ROLE", "STATE", "AVAILABILITY", "ADDRESS", "TASKS"],
        [
            (
                n["id"][:12],
                n["hostname"],
                n["role"] + (" (leader)" if n["leader"] else ""),
                n["state"],
                n["availability"],
                n["address"],
                n["tasks"],
            )
            for n in rows
        ],
    )


@nodes_app.command("list")
@handles_errors
def list_nodes(output: Output = OUTPUT_OPTION) -> None:
    """Every node: its role, whether it is up, whether it takes tasks, how many run there."""
    with Client.from_login() as client:
        _show(client.get("/api/v1/nodes"), output)


def _set(node: str, action: str, output: Output) -> None:
    with Client.from_login() as client:
        _show([client.post(f"/api/v1/nodes/{quote(node, safe='')}/{action}")], output)


@nodes_app.command("drain")
@handles_errors
def drain(node: str = NODE, output: Output = OUTPUT_OPTION) -> None:
    """The node takes no more tasks; its tasks move to the other nodes, routes leave it."""
    _set(node, "drain", output)


@nodes_app.command("activate")
@handles_errors
def activate(node: str = NODE, output: Output = OUTPUT_OPTION) -> None:
    """The node takes tasks again."""
    _set(node, "activate", output)
