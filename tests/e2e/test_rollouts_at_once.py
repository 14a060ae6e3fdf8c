"""Code-only rollouts of several apps asked for at once: each one runs its new code within
seconds, its build run once.

A builder used to take a rollout's build in the moment between its recording and the API moving
the app to `rolling_out`, and lose it: the build sat under a lease nobody renewed, and the app
waited `build.lease_s` (61.9 s in bench/scale.py). That took a race: this test caught it in about
one run of five; tests/apps/test_scheduler.py shows the cause every time."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipaas.config import Settings
from tests.e2e.conftest import E2E, commit_all, e2e_settings, running_platform

APPS = 6
ROUNDS = 4
# A stall of one lease (60 s) is what this catches; a redeploy takes ~3 s here, ~10 s under load.
WITHIN_S = 20.0


@pytest.fixture(scope="module")
def plane(
    module_database_url: str, base_images: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2E]:
    settings = e2e_settings(
        tmp_path_factory.mktemp("e2e"),
        module_database_url,
        # Idle build slots poll the job table: the more there are, the likelier one took a
        # build in the moment between its recording and its app moving to rolling_out.
        build={"concurrency": 4, "lease_s": 60},
    )
    with running_platform(settings, tmp_path_factory) as platform:
        yield platform


def _rollout_all(plane: E2E, ids: list[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
        answers = list(pool.map(lambda app_id: plane.post(app_id, "rollout"), ids))
    assert [r.status_code for r in answers] == [202] * len(ids), [r.text for r in answers]


def _times_to_release(plane: E2E, ids: list[str], release: int, t0: float) -> dict[str, float]:
    """Seconds from the requests until each app runs `release` (polled; gives up after 3 min)."""
    seen: dict[str, float] = {}
    while len(seen) < len(ids) and time.monotonic() - t0 < 180:
        for app_id in set(ids) - set(seen):
            status = plane.get(app_id, "/status")
            if status["state"] == "running" and status["current_release"] == release:
                seen[app_id] = time.monotonic() - t0
        time.sleep(0.1)
    return seen


def test_code_only_rollouts_at_once_each_run_within_seconds(plane: E2E) -> None:
    repos: list[Path] = [plane.repo("static-site") for _ in range(APPS)]
    ids = [
        plane.create(repo, health_check="/health", resources={"memory_mb": 32}) for repo in repos
    ]
    for app_id in ids:
        assert plane.wait(app_id)["state"] == "running", plane.reasons(app_id)
    for round_no in range(1, ROUNDS + 1):
        for repo in repos:
            index = repo / "index.html"
            index.write_text(index.read_text() + f"<!-- round {round_no} -->\n")
            commit_all(repo, f"round {round_no}")
        t0 = time.monotonic()
        _rollout_all(plane, ids)
        seen = _times_to_release(plane, ids, round_no + 1, t0)
        slow = {i: round(seen.get(i, -1.0), 1) for i in ids if seen.get(i, 1e9) > WITHIN_S}
        assert not slow, {i: plane.get(i, "/builds")[0] for i in slow}
        # Each build ran once: none was taken, lost, and taken again after its lease.
        attempts = [plane.get(i, f"/builds/{round_no + 1}")["attempt"] for i in ids]
        assert attempts == [1] * APPS
