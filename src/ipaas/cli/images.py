"""`ipaas images`: local base images for hosts without a container registry."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ipaas.builds import images
from ipaas.config import get_settings

images_app = typer.Typer(help="Base images for builds (bootstrap them from the Debian archive).")


@images_app.command("bootstrap")
def bootstrap_cmd(
    force: Annotated[bool, typer.Option("--force", help="Rebuild images that exist.")] = False,
    only: Annotated[
        str | None,
        typer.Option(
            "--only", help="Comma-separated: python,node,go,static,postgres,mariadb,redis."
        ),
    ] = None,
) -> None:
    """Build the missing base and database images with mmdebstrap (about a minute each)."""
    selected = [s.strip() for s in only.split(",") if s.strip()] if only else None
    console = Console()
    try:
        built = asyncio.run(
            images.bootstrap(get_settings(), only=selected, force=force, log=console.print)
        )
    except images.BootstrapError as exc:
        console.print(f"[red]bootstrap failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"built {len(built)} image tag(s)" if built else "all base images present")


@images_app.command("list")
def list_cmd(
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Show the base images builds use and whether each is a local stand-in."""
    rows = images.list_base_images(get_settings())
    if output == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("recipe", "state", "id", "size (MB)", "created")
    table.add_column("tag", no_wrap=True)
    for row in rows:
        table.add_row(
            row["recipe"],
            row["state"],
            row["id"] or "-",
            "-" if row["size_mb"] is None else str(row["size_mb"]),
            row.get("created") or "-",
            row["tag"],
        )
    Console().print(table)
