"""Swarm decisions: update order, ports, upstreams, when the Swarm gave up on an app."""

from __future__ import annotations

from typing import Any

import pytest

from ipaas.domain.swarm import (
    START_FIRST,
    STOP_FIRST,
    drain_slots,
    drained_upstreams,
    free_port,
    gave_up,
    route_upstreams,
    split_upstreams,
    unkept_tags,
    update_order,
    upstream_list,
)


@pytest.mark.parametrize(
    ("replicas", "nodes", "volumes", "order", "says"),
    [
        (1, 3, False, START_FIRST, ""),
        (2, 3, False, START_FIRST, ""),
        (3, 3, False, STOP_FIRST, "3 replicas on 3 nodes"),
        (1, 1, False, STOP_FIRST, "1 replicas on 1 nodes"),
        (1, 3, True, STOP_FIRST, "volumes live on one node"),
    ],
)
def test_update_order(replicas: int, nodes: int, volumes: bool, order: str, says: str) -> None:
    decided = update_order(replicas, nodes, volumes)
    assert decided.order == order
    assert (says in decided.reason) if says else decided.reason == ""


def test_free_port_takes_the_lowest_free_one_or_none() -> None:
    assert free_port([], 30000, 30002) == 30000
    assert free_port([30000, 30002], 30000, 30002) == 30001
    assert free_port([30000, 30001, 30002], 30000, 30002) is None


def test_upstreams_round_trip_sorted_and_unique() -> None:
    joined = upstream_list(["10.0.0.3", "10.0.0.2", "10.0.0.3"], 30001)
    assert joined == "10.0.0.2:30001,10.0.0.3:30001"
    assert split_upstreams(joined) == ["10.0.0.2:30001", "10.0.0.3:30001"]
    assert split_upstreams("127.0.0.1:8080") == ["127.0.0.1:8080"]


def _task(state: str, desired: str = "running", at: str = "2026-01-01T00:00:01Z") -> Any:
    return {"Status": {"State": state}, "DesiredState": desired, "UpdatedAt": at}


@pytest.mark.parametrize(
    ("replicas", "tasks", "expected"),
    [
        (1, [_task("running")], False),
        (1, [_task("failed", at="1"), _task("starting", at="2")], False),  # a restart coming
        (1, [_task("failed", desired="shutdown", at="1"), _task("failed", at="2")], True),
        (0, [_task("failed")], False),  # stopped by the user
        (1, [], False),  # not scheduled yet
    ],
)
def test_gave_up(replicas: int, tasks: list[Any], expected: bool) -> None:
    assert gave_up(replicas, tasks) is expected


def test_the_route_lists_every_ready_node_the_app_may_run_on() -> None:
    ready = {"n2": "10.0.0.3", "n1": "10.0.0.2"}
    assert route_upstreams(ready, 30001, 1, None) == ("10.0.0.2:30001", "10.0.0.3:30001")
    assert route_upstreams(ready, 30001, 1, "n2") == ("10.0.0.3:30001",)
    assert route_upstreams(ready, 30001, 1, "n9") == ()  # its node is not ready
    assert route_upstreams(ready, 30001, 0, None) == ()  # scaled to zero
    assert route_upstreams(ready, None, 1, None) == ()


def test_the_registry_keeps_the_newest_releases_and_the_running_one() -> None:
    tags = ["r1", "r10", "r2", "r9", "latest", "rx"]
    assert unkept_tags(tags, 10, 2) == ["r2", "r1"]
    assert unkept_tags(tags, 2, 2) == ["r1"]  # rolled back to 2: it stays as well
    assert unkept_tags(tags, 10, 0) == []  # keep everything
    assert unkept_tags(tags, None, 2) == ["r10", "r9", "r2", "r1"]  # the app is deleted


NODES = {"n1": "10.0.0.2", "n2": "10.0.0.3", "n3": "10.0.0.4"}
ROUTE = ("10.0.0.2:30001", "10.0.0.3:30001", "10.0.0.4:30001")


def _on(node: str, state: str, desired: str = "running", task: str = "") -> Any:
    return {**_task(state, desired), "NodeID": node, "ID": task or f"old-{node}"}


OLD = [_on("n1", "running"), _on("n2", "running"), _on("n3", "running")]


@pytest.mark.parametrize(
    ("tasks", "unproven", "drained"),
    [
        (OLD, set(), ()),  # all serve
        # Stop-first: n1's task is told to stop (it still runs): n1 drains at once.
        ([_on("n1", "running", "shutdown"), *OLD[1:]], set(), ("10.0.0.2:30001",)),
        # It stopped; its successor is starting, then runs but has not answered its check.
        (
            [_on("n1", "shutdown", "shutdown"), _on("n1", "starting", task="new-1"), *OLD[1:]],
            {"new-1"},
            ("10.0.0.2:30001",),
        ),  # fmt: skip
        (
            [_on("n1", "shutdown", "shutdown"), _on("n1", "running", task="new-1"), *OLD[1:]],
            {"new-1"},
            ("10.0.0.2:30001",),
        ),  # fmt: skip
        # It answered: n1 serves again, and the next node's task is told to stop.
        (
            [_on("n1", "running", task="new-1"), _on("n2", "running", "shutdown"), OLD[2]],
            set(),
            ("10.0.0.3:30001",),
        ),  # fmt: skip
        # A node without a task (2 replicas on 3 nodes) gets no requests meanwhile.
        (OLD[:2], set(), ("10.0.0.4:30001",)),
        # A failed task serves nothing; a new task's failure leaves its node drained.
        ([_on("n1", "failed", task="new-1"), *OLD[1:]], {"new-1"}, ("10.0.0.2:30001",)),
        # One replica: draining its only node would leave nothing to serve.
        ([_on("n1", "running", "shutdown")], set(), ()),
        # The Swarm told n2's task to stop before n1's new one answered (2 replicas): no task
        # is proven, so the unproven one serves (it refuses until it listens: a retry).
        (
            [_on("n1", "running", task="new-1"), _on("n2", "running", "shutdown")],
            {"new-1"},
            ("10.0.0.3:30001", "10.0.0.4:30001"),
        ),  # fmt: skip
        ([], set(), ()),
    ],
)
def test_a_node_drains_while_its_task_stops_or_its_new_one_is_unproven(
    tasks: list[Any], unproven: set[str], drained: tuple[str, ...]
) -> None:
    assert drained_upstreams(ROUTE, tasks, NODES, unproven) == drained


def test_nothing_drains_for_an_app_without_a_route() -> None:
    assert drained_upstreams((), [_on("n1", "running", "shutdown")], NODES, ()) == ()


@pytest.mark.parametrize(
    ("drained", "slots"),
    [
        ((), ["a", "b", "c"]),
        (("c",), ["a", "b", "a"]),  # c's share goes to a serving upstream
        (("a",), ["b", "b", "c"]),
        (("a", "c"), ["b", "b", "b"]),
        (("a", "b", "c"), ["a", "b", "c"]),  # nothing left to serve: no drain
        (("x",), ["a", "b", "c"]),  # not on the route
    ],
)
def test_drained_slots_send_to_the_serving_upstreams(
    drained: tuple[str, ...], slots: list[str]
) -> None:
    assert drain_slots(["a", "b", "c"], drained) == slots
