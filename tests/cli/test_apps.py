"""ipaas apps ... against a real API server; the tests play builder and runtime."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from ipaas.domain.states import State
from tests.cli.conftest import Cli, unique_name
from tests.support import wait_until

S = State
REPO = "https://example.invalid/app.git"


def create(cli: Cli, *extra: str) -> tuple[str, str]:
    """A new app (not waited for): (name, id)."""
    name = unique_name()
    result = cli("apps", "create", name, "--repo", REPO, "--no-wait", *extra)
    assert result.exit_code == 0, result.output
    app_id = cli.live.app_id(cli.user_id, name)
    assert app_id and app_id in result.stdout
    return name, app_id


def as_json(cli: Cli, *args: str) -> Any:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def running(cli: Cli, app_id: str) -> None:
    cli.live.drive(app_id, S.BUILDING, S.STARTING, S.RUNNING, url="http://x.localhost/")


def test_create_no_wait_sends_every_setting(user_cli: Cli) -> None:
    name, app_id = create(
        user_cli,
        "--branch", "main", "--port", "5000", "--env", "GREETING=hi", "--secret-env", "KEY=v",
        "--builder", "plan", "--language", "python", "--start-command", "python app.py",
        "--root-directory", "web", "--health-check", "/health", "--memory", "256",
        "--cpus", "0.5", "--volume", "data:/data",
    )  # fmt: skip
    shown = as_json(user_cli, "apps", "show", name)
    assert shown["id"] == app_id and shown["state"] == "pending"
    assert (shown["branch"], shown["port"], shown["root_directory"]) == ("main", 5000, "web")
    assert shown["build"]["builder"] == "plan" and shown["build"]["language"] == "python"
    assert shown["build"]["start_command"] == "python app.py"
    assert shown["health_check"] == "/health"
    assert shown["resources"] == {"memory_mb": 256, "cpus": 0.5}
    assert shown["volumes"] == [{"name": "data", "mount_path": "/data"}]
    envs = {e["key"]: e for e in shown["envs"]}
    assert envs["GREETING"]["value"] == "hi" and envs["KEY"]["value"] == "********"


def test_create_waits_until_running_and_prints_the_url(user_cli: Cli) -> None:
    name = unique_name()
    url = f"http://{name}.localhost/"
    driver = user_cli.live.drive_when_created(
        user_cli.user_id, name, S.BUILDING, S.STARTING, S.RUNNING, url=url
    )
    result = user_cli("apps", "create", name, "--repo", REPO, "--timeout", "30")
    driver.join(10)
    assert result.exit_code == 0, result.output
    for state in ("building", "starting", "running"):
        assert state in result.stdout
    assert url in result.stdout


def test_create_that_fails_exits_1_with_the_reason(user_cli: Cli) -> None:
    name = unique_name()
    driver = user_cli.live.drive_when_created(user_cli.user_id, name, S.BUILDING, S.FAILED)
    result = user_cli("apps", "create", name, "--repo", REPO, "--timeout", "30")
    driver.join(10)
    assert result.exit_code == 1, result.output
    assert "test: failed" in result.stderr


@pytest.mark.slow  # waits out a timeout: `make test`, not `make fast`
def test_waiting_gives_up_at_the_timeout(user_cli: Cli) -> None:
    result = user_cli("apps", "create", unique_name(), "--repo", REPO, "--timeout", "1")
    assert result.exit_code == 1
    assert "timed out" in result.stderr and "pending" in result.stderr


def test_list_show_status_events_as_json(user_cli: Cli) -> None:
    name, app_id = create(user_cli)
    running(user_cli, app_id)
    listed = as_json(user_cli, "apps", "list")
    assert [a["name"] for a in listed] == [name]
    assert as_json(user_cli, "apps", "show", app_id)["name"] == name  # by id too
    status = as_json(user_cli, "apps", "status", name)
    assert (status["state"], status["url"]) == ("running", "http://x.localhost/")
    events = as_json(user_cli, "apps", "events", name)
    assert [e["to_state"] for e in events] == ["pending", "building", "starting", "running"]
    assert as_json(user_cli, "apps", "releases", name) == []
    text = user_cli("apps", "list")
    assert text.exit_code == 0 and name in text.stdout and "running" in text.stdout
    shown = user_cli("apps", "status", name)
    assert shown.exit_code == 0 and "http://x.localhost/" in shown.stdout


def test_env_set_unset_list(user_cli: Cli) -> None:
    name, _ = create(user_cli, "--env", "KEEP=1")
    result = user_cli("apps", "env", "set", name, "A=1", "B=two=2")
    assert result.exit_code == 0, result.output
    assert user_cli("apps", "env", "set", name, "--secret", "HIDDEN=s3cr3t").exit_code == 0
    envs = {e["key"]: e for e in as_json(user_cli, "apps", "env", "list", name)}
    assert envs["A"]["value"] == "1" and envs["B"]["value"] == "two=2"
    assert envs["KEEP"]["value"] == "1"
    assert envs["HIDDEN"]["value"] == "********" and envs["HIDDEN"]["secret"] is True
    text = user_cli("apps", "env", "list", name)
    assert "s3cr3t" not in text.stdout and "********" in text.stdout
    revealed = user_cli("apps", "env", "list", name, "--reveal")
    assert "s3cr3t" in revealed.stdout
    # Setting another key keeps the secret's value (the CLI edits the full, revealed list).
    assert user_cli("apps", "env", "unset", name, "A").exit_code == 0
    envs = {e["key"]: e for e in as_json(user_cli, "apps", "env", "list", name, "--reveal")}
    assert set(envs) == {"B", "KEEP", "HIDDEN"} and envs["HIDDEN"]["value"] == "s3cr3t"


def test_bad_key_value_is_a_usage_error(user_cli: Cli) -> None:
    name, _ = create(user_cli)
    assert user_cli("apps", "env", "set", name, "NOEQUALS").exit_code == 2
    assert user_cli("apps", "env", "set", name, "1BAD=x").exit_code == 2
    bad_create = user_cli("apps", "create", unique_name(), "--repo", REPO, "--env", "oops")
    assert bad_create.exit_code == 2
    assert user_cli("apps", "create", unique_name(), "--repo", REPO, "--volume", "x").exit_code == 2
    assert user_cli("apps", "list", "-o", "yaml").exit_code == 2


def test_stop_then_start_without_a_runtime_fails(user_cli: Cli) -> None:
    name, app_id = create(user_cli)
    running(user_cli, app_id)
    stopped = user_cli("apps", "stop", name)
    assert stopped.exit_code == 0, stopped.output
    assert as_json(user_cli, "apps", "status", name)["state"] == "stopped"
    started = user_cli("apps", "start", name, "--timeout", "30")
    assert started.exit_code == 1, started.output
    assert "starting" in started.stdout
    assert "no release to run" in started.stderr


def test_start_of_a_running_app_is_refused(user_cli: Cli) -> None:
    name, app_id = create(user_cli)
    running(user_cli, app_id)
    result = user_cli("apps", "start", name)
    assert result.exit_code == 1
    assert "(invalid_state)" in result.stderr


def test_rollback_to_a_missing_release(user_cli: Cli) -> None:
    name, app_id = create(user_cli)
    running(user_cli, app_id)
    result = user_cli("apps", "rollback", name, "3")
    assert result.exit_code == 1
    assert "no release 3 (not_found)" in result.stderr


def test_delete_asks_unless_yes(user_cli: Cli) -> None:
    name, _ = create(user_cli)
    declined = user_cli("apps", "delete", name, input="n\n")
    assert declined.exit_code == 1
    assert as_json(user_cli, "apps", "show", name)["name"] == name
    deleted = user_cli("apps", "delete", name, "--yes", "--volumes")
    assert deleted.exit_code == 0, deleted.output
    gone = user_cli("apps", "show", name)
    assert gone.exit_code == 1 and "(not_found)" in gone.stderr


def test_unknown_app_exits_1_with_not_found(user_cli: Cli) -> None:
    for args in (("show", "no-such-app"), ("status", "0" * 32), ("restart", "nope")):
        result = user_cli("apps", *args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("error: ") and "(not_found)" in result.stderr


def test_other_users_apps_are_not_found(user_cli: Cli, cli: Cli) -> None:
    name, app_id = create(user_cli)
    other = type(cli)(cli.live, cli.config.with_name("other.json"))
    assert other.login().exit_code == 0
    for ref in (name, app_id):
        result = other("apps", "show", ref)
        assert result.exit_code == 1 and "(not_found)" in result.stderr


def test_set_sends_typed_settings_and_keeps_the_rest_of_a_group(user_cli: Cli) -> None:
    name, app_id = create(
        user_cli, "--builder", "plan", "--language", "python", "--memory", "256", "--cpus", "0.5"
    )
    result = user_cli(
        "apps", "set", name, "port=5000", "memory=128", "Start-Command=python app.py",
        "health_check=/health", "volumes=data:/data,cache:/cache", "commit=", "--no-wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{name}: saved" in result.stdout and "pending" in result.stdout
    shown = as_json(user_cli, "apps", "show", name)
    assert (shown["port"], shown["health_check"], shown["commit"]) == (5000, "/health", None)
    assert shown["resources"] == {"memory_mb": 128, "cpus": 0.5}  # cpus kept
    assert shown["build"]["start_command"] == "python app.py"
    assert (shown["build"]["builder"], shown["build"]["language"]) == ("plan", "python")
    assert [v["mount_path"] for v in shown["volumes"]] == ["/data", "/cache"]
    # Empty values go back to the defaults.
    assert user_cli("apps", "set", name, "port=", "language=", "--no-wait").exit_code == 0
    shown = as_json(user_cli, "apps", "show", app_id)
    assert shown["port"] is None and shown["build"]["language"] is None
    events = as_json(user_cli, "apps", "events", name)
    assert "settings changed: build, health_check, port, resources, volumes" in events[-2]["reason"]


REFUSED_SETTINGS = [
    ("colour=blue", "unknown setting 'colour'; the settings are: name, repo"),
    ("port=http", "port: must be a number from 1 to 65535"),
    ("port=70000", "port: must be from 1 to 65535"),
    ("cpus=lots", "cpus: must be a number"),
    ("visibility=secret", "visibility: must be one of public, private"),
    ("health_check=health", "use tcp or an HTTP path"),
    ("commit=main", "must be a commit id"),
    ("volumes=data", "is not NAME:/path"),
    ("GREETING=hi", "unknown setting 'GREETING'"),
    ("envs=A=1", "`ipaas apps env set NAME K=V`"),
    ("port", "'port' is not KEY=VALUE"),
]


def test_set_refuses_what_it_cannot_send(user_cli: Cli) -> None:
    name, _ = create(user_cli)
    for pair, says in REFUSED_SETTINGS:
        result = user_cli("apps", "set", name, "branch=dev", pair)
        assert result.exit_code == 2, result.output
        assert says in " ".join(result.output.split()), result.output
    assert as_json(user_cli, "apps", "show", name)["branch"] is None  # nothing was sent


def test_set_waits_for_the_rebuild_it_started(user_cli: Cli) -> None:
    name, app_id = create(user_cli)
    running(user_cli, app_id)
    live = user_cli.live

    def builder() -> None:  # plays the builder and the runtime once the rollout begins
        wait_until(lambda: live.run(live.plane.stores.apps.get(app_id)).state == S.ROLLING_OUT,
                   10, "the rollout")  # fmt: skip
        time.sleep(0.3)
        live.drive(app_id, S.RUNNING, url="http://x.localhost/")

    thread = threading.Thread(target=builder, daemon=True)
    thread.start()
    result = user_cli("apps", "set", name, "branch=dev", "--timeout", "30")
    thread.join(10)
    assert result.exit_code == 0, result.output
    assert "saved" in result.stdout and "rolling_out" in result.stdout
    assert "running at http://x.localhost/" in result.stdout


def test_scale_restarts_with_the_replicas_and_refuses_more_than_allowed(user_cli: Cli) -> None:
    name, app_id = create(user_cli)
    running(user_cli, app_id)
    result = user_cli("apps", "scale", name, "3", "--no-wait")
    assert result.exit_code == 0, result.output
    assert f"{name}: saved" in result.stdout
    assert as_json(user_cli, "apps", "show", name)["replicas"] == 3
    events = as_json(user_cli, "apps", "events", name)
    assert any("settings changed: replicas" in e["reason"] for e in events)
    refused = user_cli("apps", "scale", name, "6")
    assert refused.exit_code == 1 and "(too_many_replicas)" in refused.stderr
    assert "at most 5 replicas" in refused.stderr
    assert user_cli("apps", "scale", name, "0").exit_code == 2  # usage error


def test_rename(user_cli: Cli) -> None:
    name, app_id = create(user_cli)
    running(user_cli, app_id)
    new = unique_name("renamed")
    result = user_cli("apps", "rename", name, new)
    assert result.exit_code == 0, result.output
    assert f"{new}: saved" in result.stdout and "running" in result.stdout
    assert as_json(user_cli, "apps", "show", new)["id"] == app_id
    taken_by = create(user_cli)[0]
    refused = user_cli("apps", "rename", new, taken_by)
    assert refused.exit_code == 1 and "(name_taken)" in refused.stderr
