"""Deploy decisions: which release comes up, which containers stop and which are removed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ipaas.domain.rollout import plan_retirement, release_to_deploy, start_retry_delay_s

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Box:
    id: str
    state: str
    minutes: int | None  # started this many minutes after T0 (None: never started)
    app_id: str = "a"
    finished_at: datetime | None = None

    @property
    def started_at(self) -> datetime | None:
        return None if self.minutes is None else T0 + timedelta(minutes=self.minutes)


@pytest.mark.parametrize(
    ("target", "current", "expected"),
    [(None, None, None), (None, 3, 3), (5, 3, 5), (2, None, 2)],
)
def test_the_asked_release_wins_over_the_running_one(
    target: int | None, current: int | None, expected: int | None
) -> None:
    assert release_to_deploy(target, current) == expected


def test_every_other_live_container_stops_and_the_kept_one_is_untouched() -> None:
    boxes = [Box("new", "running", 9), Box("old", "running", 5), Box("gone", "exited", 1)]
    plan = plan_retirement(boxes, keep="new", retained=2)
    assert plan.stop == ("old",)
    assert plan.remove == ()


@pytest.mark.parametrize(
    ("retained", "removed"),
    [(0, ("c4", "c3", "c2", "c1")), (1, ("c3", "c2", "c1")), (3, ("c1",)), (9, ())],
)
def test_only_the_newest_retired_containers_are_kept(
    retained: int, removed: tuple[str, ...]
) -> None:
    boxes = [Box(f"c{i}", "exited", i) for i in range(1, 5)] + [Box("new", "running", 10)]
    assert plan_retirement(boxes, keep="new", retained=retained).remove == removed


def test_containers_that_never_started_count_as_oldest() -> None:
    boxes = [Box("never", "created", None), Box("c1", "exited", 1)]
    plan = plan_retirement(boxes, keep=None, retained=1)
    assert plan.stop == ("never",)
    assert plan.remove == ("never",)


def test_delete_keeps_nothing() -> None:
    boxes = [Box("a1", "running", 1), Box("a2", "exited", 2)]
    plan = plan_retirement(boxes, keep=None, retained=0)
    assert set(plan.stop) == {"a1"} and set(plan.remove) == {"a1", "a2"}


@pytest.mark.parametrize(("attempt", "delay"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (9, 10.0)])
def test_engine_retries_back_off_to_a_cap(attempt: int, delay: float) -> None:
    assert start_retry_delay_s(attempt) == delay
