"""Crash policy: pure. How long to wait before a restart, and when to give up."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class CrashPolicy:
    backoff_base_s: float
    backoff_cap_s: float
    limit: int  # crashes within the window after which the app is left crashed
    window_s: float
    _crashes: dict[str, deque[float]] = field(default_factory=dict)

    def record(self, app_id: str, now: float) -> int:
        """Count a crash; return how many happened within the window (this one included)."""
        times = self._crashes.setdefault(app_id, deque())
        times.append(now)
        while times and now - times[0] > self.window_s:
            times.popleft()
        return len(times)

    def count(self, app_id: str, now: float) -> int:
        """Crashes within the window, without recording one."""
        return sum(1 for t in self._crashes.get(app_id, ()) if now - t <= self.window_s)

    def gives_up(self, count: int) -> bool:
        return count >= self.limit

    def delay(self, count: int) -> float:
        """1 s, 2 s, 4 s ... capped."""
        return float(min(self.backoff_base_s * 2 ** max(count - 1, 0), self.backoff_cap_s))

    def forget(self, app_id: str) -> None:
        self._crashes.pop(app_id, None)
