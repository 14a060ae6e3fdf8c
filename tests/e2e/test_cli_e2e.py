"""The user CLI against the whole live platform: a real app created, configured, rolled out,
rolled back and deleted with `ipaas apps ...`, each step checked through Caddy and Docker."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from typer.testing import CliRunner, Result

from ipaas.runtime.base import LABEL_APP
from ipaas.runtime.docker import network_name
from tests.builds.conftest import SAMPLES
from tests.cli.conftest import root_app
from tests.e2e.apps import settings_app
from tests.e2e.conftest import E2E, commit_all

Cli = Callable[..., Result]


@pytest.fixture(scope="module")
def cli(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The CLI as a user runs it: a personal API token in IPAAS_TOKEN, no saved login."""
    me = httpx.get(f"{e2e.live.base}/api/v1/users/me", headers=e2e.headers).json()
    r = httpx.post(
        f"{e2e.live.base}/api/v1/users/me/tokens", json={"name": "cli"}, headers=e2e.headers
    )
    assert r.status_code in (200, 201), r.text
    token = r.json()["token"]
    config = tmp_path_factory.mktemp("cli") / "cli.json"  # never written: env overrides it

    def run(*args: str) -> Result:
        env = {
            "IPAAS_CLI_CONFIG": str(config),
            "IPAAS_URL": e2e.live.base,
            "IPAAS_TOKEN": token,
            "COLUMNS": "200",
        }
        return CliRunner().invoke(root_app(), list(args), env=env)

    yield run
    # The owner's bridge network outlives the apps; left behind, such networks use up the
    # engine's address pools (31 by default) and later starts fail.
    for net in docker.from_env().networks.list(names=[network_name(me["id"])]):
        net.reload()  # a listing does not say which containers are attached
        if not net.attrs.get("Containers"):
            net.remove()


# The platform runs in this process: its log lines can land in the CLI's captured output.
PLATFORM_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if not PLATFORM_LOG.match(line)]
    return json.loads("\n".join(lines))


def eventually(check: Callable[[], Any], timeout_s: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {what}")
        time.sleep(0.5)


def test_cli_runs_an_app_through_its_life(e2e: E2E, cli: Cli) -> None:
    # A requirements.txt no build has seen: pip runs, so the build lasts long enough for its
    # log to be followed (a fully cached build can be over before the CLI looks).
    requirements = (SAMPLES / "python-flask" / "requirements.txt").read_text()
    unique = {"requirements.txt": f"{requirements}# cli e2e {uuid.uuid4().hex}\n"}
    repo = e2e.repo("python-flask", files=unique)
    name = f"cli-{uuid.uuid4().hex[:8]}"

    # create: waits until running, with the build log streamed while it builds.
    created = cli("apps", "create", name, "--repo", f"file://{repo}", "--health-check", "/health")
    assert created.exit_code == 0, created.output
    app = as_json(cli("apps", "show", name, "-o", "json"))
    app_id = app["id"]
    assert app["state"] == "running"
    assert app["url"] and app["url"] in created.stdout
    assert "→ building" in created.stdout and "running at" in created.stdout
    assert "build 1 log:" in created.stdout, created.stdout
    assert "requirements.txt" in created.stdout or "pip" in created.stdout, created.stdout
    assert "python-flask sample, release base" in e2e.via_router(name).text

    # logs: gunicorn's startup lines, as a JSON array.
    def gunicorn_started() -> list[str]:
        lines = [line["line"] for line in as_json(cli("apps", "logs", name, "-o", "json"))]
        started = any("Starting gunicorn" in line for line in lines)
        return lines if started and any("Listening at" in line for line in lines) else []

    eventually(gunicorn_started, what="gunicorn's startup lines in `apps logs`")

    # env set: the app rolls out with the new variable.
    env_set = cli("apps", "env", "set", name, "RELEASE_NOTE=second")
    assert env_set.exit_code == 0, env_set.output
    assert "envs saved" in env_set.stdout
    assert e2e.wait(app_id)["state"] == "running"
    assert "release second" in e2e.via_router(name).text
    env = {e["key"]: e["value"] for e in as_json(cli("apps", "env", "list", name, "-o", "json"))}
    assert env["RELEASE_NOTE"] == "second"

    # rollout of a code change: a new build and release 2.
    up_to_date = cli("apps", "rollout", name)
    assert up_to_date.exit_code == 0 and "nothing to do" in up_to_date.stdout, up_to_date.output
    app_py = Path(repo) / "app.py"
    app_py.write_text(app_py.read_text().replace("python-flask sample", "python-flask v2"))
    commit_all(repo, "v2")
    rolled = cli("apps", "rollout", name)
    assert rolled.exit_code == 0, rolled.output
    assert "running at" in rolled.stdout
    assert "python-flask v2, release second" in e2e.via_router(name).text
    releases = as_json(cli("apps", "releases", name, "-o", "json"))
    assert sorted(r["number"] for r in releases) == [1, 2]
    assert {r["number"]: r["current"] for r in releases} == {1: False, 2: True}

    # rollback: release 1's image again (with the app's current envs), no build.
    back = cli("apps", "rollback", name, "1")
    assert back.exit_code == 0, back.output
    assert "running at" in back.stdout
    assert "python-flask sample, release second" in e2e.via_router(name).text
    status = as_json(cli("apps", "status", name, "-o", "json"))
    assert status["state"] == "running" and status["current_release"] == 1

    # the first build's log, after the fact.
    build_log = cli("apps", "builds", "log", name, "1")
    assert build_log.exit_code == 0, build_log.output
    assert "requirements.txt" in build_log.stdout or "pip" in build_log.stdout, build_log.stdout
    assert len(build_log.stdout.splitlines()) >= 5
    events = [e["to_state"] for e in as_json(cli("apps", "events", name, "-o", "json"))]
    assert events[:4] == ["pending", "building", "starting", "running"]

    # delete: the app, its container and its route are gone.
    deleted = cli("apps", "delete", name, "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted {name}" in deleted.stdout
    assert httpx.get(f"{e2e.api}/{app_id}", headers=e2e.headers).status_code == 404
    client = docker.from_env()
    assert client.containers.list(all=True, filters={"label": f"{LABEL_APP}={app_id}"}) == []
    assert e2e.via_router(name).status_code >= 400
    gone = cli("apps", "show", name)
    assert gone.exit_code == 1 and "(not_found)" in gone.stderr


def test_cli_create_that_cannot_build_exits_1_with_the_reason(e2e: E2E, cli: Cli) -> None:
    repo = e2e.repo(files={"README.md": "nothing to build"})
    name = f"cli-{uuid.uuid4().hex[:8]}"
    result = cli("apps", "create", name, "--repo", f"file://{repo}", "--timeout", "120")
    assert result.exit_code == 1, result.output
    assert "failed:" in result.stderr and "nothing" in result.stderr.lower(), result.output
    status = as_json(cli("apps", "status", name, "-o", "json"))
    assert status["state"] == "failed" and "nothing" in status["reason"].lower()


def test_cli_changes_settings_and_renames(e2e: E2E, cli: Cli) -> None:
    app_id = e2e.create(e2e.repo(files=settings_app("v1")))
    name = e2e.get(app_id)["name"]
    assert e2e.wait(app_id)["state"] == "running"

    # set: a restart, followed until the app runs again.
    changed = cli("apps", "set", name, "port=9300", "health_check=/health", "memory=128")
    assert changed.exit_code == 0, changed.output
    assert "→ rolling_out" in changed.stdout and "running at" in changed.stdout
    assert e2e.via_router(name).text.strip() == "hello from v1 on 9300"
    shown = as_json(cli("apps", "show", name, "-o", "json"))
    assert (shown["port"], shown["health_check"], shown["resources"]) == (
        9300, "/health", {"memory_mb": 128}
    )  # fmt: skip
    reasons = [e["reason"] for e in as_json(cli("apps", "events", name, "-o", "json"))]
    assert "settings changed: health_check, port, resources (restart)" in reasons

    # rename: the new host answers at once, the old one no longer.
    new = f"cli-{uuid.uuid4().hex[:8]}"
    renamed = cli("apps", "rename", name, new)
    assert renamed.exit_code == 0, renamed.output
    assert e2e.host_of(new) in renamed.stdout
    assert e2e.via_router(new).text.strip() == "hello from v1 on 9300"
    assert e2e.via_router(name).status_code >= 400
    refused = cli("apps", "set", new, "colour=blue")
    assert refused.exit_code == 2 and "unknown setting" in refused.output
