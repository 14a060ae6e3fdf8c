"""Deploy decisions: which release to start, and what to do with the containers it replaces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ipaas.domain.statuses import LIVE_CONTAINERS
from ipaas.domain.views import ContainerView

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def release_to_deploy(target_release: int | None, current_release: int | None) -> int | None:
    """A deploy brings up the release asked for, else the one that ran last."""
    return target_release or current_release


@dataclass(frozen=True)
class Retirement:
    """Containers to stop (they still hold ports and memory) and to remove for good."""

    stop: tuple[str, ...]
    remove: tuple[str, ...]


def plan_retirement(
    containers: Sequence[ContainerView], keep: str | None, retained: int
) -> Retirement:
    """Every container but `keep` stops; the `retained` newest of them stay (stopped, so that
    their logs remain readable) and older ones are removed."""
    others = [c for c in containers if c.id != keep]
    live = tuple(c.id for c in others if c.state in LIVE_CONTAINERS)
    by_age = sorted(others, key=lambda c: c.started_at or _EPOCH, reverse=True)
    return Retirement(stop=live, remove=tuple(c.id for c in by_age[max(retained, 0) :]))


def start_retry_delay_s(attempt: int) -> float:
    """Wait before another start when the engine could not be reached."""
    return float(min(2**attempt, 10))
