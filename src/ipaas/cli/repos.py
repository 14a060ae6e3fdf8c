"""`ipaas repos`: your repositories and branches on the platform's GitHub, and the branches of
any git URL."""

from __future__ import annotations

from typing import Any

import typer

from ipaas.cli.apps import api
from ipaas.cli.ui import OUTPUT_OPTION, Output, console, handles_errors, print_json, table

repos_app = typer.Typer(no_args_is_help=True)
GITHUB = "/api/v1/providers/github"


def _limit_note(listing: dict[str, Any]) -> None:
    limit = listing.get("rate_limit")
    if limit:
        console().print(f"[dim]GitHub rate limit: {limit['remaining']}/{limit['limit']} left[/dim]")


@repos_app.command("list")
@handles_errors
def list_repos(
    query: str = typer.Option(None, "-q", "--query", help="only names containing this"),
    page: int = typer.Option(1, "--page", min=1),
    per_page: int = typer.Option(30, "--per-page", min=1, max=100),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Your GitHub repositories, newest push first (sign in with GitHub first)."""
    with api() as client:
        listing = client.get(f"{GITHUB}/repos", q=query, page=page, per_page=per_page)
    if output == Output.json:
        print_json(listing)
        return
    rows = [
        (r["full_name"], "private" if r["private"] else "public", r["default_branch"] or "",
         r["pushed_at"] or "")
        for r in listing["items"]
    ]  # fmt: skip
    table(["REPOSITORY", "VISIBILITY", "DEFAULT BRANCH", "LAST PUSH"], rows)
    if listing["has_next"]:
        console().print(f"more: --page {page + 1}")
    _limit_note(listing)


@repos_app.command("branches")
@handles_errors
def list_branches(
    repo: str = typer.Argument(..., help="owner/repo on GitHub, or a git URL"),
    page: int = typer.Option(1, "--page", min=1),
    output: Output = OUTPUT_OPTION,
) -> None:
    """A repository's branches, the default one first: then by last commit, newest first (on
    GitHub), or by name (a git URL: git tells no dates)."""
    is_url = ":" in repo
    if not is_url and repo.count("/") != 1:
        raise typer.BadParameter("expected owner/repo, or a git URL")
    with api() as client:
        if is_url:
            body = {"repo": repo, "page": page, "per_page": 100}
            listing = client.post("/api/v1/providers/git/branches", body)
        else:
            listing = client.get(f"{GITHUB}/repos/{repo}/branches", page=page, per_page=100)
    if output == Output.json:
        print_json(listing)
        return
    rows = [
        (b["name"] + (" (default)" if b["default"] else ""), b["commit"][:12],
         b.get("committed_at") or "")
        for b in listing["items"]
    ]  # fmt: skip
    table(["BRANCH", "COMMIT", "LAST COMMIT"], rows)
    if listing["has_next"]:
        console().print(f"more: --page {page + 1}")
    _limit_note(listing)
