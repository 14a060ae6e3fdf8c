"""Cron expressions for backup schedules: what is accepted (and named precisely when not), and
when the next run comes; a schedule is due after its next run and overdue a window later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ipaas.domain.cron import InvalidCron, next_run, parse_cron
from ipaas.domain.databases import BackupPlan

T = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a Tuesday


def at(day: int, hour: int = 0, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 3 * * *", T, at(2, 3)),
        ("*/15 * * * *", T, at(1, 12, 15)),  # strictly after: 12:00 itself is not next
        ("30 9-17/4 * * mon-fri", T, at(1, 13, 30)),
        ("0 0 * * sun", T, at(6)),
        ("0 0 * * 7", T, at(6)),  # 7 is Sunday too
        ("0 6 1,15 * *", T, at(15, 6)),
        ("0 0 1 jan *", T, datetime(2027, 1, 1, tzinfo=UTC)),
        ("0 0 29 2 *", T, datetime(2028, 2, 29, tzinfo=UTC)),  # the next leap day
        ("@daily", T, at(2)),
        ("@hourly", T, at(1, 13)),
        ("@weekly", T, at(6)),
        ("@monthly", T, datetime(2027, 1, 1, tzinfo=UTC)),
        # Day of month and day of week both restricted: either one matches (standard cron).
        ("0 0 13 * fri", T, at(4)),
    ],
)
def test_next_run(expression: str, after: datetime, expected: datetime) -> None:
    assert next_run(parse_cron(expression), after) == expected


def test_expressions_are_normalised() -> None:
    assert parse_cron("  0   3 * *   MON ") == "0 3 * * mon"
    assert parse_cron("@Daily") == "@daily"


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "1 to 200 characters"),
        ("0 3 * *", "five fields"),
        ("0 0 3 * * *", "five fields"),  # seconds are not standard
        ("60 * * * *", "minute is 0 to 59"),
        ("0 24 * * *", "hour is 0 to 23"),
        ("0 0 0 * *", "day of month is 1 to 31"),
        ("0 0 * 13 *", "month is 1 to 12"),
        ("0 0 * * 8", "day of week is 0 to 7"),
        ("0 0 * * funday", "'funday' is not a day of week"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "step 0"),
        ("5/10 * * * *", "a step needs * or a range"),
        ("0 0 L * *", "is not a day of month"),
        ("0 0 * * 5#3", "not *, N, N-M"),
        ("0 0 ? * *", "not *, N, N-M"),
        ("0 0 1,,2 * *", "an empty item"),
        ("@reboot", "the aliases are"),
        ("0 0 30 2 *", "never run"),
        ("0 0 31 4,6 *", "never run"),
        ("0 0 * * *; rm -rf /", "five fields"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(expression: str, says: str) -> None:
    with pytest.raises(InvalidCron) as caught:
        parse_cron(expression)
    assert caught.value.code == "invalid_cron" and says in caught.value.detail


def test_a_cron_plan_is_due_at_its_next_run_and_overdue_a_window_later() -> None:
    nightly = BackupPlan(cron="0 3 * * *")
    last = at(1, 3, 5)  # the backup of the 1st at 03:00 ran
    assert not nightly.due(at(2, 2, 59), last) and nightly.due(at(2, 3), last)
    # Down over several runs: one backup when it is back, not one per run missed.
    assert nightly.due(at(5, 9), last)
    window = 1800.0
    assert not nightly.overdue(at(2, 3, 29), window, last)
    assert nightly.overdue(at(2, 3, 31), window, last)  # the 03:00 run brought no good backup
    # The window follows the cron's own period: a weekly schedule is not overdue after a day.
    weekly = BackupPlan(cron="@weekly")
    assert not weekly.overdue(at(3), window, at(1)) and weekly.overdue(at(6, 1), window, at(1))
    assert weekly.describe() == "cron '@weekly' (UTC)"


def test_an_interval_plan_keeps_its_old_meaning() -> None:
    hourly = BackupPlan(interval_s=3600)
    hour = timedelta(hours=1)
    assert hourly.due(T, T - 2 * hour) and not hourly.due(T, T - hour / 2)
    assert hourly.overdue(T, 1800, T - 2 * hour) and not hourly.overdue(T, 1800, T - hour)
    off = BackupPlan(interval_s=0)
    assert (
        not off.enabled and not off.due(T, T - 100 * hour) and not off.overdue(T, 0, T - 100 * hour)
    )
