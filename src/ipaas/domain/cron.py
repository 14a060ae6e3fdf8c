"""Cron expressions for backup schedules, the pure part: the standard five fields (minute, hour,
day of month, month, day of week) with `*`, lists, ranges and steps, month and day names, and
the @hourly/@daily/@weekly/@monthly/@yearly aliases; always read in UTC. No I/O.

The grammar is checked here, field by field, so that a mistake is named precisely and nothing
beyond the standard (seconds, years, `L`, `#`, `?`, `H`) is taken; the next run is computed by
croniter (imported on first use: a platform without a cron schedule never loads it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
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
