"""App containers against the host: no connection to host services, few capabilities."""

from __future__ import annotations

import os
import subprocess
import uuid

import docker
import pytest

from ipaas.config import RuntimeSettings
from ipaas.runtime.base import StartFailed
from ipaas.runtime.docker import DockerRuntime, network_name
from ipaas.runtime.firewall import (
    BRIDGE_NAME_OPTION,
    COMMENT,
    DOCKER_USER,
    FirewallError,
    HostFirewall,
    bridge_name,
    jump_rules,
)
from tests import services
from tests.host_listener import SECRET, HostListener, gateway
from tests.runtime.conftest import SpecFactory

# Capability numbers of linux/capability.h for the ones the default setting keeps.
CAP_BITS = {"CHOWN": 0, "SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10}


@pytest.fixture(autouse=True)
def _docker() -> None:
    services.need("docker")


def _exec(client: docker.DockerClient, container_id: str, script: str) -> str:
    _, out = client.containers.get(container_id).exec_run(["sh", "-c", script])
    return bytes(out).decode(errors="replace")


def _try_host(client: docker.DockerClient, container_id: str, address: str, port: int) -> str:
    return _exec(client, container_id, f"nc -w 3 {address} {port} </dev/null; echo rc=$?")


def _capabilities(client: docker.DockerClient, container_id: str) -> dict[str, int]:
    status = _exec(client, container_id, "cat /proc/self/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return {key: int(fields[key], 16) for key in ("CapEff", "CapPrm", "CapBnd")}


async def test_an_app_cannot_reach_services_on_the_host(
    runtime: DockerRuntime,
    make_spec: SpecFactory,
    docker_client: docker.DockerClient,
    host_listener: HostListener,
) -> None:
    spec = make_spec()
    info = await runtime.start(spec)  # healthy: the host still reaches the app
    own_gateway = gateway(docker_client, network_name(spec.owner_id))
    for address in (own_gateway, gateway(docker_client, "bridge")):
        out = _try_host(docker_client, info.id, address, host_listener.port)
        assert SECRET.decode() not in out, f"the app reached the host at {address}"
        assert "rc=0" not in out
    assert host_listener.peers == []
    # Refused at once (REJECT), not left to time out: a misconfigured app fails fast.
    assert "refused" in _try_host(docker_client, info.id, own_gateway, host_listener.port).lower()


async def test_apps_of_one_owner_still_talk_and_the_host_reaches_them(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    first = await runtime.start(make_spec())
    second = await runtime.start(make_spec())
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    out = _exec(docker_client, first.id, f"{request} | nc -w 3 {second.ip_address} 8080")
    assert "200 OK" in out
    assert HostFirewall().installed()


async def test_app_containers_keep_only_the_allowed_capabilities(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    info = await runtime.start(make_spec())
    wanted = sum(1 << CAP_BITS[name] for name in RuntimeSettings().capabilities)
    caps = _capabilities(docker_client, info.id)
    assert caps == {"CapEff": wanted, "CapPrm": wanted, "CapBnd": wanted}
    host = docker_client.api.inspect_container(info.id)["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]


async def test_no_capability_at_all_still_runs_an_app(
    make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    bare = DockerRuntime(RuntimeSettings(capabilities=[]))
    try:
        info = await bare.start(make_spec())
        assert _capabilities(docker_client, info.id)["CapEff"] == 0
        # Root without CAP_CHOWN cannot give a file away.
        out = _exec(docker_client, info.id, "chown 1000 /www/index.html; echo rc=$?")
        assert "rc=0" not in out
    finally:
        bare.close()


def test_capability_names_are_checked() -> None:
    assert RuntimeSettings(capabilities=["cap_chown", " kill "]).capabilities == ["CHOWN", "KILL"]
    with pytest.raises(ValueError):
        RuntimeSettings(capabilities=["ALL"])
    with pytest.raises(ValueError):
        RuntimeSettings(capabilities=["NET-ADMIN"])


async def test_bridges_carry_the_prefix_the_rules_match(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    spec = make_spec()
    await runtime.start(spec)
    name = network_name(spec.owner_id)
    options = docker_client.networks.get(name).attrs["Options"]
    assert options[BRIDGE_NAME_OPTION] == bridge_name(name)
    assert len(bridge_name(name)) <= 15 and bridge_name(name).startswith("ipaas")
    assert bridge_name(name) in os.listdir("/sys/class/net")  # the host's interface


async def test_an_old_unnamed_network_is_replaced_while_empty(
    runtime: DockerRuntime, make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    spec = make_spec()
    name = network_name(spec.owner_id)
    docker_client.networks.create(name, driver="bridge")  # as ipaas made them before
    await runtime.start(spec)
    [net] = [n for n in docker_client.networks.list(names=[name]) if n.name == name]
    assert net.attrs["Options"].get(BRIDGE_NAME_OPTION) == bridge_name(name)


def test_rules_are_idempotent_and_removable() -> None:
    services.need("docker")  # DOCKER-USER belongs to the engine's rules
    firewall = HostFirewall()
    firewall.apply()
    first = firewall.tagged_rules()
    assert len(first) == 7 and len(set(first)) == 7
    # A duplicate jump (two processes racing, say) and a stale rule of ours are tidied up.
    jump = jump_rules()["INPUT"]
    subprocess.run(["iptables", "-w", "-I", "INPUT", "1", *jump], check=True)
    stale = ["-i", "ipaas+", "-m", "comment", "--comment", COMMENT, "-j", "DROP"]
    subprocess.run(["iptables", "-w", "-A", DOCKER_USER, *stale], check=True)
    firewall.apply()
    assert sorted(firewall.tagged_rules()) == sorted(first)
    try:
        firewall.remove()
        assert firewall.tagged_rules() == [] and not firewall.installed()
        listing = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
        assert "IPAAS-" not in listing
    finally:
        firewall.apply()  # other tests (and a running platform) rely on the rules


async def test_without_iptables_nothing_starts_and_the_reason_says_so(
    make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    broken = HostFirewall(iptables="/nonexistent/iptables")
    rt = DockerRuntime(RuntimeSettings(), firewall=broken)
    try:
        with pytest.raises(FirewallError, match="not installed"):
            await rt.prepare()
        spec = make_spec()
        with pytest.raises(StartFailed, match="firewall"):
            await rt.start(spec)
        assert await rt.list_containers(spec.app_id) == []
        assert docker_client.networks.list(names=[network_name(spec.owner_id)]) == []
        # Turned off on purpose: the runtime starts without it.
        off = DockerRuntime(RuntimeSettings(firewall=False), firewall=broken)
        await off.prepare()
        off.close()
    finally:
        rt.close()


def test_bridge_names_fit_linux_and_differ() -> None:
    names = {bridge_name(network_name(uuid.uuid4().hex)) for _ in range(200)}
    assert len(names) == 200
    assert all(len(n) <= 15 and n.startswith("ipaas") for n in names)


async def test_rules_removed_while_running_are_back_before_the_next_start(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    await runtime.start(make_spec())
    firewall = HostFirewall()
    firewall.remove()  # an engine restart, `iptables -F`, another process
    assert not firewall.installed()
    await runtime.start(make_spec())
    assert firewall.installed()
