"""Every setting of a running app changes cleanly: on the real engine and Caddy, under a client
load that sees no failed request while the old release can serve, with events saying what
changed and whether it took a re-route, a restart or a rebuild."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.builds.conftest import git
from tests.e2e.apps import SETTINGS_DOCKERFILE, settings_app
from tests.e2e.conftest import E2E, commit_all
from tests.support import wait_until

MB = 1024 * 1024


def running(e2e: E2E, app_id: str) -> dict[str, Any]:
    """Wait for the app to settle; it must be running. The app as the API shows it."""
    status = e2e.wait(app_id)
    assert status["state"] == "running", e2e.reasons(app_id)
    return dict(e2e.get(app_id))


def changed(e2e: E2E, app_id: str, body: dict[str, Any], state: str = "rolling_out") -> Any:
    """PATCH, which must put the app in `state`; then wait until it runs again."""
    assert e2e.patch(app_id, body)["state"] == state
    return running(e2e, app_id)


def build_running(e2e: E2E, app_id: str, number: int) -> None:
    def started() -> bool:
        builds = e2e.get(app_id, "/builds")
        return bool(builds) and (builds[0]["number"], builds[0]["status"]) == (number, "running")

    wait_until(started, 60, f"build {number} running")


def test_container_settings_restart_without_a_failed_request(e2e: E2E) -> None:
    app_id = e2e.create(
        e2e.repo(files=settings_app("v1")), volumes=[{"name": "data", "mount_path": "/data"}]
    )
    name = running(e2e, app_id)["name"]
    assert e2e.via_router(name, "/data?set=kept-42").text.strip() == "kept-42"
    with e2e.load(name) as load:
        assert changed(e2e, app_id, {"port": 9100})["port"] == 9100
        assert e2e.via_router(name).text.strip() == "hello from v1 on 9100"
        app = changed(
            e2e, app_id, {"health_check": "/health", "resources": {"memory_mb": 128, "cpus": 0.5}}
        )
        assert app["health_check"] == "/health"
        assert e2e.get(app_id, "/runtime")["memory_limit_bytes"] == 128 * MB
        more = [{"name": "data", "mount_path": "/data"}, {"name": "more", "mount_path": "/more"}]
        assert len(changed(e2e, app_id, {"volumes": more})["volumes"]) == 2
    assert load.failures == [] and load.answered > 0
    assert {"hello from v1 on 8080", "hello from v1 on 9100"} <= load.seen
    # Data in the volume survived three restarts.
    assert e2e.via_router(name, "/data").text.strip() == "kept-42"
    assert e2e.get(app_id)["current_release"] == 1  # no rebuild
    reasons = e2e.reasons(app_id)
    for said in (
        "settings changed: port (restart)",
        "settings changed: health_check, resources (restart)",
        "settings changed: volumes (restart)",
    ):
        assert said in reasons, reasons
    assert len(e2e.get(app_id, "/builds")) == 1


def source_repo(e2e: E2E) -> tuple[Path, str]:
    """Branch main (two commits: v1, then v2), branch feature, and a subdirectory app with
    a second Dockerfile; returns the repo and the commit of v1."""
    alt = SETTINGS_DOCKERFILE.replace("CMD", 'ENV GREETING="alt"\nCMD')
    files = {**settings_app("v1"), **{f"sub/{k}": v for k, v in settings_app("sub").items()}}
    repo = e2e.repo(files={**files, "sub/Dockerfile.alt": alt})
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "version.txt").write_text("feature\n")
    commit_all(repo, "feature")
    git(repo, "checkout", "-q", "main")
    (repo / "version.txt").write_text("v2\n")
    commit_all(repo, "v2")
    return repo, first


def test_source_settings_rebuild_without_a_failed_request(e2e: E2E) -> None:
    repo, first = source_repo(e2e)
    app_id = e2e.create(repo, health_check="/health")
    name = running(e2e, app_id)["name"]
    assert e2e.via_router(name).text.strip() == "hello from v2 on 8080"
    with e2e.load(name) as load:
        changed(e2e, app_id, {"branch": "feature"})
        assert e2e.via_router(name).text.strip() == "hello from feature on 8080"
        # A commit pin rebuilds exactly that commit.
        app = changed(e2e, app_id, {"branch": "main", "commit": first})
        assert app["built_commit"] == first and app["current_release"] == 3, e2e.reasons(app_id)
        assert e2e.via_router(name).text.strip() == "hello from v1 on 8080"
        changed(e2e, app_id, {"commit": "", "root_directory": "sub"})
        assert e2e.via_router(name).text.strip() == "hello from sub on 8080"
        changed(
            e2e, app_id, {"build": {"builder": "dockerfile", "dockerfile_path": "Dockerfile.alt"}}
        )
        assert e2e.via_router(name).text.strip() == "alt from sub on 8080", (
            e2e.reasons(app_id),
            e2e.get(app_id),
            e2e.get(app_id, "/releases")[0],
            e2e.get(app_id, "/builds/5/log?limit=1000"),
        )
    assert load.failures == [] and load.answered > 0
    assert {"hello from v2 on 8080", "hello from feature on 8080", "hello from v1 on 8080"} <= (
        load.seen
    )
    app = e2e.get(app_id)
    assert app["current_release"] == 5 and app["commit"] is None
    reasons = e2e.reasons(app_id)
    for said in (
        "settings changed: branch (rebuild)",
        "settings changed: branch, commit (rebuild)",
        "settings changed: commit, root_directory (rebuild)",
        "settings changed: build (rebuild)",
    ):
        assert said in reasons, reasons


def test_rename_moves_the_host_and_frees_the_old_name(e2e: E2E) -> None:
    repo = e2e.repo(files=settings_app("v1"))
    app_id = e2e.create(repo)
    old = running(e2e, app_id)["name"]
    new = f"e2e-{uuid.uuid4().hex[:8]}"
    with e2e.load(old) as before:
        app = e2e.patch(app_id, {"name": new})
    assert app["state"] == "running" and app["dns_name"] == e2e.host_of(new)
    with e2e.load(new) as after:  # the PATCH has answered: the new name is announced
        wait_until(lambda: after.answered >= 20, 30, "requests to the new name")
    assert after.failures == [] and after.seen == {"hello from v1 on 8080"}
    assert before.answered > 0  # (some of them may have failed as the old host went)
    assert e2e.via_router(old).status_code >= 400
    assert e2e.get(app_id)["url"].startswith(f"http://{e2e.host_of(new)}")
    assert "settings changed: name (re-route)" in e2e.reasons(app_id)
    # The old name is free for another app, which answers on it.
    other = e2e.create(repo, name=old, envs=[{"key": "GREETING", "value": "other"}])
    running(e2e, other)
    assert e2e.via_router(old).text.strip() == "other from v1 on 8080"
    assert e2e.via_router(new).text.strip() == "hello from v1 on 8080"


def attempts(e2e: E2E, app_id: str) -> list[str]:
    return [r.split(":")[0] for r in e2e.reasons(app_id) if r.startswith("start attempt")]


def test_start_retries_each_attempt_in_the_events(e2e: E2E) -> None:
    repo = e2e.repo(files=settings_app("v1"))
    data = [{"name": "data", "mount_path": "/data"}]
    flaky = e2e.create(repo, volumes=data, envs=[{"key": "FAIL_STARTS", "value": "2"}])
    # No volume: its start counter never passes 1, so every start fails.
    broken = e2e.create(repo, envs=[{"key": "FAIL_STARTS", "value": "1"}])
    name = running(e2e, flaky)["name"]
    assert attempts(e2e, flaky) == ["start attempt 1 of 3 failed", "start attempt 2 of 3 failed"]
    assert "start 2 fails on purpose" in e2e.reasons(flaky)[-2]
    assert e2e.via_router(name).text.strip() == "hello from v1 on 8080"

    status = e2e.wait(broken)
    assert status["state"] == "failed" and "start failed 3 times" in status["reason"]
    assert "start 1 fails on purpose" in status["reason"]
    assert attempts(e2e, broken) == [f"start attempt {n} of 3 failed" for n in (1, 2, 3)]

    # A rollout whose release fails all three starts: the old one serves on, nothing fails.
    with e2e.load(name) as load:
        e2e.patch(flaky, {"envs": [{"key": "FAIL_STARTS", "value": "100"}]})
        status = e2e.wait(flaky)
    assert load.failures == [] and load.answered > 0
    assert status["state"] == "running"
    assert (
        "start failed 3 times" in status["reason"] and "release 1 still serves" in status["reason"]
    )
    assert len(attempts(e2e, flaky)) == 5


def test_changes_made_while_a_build_or_rollout_runs_are_applied_after_it(e2e: E2E) -> None:
    repo = e2e.repo(files=settings_app("v1"))
    slow = SETTINGS_DOCKERFILE.replace("CMD", "RUN sleep 4\nCMD")
    for branch, files in (
        ("slow", {**settings_app("slow"), "Dockerfile": slow}),
        ("broken", {"Dockerfile": slow.replace("sleep 4", "sleep 3 && false")}),
    ):
        git(repo, "checkout", "-q", "-b", branch, "main")
        for path, text in files.items():
            (repo / path).write_text(text)
        commit_all(repo, branch)
    git(repo, "checkout", "-q", "main")  # the default branch the app builds
    app_id = e2e.create(repo, health_check="/health")
    name = running(e2e, app_id)["name"]
    with e2e.load(name) as load:
        # A restart-level change during a rebuild: the new release runs with it.
        e2e.patch(app_id, {"branch": "slow"})
        build_running(e2e, app_id, 2)
        app = e2e.patch(app_id, {"envs": [{"key": "GREETING", "value": "queued"}]})
        assert app["state"] == "rolling_out"
        running(e2e, app_id)
        assert e2e.via_router(name).text.strip() == "queued from slow on 8080"
        # ... and during a rebuild that fails: the serving release restarts with it.
        e2e.patch(app_id, {"branch": "broken"})
        build_running(e2e, app_id, 3)
        e2e.patch(app_id, {"port": 9200})
        app = running(e2e, app_id)
        assert app["current_release"] == 2 and app["port"] == 9200
        assert e2e.via_router(name).text.strip() == "queued from slow on 9200"
        # Two restarts asked for back to back: the newest settings win.
        e2e.patch(app_id, {"envs": [{"key": "GREETING", "value": "first"}]})
        e2e.patch(app_id, {"envs": [{"key": "GREETING", "value": "newest"}]})
        running(e2e, app_id)
        wait_until(
            lambda: e2e.via_router(name).text.strip() == "newest from slow on 9200",
            30,
            "the newest settings serving",
        )
    assert load.failures == [] and load.answered > 0
    reasons = e2e.reasons(app_id)
    assert "settings changed: envs (restart, after the build in progress)" in reasons
    assert "settings changed: port (restart, after the build in progress)" in reasons
    assert any(
        r.startswith("build failed") and "release 2 restarts with the settings changed" in r
        for r in reasons
    ), reasons
    builds = {b["number"]: b["status"] for b in e2e.get(app_id, "/builds")}
    assert builds == {1: "succeeded", 2: "succeeded", 3: "failed"}
    assert httpx.get(f"{e2e.api}/{app_id}/status", headers=e2e.headers).json()["state"] == "running"
