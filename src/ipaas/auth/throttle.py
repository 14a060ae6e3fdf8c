"""Login throttle: after repeated failures a username or a client address waits, doubling.

Pure bookkeeping on an injected clock (no I/O, no asyncio), so it is tested with a fake clock.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 5  # failures within `window_s` before a lockout
    window_s: float = 300.0
    base_delay_s: float = 30.0  # first lockout; each further one doubles it
    max_delay_s: float = 900.0


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    in_flight: int = 0  # admitted attempts not yet decided
    strikes: int = 0  # lockouts so far: the exponent of the next delay
    locked_until: float = 0.0
    last_seen: float = 0.0


class LoginThrottle:
    """Keys are strings such as "user:alice" and "ip:10.0.0.1", each with its own policy.

    Usage: `admit(keys)` → a delay in seconds (refused) or None (go ahead, then call exactly
    one of `failed(keys)`, `succeeded(keys, reset=...)` or `release(keys)`). An admitted
    attempt counts as in flight, so a burst of concurrent guesses cannot slip past the limit
    while their hashes are still being checked.
    """

    def __init__(
        self,
        policies: dict[str, ThrottlePolicy],
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self._policies = policies  # key prefix ("user", "ip") -> policy
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def admit(self, keys: Iterable[str]) -> float | None:
        now = self._clock()
        keys = list(keys)
        waits = [self._wait(key, now) for key in keys]
        longest = max(waits, default=0.0)
        if longest > 0:
            return longest
        for key in keys:
            entry = self._entry(key, now)
            entry.in_flight += 1
        return None

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            entry = self._entry(key, now)
            entry.in_flight = max(0, entry.in_flight - 1)
            policy = self._policy(key)
            self._prune(entry, policy, now)
            entry.failures.append(now)
            if len(entry.failures) >= policy.max_failures:
                delay = min(policy.base_delay_s * 2**entry.strikes, policy.max_delay_s)
                entry.strikes += 1
                entry.locked_until = now + delay
                entry.failures.clear()

    def release(self, keys: Iterable[str]) -> None:
        """The attempt ended without a verdict (the server was busy): it counts for nothing."""
        now = self._clock()
        for key in keys:
            entry = self._entry(key, now)
            entry.in_flight = max(0, entry.in_flight - 1)

    def succeeded(self, keys: Iterable[str], reset: Iterable[str] = ()) -> None:
        """The attempt was right: `reset` keys (the username) forget their failures."""
        self.release(keys)
        for key in reset:
            entry = self._entries.get(key)
            if entry is not None and entry.in_flight == 0:
                del self._entries[key]
            elif entry is not None:
                entry.failures.clear()
                entry.strikes = 0

    def _wait(self, key: str, now: float) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        if entry.locked_until > now:
            return entry.locked_until - now
        policy = self._policy(key)
        self._prune(entry, policy, now)
        if len(entry.failures) + entry.in_flight >= policy.max_failures:
            # Enough guesses are already being checked to reach the limit: wait for them.
            return 1.0
        return 0.0

    def _policy(self, key: str) -> ThrottlePolicy:
        return self._policies[key.split(":", 1)[0]]

    @staticmethod
    def _prune(entry: _Entry, policy: ThrottlePolicy, now: float) -> None:
        while entry.failures and entry.failures[0] <= now - policy.window_s:
            entry.failures.popleft()
        # A quiet window after the last lockout ends forgives the earlier ones.
        if entry.strikes and not entry.failures and now > entry.locked_until + policy.window_s:
            entry.strikes = 0

    def _entry(self, key: str, now: float) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_entries:
                self._evict_idle(now)
            entry = self._entries[key] = _Entry()
        entry.last_seen = now
        return entry

    def _evict_idle(self, now: float) -> None:
        """Drop entries that no longer hold anyone back, so memory stays bounded."""
        for key, entry in list(self._entries.items()):
            policy = self._policy(key)
            self._prune(entry, policy, now)
            idle = not entry.failures and entry.in_flight == 0 and entry.strikes == 0
            if idle and entry.locked_until <= now:
                del self._entries[key]
        if len(self._entries) >= self._max_entries:
            # Still full (a flood of distinct keys): forget the least recently seen half.
            by_age = sorted(self._entries, key=lambda k: self._entries[k].last_seen)
            for key in by_age[: len(by_age) // 2]:
                del self._entries[key]


def retry_after_header(delay_s: float) -> str:
    """Whole seconds, rounded up: a client that waits this long is admitted."""
    return str(max(1, math.ceil(delay_s)))
