"""`ipaas apps ...`: create, inspect, operate and delete applications over the HTTP API.

Apps are named by id or by name. Commands that change what runs (create, rollout, rollback,
restart, start) wait until the app runs or fails unless `--no-wait`; the exit status is 0 when
it runs, 1 when it failed, 2 for bad usage.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum
from typing import Any

import typer

from ipaas.cli.client import APPS, ApiError, Client
from ipaas.cli.domains import domains_app
from ipaas.cli.ui import (
    OUTPUT_OPTION,
    Markup,
    Output,
    console,
    handles_errors,
    print_json,
    short_time,
    state_text,
    table,
)

apps_app = typer.Typer(no_args_is_help=True, help="Create and operate applications.")
env_app = typer.Typer(no_args_is_help=True, help="An app's environment variables.")
builds_app = typer.Typer(no_args_is_help=True, help="An app's builds and their logs.")
apps_app.add_typer(env_app, name="env")
apps_app.add_typer(builds_app, name="builds")
apps_app.add_typer(domains_app, name="domains")

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
DEFAULT_TIMEOUT_S = 1800.0  # a first build of a big app can take a while
NO_WAIT = typer.Option(False, "--no-wait", help="return at once instead of following progress")
TIMEOUT = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", help="give up waiting after SECONDS")


class Builder(StrEnum):
    auto = "auto"
    dockerfile = "dockerfile"
    plan = "plan"


class Language(StrEnum):
    python = "python"
    node = "node"
    go = "go"
    static = "static"


@contextmanager
def api() -> Iterator[Client]:
    with Client.from_login() as client:
        yield client


def app_path(app: dict[str, Any], suffix: str = "") -> str:
    return f"{APPS}/{app['id']}{suffix}"


def finish(client: Client, app_id: str, no_wait: bool, timeout: float, state: str) -> None:
    """After an accepted operation: report at once, or follow it to its end."""
    if no_wait:
        console().print(f"{app_id} {state_text(state)}")
        return
    from ipaas.cli.progress import wait_for_app

    raise typer.Exit(wait_for_app(client, app_id, timeout, state))


# --- parsing of K=V and friends (bad input exits 2, before anything is sent) ---------------


def parse_env(pair: str, param: str) -> tuple[str, str]:
    key, sep, value = pair.partition("=")
    if not sep or not ENV_KEY.match(key):
        raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=param)
    return key, value


def parse_volume(spec: str) -> dict[str, str]:
    name, sep, path = spec.partition(":")
    if not sep or not name or not path.startswith("/"):
        raise typer.BadParameter(f"{spec!r} is not NAME:/path", param_hint="--volume")
    return {"name": name, "mount_path": path}


def check_health(value: str | None) -> str | None:
    if value is not None and value != "tcp" and not value.startswith("/"):
        raise typer.BadParameter(
            "use tcp or an HTTP path like /health", param_hint="--health-check"
        )
    return value


def env_list(plain: list[str], secret: list[str]) -> list[dict[str, Any]]:
    envs: dict[str, dict[str, Any]] = {}
    for pair in plain:
        key, value = parse_env(pair, "--env")
        envs[key] = {"key": key, "value": value}  # secret decided by the server from the key
    for pair in secret:
        key, value = parse_env(pair, "--secret-env")
        envs[key] = {"key": key, "value": value, "secret": True}
    return list(envs.values())


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- create ---------------------------------------------------------------------------------


@apps_app.command()
@handles_errors
def create(
    name: str = typer.Argument(..., help="the app's name, also its host name"),
    repo: str = typer.Option(None, "--repo", help="git URL (or owner/repo of a provider)"),
    github: str = typer.Option(None, "--github", help="owner/repo on the platform's GitHub"),
    previews: bool = typer.Option(False, "--previews", help="a preview app per pull request"),
    branch: str = typer.Option(None, "--branch", help="default: the repo's default branch"),
    commit: str = typer.Option(None, "--commit", help="a commit to pin (default: branch head)"),
    port: int = typer.Option(None, "--port", help="the port the app listens on (default $PORT)"),
    env: list[str] = typer.Option([], "--env", "-e", help="KEY=VALUE, repeatable"),
    secret_env: list[str] = typer.Option([], "--secret-env", help="KEY=VALUE kept secret"),
    builder: Builder = typer.Option(Builder.auto, "--builder"),
    dockerfile: str = typer.Option(None, "--dockerfile", help="path of the Dockerfile"),
    language: Language = typer.Option(None, "--language", help="skip language detection"),
    install_command: str = typer.Option(None, "--install-command"),
    build_command: str = typer.Option(None, "--build-command"),
    start_command: str = typer.Option(None, "--start-command"),
    root_directory: str = typer.Option(None, "--root-directory", help="the app's subdirectory"),
    health_check: str = typer.Option(None, "--health-check", help="tcp or an HTTP path"),
    memory: int = typer.Option(None, "--memory", help="memory limit in MB"),
    cpus: float = typer.Option(None, "--cpus", help="CPU limit"),
    volume: list[str] = typer.Option([], "--volume", "-v", help="NAME:/mount/path, repeatable"),
    no_wait: bool = NO_WAIT,
    timeout: float = TIMEOUT,
) -> None:
    """Create an app from a git repository, build it and start it."""
    if (repo is None) == (github is None):
        raise typer.BadParameter("give either --repo URL or --github owner/repo")
    build = _drop_none(
        {
            "builder": builder.value,
            "dockerfile_path": dockerfile,
            "language": language.value if language else None,
            "install_command": install_command,
            "build_command": build_command,
            "start_command": start_command,
        }
    )
    body = _drop_none(
        {
            "name": name,
            "repo": repo or github,
            "provider": "github" if github else None,
            "previews": previews or None,
            "branch": branch,
            "commit": commit,
            "port": port,
            "root_directory": root_directory,
            "health_check": check_health(health_check),
            "envs": env_list(env, secret_env),
            "build": build,
            "volumes": [parse_volume(v) for v in volume],
            "resources": _drop_none({"memory_mb": memory, "cpus": cpus}),
        }
    )
    with api() as client:
        created = client.post(APPS, body)
        console().print(f"created [bold]{name}[/bold] ({created['id']})")
        finish(client, created["id"], no_wait, timeout, created["state"])


# --- reading --------------------------------------------------------------------------------


def all_apps(client: Client, state: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.get(APPS, limit=500, offset=len(items), state=state)
        items += page["items"]
        if not page["items"] or len(items) >= page["total"]:
            return items


@apps_app.command("list")
@handles_errors
def list_apps(
    state: str = typer.Option(None, "--state", help="only apps in this state"),
    output: Output = OUTPUT_OPTION,
) -> None:
    """List your apps."""
    with api() as client:
        items = all_apps(client, state)
    if output == Output.json:
        print_json(items)
        return
    if not items:
        console().print("no apps yet: create one with `ipaas apps create NAME --repo URL`")
        return
    rows = [
        (a["name"], Markup(state_text(a["state"])), a["url"] or "", a["current_release"] or "")
        for a in items
    ]
    table(["NAME", "STATE", "URL", "RELEASE"], rows)


@apps_app.command()
@handles_errors
def show(app: str = typer.Argument(..., help="id or name"), output: Output = OUTPUT_OPTION) -> None:
    """Everything about one app (secret values redacted)."""
    with api() as client:
        data = client.resolve_app(app)
    if output == Output.json:
        print_json(data)
        return
    table(["FIELD", "VALUE"], _show_rows(data))


def _show_rows(a: dict[str, Any]) -> list[tuple[str, Any]]:
    from rich.markup import escape

    reason = f" ({escape(a['state_reason'])})" if a.get("state_reason") else ""
    resources = ", ".join(f"{k}={v}" for k, v in a["resources"].items()) or "defaults"
    volumes = ", ".join(f"{v['name']}:{v['mount_path']}" for v in a["volumes"])
    return [
        ("name", a["name"]),
        ("id", a["id"]),
        ("state", Markup(state_text(a["state"]) + reason)),
        ("url", a["url"]),
        ("repo", a["repo"]),
        ("branch", a["branch"] or "(default)"),
        ("commit", a["commit"] or "(branch head)"),
        ("built commit", a["built_commit"]),
        ("release", a["current_release"]),
        ("port", a["port"] or "$PORT"),
        ("builder", a["build"].get("builder")),
        ("health check", a["health_check"]),
        ("resources", resources),
        ("replicas", a["replicas"]),
        ("volumes", volumes),
        ("envs", ", ".join(e["key"] for e in a["envs"])),
        ("created", short_time(a["created_at"])),
        ("updated", short_time(a["updated_at"])),
    ]


@apps_app.command()
@handles_errors
def status(
    app: str = typer.Argument(..., help="id or name"), output: Output = OUTPUT_OPTION
) -> None:
    """The app's state (and why), URL and release."""
    with api() as client:
        found = client.resolve_app(app)
        current, _ = client.status(found["id"])
    assert current is not None  # no If-None-Match sent: never a 304
    if output == Output.json:
        print_json({**current, "name": found["name"]})
        return
    from rich.markup import escape

    reason = f" ({escape(current['reason'])})" if current.get("reason") else ""
    out = console()
    out.print(f"[bold]{found['name']}[/bold] {state_text(current['state'])}{reason}")
    if current.get("url"):
        out.print(f"url: {current['url']}")
    if current.get("current_release"):
        out.print(f"release: {current['current_release']}")


@apps_app.command()
@handles_errors
def events(
    app: str = typer.Argument(..., help="id or name"), output: Output = OUTPUT_OPTION
) -> None:
    """The app's state changes, oldest first."""
    with api() as client:
        path = app_path(client.resolve_app(app), "/events")
        rows: list[dict[str, Any]] = []
        while page := client.get(path, after=rows[-1]["id"] if rows else 0, limit=1000):
            rows += page
    if output == Output.json:
        print_json(rows)
        return
    table(
        ["TIME", "FROM", "TO", "REASON"],
        [(short_time(e["at"]), e["from_state"] or "", e["to_state"], e["reason"]) for e in rows],
    )


@apps_app.command()
@handles_errors
def releases(
    app: str = typer.Argument(..., help="id or name"), output: Output = OUTPUT_OPTION
) -> None:
    """The app's releases (what `rollback` can go back to)."""
    with api() as client:
        rows = client.get(app_path(client.resolve_app(app), "/releases"))
    if output == Output.json:
        print_json(rows)
        return
    table(
        ["RELEASE", "", "COMMIT", "IMAGE", "BUILD", "CREATED"],
        [
            (
                r["number"],
                "current" if r["current"] else "",
                (r["commit"] or "")[:12],
                r["image_tag"],
                f"{r['build_duration_s']:.0f}s",
                short_time(r["created_at"]),
            )
            for r in rows
        ],
    )


# --- operations -----------------------------------------------------------------------------


def _operate(app: str, action: str, no_wait: bool, timeout: float, body: Any = None) -> None:
    with api() as client:
        found = client.resolve_app(app)
        accepted = client.post(app_path(found, f"/{action}"), body)
        finish(client, found["id"], no_wait, timeout, accepted["state"])


@apps_app.command()
@handles_errors
def restart(app: str = typer.Argument(..., help="id or name"), no_wait: bool = NO_WAIT,
            timeout: float = TIMEOUT) -> None:  # fmt: skip
    """Restart the current release in a fresh container."""
    _operate(app, "restart", no_wait, timeout)


@apps_app.command()
@handles_errors
def start(app: str = typer.Argument(..., help="id or name"), no_wait: bool = NO_WAIT,
          timeout: float = TIMEOUT) -> None:  # fmt: skip
    """Start a stopped app."""
    _operate(app, "start", no_wait, timeout)


@apps_app.command()
@handles_errors
def stop(app: str = typer.Argument(..., help="id or name")) -> None:
    """Stop the app (its container and route go; its data and releases stay)."""
    with api() as client:
        found = client.resolve_app(app)
        accepted = client.post(app_path(found, "/stop"))
    console().print(f"{found['name']} {state_text(accepted['state'])}")


@apps_app.command()
@handles_errors
def rollout(app: str = typer.Argument(..., help="id or name"), no_wait: bool = NO_WAIT,
            timeout: float = TIMEOUT) -> None:  # fmt: skip
    """Rebuild and deploy the branch head (when it differs from what runs)."""
    try:
        _operate(app, "rollout", no_wait, timeout)
    except ApiError as exc:
        if exc.code != "up_to_date":
            raise
        console().print(f"nothing to do: {exc.detail}")  # what was asked is already true


@apps_app.command()
@handles_errors
def rollback(
    app: str = typer.Argument(..., help="id or name"),
    release: int = typer.Argument(..., min=1, help="the release number to go back to"),
    no_wait: bool = NO_WAIT,
    timeout: float = TIMEOUT,
) -> None:
    """Run an earlier release again, without rebuilding."""
    _operate(app, "rollback", no_wait, timeout, {"release": release})


@apps_app.command()
@handles_errors
def delete(
    app: str = typer.Argument(..., help="id or name"),
    volumes: bool = typer.Option(False, "--volumes", help="also delete the app's volumes"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Delete the app: its container, route and images (and volumes with --volumes)."""
    with api() as client:
        found = client.resolve_app(app)
        if not yes:
            what = " and its volumes" if volumes else ""
            typer.confirm(f"delete {found['name']}{what}?", abort=True)
        client.delete(app_path(found), volumes=str(volumes).lower())
    console().print(f"deleted {found['name']}")


# --- settings -------------------------------------------------------------------------------

BUSY = frozenset({"pending", "building", "starting", "rolling_out"})


def _saved(client: Client, updated: dict[str, Any], no_wait: bool, timeout: float) -> None:
    """After a PATCH: follow what it started (as `create` does), or say where the app is."""
    console().print(f"{updated['name']}: saved")
    if updated["state"] in BUSY and not no_wait:
        finish(client, updated["id"], no_wait, timeout, updated["state"])  # exits
    url = f" at [bold]{updated['url']}[/bold]" if updated.get("url") else ""
    console().print(f"{updated['name']} is {state_text(updated['state'])}{url}")


@apps_app.command("set")
@handles_errors
def set_settings(
    app: str = typer.Argument(..., help="id or name"),
    pairs: list[str] = typer.Argument(..., metavar="KEY=VALUE...", help="settings to change"),
    no_wait: bool = NO_WAIT,
    timeout: float = TIMEOUT,
) -> None:
    """Change settings; the app re-routes, restarts or rebuilds as they need, and this waits.

    Keys: name, repo, branch, commit, root_directory, port, health_check, volumes (a:/p,b:/q),
    visibility, memory, cpus, builder, dockerfile, language, install_command, build_command,
    start_command. An empty value is the default (port= is $PORT, commit= the branch head).
    """
    from ipaas.cli.settings import parse_settings, patch_body

    changes = parse_settings(pairs)
    with api() as client:
        found = client.resolve_app(app)
        _saved(client, client.patch(app_path(found), patch_body(changes, found)), no_wait, timeout)


@apps_app.command()
@handles_errors
def scale(
    app: str = typer.Argument(..., help="id or name"),
    replicas: int = typer.Argument(..., min=1, metavar="N", help="how many tasks answer"),
    no_wait: bool = NO_WAIT,
    timeout: float = TIMEOUT,
) -> None:
    """Run N replicas of the app (Swarm runtime; at most runtime.max_replicas); waits until
    they all answer. The router balances over every healthy one."""
    with api() as client:
        found = client.resolve_app(app)
        _saved(client, client.patch(app_path(found), {"replicas": replicas}), no_wait, timeout)


@apps_app.command()
@handles_errors
def rename(
    app: str = typer.Argument(..., help="id or current name"),
    new_name: str = typer.Argument(..., metavar="NEW_NAME", help="also the new host name"),
) -> None:
    """Rename the app: its host name changes at once, the old one stops answering."""
    with api() as client:
        found = client.resolve_app(app)
        _saved(client, client.patch(app_path(found), {"name": new_name}), True, 0)


# --- environment ----------------------------------------------------------------------------


def _envs_of(client: Client, app: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The app and its envs in clear: PATCH replaces the whole list, so edit a full copy."""
    found = client.resolve_app(app)
    full = client.get(app_path(found), reveal_secrets="true")
    return found, [dict(e) for e in full["envs"]]


def _save_envs(client: Client, app: dict[str, Any], envs: list[dict[str, Any]]) -> None:
    updated = client.patch(app_path(app), {"envs": envs})
    console().print(f"{updated['name']}: envs saved; the app is {state_text(updated['state'])}")


@env_app.command("set")
@handles_errors
def env_set(
    app: str = typer.Argument(..., help="id or name"),
    pairs: list[str] = typer.Argument(..., metavar="KEY=VALUE...", help="variables to set"),
    secret: bool = typer.Option(False, "--secret", help="never show these values again"),
) -> None:
    """Set variables (the app restarts, or rebuilds for build variables)."""
    wanted = [parse_env(p, "KEY=VALUE") for p in pairs]
    with api() as client:
        found, envs = _envs_of(client, app)
        by_key = {e["key"]: e for e in envs}
        for key, value in wanted:
            entry = by_key.get(key)
            if entry is None:
                entry = by_key[key] = {"key": key, "value": value, "secret": None}
                envs.append(entry)
            entry["value"] = value
            if secret:
                entry["secret"] = True
        _save_envs(client, found, envs)


@env_app.command("unset")
@handles_errors
def env_unset(
    app: str = typer.Argument(..., help="id or name"),
    keys: list[str] = typer.Argument(..., metavar="KEY...", help="variables to remove"),
) -> None:
    """Remove variables."""
    for key in keys:
        if not ENV_KEY.match(key):
            raise typer.BadParameter(f"{key!r} is not a variable name", param_hint="KEY")
    with api() as client:
        found, envs = _envs_of(client, app)
        missing = set(keys) - {e["key"] for e in envs}
        if missing:
            console().print(f"[yellow]not set: {', '.join(sorted(missing))}[/yellow]")
        if len(missing) == len(set(keys)):
            return
        _save_envs(client, found, [e for e in envs if e["key"] not in keys])


@env_app.command("list")
@handles_errors
def env_list_cmd(
    app: str = typer.Argument(..., help="id or name"),
    reveal: bool = typer.Option(False, "--reveal", help="show secret values in clear"),
    output: Output = OUTPUT_OPTION,
) -> None:
    """The app's variables; secret values are redacted unless --reveal."""
    with api() as client:
        found = client.resolve_app(app)
        envs = client.get(app_path(found), reveal_secrets=str(reveal).lower())["envs"]
    if output == Output.json:
        print_json(envs)
        return
    flags = {True: "secret", False: ""}
    table(
        ["KEY", "VALUE", ""],
        [
            (e["key"], e["value"], flags[e["secret"]] + (" build" if e["build"] else ""))
            for e in envs
        ],
    )


# --- logs -----------------------------------------------------------------------------------


def _print_lines(lines: Iterator[dict[str, Any]], output: Output, as_array: bool) -> None:
    """Lines for people (time + text), or JSON: an array when it ends, NDJSON when followed."""
    with suppress(KeyboardInterrupt):  # Ctrl-C is how one stops following: not an error
        _print_lines_until_done(lines, output, as_array)


def _print_lines_until_done(
    lines: Iterator[dict[str, Any]], output: Output, as_array: bool
) -> None:
    if output == Output.json and as_array:
        print_json(list(lines))
        return
    from ipaas.cli.logstream import format_time
    from ipaas.cli.ui import print_json_line

    out = console()
    for line in lines:
        if output == Output.json:
            print_json_line(line)
            continue
        from rich.text import Text

        style = "red" if line.get("stream") == "stderr" else ""
        text = Text(format_time(line.get("timestamp")) + " ", style="dim")
        text.append(str(line.get("line", "")), style=style)
        out.print(text)


@apps_app.command()
@handles_errors
def logs(
    app: str = typer.Argument(..., help="id or name"),
    follow_: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
    since: str = typer.Option(None, "--since", help="15m, 2h, 1d, now-5m or RFC 3339"),
    limit: int = typer.Option(500, "--limit", "-n", min=1, help="at most N lines (not with -f)"),
    stream: str = typer.Option(None, "--stream", help="stdout or stderr only"),
    output: Output = OUTPUT_OPTION,
) -> None:
    """The app's output, oldest first; -f follows it (JSON: an array, or one object a line)."""
    from ipaas.cli.logstream import follow, read_pages, since_param

    start_at = since_param(since) if since else None
    if since and start_at is None:
        raise typer.BadParameter("use 15m, 2h, 1d, now-5m or RFC 3339", param_hint="--since")
    params = _drop_none({"from": start_at, "stream": stream})
    with api() as client:
        path = app_path(client.resolve_app(app), "/logs")
        if follow_:
            lines = follow(client, path, params, done=lambda: False, reconnect=True)
        else:
            lines = read_pages(client, path, params, limit)
        _print_lines(lines, output, as_array=not follow_)


@builds_app.command("list")
@handles_errors
def builds_list(
    app: str = typer.Argument(..., help="id or name"), output: Output = OUTPUT_OPTION
) -> None:
    """The app's builds, newest first."""
    with api() as client:
        rows = client.get(app_path(client.resolve_app(app), "/builds"))
    if output == Output.json:
        print_json(rows)
        return
    table(
        ["BUILD", "STATUS", "COMMIT", "CREATED", "ERROR"],
        [
            (b["number"], b["status"], (b["commit"] or "")[:12], short_time(b["created_at"]),
             b["error"] or "")
            for b in rows
        ],
    )  # fmt: skip


@builds_app.command("log")
@handles_errors
def builds_log(
    app: str = typer.Argument(..., help="id or name"),
    number: int = typer.Argument(..., min=1, metavar="BUILD", help="the build number"),
    follow_: bool = typer.Option(False, "--follow", "-f", help="follow a running build"),
    output: Output = OUTPUT_OPTION,
) -> None:
    """A build's log (`ipaas apps builds list APP` shows the numbers)."""
    from ipaas.cli.logstream import follow, read_pages
    from ipaas.cli.progress import BUILD_ACTIVE

    with api() as client:
        build_path = app_path(client.resolve_app(app), f"/builds/{number}")
        client.get(build_path)  # a clear not_found for a build that does not exist

        def done() -> bool:
            return client.get(build_path)["status"] not in BUILD_ACTIVE

        path = f"{build_path}/log"
        if follow_:
            lines = follow(client, path, {}, done=done, reconnect=False)
        else:
            lines = read_pages(client, path, {}, None)
        _print_lines(lines, output, as_array=not follow_)


@builds_app.command("cancel")
@handles_errors
def builds_cancel(
    app: str = typer.Argument(..., help="id or name"),
    number: int = typer.Argument(..., min=1, metavar="BUILD", help="the build number"),
) -> None:
    """Cancel a queued or running build."""
    with api() as client:
        build = client.post(app_path(client.resolve_app(app), f"/builds/{number}/cancel"))
    console().print(f"build {number}: {build['status']}")
