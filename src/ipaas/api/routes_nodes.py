"""/nodes: the machines of a multi-node runtime (Swarm), for admins: listed, drained (their
tasks move to the other nodes, routes leave them) and made active again."""

from __future__ import annotations

from typing import Literal, cast

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from ipaas.api.deps import admin_user
from ipaas.api.errors import Problem
from ipaas.apps.service import Principal
from ipaas.domain.errors import NotFoundError
from ipaas.runtime.base import NodeInfo, NodeNotFound, Nodes

router = APIRouter(tags=["nodes"])
# A Swarm node id, or a host name: compared with the node list, never sent to the engine as is.
NODE = Path(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class NodeOut(BaseModel):
    id: str
    hostname: str
    role: str
    state: str
    availability: str
    address: str
    leader: bool
    tasks: int  # the platform's app tasks running there


def _nodes(request: Request) -> Nodes:
    nodes = cast(Nodes | None, request.app.state.nodes)
    if nodes is None:
        raise Problem(
            409, "no_nodes", "this platform runs apps on one Docker engine (runtime.kind: docker)"
        )
    return nodes


def _out(node: NodeInfo) -> NodeOut:
    return NodeOut(**node.__dict__)


@router.get("/nodes", response_model=list[NodeOut])
async def list_nodes(
    who: Principal = Depends(admin_user), nodes: Nodes = Depends(_nodes)
) -> list[NodeOut]:
    return [_out(n) for n in await nodes.nodes()]


@router.post("/nodes/{node}/{action}", response_model=NodeOut)
async def set_availability(
    action: Literal["drain", "activate"],
    node: str = NODE,
    who: Principal = Depends(admin_user),
    nodes: Nodes = Depends(_nodes),
) -> NodeOut:
    """drain: the node takes no tasks, its tasks move to the others; activate: it takes tasks
    again. Either way the routes follow within the warden's reconcile interval."""
    availability = "drain" if action == "drain" else "active"
    try:
        return _out(await nodes.set_availability(node, availability))
    except NodeNotFound:
        raise NotFoundError.of("node") from None
