"""Builds against the host: RUN steps cannot reach host services, ADD <url> is refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from ipaas.builds.base import BuildFailed, BuildOptions, BuildRequest
from ipaas.builds.docker_builder import DockerImageBuilder
from ipaas.config import Settings
from ipaas.domain.labels import LABEL_APP
from ipaas.runtime.docker import BUILD_NETWORK
from ipaas.runtime.firewall import BRIDGE_NAME_OPTION, bridge_name
from tests import services
from tests.host_listener import SECRET, HostListener, gateway

from .conftest import LogLines

pytestmark = pytest.mark.docker

# Run inside a build step: try the default gateway (the host, as the build container sees it)
# and another host address; print what happened.
PROBE = """\
import socket, struct, sys
gw = None
for line in open("/proc/net/route").read().splitlines()[1:]:
    f = line.split()
    if f[1] == "00000000":
        gw = socket.inet_ntoa(struct.pack("<L", int(f[2], 16)))
port = int(sys.argv[1])
for addr in [gw] + sys.argv[2:]:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((addr, port))
        print("PROBE", addr, "reached", s.recv(100))
    except OSError as e:
        print("PROBE", addr, "blocked", e)
"""


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    services.need("docker")
    c = docker.from_env()
    yield c
    c.close()


@pytest.fixture
def image_names(client: docker.DockerClient) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:  # tagged ipaas/<name>-<app id>: found by the app label the builder sets
        for image in client.images.list(filters={"label": f"{LABEL_APP}=app-{name}"}):
            client.images.remove(image.id, force=True)


def _request(name: str, repo: Path) -> BuildRequest:
    return BuildRequest(
        app_id=f"app-{name}",
        app_name=name,
        release=1,
        repo_url=str(repo),
        branch="main",
        options=BuildOptions(),
        allow_local=True,
        no_cache=True,
    )


async def test_a_build_step_cannot_reach_services_on_the_host(
    base_images: Settings,
    repo_factory: Callable[..., Path],
    client: docker.DockerClient,
    host_listener: HostListener,
    image_names: list[str],
    log: LogLines,
) -> None:
    docker0 = gateway(client, "bridge")
    run = ["python3", "-c", PROBE, str(host_listener.port), docker0]
    dockerfile = f"FROM {base_images.build.base_images['python']}\nRUN {json.dumps(run)}\n"
    repo = repo_factory(files={"Dockerfile": dockerfile})
    name = f"t{uuid.uuid4().hex[:8]}-probe"
    image_names.append(name)
    await DockerImageBuilder(base_images).build(_request(name, repo), log)
    probes = [line for line in log.lines if line.startswith("PROBE ")]
    build_gateway = gateway(client, BUILD_NETWORK)
    assert [p.split()[1:3] for p in probes] == [
        [build_gateway, "blocked"],  # the step ran on the build network, not docker0
        [docker0, "blocked"],
    ], log.text()
    assert SECRET.decode() not in log.text()
    assert host_listener.peers == []
    options = client.networks.get(BUILD_NETWORK).attrs["Options"]
    assert options[BRIDGE_NAME_OPTION] == bridge_name(BUILD_NETWORK)


@pytest.mark.parametrize(
    "add",
    [
        "ADD http://{host}:{port}/x /x",
        'ADD ["https://{host}:{port}/x", "/x"]',
        "ARG SRC=http://{host}:{port}/x\nADD $SRC /x",
    ],
)
async def test_add_of_a_url_is_refused_before_the_engine_fetches_it(
    base_images: Settings,
    repo_factory: Callable[..., Path],
    client: docker.DockerClient,
    host_listener: HostListener,
    image_names: list[str],
    log: LogLines,
    add: str,
) -> None:
    line = add.format(host=gateway(client, "bridge"), port=host_listener.port)
    dockerfile = f"FROM {base_images.build.base_images['static']}\n{line}\n"
    repo = repo_factory(files={"Dockerfile": dockerfile})
    name = f"t{uuid.uuid4().hex[:8]}-add"
    image_names.append(name)
    with pytest.raises(BuildFailed) as failed:
        await DockerImageBuilder(base_images).build(_request(name, repo), log)
    assert failed.value.code == "add_url_not_allowed"
    assert failed.value.user_fault
    assert "RUN" in failed.value.reason  # says what to do instead
    assert host_listener.peers == []
    assert client.images.list(name=f"ipaas/{name}") == []
