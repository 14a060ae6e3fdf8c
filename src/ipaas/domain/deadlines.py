"""When a build has waited too long for a builder: nothing waits forever.

A queued build that no builder takes (none running, the broker down), or a running one whose
builder stopped renewing its lease and nobody took over, fails after `build.no_builder_s`
with a code the user can read; a builder that is merely slow keeps renewing and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ipaas.domain.statuses import LEASED_BUILDS, BuildStatus


@dataclass(frozen=True)
class Overdue:
    code: str
    reason: str


def overdue_build(
    status: str,
    not_before: datetime,
    lease_until: datetime | None,
    now: datetime,
    no_builder_s: float,
) -> Overdue | None:
    if status == BuildStatus.QUEUED:
        waited = (now - not_before).total_seconds()
        if waited > no_builder_s:
            return Overdue(
                "no_builder",
                f"no builder took the build for {waited:.0f} s (is a builder running, and "
                "the queue reachable?)",
            )
    elif status in LEASED_BUILDS and lease_until is not None:
        silent = (now - lease_until).total_seconds()
        if silent > no_builder_s:
            return Overdue(
                "builder_lost",
                f"the builder stopped answering {silent:.0f} s ago and no builder took over",
            )
    return None
