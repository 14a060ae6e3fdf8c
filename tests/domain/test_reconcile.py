"""The warden's decisions, table by table: every app state against what the engine reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ipaas.domain.reconcile import (
    GAVE_UP,
    Action,
    Do,
    finish_times_needed,
    moved_addresses,
    reconcile_actions,
)
from ipaas.domain.states import State

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class App:
    id: str
    state: str
    container_id: str | None = None
    state_reason: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class Box:
    id: str
    app_id: str
    state: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    store_id: str = "ours"
    created_at: datetime | None = None
    upstreams: tuple[str, ...] = ()


def decide(apps: list[App], boxes: list[Box], restarting: set[str] | None = None) -> list[Action]:
    known = {a.id: a for a in apps}
    return reconcile_actions(known, boxes, restarting or set(), NOW, 3600, store_id="ours")


@pytest.mark.parametrize("state", ["running", "restarting", "created"])
def test_a_running_app_with_a_live_container_needs_nothing(state: str) -> None:
    assert decide([App("a", State.RUNNING, "c1")], [Box("c1", "a", state)]) == []


@pytest.mark.parametrize("state", ["exited", "dead", "paused", "removing"])
def test_a_running_app_whose_container_stopped_is_reported_crashed(state: str) -> None:
    actions = decide([App("a", State.RUNNING, "c1")], [Box("c1", "a", state)])
    assert actions == [Action(Do.REPORT_CRASH, "a", "c1")]


def test_a_running_app_whose_container_vanished_is_reported_crashed_without_one() -> None:
    assert decide([App("a", State.RUNNING, "gone")], []) == [Action(Do.REPORT_CRASH, "a", None)]


def test_a_running_app_with_only_an_old_container_is_crashed() -> None:
    actions = decide([App("a", State.RUNNING, "c2")], [Box("c1", "a", "running")])
    assert actions == [Action(Do.RETIRE_EXTRA, "a"), Action(Do.REPORT_CRASH, "a", None)]


@pytest.mark.parametrize("state", [State.RUNNING, State.CRASHED, State.STOPPED, State.FAILED])
def test_live_containers_beside_a_settled_apps_current_one_are_retired(state: State) -> None:
    """What a process killed between switching a route and retiring the old release left."""
    boxes = [Box("new", "a", "running"), Box("old", "a", "running"), Box("older", "a", "exited")]
    actions = decide([App("a", state, "new", "x")], boxes)
    assert Action(Do.RETIRE_EXTRA, "a") in actions


@pytest.mark.parametrize(
    "state", [State.PENDING, State.BUILDING, State.STARTING, State.ROLLING_OUT, State.DELETING]
)
def test_containers_of_an_app_in_motion_are_left_to_what_moves_it(state: State) -> None:
    boxes = [Box("new", "a", "running"), Box("old", "a", "running")]
    assert decide([App("a", state, "old")], boxes) == []


def test_an_app_the_warden_is_restarting_keeps_its_new_container() -> None:
    boxes = [Box("new", "a", "running")]
    assert decide([App("a", State.CRASHED, "old")], boxes, restarting={"a"}) == []


def test_a_crashed_app_is_restarted_once() -> None:
    assert decide([App("a", State.CRASHED, "c1")], []) == [Action(Do.RESTART, "a")]
    assert decide([App("a", State.CRASHED, "c1")], [], restarting={"a"}) == []


def test_a_crash_loop_the_warden_gave_up_on_is_left_to_the_user() -> None:
    app = App("a", State.CRASHED, "c1", f"{GAVE_UP} crashed 5 times")
    assert decide([app], []) == []


@pytest.mark.parametrize("state", [s for s in State if s not in (State.RUNNING, State.CRASHED)])
def test_apps_the_platform_or_user_is_handling_are_left_alone(state: State) -> None:
    assert decide([App("a", state, "c1")], [Box("c1", "a", "exited")]) == []


def test_containers_of_no_known_app_are_strays() -> None:
    actions = decide([], [Box("c9", "ghost", "running")])
    assert actions == [Action(Do.REMOVE_STRAY, "ghost", "c9")]


@pytest.mark.parametrize("store_id", ["another-store", ""])
def test_containers_of_another_store_or_of_none_are_never_strays(store_id: str) -> None:
    """An empty or foreign store (a wrong database URL) must not remove what others run."""
    assert decide([], [Box("c9", "ghost", "running", store_id=store_id)]) == []


def test_a_store_without_an_id_removes_nothing() -> None:
    boxes = [Box("c9", "ghost", "running", store_id="")]
    assert reconcile_actions({}, boxes, set(), NOW, 0, store_id="") == []


def test_retired_containers_past_log_retention_go_and_the_current_one_stays() -> None:
    old = NOW - timedelta(hours=2)
    young = NOW - timedelta(minutes=5)
    boxes = [
        Box("cur", "a", "exited", finished_at=old),
        Box("aged", "a", "exited", finished_at=old),
        Box("young", "a", "exited", finished_at=young),
    ]
    actions = decide([App("a", State.STOPPED, "cur")], boxes)
    assert actions == [Action(Do.REMOVE_EXPIRED, "a", "aged")]


def test_only_retired_containers_older_than_retention_need_their_stop_time() -> None:
    """A cheap listing has no stop times: the warden asks the engine only about stopped,
    retired containers created before the cutoff (younger ones cannot be past it)."""
    old, young = NOW - timedelta(hours=2), NOW - timedelta(minutes=5)
    boxes = [
        Box("cur", "a", "exited", created_at=old),  # the app's current one: never expires
        Box("live", "a", "running", created_at=old),
        Box("aged", "a", "exited", created_at=old),
        Box("young", "a", "exited", created_at=young),
        Box("known", "a", "exited", created_at=old, finished_at=old),  # already told
        Box("undated", "a", "dead"),
        Box("ghost", "gone", "exited", created_at=old),  # a stray: removed regardless
    ]
    known = {"a": App("a", State.STOPPED, "cur")}
    assert finish_times_needed(known, boxes, NOW, 3600) == ["aged", "undated"]
    assert finish_times_needed(known, boxes, NOW, 0) == []


def test_retention_off_keeps_everything() -> None:
    boxes = [Box("aged", "a", "exited", finished_at=NOW - timedelta(days=30))]
    known = {"a": App("a", State.STOPPED, None)}
    assert reconcile_actions(known, boxes, set(), NOW, 0, store_id="ours") == []


def test_containers_come_first_then_apps() -> None:
    actions = decide(
        [App("a", State.RUNNING, "c1"), App("b", State.CRASHED)],
        [Box("c1", "a", "exited"), Box("s", "zz", "running")],
    )
    assert [a.do for a in actions] == [Do.REMOVE_STRAY, Do.REPORT_CRASH, Do.RESTART]


def test_a_running_swarm_app_whose_nodes_changed_is_routed_to_the_nodes_it_has_now() -> None:
    apps = {
        "a": App("a", State.RUNNING, "s1", address="n1:30000,n2:30000,n3:30000"),
        "same": App("same", State.RUNNING, "s2", address="n1:30001"),
        "moving": App("moving", State.ROLLING_OUT, "s3", address="n1:30002"),
        "old": App("old", State.RUNNING, "s4", address="n1:30003"),
        "nowhere": App("nowhere", State.RUNNING, "s5", address="n3:30004"),
        "docker": App("docker", State.RUNNING, "c6", address="10.1.0.5:8080"),
    }
    boxes = [
        Box("s1", "a", "running", upstreams=("n1:30000", "n2:30000")),
        Box("s2", "same", "running", upstreams=("n1:30001",)),
        Box("s3", "moving", "running", upstreams=("n2:30002",)),  # the rollout routes it
        Box("older", "old", "running", upstreams=("n2:30003",)),  # not the current one
        Box("s5", "nowhere", "running"),  # its one node is gone: the route stays
        Box("c6", "docker", "running"),  # a plain container: nothing to follow
    ]
    assert moved_addresses(apps, boxes) == {"a": "n1:30000,n2:30000"}
