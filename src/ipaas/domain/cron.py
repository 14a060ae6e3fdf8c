"""Cron expressions for backup schedules, the pure part: the standard five fields (minute, hour,
day of month, month, day of week) with `*`, lists, ranges and steps, month and day names, and
the @hourly/@daily/@weekly/@monthly/@yearly aliases; always read in UTC. No I/O.

The grammar is checked here, field by field, so that a mistake is named precisely and nothing
beyond the standard (seconds, years, `L`, `#`, `?`, `H`) is taken; the next run is computed by
croniter (imported on first use: a platform without a cron schedule never loads it).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from ipaas.domain.errors import InvalidInput

MAX_LENGTH = 200
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _DAYS),  # 0 and 7 are Sunday
)
_ITEM = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")


class InvalidCron(InvalidInput):
    code = "invalid_cron"


def _value(word: str, field: _Field, text: str) -> int:
    if word.isdigit():
        number = int(word)
    elif word in field.names:
        number = field.low + field.names.index(word)
    else:
        raise InvalidCron(f"{text!r}: {word!r} is not a {field.name}", field=field.name)
    if not field.low <= number <= field.high:
        raise InvalidCron(
            f"{text!r}: the {field.name} is {field.low} to {field.high}, not {number}",
            field=field.name,
        )
    return number


def _check_field(part: str, field: _Field, text: str) -> None:
    for item in part.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise InvalidCron(
                f"{text!r}: {item or 'an empty item'!r} in the {field.name} is not *, N, N-M, "
                "or one of them /STEP",
                field=field.name,
            )
        star, first, last, step = match.groups()
        if not star:
            low = _value(first, field, text)
            if last is not None and low > _value(last, field, text):
                raise InvalidCron(
                    f"{text!r}: the {field.name} range {item} runs backwards", field=field.name
                )
            if step is not None and last is None:
                raise InvalidCron(
                    f"{text!r}: a step needs * or a range ({first}-{field.high}/{step})",
                    field=field.name,
                )
        if step is not None and not 1 <= int(step) <= field.high - field.low + 1:
            raise InvalidCron(f"{text!r}: the step {step} does not fit the {field.name}")


def parse_cron(text: str) -> str:
    """The expression, lower-cased with single spaces (aliases kept as written), or
    InvalidCron naming what is wrong."""
    cleaned = " ".join(text.lower().split())
    if not cleaned or len(cleaned) > MAX_LENGTH:
        raise InvalidCron(f"a cron expression of 1 to {MAX_LENGTH} characters")
    if cleaned.startswith("@"):
        if cleaned not in ALIASES:
            raise InvalidCron(f"{text!r}: the aliases are {', '.join(ALIASES)}")
        return cleaned
    parts = cleaned.split(" ")
    if len(parts) != len(_FIELDS):
        raise InvalidCron(
            f"{text!r}: five fields are needed (minute hour day-of-month month day-of-week), "
            f"not {len(parts)}"
        )
    for part, field in zip(parts, _FIELDS, strict=True):
        _check_field(part, field, text)
    try:
        next_run(cleaned, datetime(2000, 1, 1, tzinfo=UTC))
    except ValueError:
        raise InvalidCron(f"{text!r} names no date that exists, so it would never run") from None
    return cleaned


def _iterator(expression: str, start: datetime) -> Any:
    from croniter import croniter  # noqa: PLC0415 - only a cron schedule needs it

    return croniter(ALIASES.get(expression, expression), start)


def next_run(expression: str, after: datetime) -> datetime:
    """The first time strictly after `after` (UTC) that the expression names; ValueError when
    it names none (such as the 31st of a month that has 30 days)."""
    start = after.astimezone(UTC)
    try:
        found = _iterator(expression, start).get_next(datetime)
    except Exception as exc:  # croniter's own errors for a date that never comes
        raise ValueError(str(exc)) from exc
    return found.astimezone(UTC) if isinstance(found, datetime) else start


@dataclass(frozen=True)
class Gap:
    """The closest two consecutive runs of a schedule: `seconds` apart, at `first` and
    `second` (minutes of the day, UTC), the second `days` later."""

    seconds: int
    first: int
    second: int
    days: int = 0

    def describe(self) -> str:
        def hhmm(minute: int) -> str:
            return f"{minute // 60:02d}:{minute % 60:02d}"

        later = {0: "", 1: " the next day"}.get(self.days, f" {self.days} days later")
        return f"{hhmm(self.first)} and {hhmm(self.second)}{later} UTC"


# Weekdays and leap years repeat every 28 years between 1901 and 2099, so two cycles from 2001
# hold every way a schedule's days fall, and every gap between them up to 28 years.
_CALENDAR = (date(2001, 1, 1).toordinal(), date(2057, 1, 1).toordinal())
_DAY = 1440  # minutes


def _wanted(values: list[Any]) -> set[int] | None:
    """A field croniter expanded: None for `*` (any value)."""
    return None if values[0] == "*" else {int(v) for v in values}


def _day_gap(expanded: list[list[Any]]) -> int | None:
    """The fewest days between two consecutive days the schedule runs on (None: it runs on
    fewer than two days in the calendar cycles). Day of month and day of week both restricted
    match either one, as croniter (and cron) read them; otherwise both must match."""
    doms, months, dows = _wanted(expanded[2]), _wanted(expanded[3]), _wanted(expanded[4])
    dows = None if dows is None else {d % 7 for d in dows}
    either = doms is not None and dows is not None
    previous, shortest = None, None
    for ordinal in range(*_CALENDAR):
        day = date.fromordinal(ordinal)
        if months is not None and day.month not in months:
            continue
        by_dom = doms is None or day.day in doms
        by_dow = dows is None or (day.weekday() + 1) % 7 in dows
        if not ((by_dom or by_dow) if either else (by_dom and by_dow)):
            continue
        if previous is not None and (shortest is None or ordinal - previous < shortest):
            shortest = ordinal - previous
            if shortest == 1:
                break  # no two days are closer
        previous = ordinal
    return shortest


@lru_cache(maxsize=256)
def shortest_gap(expression: str) -> Gap | None:
    """The two consecutive runs of a valid expression that come closest, over every run it
    ever makes, not only the next two (`0,1 * * * *` is tight once an hour, `59 23 * * *`
    plus `0 0 * * *` once a day); None when it runs fewer than twice in 56 years.

    The runs of any day it runs on are the same times (hours × minutes), so the closest pair
    is either two times of one day, or a day's last run and the first of the next day it runs.
    """
    from croniter import croniter  # noqa: PLC0415 - only a cron schedule needs it

    expanded = croniter(ALIASES.get(expression, expression)).expanded
    minutes = sorted(_wanted(expanded[0]) or range(60))
    hours = sorted(_wanted(expanded[1]) or range(24))
    times = [h * 60 + m for h in hours for m in minutes]  # sorted, as both lists are
    gaps = [Gap((b - a) * 60, a, b) for a, b in itertools.pairwise(times)]
    days = _day_gap(expanded)
    if days is not None:
        gaps.append(Gap((days * _DAY - times[-1] + times[0]) * 60, times[-1], times[0], days))
    return min(gaps, key=lambda gap: gap.seconds, default=None)
