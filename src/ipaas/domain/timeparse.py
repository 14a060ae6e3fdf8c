"""Times in logs: integers of nanoseconds since the epoch; RFC 3339 with nanoseconds outside."""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)
_RELATIVE = re.compile(r"^now(?:-(\d+)(ns|ms|s|m|h|d))?$")
_UNIT_NS = {
    "ns": 1,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
NS = 1_000_000_000
# What a timestamp can be: the stores keep 64-bit integers (1970 to 2262 in nanoseconds).
MAX_NS = 2**63 - 1


class BadTime(ValueError):
    pass


def parse_rfc3339_ns(value: str) -> int:
    """'2026-11-28T13:00:00.123456789Z' → ns since the epoch (exact, no float rounding)."""
    m = _RFC3339.match(value.strip())
    if not m:
        raise BadTime(f"not an RFC 3339 time: {value!r}")
    date, clock, frac, zone = m.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        whole = datetime.fromisoformat(f"{date}T{clock}{zone}")
    except ValueError as exc:
        raise BadTime(str(exc)) from None
    return int(whole.timestamp()) * NS + int((frac or "").ljust(9, "0"))


def parse_time_param(value: str, now_ns: int | None = None) -> int:
    """RFC 3339, `now`, or `now-<n><unit>` (ns, ms, s, m, h, d); times before 1970 or after
    2262 mean the edge of what can be stored (no log line lies beyond it)."""
    value = value.strip()
    m = _RELATIVE.match(value)
    if m:
        now = time.time_ns() if now_ns is None else now_ns
        amount, unit = m.groups()
        return clamp_ns(now - (int(amount) * _UNIT_NS[unit] if amount else 0))
    return clamp_ns(parse_rfc3339_ns(value))


def clamp_ns(ns: int) -> int:
    return min(max(ns, 0), MAX_NS)


def format_ns(ns: int) -> str:
    seconds, frac = divmod(ns, NS)
    return f"{_whole_seconds(seconds)}.{frac:09d}Z"


@functools.lru_cache(maxsize=4096)
def _whole_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
