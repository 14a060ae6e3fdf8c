"""What an application update needs: the smallest action that applies the change."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class Action(IntEnum):
    """Ordered: a larger action includes the smaller ones."""

    NONE = 0
    REROUTE = 1  # host name or visibility changed: only the route changes
    RESTART = 2  # same image, new container settings
    REBUILD = 3  # new source or build settings


FIELD_ACTIONS: dict[str, Action] = {
    "visibility": Action.REROUTE,  # a private route asks the control plane first
    "name": Action.REROUTE,
    "port": Action.RESTART,
    "envs": Action.RESTART,
    "health_check": Action.RESTART,
    "resources": Action.RESTART,
    "volumes": Action.RESTART,
    "replicas": Action.RESTART,
    "repo": Action.REBUILD,
    "branch": Action.REBUILD,
    "commit": Action.REBUILD,
    "root_directory": Action.REBUILD,
    "build": Action.REBUILD,
}


def action_for(changed_fields: Iterable[str]) -> Action:
    return max((FIELD_ACTIONS[f] for f in changed_fields), default=Action.NONE)
