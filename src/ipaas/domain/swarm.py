"""Swarm decisions, pure: how an app's service is updated, which port it gets, what its tasks
say about it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

START_FIRST = "start-first"
STOP_FIRST = "stop-first"
# Task states (the engine's words) in which a task is on its way up or up.
LIVE_TASK_STATES = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
)
FAILED_TASK_STATES = frozenset({"failed", "rejected"})


@dataclass(frozen=True)
class UpdateOrder:
    order: str  # START_FIRST or STOP_FIRST
    reason: str  # why stop-first; "" for start-first


def update_order(replicas: int, nodes: int, has_volumes: bool) -> UpdateOrder:
    """Start-first (the new task is up before the old one stops) wherever a new task has
    somewhere to go; else stop-first, saying why. Every task publishes the app's one port on
    its node, so two tasks of the app never share a node."""
    if has_volumes:
        return UpdateOrder(
            STOP_FIRST,
            "updates stop-first: the app's volumes live on one node, so the old task "
            "stops before the new one starts there (never two writers, never a port clash)",
        )
    if replicas >= nodes:
        return UpdateOrder(
            STOP_FIRST,
            f"updates stop-first: {replicas} replicas on {nodes} nodes leave no node free "
            "for a new task on the app's port",
        )
    return UpdateOrder(START_FIRST, "")


def free_port(used: Iterable[int], low: int, high: int) -> int | None:
    """The lowest port of [low, high] not in `used`; None when the range is full."""
    taken = set(used)
    return next((p for p in range(low, high + 1) if p not in taken), None)


def upstream_list(addresses: Iterable[str], port: int) -> str:
    """Where a Swarm app answers, as the router takes it: `a:port,b:port` (sorted)."""
    return ",".join(f"{a}:{port}" for a in sorted(set(addresses)))


def route_upstreams(
    ready: Mapping[str, str], port: int | None, replicas: int, pinned: str | None
) -> tuple[str, ...]:
    """Where an app's route sends requests: `node:port` of every ready node (id -> address)
    the app may run on; its one node for an app pinned there (none while that node is not
    ready); nothing for an app scaled to zero or without a port."""
    if not port or replicas == 0:
        return ()
    nodes = [a for node, a in ready.items() if pinned is None or node == pinned]
    return tuple(split_upstreams(upstream_list(nodes, port)))


def split_upstreams(address: str) -> list[str]:
    """The inverse of `upstream_list`; a plain `host:port` is a list of one."""
    return [part for part in address.split(",") if part]


def task_state(task: Mapping[str, Any]) -> str:
    return str((task.get("Status") or {}).get("State") or "")


def is_wanted(task: Mapping[str, Any]) -> bool:
    """The orchestrator still wants this task up (not shut down by an update or a scale)."""
    return task.get("DesiredState") in ("running", "ready")


def running(tasks: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [t for t in tasks if task_state(t) == "running" and is_wanted(t)]


def gave_up(replicas: int, tasks: Sequence[Mapping[str, Any]]) -> bool:
    """A service that should run but has no task up or on its way, and whose last task
    failed: the Swarm stopped restarting it (its restart policy's attempts are spent)."""
    if replicas == 0 or not tasks:
        return False
    if any(task_state(t) in LIVE_TASK_STATES and is_wanted(t) for t in tasks):
        return False
    latest = max(tasks, key=lambda t: str(t.get("UpdatedAt") or ""))
    return task_state(latest) in FAILED_TASK_STATES | {"complete", "shutdown", "orphaned"}


def drained_upstreams(
    route: Sequence[str],
    tasks: Iterable[Mapping[str, Any]],
    addresses: Mapping[str, str],
    unproven: Collection[str],
) -> tuple[str, ...]:
    """The upstreams of an app's route (`node address:port`) that get no new requests while
    its service changes: every node but those whose task runs, is wanted, and (a task of this
    start, `unproven` until then) answered its health check. A node whose task is told to stop
    drains at once: its engine deactivates the task and waits (about 3 s measured) before it
    stops the container, so the requests it is answering finish. `addresses`: node id ->
    address. While no task is proven, the unproven ones serve (they refuse until they
    listen, and the router retries; a stopping one may cut a request); nothing drains when
    no node would be left to serve."""
    stopping = {
        t.get("NodeID") for t in tasks if not is_wanted(t) and task_state(t) in LIVE_TASK_STATES
    }
    up = [t for t in running(tasks) if t.get("NodeID") not in stopping]
    proven = {t.get("NodeID") for t in up if t.get("ID") not in unproven}
    serving = {addresses.get(str(n), "") for n in proven or {t.get("NodeID") for t in up}}
    drained = tuple(u for u in route if u.rsplit(":", 1)[0] not in serving)
    return drained if len(drained) < len(route) else ()


def drain_slots(upstreams: Sequence[str], drained: Collection[str]) -> list[str]:
    """Where each of a route's upstreams sends its requests while some are drained: itself,
    or (drained) the serving upstreams in turn, so the route keeps its shape and its proxy
    needs no reload. All drained, or none: each its own."""
    serving = [u for u in upstreams if u not in drained]
    if not serving or len(serving) == len(upstreams):
        return list(upstreams)
    turns = iter(serving * len(upstreams))
    return [u if u in serving else next(turns) for u in upstreams]


def release_tag(release: int) -> str:
    """The registry tag of a release's image."""
    return f"r{release}"


def unkept_tags(tags: Iterable[str], current: int | None, keep: int) -> list[str]:
    """The release tags (`r<N>`) whose images go from the registry: all but the `keep` newest
    and the `current` one; `current` None (the app is deleted) sends every tag. Tags of other
    shapes are not ours and stay."""
    numbers = sorted(
        {int(t[1:]) for t in tags if t.startswith("r") and t[1:].isdigit()}, reverse=True
    )
    if current is None:
        return [release_tag(n) for n in numbers]
    if keep == 0:
        return []
    kept = set(numbers[:keep]) | {current}
    return [release_tag(n) for n in numbers if n not in kept]
