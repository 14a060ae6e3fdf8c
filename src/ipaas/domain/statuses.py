"""Status vocabularies other than the app's state: one enum each, shared by store and API."""

from __future__ import annotations

from enum import StrEnum


class BuildStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


# A builder still owes an outcome for these.
ACTIVE_BUILDS = (BuildStatus.QUEUED, BuildStatus.RUNNING, BuildStatus.CANCELLING)
# A builder holds a lease on these.
LEASED_BUILDS = (BuildStatus.RUNNING, BuildStatus.CANCELLING)


class ContainerState(StrEnum):
    """The engine's words for a container's state (Docker's, which Swarm tasks map onto)."""

    CREATED = "created"
    RUNNING = "running"
    RESTARTING = "restarting"
    PAUSED = "paused"
    EXITED = "exited"
    DEAD = "dead"
    REMOVING = "removing"


# A container in one of these still holds (or is about to hold) the app's port and memory.
LIVE_CONTAINERS = frozenset(
    {ContainerState.RUNNING, ContainerState.RESTARTING, ContainerState.CREATED}
)
