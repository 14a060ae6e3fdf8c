"""The application state machine of SPEC §2, in one place.

Every state change in ipaas goes through `check_transition`; anything not in TRANSITIONS is
refused with IllegalTransition (the API answers 409 `invalid_state`).
"""

from __future__ import annotations

from enum import StrEnum

from ipaas.domain.errors import Conflict


class State(StrEnum):
    PENDING = "pending"
    BUILDING = "building"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    CRASHED = "crashed"
    ROLLING_OUT = "rolling_out"
    STOPPED = "stopped"
    DELETING = "deleting"


S = State

TRANSITIONS: dict[State, frozenset[State]] = {
    S.PENDING: frozenset({S.BUILDING, S.FAILED, S.DELETING}),
    S.BUILDING: frozenset({S.STARTING, S.FAILED, S.DELETING}),
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.DELETING}),
    S.RUNNING: frozenset({S.CRASHED, S.ROLLING_OUT, S.STOPPED, S.DELETING}),
    S.CRASHED: frozenset({S.RUNNING, S.ROLLING_OUT, S.STOPPED, S.DELETING}),
    S.FAILED: frozenset({S.ROLLING_OUT, S.DELETING}),
    S.STOPPED: frozenset({S.STARTING, S.ROLLING_OUT, S.DELETING}),
    S.ROLLING_OUT: frozenset({S.RUNNING, S.FAILED, S.DELETING}),
    S.DELETING: frozenset(),
}

# States in which the platform is working on the app; the warden leaves these alone.
BUSY = frozenset({S.PENDING, S.BUILDING, S.STARTING, S.ROLLING_OUT, S.DELETING})
# States in which the app should have a serving container.
SHOULD_RUN = frozenset({S.RUNNING, S.CRASHED})


class IllegalTransition(Conflict):
    code = "invalid_state"

    def __init__(self, current: State, target: State) -> None:
        super().__init__(
            f"not possible while the application is {current.value}",
            state=current.value,
            requested=target.value,
        )
        self.current = current
        self.target = target


def can_transition(current: State, target: State) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: State | str, target: State | str) -> State:
    """Return the target state, or raise IllegalTransition."""
    cur, tgt = State(current), State(target)
    if not can_transition(cur, tgt):
        raise IllegalTransition(cur, tgt)
    return tgt


def sources_of(target: State) -> frozenset[State]:
    """Every state from which `target` may be entered (for one conditional UPDATE)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)
