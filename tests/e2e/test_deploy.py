"""From POST /applications to an app answering through Caddy, for every sample; and the
operations a user runs on a deployed app."""

from __future__ import annotations

import time

import docker
import httpx
import pytest

from ipaas.runtime.base import LABEL_APP
from tests.e2e.conftest import E2E, commit_all

SAMPLE_TEXT = {
    "python-flask": "python-flask sample",
    "node-express": "node",
    "static-site": "",
    "go-http": "go",
    "dockerfile-python": "",
}


@pytest.mark.parametrize("sample", list(SAMPLE_TEXT))
def test_sample_goes_running_and_answers_through_caddy(e2e: E2E, sample: str) -> None:
    app_id = e2e.create(e2e.repo(sample), health_check="/health")
    status = e2e.wait(app_id)
    assert status["state"] == "running", e2e.get(app_id, "/events")
    app = e2e.get(app_id)
    r = e2e.via_router(app["name"], "/health")
    assert r.status_code == 200 and r.text.strip() == "ok"
    home = e2e.via_router(app["name"], "/")
    assert home.status_code == 200 and SAMPLE_TEXT[sample] in home.text.lower()
    # The transparent address answers the same.
    direct = httpx.get(f"http://{app['address']}/health", timeout=10)
    assert direct.text.strip() == "ok"
    assert app["url"] == f"http://{app['dns_name']}:{e2e.settings.router.http_port}/"
    states = [e["to_state"] for e in e2e.get(app_id, "/events")]
    assert states == ["pending", "building", "starting", "running"]
    releases = e2e.get(app_id, "/releases")
    assert releases[0]["number"] == 1 and releases[0]["current"] and releases[0]["plan"]


def test_redeploy_has_no_failed_request_and_rollback_restores(e2e: E2E) -> None:
    app_id = e2e.create(e2e.repo("python-flask"), health_check="/health")
    assert e2e.wait(app_id)["state"] == "running"
    name = e2e.get(app_id)["name"]
    with e2e.load(name) as load:
        r = httpx.patch(
            f"{e2e.api}/{app_id}",
            json={"envs": [{"key": "RELEASE_NOTE", "value": "second"}]},
            headers=e2e.headers,
        )
        assert r.status_code == 200 and r.json()["state"] == "rolling_out"
        assert e2e.wait(app_id)["state"] == "running"
        time.sleep(1)
    assert load.failures == []
    assert any("release second" in s for s in load.seen)
    assert any("release base" in s for s in load.seen)
    assert "release second" in e2e.via_router(name).text
    # The old container is retired (after draining, within the stop timeout).
    client = docker.from_env()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        live = client.containers.list(filters={"label": f"{LABEL_APP}={app_id}"})
        if len(live) == 1:
            break
        time.sleep(0.5)
    assert len(live) == 1


def test_code_change_rollout_then_rollback(e2e: E2E) -> None:
    repo = e2e.repo("python-flask")
    app_id = e2e.create(repo, health_check="/health")
    assert e2e.wait(app_id)["state"] == "running"
    name = e2e.get(app_id)["name"]
    r = e2e.post(app_id, "rollout")
    assert r.status_code == 409 and r.json()["code"] == "up_to_date"
    app_py = repo / "app.py"
    app_py.write_text(app_py.read_text().replace("python-flask sample", "python-flask v2"))
    commit_all(repo, "v2")
    assert e2e.post(app_id, "rollout").status_code == 202
    assert e2e.wait(app_id)["state"] == "running"
    assert "v2" in e2e.via_router(name).text
    app = e2e.get(app_id)
    assert app["current_release"] == 2 and app["built_commit"]
    log = e2e.get(app_id, "/builds/2/log?limit=10000")["lines"]
    assert any("dependencies: cached" in line["line"] for line in log)
    assert e2e.post(app_id, "rollback", {"release": 1}).status_code == 202
    assert e2e.wait(app_id)["state"] == "running"
    assert "python-flask sample" in e2e.via_router(name).text
    assert e2e.get(app_id)["current_release"] == 1


def test_stop_start_restart_and_delete(e2e: E2E) -> None:
    app_id = e2e.create(e2e.repo("static-site"))
    assert e2e.wait(app_id)["state"] == "running"
    name = e2e.get(app_id)["name"]
    assert e2e.post(app_id, "stop").status_code == 202
    assert e2e.via_router(name).status_code >= 400
    client = docker.from_env()
    assert client.containers.list(filters={"label": f"{LABEL_APP}={app_id}"}) == []
    assert e2e.post(app_id, "start").status_code == 202
    assert e2e.wait(app_id)["state"] == "running"
    assert e2e.via_router(name).status_code == 200
    before = e2e.get(app_id, "/runtime")["container_id"]
    assert e2e.post(app_id, "restart").status_code == 202
    assert e2e.wait(app_id, {"running"})["state"] == "running"
    assert e2e.get(app_id, "/runtime")["container_id"] != before  # a new container
    r = httpx.delete(f"{e2e.api}/{app_id}", headers=e2e.headers)
    assert r.status_code == 204
    assert httpx.get(f"{e2e.api}/{app_id}", headers=e2e.headers).status_code == 404
    assert client.containers.list(all=True, filters={"label": f"{LABEL_APP}={app_id}"}) == []
    assert client.images.list(filters={"label": f"{LABEL_APP}={app_id}"}) == []
    assert e2e.via_router(name).status_code >= 400


def test_user_faults_fail_at_once_with_a_reason(e2e: E2E) -> None:
    nothing = e2e.create(e2e.repo(files={"README.md": "nothing to build"}))
    bad_branch = e2e.create(e2e.repo("static-site"), branch="no-such-branch")
    injection = e2e.create(e2e.repo("static-site"), branch="--upload-pack=touch /tmp/ipaas-pwned")
    failing = e2e.create(
        e2e.repo("python-flask"), build={"install_command": "echo broken install; exit 3"}
    )
    for app_id, words in (
        (nothing, "nothing"),
        (bad_branch, "no-such-branch"),
        (injection, "branch"),
        (failing, "install"),
    ):
        status = e2e.wait(app_id)
        assert status["state"] == "failed"
        assert words in status["reason"].lower(), status["reason"]
        builds = e2e.get(app_id, "/builds")
        assert builds[0]["attempt"] == 1  # a user fault is not retried
    import os

    assert not os.path.exists("/tmp/ipaas-pwned")
    log = e2e.get(failing, "/builds/1/log")["lines"]
    assert any("broken install" in line["line"] for line in log)


def test_runtime_status_shows_the_container(e2e: E2E) -> None:
    app_id = e2e.create(e2e.repo("static-site"), resources={"memory_mb": 96})
    assert e2e.wait(app_id)["state"] == "running"
    rt = e2e.get(app_id, "/runtime")
    assert rt["state"] == "running" and rt["container_id"] and rt["started_at"]
    assert rt["memory_limit_bytes"] == 96 * 1024 * 1024
    assert 0 < rt["memory_bytes"] < rt["memory_limit_bytes"]
    assert rt["restart_count"] == 0 and rt["cpu_percent"] is not None
