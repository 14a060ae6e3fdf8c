"""A process cap for builds: the engine's /build API has no pids limit, but it accepts a
parent cgroup for the containers of the build's steps. Each build gets its own parent with
`pids.max` set, so a fork bomb in a `RUN` step stops at the cap instead of filling the host.

cgroup v1 (a `pids` hierarchy) and v2 (the unified tree, `cgroupfs` driver) are both handled;
where neither can be written (not root, no pids controller) the build goes on uncapped and
its log says so.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


class BuildCgroup:
    def __init__(self, name: str, pids_max: int, root: Path = CGROUP_ROOT) -> None:
        self.name = name
        self.pids_max = pids_max
        tree = _pids_tree(root)
        self._dir = tree / name if tree is not None else None

    def create(self) -> str | None:
        """The cgroup parent for the build's containers, or None when it cannot be made."""
        if self._dir is None or self.pids_max <= 0:
            return None
        try:
            self._dir.mkdir(exist_ok=True)
            (self._dir / "pids.max").write_text(str(self.pids_max))
        except OSError:
            return None
        return self.name

    def remove(self, attempts: int = 20) -> None:
        """Drop the parent once its step containers are gone (the engine removes them a moment
        after the build ends); an empty cgroup left behind holds nothing."""
        if self._dir is None:
            return
        for _ in range(attempts):
            try:
                self._dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        with contextlib.suppress(OSError):
            self._dir.rmdir()


def _pids_tree(root: Path) -> Path | None:
    """Where pids cgroups are made: the v1 `pids` hierarchy, or the v2 root when its children
    may use the pids controller."""
    if (root / "pids" / "pids.max").exists() or (root / "pids" / "tasks").exists():
        return root / "pids"
    controllers = root / "cgroup.subtree_control"
    if controllers.exists() and "pids" in controllers.read_text().split():
        return root
    return None
