"""DockerRuntime against the real engine: start, health, failures, limits, events, isolation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import docker
import httpx
import pytest

from ipaas.config import RuntimeSettings
from ipaas.runtime.base import LABEL_APP, RuntimeEvent, RuntimeUnavailable, StartFailed, VolumeMount
from ipaas.runtime.docker import DockerRuntime, network_name
from tests import services
from tests.runtime.conftest import SpecFactory
from tests.runtime.images import build_image


@pytest.fixture(autouse=True)
def _docker() -> None:
    services.need("docker")


def _exec(client: docker.DockerClient, container_id: str, *cmd: str) -> tuple[int, str]:
    code, out = client.containers.get(container_id).exec_run(list(cmd))
    return code, out.decode(errors="replace")


def _resolve(client: docker.DockerClient, container_id: str, name: str) -> str | None:
    code, out = _exec(client, container_id, "nslookup", name)
    answer = out.split("Name:", 1)[1] if code == 0 and "Name:" in out else ""
    addresses = [line.split()[-1] for line in answer.splitlines() if line.startswith("Address")]
    return addresses[0] if addresses else None


def _http_get(client: docker.DockerClient, container_id: str, ip: str) -> str:
    """GET / from inside a container with nc (static busybox's wget crashes in scratch)."""
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    _, out = _exec(client, container_id, "sh", "-c", f"{request} | nc -w 2 {ip} 8080")
    return out


async def _next_event(
    runtime: DockerRuntime, since: datetime, container_id: str, actions: set[str]
) -> RuntimeEvent:
    async def wait() -> RuntimeEvent:
        async for event in runtime.events(since=since):
            if event.container_id == container_id and event.action in actions:
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(wait(), timeout=20)


async def test_start_healthy_answers_http(runtime: DockerRuntime, make_spec: SpecFactory) -> None:
    spec = make_spec(env={"APP_TEXT": "hi there"})
    info = await runtime.start(spec)
    assert info.state == "running" and info.host_port and info.ip_address
    assert info.name.startswith(f"ipaas-{spec.app_name}-r1-")
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{info.host_port}/")
    assert response.text == "hi there\n"
    listed = await runtime.list_containers(spec.app_id)
    assert [c.id for c in listed] == [info.id]
    # The cheap listing (one engine call) agrees on what it fills in.
    [brief] = await runtime.list_containers(spec.app_id, detail=False)
    same = ("id", "name", "app_id", "release", "image", "state", "host_port", "ip_address")
    assert {f: getattr(brief, f) for f in same} == {f: getattr(listed[0], f) for f in same}
    # Its creation time too (to the second: the listing has no fraction), which the warden's
    # log retention reads instead of inspecting every container.
    assert brief.created_at is not None and listed[0].created_at is not None
    assert abs((brief.created_at - listed[0].created_at).total_seconds()) < 1
    again = await runtime.inspect(info.id)
    assert again is not None and again.app_id == spec.app_id and again.started_at
    await runtime.stop(info.id, timeout_s=2)
    stopped = await runtime.inspect(info.id)
    assert stopped is not None and stopped.state == "exited"
    [brief] = await runtime.list_containers(spec.app_id, detail=False)
    assert brief.state == "exited"
    await runtime.remove(info.id)
    assert await runtime.inspect(info.id) is None
    assert await runtime.list_containers(spec.app_id) == []


async def test_http_health_path(runtime: DockerRuntime, make_spec: SpecFactory) -> None:
    info = await runtime.start(make_spec(health_check="/health"))
    assert info.state == "running"


async def test_exit_at_once_fails_with_logs(runtime: DockerRuntime, make_spec: SpecFactory) -> None:
    spec = make_spec(env={"APP_MODE": "crash"})
    with pytest.raises(StartFailed) as failed:
        await runtime.start(spec)
    assert "code 3" in failed.value.reason
    assert "fatal: cannot read config" in failed.value.reason
    await assert_kept_stopped_with_logs(runtime, spec.app_id, "fatal: cannot read config")


async def assert_kept_stopped_with_logs(runtime: DockerRuntime, app_id: str, text: str) -> None:
    """A failed start stays readable: its container is stopped (no port, no memory) and its
    output is served like any other's."""
    [kept] = await runtime.list_containers(app_id)
    assert kept.state == "exited"
    chunk = await runtime.read_logs(kept, 0, None, 1000)
    assert any(text in line.line for line in chunk.lines), chunk


async def test_slow_start_times_out_and_is_kept_stopped_with_its_logs(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    spec = make_spec(env={"APP_MODE": "slow"}, health_timeout_s=1.5)
    with pytest.raises(StartFailed) as failed:
        await runtime.start(spec)
    assert "not healthy after 1.5 s" in failed.value.reason
    assert "warming up" in failed.value.reason
    await assert_kept_stopped_with_logs(runtime, spec.app_id, "warming up")


async def test_cancelled_start_leaves_nothing(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    spec = make_spec(env={"APP_MODE": "slow"}, health_timeout_s=30)
    task = asyncio.create_task(runtime.start(spec))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await runtime.list_containers(spec.app_id) == []


async def test_limits_are_set(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    spec = make_spec(memory_mb=96, cpus=0.25, pids_limit=50, log_max_size="1m", log_max_files=2)
    info = await runtime.start(spec)
    host = docker_client.api.inspect_container(info.id)["HostConfig"]
    assert host["Memory"] == 96 * 2**20
    assert host["MemorySwap"] == 96 * 2**20
    assert host["NanoCpus"] == 250_000_000
    assert host["PidsLimit"] == 50
    assert host["Init"] is True
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert host["RestartPolicy"]["Name"] in ("no", "")
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    assert host["PortBindings"]["8080/tcp"][0]["HostIp"] == "127.0.0.1"
    assert not host.get("Binds")
    assert host["NetworkMode"] == network_name(spec.owner_id)


async def test_oom_kill_is_reported(runtime: DockerRuntime, make_spec: SpecFactory) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    spec = make_spec(env={"APP_MODE": "hog", "HOG_DELAY_S": "1"}, memory_mb=32)
    info = await runtime.start(spec)
    event = await _next_event(runtime, since, info.id, {"oom", "die"})
    assert event.app_id == spec.app_id
    for _ in range(50):  # the 'oom' event may come a moment before the container is dead
        dead = await runtime.inspect(info.id)
        if dead is not None and dead.state == "exited":
            break
        await asyncio.sleep(0.1)
    assert dead is not None and dead.oom_killed and dead.exit_code == 137


async def test_events_report_die(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    spec = make_spec()
    info = await runtime.start(spec)
    docker_client.containers.get(info.id).kill()
    event = await _next_event(runtime, since, info.id, {"die"})
    assert event.app_id == spec.app_id and event.exit_code == 137 and event.time


async def test_stats(runtime: DockerRuntime, make_spec: SpecFactory) -> None:
    info = await runtime.start(make_spec(memory_mb=64))
    stats = await runtime.stats(info.id)
    assert stats is not None
    assert 0 < stats.memory_bytes < stats.memory_limit_bytes == 64 * 2**20
    assert stats.cpu_percent >= 0
    assert "listening on 8080" in await runtime.last_log_lines(info.id)


async def test_networks_isolate_users(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    owner_a, owner_b = uuid.uuid4().hex, uuid.uuid4().hex
    a1, a2, b1 = await asyncio.gather(
        runtime.start(make_spec(owner_id=owner_a)),
        runtime.start(make_spec(owner_id=owner_a, app_name=f"a2-{owner_a[:6]}")),
        runtime.start(make_spec(owner_id=owner_b, app_name=f"b1-{owner_b[:6]}")),
    )
    # Same user: by app name (the network alias). Static busybox's wget cannot use the libc
    # resolver in a scratch image, so names are resolved with its own nslookup.
    a2_ip = _resolve(docker_client, a1.id, f"a2-{owner_a[:6]}")
    assert a2_ip == a2.ip_address
    assert "200 OK" in _http_get(docker_client, a1.id, a2_ip)
    # Another user: neither the name resolves nor the address answers.
    assert _resolve(docker_client, a1.id, f"b1-{owner_b[:6]}") is None
    assert b1.ip_address and a1.ip_address != b1.ip_address
    assert "200 OK" in _http_get(docker_client, b1.id, b1.ip_address)  # b1 itself answers
    assert "200 OK" not in _http_get(docker_client, a1.id, b1.ip_address)
    assert "200 OK" not in _http_get(docker_client, b1.id, a2_ip)
    labels = docker_client.networks.get(network_name(owner_a)).attrs["Labels"]
    assert labels["org.ipaas.owner"] == owner_a


async def test_volumes_persist_across_replacement(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    app_id = uuid.uuid4().hex
    volumes = (VolumeMount("data", "/data"),)
    first = await runtime.start(make_spec(app_id=app_id, volumes=volumes))
    code, _ = _exec(docker_client, first.id, "sh", "-c", "echo kept > /data/file")
    assert code == 0
    second = await runtime.start(make_spec(app_id=app_id, release=2, volumes=volumes))
    await runtime.remove(first.id)
    code, out = _exec(docker_client, second.id, "cat", "/data/file")
    assert (code, out) == (0, "kept\n")
    mounts = docker_client.api.inspect_container(second.id)["Mounts"]
    assert [m["Type"] for m in mounts] == ["volume"]
    await runtime.remove(second.id)
    assert await runtime.remove_volumes(app_id) == 1
    assert docker_client.volumes.list(filters={"label": f"{LABEL_APP}={app_id}"}) == []


async def test_remove_app_images_only_removes_that_apps(
    runtime: DockerRuntime, docker_client: docker.DockerClient, app_image: str
) -> None:
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    tag_mine = build_image(docker_client, {LABEL_APP: mine})
    tag_other = build_image(docker_client, {LABEL_APP: other})
    try:
        assert await runtime.remove_app_images(mine) == 1
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(tag_mine)
        docker_client.images.get(tag_other)
        docker_client.images.get(app_image)
    finally:
        docker_client.images.remove(tag_other, force=True)


async def test_unreachable_engine(make_spec: SpecFactory) -> None:
    rt = DockerRuntime(RuntimeSettings(), docker_host="unix:///nonexistent/docker.sock")
    with pytest.raises(RuntimeUnavailable):
        await rt.list_containers()
    with pytest.raises(RuntimeUnavailable):
        await rt.start(make_spec())


async def test_network_names_that_prefix_each_other(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    short = uuid.uuid4().hex[:8]
    long_info = await runtime.start(make_spec(owner_id=short + "9"))
    short_info = await runtime.start(make_spec(owner_id=short))
    nets = {
        c.id: docker_client.api.inspect_container(c.id)["HostConfig"]["NetworkMode"]
        for c in (long_info, short_info)
    }
    assert nets == {long_info.id: f"ipaas-u-{short}9", short_info.id: f"ipaas-u-{short}"}


async def test_containers_carry_the_id_of_the_store_that_wants_them(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    info = await runtime.start(make_spec(store_id="store-" + "a" * 26))
    assert info.store_id == "store-" + "a" * 26
    [listed] = await runtime.list_containers(info.app_id, detail=False)
    assert listed.store_id == info.store_id  # the cheap listing the warden reads has it too
