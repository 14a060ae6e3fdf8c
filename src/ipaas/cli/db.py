"""`ipaas db ...`: database add-ons over the HTTP API (create, list, info, credentials, attach,
detach, backup, backups, restore, rotate, schedule, delete). Databases and apps are named by id
or by name."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from ipaas.cli.client import API, Client
from ipaas.cli.ui import (
    OUTPUT_OPTION,
    Markup,
    Output,
    console,
    fail,
    handles_errors,
    print_json,
    short_time,
    state_text,
    table,
)
from ipaas.domain.databases import shell_command_args

DATABASES = f"{API}/databases"
db_app = typer.Typer(no_args_is_help=True, help="Databases: PostgreSQL, MariaDB, Redis.")
NO_WAIT = typer.Option(False, "--no-wait", help="return at once instead of waiting")
WAIT_TIMEOUT_S = 300.0


@contextmanager
def api() -> Iterator[Client]:
    with Client.from_login() as client:
        yield client


def resolve(client: Client, ref: str) -> dict[str, Any]:
    """A database by id or by name (names are the caller's own)."""
    for db in client.get(DATABASES):
        if ref in (db["id"], db["name"]):
            return dict(db)
    raise fail(f"no database {ref!r}", code=1)


def wait_until(client: Client, path: str, field: str, busy: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        found = dict(client.get(path))
        if found[field] not in busy or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@db_app.command("create")
@handles_errors
def create(
    name: str = typer.Argument(..., help="unique among your databases"),
    engine: str = typer.Option(..., "--engine", "-e", help="postgres, mariadb or redis"),
    version: str = typer.Option(None, "--version", help="default: the newest offered"),
    memory: int = typer.Option(None, "--memory", help="memory limit in MB"),
    cpus: float = typer.Option(None, "--cpus", help="CPU limit"),
    no_wait: bool = NO_WAIT,
) -> None:
    """Create a database and wait until it runs."""
    body = {"name": name, "engine": engine, "version": version, "memory_mb": memory, "cpus": cpus}
    with api() as client:
        db = client.post(DATABASES, {k: v for k, v in body.items() if v is not None})
        if not no_wait:
            db = wait_until(client, f"{DATABASES}/{db['id']}", "state", {"creating"})
    console().print(f"{db['name']} {db['id']} {state_text(db['state'])}")
    if db["state"] == "failed":
        console().print(db.get("state_reason") or "")
        raise typer.Exit(1)


@db_app.command("list")
@handles_errors
def list_databases(output: Output = OUTPUT_OPTION) -> None:
    """List your databases."""
    with api() as client:
        items = client.get(DATABASES)
    if output == Output.json:
        print_json(items)
        return
    rows = [
        (d["name"], f"{d['engine']} {d['version']}", Markup(state_text(d["state"])), d["host"])
        for d in items
    ]
    table(["NAME", "ENGINE", "STATE", "HOST"], rows)


@db_app.command("info")
@handles_errors
def info(
    database: str = typer.Argument(..., help="id or name"), output: Output = OUTPUT_OPTION
) -> None:
    """One database, with the apps it is attached to."""
    with api() as client:
        db = resolve(client, database)
        db["attachments"] = client.get(f"{DATABASES}/{db['id']}/attachments")
    if output == Output.json:
        print_json(db)
        return
    apps = ", ".join(f"{a['app_name']} ({a['env_name']})" for a in db["attachments"]) or "-"
    rows = [
        ("name", db["name"]), ("id", db["id"]), ("engine", f"{db['engine']} {db['version']}"),
        ("state", Markup(state_text(db["state"]))), ("reason", db["state_reason"] or ""),
        ("host", db["host"]), ("memory", f"{db['memory_mb']} MB"), ("cpus", db["cpus"]),
        ("attached to", apps), ("created", short_time(db["created_at"])),
    ]  # fmt: skip
    table(["FIELD", "VALUE"], rows)


@db_app.command("credentials")
@handles_errors
def credentials(
    database: str = typer.Argument(..., help="id or name"), output: Output = OUTPUT_OPTION
) -> None:
    """The database's user, password and URL (reachable from your apps only)."""
    with api() as client:
        creds = client.get(f"{DATABASES}/{resolve(client, database)['id']}/credentials")
    if output == Output.json:
        print_json(creds)
        return
    table(["FIELD", "VALUE"], list(creds.items()))


@db_app.command("attach")
@handles_errors
def attach(
    database: str = typer.Argument(..., help="id or name"),
    app: str = typer.Argument(..., help="the app (id or name)"),
    env_name: str = typer.Option(
        None, "--as", help="variable name (default DATABASE_URL/REDIS_URL)"
    ),
) -> None:
    """Give an app the database's URL; a running app restarts onto it."""
    with api() as client:
        db, target = resolve(client, database), client.resolve_app(app)
        body = {"app_id": target["id"], **({"env_name": env_name} if env_name else {})}
        link = client.post(f"{DATABASES}/{db['id']}/attachments", body)
    console().print(f"{target['name']} gets {link['env_name']} from {db['name']}")


@db_app.command("detach")
@handles_errors
def detach(
    database: str = typer.Argument(..., help="id or name"),
    app: str = typer.Argument(..., help="the app (id or name)"),
) -> None:
    """Take the URL away from the app; a running app restarts without it."""
    with api() as client:
        db, target = resolve(client, database), client.resolve_app(app)
        client.delete(f"{DATABASES}/{db['id']}/attachments/{target['id']}")
    console().print(f"{target['name']} detached from {db['name']}")


@db_app.command("backup")
@handles_errors
def backup(database: str = typer.Argument(..., help="id or name"), no_wait: bool = NO_WAIT) -> None:
    """Take a backup and wait until it is verified (restored into a scratch copy) or failed."""
    with api() as client:
        db = resolve(client, database)
        path = f"{DATABASES}/{db['id']}/backups"
        taken = client.post(path)
        if not no_wait:
            taken = wait_until(client, f"{path}/{taken['id']}", "status", {"running"})
    console().print(f"backup {taken['id']} {state_text(taken['status'])}")
    if taken["status"] == "failed":
        console().print(taken.get("error") or "")
        raise typer.Exit(1)


@db_app.command("backups")
@handles_errors
def backups(
    database: str = typer.Argument(..., help="id or name"), output: Output = OUTPUT_OPTION
) -> None:
    """The database's backups, newest first."""
    with api() as client:
        items = client.get(f"{DATABASES}/{resolve(client, database)['id']}/backups")
    if output == Output.json:
        print_json(items)
        return
    rows = [
        (b["id"], Markup(state_text(b["status"])), b["reason"], b["size_bytes"] or "",
         short_time(b["created_at"]), (b["error"] or "")[:60])
        for b in items
    ]  # fmt: skip
    table(["ID", "STATUS", "REASON", "BYTES", "CREATED", "ERROR"], rows)


@db_app.command("restore")
@handles_errors
def restore(
    database: str = typer.Argument(..., help="id or name"),
    backup_id: str = typer.Argument(..., help="a verified backup's id"),
) -> None:
    """Put a verified backup back (a safety backup of the current data is taken first)."""
    with api() as client:
        db = resolve(client, database)
        job = follow_job(
            client, db, client.post(f"{DATABASES}/{db['id']}/backups/{backup_id}/restore")
        )
    safety = job["detail"].get("safety_backup_id")
    console().print(f"restored {backup_id}; the data from before is in backup {safety}")


def follow_job(client: Client, db: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Wait for a restore or rotation; a failed one exits 1 with its reason."""
    done = wait_until(client, f"{DATABASES}/{db['id']}/jobs/{job['id']}", "status", {"running"})
    if done["status"] != "succeeded":
        console().print(f"{done['kind']} {state_text(done['status'])}: {done.get('error') or ''}")
        raise typer.Exit(1)
    return done


@db_app.command("rotate")
@handles_errors
def rotate(database: str = typer.Argument(..., help="id or name")) -> None:
    """New credentials without downtime: attached apps move onto them, then the old ones are
    revoked."""
    with api() as client:
        db = resolve(client, database)
        job = follow_job(client, db, client.post(f"{DATABASES}/{db['id']}/credentials/rotate"))
    apps = ", ".join(job["detail"].get("apps") or []) or "no app"
    console().print(f"{db['name']}: new login {job['detail']['username']} ({apps} moved onto it)")


@db_app.command("schedule")
@handles_errors
def schedule(
    database: str = typer.Argument(..., help="id or name"),
    cron: str = typer.Option(
        None, "--cron", help="'minute hour day month weekday' in UTC, or @daily, @hourly, ..."
    ),
    every: int = typer.Option(None, "--every", help="seconds between backups; 0: none"),
    keep: int = typer.Option(7, "--keep", help="scheduled backups kept"),
) -> None:
    """Set the database's backup schedule: --cron or --every (no two backups closer than
    the platform's databases.min_backup_interval_s, an hour by default)."""
    if (cron is None) == (every is None):
        raise fail("give one of --cron and --every", code=2)
    body: dict[str, Any] = {"keep": keep}
    body.update({"cron": cron} if cron is not None else {"interval_s": every})
    with api() as client:
        db = resolve(client, database)
        client.request("PUT", f"{DATABASES}/{db['id']}/backup-schedule", json=body)
    if cron is not None:
        said = f"backups on {cron!r} (UTC)"
    else:
        said = f"a backup every {every} s" if every else "no scheduled backups"
    console().print(f"{db['name']}: {said}" + (f", {keep} kept" if cron or every else ""))


@db_app.command("shell")
@handles_errors
def shell(
    database: str = typer.Argument(..., help="id or name"),
    command: str = typer.Option(
        None, "--command", "-c", help="run this and exit (psql -c, mariadb -e, redis-cli words)"
    ),
) -> None:
    """psql / mariadb / redis-cli inside the database's own container, logged in as its user.

    Runs `docker exec` against the platform host's Docker engine (run it on that host, or set
    DOCKER_HOST); the password reaches the client through the exec's environment, never a
    command line. Without a terminal, statements can be fed on standard input."""
    with api() as client:
        db = resolve(client, database)
        info = client.get(f"{DATABASES}/{db['id']}/shell")
    docker = shutil.which("docker")
    if docker is None:
        raise fail(
            "`ipaas db shell` runs the client through the platform host's Docker engine and "
            "needs the docker command there; elsewhere use `ipaas db credentials` with a client "
            "of your own on your apps' network"
        )
    interactive = command is None and sys.stdin.isatty() and sys.stdout.isatty()
    argv = [docker, "exec", "-i", *(["-t"] if interactive else []), "-u", info["user"]]
    for name in info["env"]:
        argv += ["-e", name]  # the value comes from this process's environment
    argv += [info["container_id"], *info["argv"]]
    if command is not None:
        argv += shell_command_args(db["engine"], command)
    env = {**os.environ, **info["env"]}
    if interactive:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's
        try:
            code = subprocess.run(argv, env=env).returncode
        finally:
            signal.signal(signal.SIGINT, previous)
    else:
        fed = sys.stdin.buffer.read() if command is None else b""
        done = subprocess.run(argv, env=env, input=fed, capture_output=True)
        sys.stdout.buffer.write(done.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(done.stderr)
        code = done.returncode
        if b"No such container" in done.stderr:
            raise fail("the database's container is not on this Docker engine: run this on the "
                       "platform's host, or set DOCKER_HOST to its engine")  # fmt: skip
    raise typer.Exit(code)


@db_app.command("delete")
@handles_errors
def delete(
    database: str = typer.Argument(..., help="id or name"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
    final_backup: bool = typer.Option(
        True, "--final-backup/--no-final-backup", help="take a verified backup first, kept a while"
    ),
) -> None:
    """Delete the database, its container and its volume (detach its apps first)."""
    with api() as client:
        db = resolve(client, database)
        if not yes and not typer.confirm(f"delete {db['name']} and all its data?"):
            raise typer.Exit(1)
        client.delete(f"{DATABASES}/{db['id']}", final_backup=str(final_backup).lower())
    console().print(f"{db['name']} is being deleted")
