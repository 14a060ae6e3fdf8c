"""Named points of a build and a deploy, where a fault-injection test can hold the process.

A running platform passes every checkpoint without a pause. With `pause_at` set (a setting for
tests, never for production), the process, on reaching that phase, writes the marker file
`<data_dir>/paused-at-<phase>` and waits there for good: the test then kills it at exactly that
point, instead of sleeping and hoping that it got there.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class Phase(StrEnum):
    CLONE = "clone"  # a build leased, before the repository is fetched
    BUILD = "build"  # the checkout planned, before the image is built
    START = "start"  # a release about to be started
    HEALTH_CHECK = "health_check"  # its container created and running, not yet healthy
    ROUTE_SWITCH = "route_switch"  # the route moved to the new container, the app not yet running
    RETIRE = "retire"  # the new release running, the old containers not yet stopped
    DELETE = "delete"  # a deleted app's route removed, its containers not yet


class Checkpoints(Protocol):
    async def reached(self, phase: Phase) -> None: ...


class PassThrough:
    """Production: every checkpoint is passed at once."""

    async def reached(self, phase: Phase) -> None:
        return None


class PauseAt:
    """Tests: holds for good whatever reaches a checkpoint of `phase`."""

    def __init__(self, phase: Phase, marker_dir: Path) -> None:
        self.phase = phase
        self.marker = marker_dir / f"paused-at-{phase}"

    async def reached(self, phase: Phase) -> None:
        if phase != self.phase:
            return
        self.marker.write_text(f"{phase}\n")
        await asyncio.Event().wait()


def checkpoints(pause_at: Phase | None, data_dir: Path) -> Checkpoints:
    return PauseAt(pause_at, data_dir) if pause_at else PassThrough()
