"""/nodes: admins list a Swarm's nodes, drain and activate them; users may not; a platform on
one engine says it has none; a node name from the request never reaches the engine unchecked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from ipaas.api.app import create_app
from ipaas.platform import ControlPlane
from ipaas.runtime.base import NodeInfo, NodeNotFound
from tests.conftest import UserMaker, auth


class FakeNodes:
    """Two nodes, as SwarmRuntime reports them; remembers every name it was asked about."""

    def __init__(self) -> None:
        self.all = [
            NodeInfo("m1abc", "node-1", "manager", "ready", "active", "10.0.0.2", True, 2),
            NodeInfo("w2def", "node-2", "worker", "down", "active", "10.0.0.3", False, 0),
        ]
        self.asked: list[str] = []

    async def nodes(self) -> list[NodeInfo]:
        return list(self.all)

    async def set_availability(self, node: str, availability: str) -> NodeInfo:
        self.asked.append(node)
        for i, n in enumerate(self.all):
            if node in (n.id, n.hostname):
                self.all[i] = replace(n, availability=availability)
                return self.all[i]
        raise NodeNotFound(node)


@pytest.fixture
async def swarm_api(core: ControlPlane) -> AsyncIterator[tuple[httpx.AsyncClient, FakeNodes]]:
    app = create_app(core, manage_lifecycle=False)
    nodes = FakeNodes()
    app.state.nodes = nodes
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ipaas.test") as c:
        yield c, nodes


async def test_an_admin_lists_drains_and_activates_nodes(
    swarm_api: tuple[httpx.AsyncClient, FakeNodes], make_user: UserMaker
) -> None:
    client, nodes = swarm_api
    admin = auth(await make_user("admin"))
    listed = (await client.get("/api/v1/nodes", headers=admin)).json()
    assert [(n["hostname"], n["role"], n["state"], n["tasks"]) for n in listed] == [
        ("node-1", "manager", "ready", 2),
        ("node-2", "worker", "down", 0),
    ]
    drained = await client.post("/api/v1/nodes/node-2/drain", headers=admin)
    assert drained.status_code == 200 and drained.json()["availability"] == "drain"
    back = await client.post("/api/v1/nodes/w2def/activate", headers=admin)
    assert back.json()["availability"] == "active"
    missing = await client.post("/api/v1/nodes/node-9/drain", headers=admin)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_users_may_not_see_or_change_nodes(
    swarm_api: tuple[httpx.AsyncClient, FakeNodes], make_user: UserMaker
) -> None:
    client, nodes = swarm_api
    user = auth(await make_user())
    assert (await client.get("/api/v1/nodes", headers=user)).status_code == 403
    refused = await client.post("/api/v1/nodes/node-2/drain", headers=user)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert nodes.asked == [] and nodes.all[1].availability == "active"


@pytest.mark.parametrize("name", ["..", "-rf", "node 2", "a" * 300, "n%0Aid"])
async def test_a_hostile_node_name_is_refused_before_the_engine_hears_it(
    swarm_api: tuple[httpx.AsyncClient, FakeNodes], make_user: UserMaker, name: str
) -> None:
    client, nodes = swarm_api
    admin = auth(await make_user("admin"))
    answer = await client.post(f"/api/v1/nodes/{name}/drain", headers=admin)
    assert answer.status_code in (404, 422), answer.text
    assert nodes.asked == []


async def test_an_unknown_action_is_refused(
    swarm_api: tuple[httpx.AsyncClient, FakeNodes], make_user: UserMaker
) -> None:
    client, nodes = swarm_api
    admin = auth(await make_user("admin"))
    answer = await client.post("/api/v1/nodes/node-2/remove", headers=admin)
    assert answer.status_code == 422 and nodes.asked == []


async def test_a_platform_on_one_engine_has_no_nodes(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    admin = auth(await make_user("admin"))
    answer = await client.get("/api/v1/nodes", headers=admin)
    assert answer.status_code == 409 and answer.json()["code"] == "no_nodes"
