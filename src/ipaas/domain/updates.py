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
    "previews": Action.NONE,  # read when a pull request's webhook arrives
}


def action_for(changed_fields: Iterable[str]) -> Action:
    return max((FIELD_ACTIONS[f] for f in changed_fields), default=Action.NONE)


ACTION_WORDS: dict[Action, str] = {
    Action.NONE: "nothing to redo",
    Action.REROUTE: "re-route",
    Action.RESTART: "restart",
    Action.REBUILD: "rebuild",
}


def change_note(changed_fields: Iterable[str], action: Action, when: str = "") -> str:
    """What an app's events say about an update: the fields, and what applying them takes
    (and when, if not at once): `settings changed: port, health_check (restart)`."""
    fields = ", ".join(sorted(changed_fields))
    return f"settings changed: {fields} ({ACTION_WORDS[action]}{f', {when}' if when else ''})"
