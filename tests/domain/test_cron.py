"""Cron expressions for backup schedules: what is accepted (and named precisely when not), and
when the next run comes; a schedule is due after its next run and overdue a window later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ipaas.config import DatabaseSettings
from ipaas.domain.cron import InvalidCron, next_run, parse_cron, shortest_gap
from ipaas.domain.databases import BackupPlan
from ipaas.domain.errors import InvalidInput

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


@pytest.mark.parametrize(
    ("expression", "seconds", "between"),
    [
        ("* * * * *", 60, "00:00 and 00:01 UTC"),
        ("0,1 * * * *", 60, "00:00 and 00:01 UTC"),  # tight once an hour only
        ("0,58 * * * *", 120, "00:58 and 01:00 UTC"),  # across the hour
        ("59 23,0 * * *", 3600, "23:59 and 00:59 the next day UTC"),  # across midnight
        ("0 9-17/4 * * *", 4 * 3600, "09:00 and 13:00 UTC"),
        ("@hourly", 3600, "00:00 and 01:00 UTC"),
        ("@daily", 86400, "00:00 and 00:00 the next day UTC"),
        ("30 2 * * mon-fri", 86400, "02:30 and 02:30 the next day UTC"),
        ("@weekly", 7 * 86400, "00:00 and 00:00 7 days later UTC"),
        ("0 0 2-30/2 * *", 2 * 86400, "00:00 and 00:00 2 days later UTC"),
        # Either day field matches when both are set: a Thursday the 13th, then Friday.
        ("0 0 13 * fri", 86400, "00:00 and 00:00 the next day UTC"),
        # 31 January and 1 February are a day apart, however far apart the rest are.
        ("0 0 1,31 * *", 86400, "00:00 and 00:00 the next day UTC"),
        ("0 0 29 2 *", 4 * 365 * 86400 + 86400, "00:00 and 00:00 1461 days later UTC"),
    ],
)
def test_the_shortest_gap_is_over_every_run_not_only_the_next_two(
    expression: str, seconds: int, between: str
) -> None:
    gap = shortest_gap(parse_cron(expression))
    assert gap is not None and (gap.seconds, gap.describe()) == (seconds, between)


@pytest.mark.parametrize(
    "expression", ["* * * * *", "0,1 * * * *", "59 23,0 * * *", "0 0 1,31 * *", "0 0 13 * fri"]
)
def test_the_shortest_gap_is_one_the_schedule_really_makes(expression: str) -> None:
    """Cross-checked against croniter's own runs over two years: the gap found is made, and
    no two runs come closer."""
    gap = shortest_gap(expression)
    assert gap is not None
    run, seen = next_run(expression, datetime(2026, 1, 1, tzinfo=UTC)), set()
    for _ in range(20000):
        following = next_run(expression, run)
        seen.add(int((following - run).total_seconds()))
        run = following
        if following.year > 2027:
            break
    assert min(seen) == gap.seconds


def test_a_plan_closer_than_the_minimum_is_refused_with_the_gap() -> None:
    with pytest.raises(InvalidInput) as caught:
        BackupPlan(cron="0,1 * * * *").check_spacing(3600)
    assert caught.value.code == "schedule_too_frequent"
    assert caught.value.extra == {"field": "cron", "min_interval_s": 3600, "shortest_gap_s": 60}
    assert "00:00 and 00:01 UTC" in caught.value.detail
    with pytest.raises(InvalidInput) as caught:
        BackupPlan(interval_s=600).check_spacing(3600)
    assert caught.value.extra["field"] == "interval_s"
    for fine in (BackupPlan(cron="@hourly"), BackupPlan(interval_s=3600), BackupPlan()):
        fine.check_spacing(3600)
    BackupPlan(cron="* * * * *").check_spacing(0)  # 0: no minimum


def test_the_platforms_own_schedule_must_respect_the_minimum() -> None:
    with pytest.raises(ValueError, match="within 60 s"):
        DatabaseSettings(backup_cron="0,1 * * * *")
    with pytest.raises(ValueError, match="every 60 s is too often"):
        DatabaseSettings(backup_interval_s=60)
    assert DatabaseSettings(backup_interval_s=60, min_backup_interval_s=0).backup_interval_s == 60
