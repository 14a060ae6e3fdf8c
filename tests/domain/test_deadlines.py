"""When a build has waited too long for a builder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ipaas.domain.deadlines import overdue_build

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
AGO = {s: NOW - timedelta(seconds=s) for s in (10, 599, 601, 3600)}


@pytest.mark.parametrize(
    ("status", "since", "lease", "code"),
    [
        ("queued", 10, None, None),
        ("queued", 599, None, None),
        ("queued", 601, None, "no_builder"),
        ("running", 3600, 10, None),  # a slow build whose builder renews its lease
        ("running", 3600, 599, None),
        ("running", 3600, 601, "builder_lost"),
        ("cancelling", 3600, 3600, "builder_lost"),
        ("running", 3600, None, None),
        ("succeeded", 3600, None, None),
        ("failed", 3600, 3600, None),
    ],
)
def test_only_builds_nobody_works_on_are_overdue(
    status: str, since: int, lease: int | None, code: str | None
) -> None:
    late = overdue_build(status, AGO[since], AGO[lease] if lease else None, NOW, 600)
    assert (late.code if late else None) == code
    if late:
        assert "builder" in late.reason and "s" in late.reason
