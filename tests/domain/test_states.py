"""The state machine: every legal transition is allowed, every other one refused."""

from __future__ import annotations

import itertools

import pytest

from ipaas.domain.states import (
    TRANSITIONS,
    IllegalTransition,
    State,
    can_transition,
    check_transition,
    sources_of,
)
from ipaas.domain.updates import Action, action_for

S = State
# SPEC §2, written out independently of the table in the code.
LEGAL = {
    (S.PENDING, S.BUILDING), (S.BUILDING, S.STARTING), (S.STARTING, S.RUNNING),
    (S.PENDING, S.FAILED), (S.BUILDING, S.FAILED), (S.STARTING, S.FAILED),
    (S.RUNNING, S.CRASHED), (S.CRASHED, S.RUNNING),
    (S.RUNNING, S.ROLLING_OUT), (S.FAILED, S.ROLLING_OUT), (S.CRASHED, S.ROLLING_OUT),
    (S.STOPPED, S.ROLLING_OUT), (S.ROLLING_OUT, S.RUNNING), (S.ROLLING_OUT, S.FAILED),
    (S.RUNNING, S.STOPPED), (S.CRASHED, S.STOPPED), (S.STOPPED, S.STARTING),
} | {(s, S.DELETING) for s in S if s != S.DELETING}  # fmt: skip

ALL_PAIRS = list(itertools.product(S, S))


@pytest.mark.parametrize(("src", "dst"), sorted(LEGAL))
def test_legal_transition_is_allowed(src: State, dst: State) -> None:
    assert can_transition(src, dst)
    assert check_transition(src.value, dst.value) == dst


@pytest.mark.parametrize(("src", "dst"), [p for p in ALL_PAIRS if p not in LEGAL])
def test_illegal_transition_is_refused(src: State, dst: State) -> None:
    assert not can_transition(src, dst)
    with pytest.raises(IllegalTransition) as info:
        check_transition(src, dst)
    assert info.value.current == src and info.value.target == dst


def test_table_has_exactly_the_spec_transitions() -> None:
    table = {(s, t) for s, targets in TRANSITIONS.items() for t in targets}
    assert table == LEGAL


def test_deleting_is_final() -> None:
    assert TRANSITIONS[S.DELETING] == frozenset()
    assert sources_of(S.DELETING) == frozenset(s for s in S if s != S.DELETING)


def test_update_actions_take_the_largest_need() -> None:
    assert action_for([]) == Action.NONE
    assert action_for(["visibility"]) == Action.REROUTE  # the route asks first, or stops asking
    assert action_for(["name", "visibility"]) == Action.REROUTE
    assert action_for(["name", "envs"]) == Action.RESTART
    assert action_for(["port", "branch"]) == Action.REBUILD
