"""The pure notice rules: which state changes tell the user, the crash throttle, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ipaas.domain.notices import (
    CrashWindow,
    NoticeKind,
    digest_due,
    http_temporary,
    nearly_used,
    on_crash,
    recovery_holds,
    retry_delay_s,
    smtp_temporary,
    transition_notice,
)
from ipaas.domain.quotas import Amounts

K = NoticeKind
T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = 3600.0


@pytest.mark.parametrize(
    ("from_state", "to_state", "reason", "kind"),
    [
        ("building", "failed", "build failed: exit status 1", K.BUILD_FAILED),
        ("pending", "failed", "build 3 failed: no builder took it", K.BUILD_FAILED),
        ("building", "failed", "build cancelled", None),
        ("starting", "failed", "start failed 3 times: exited with 1", K.DEPLOY_FAILED),
        ("rolling_out", "running", "build failed: boom; release 1 still serves", K.BUILD_FAILED),
        (
            "rolling_out",
            "running",
            "release 2 did not come up: x; release 1 still serves",
            K.DEPLOY_FAILED,
        ),
        ("rolling_out", "running", "build cancelled: by request; release 1 still serves", None),
        ("starting", "running", "release 1 is healthy", K.DEPLOY_SUCCEEDED),
        ("rolling_out", "running", "release 2 is healthy", K.DEPLOY_SUCCEEDED),
        ("running", "crashed", "exited with 137", K.APP_CRASHED),
        ("crashed", "running", "release 1 is healthy", K.APP_RECOVERED),
        ("running", "stopped", "stopped by the user", None),
        ("running", "deleting", "deleted by the user", None),
        ("pending", "building", "build 1 started", None),
        (None, "pending", "created", None),
    ],
)
def test_which_changes_make_notices(
    from_state: str | None, to_state: str, reason: str, kind: K | None
) -> None:
    assert transition_notice(from_state, to_state, reason) == kind


def test_crash_throttle_tells_one_crash_an_hour_and_counts_the_rest() -> None:
    first = on_crash(CrashWindow(), T0, HOUR)
    assert first.send and first.window == CrashWindow(T0, 0)
    quiet = on_crash(first.window, T0 + timedelta(minutes=10), HOUR)
    assert not quiet.send and quiet.window == CrashWindow(T0, 1)
    assert not digest_due(quiet.window, T0 + timedelta(minutes=59), HOUR)
    assert digest_due(quiet.window, T0 + timedelta(minutes=60), HOUR)
    # A crash after the window (before any digest went) is told, with the quiet ones.
    later = on_crash(quiet.window, T0 + timedelta(minutes=61), HOUR)
    assert later.send and later.earlier == 1 and later.window.suppressed == 0


def test_no_digest_without_quiet_crashes() -> None:
    assert not digest_due(CrashWindow(T0, 0), T0 + timedelta(days=1), HOUR)
    assert not digest_due(CrashWindow(), T0, HOUR)


@pytest.mark.parametrize(
    ("state", "crashed_since", "holds"),
    [
        ("running", False, True),
        ("running", True, False),
        ("crashed", False, False),
        (None, False, False),
    ],
)
def test_recovery_holds(state: str | None, crashed_since: bool, holds: bool) -> None:
    assert recovery_holds(state, crashed_since) is holds


@pytest.mark.parametrize(
    ("attempt", "delay"), [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (30, 3600)]
)
def test_retry_delay_doubles_up_to_the_cap(attempt: int, delay: float) -> None:
    assert retry_delay_s(attempt, 30, 3600) == delay


@pytest.mark.parametrize(
    ("code", "temporary"),
    [(421, True), (451, True), (452, True), (500, False), (535, False), (550, False), (554, False)],
)
def test_smtp_replies(code: int, temporary: bool) -> None:
    assert smtp_temporary(code) is temporary


@pytest.mark.parametrize(
    ("status", "temporary"),
    [
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (400, False),
        (401, False),
        (404, False),
        (410, False),
    ],
)
def test_http_replies(status: int, temporary: bool) -> None:
    assert http_temporary(status) is temporary


def test_quota_warning_is_told_when_crossed() -> None:
    limits = Amounts(apps=5, memory_mb=1000, cpus=4.0, volumes=10)
    assert nearly_used(Amounts(apps=3), Amounts(apps=4), limits, 0.8) == ["apps"]
    assert nearly_used(Amounts(apps=4), Amounts(apps=5), limits, 0.8) == []  # told already
    assert nearly_used(Amounts(memory_mb=100), Amounts(memory_mb=900, cpus=3.5), limits, 0.8) == [
        "memory_mb",
        "cpus",
    ]
    assert (
        nearly_used(Amounts(), Amounts(apps=1), Amounts(apps=0), 0.8) == []
    )  # no limit to warn of
