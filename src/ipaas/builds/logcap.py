"""A cap on the build output kept per build: the first part, a marker, and the last part.

The store keeps every line it is given, and a build can print without end. The first half of
the budget is passed on at once (the plan, the first steps, live progress); after that, lines
wait in a bounded tail buffer that drops the oldest, and `close()` writes a marker saying how
much was dropped followed by the tail (where the error is). Every line is also cut to
MAX_LINE_CHARS.
"""

from __future__ import annotations

from collections import deque

from ipaas.builds.base import LogSink

MAX_LINE_CHARS = 8192


class CappedLog:
    """A LogSink that forwards at most about max_bytes of output to the wrapped sink."""

    def __init__(self, sink: LogSink, max_bytes: int) -> None:
        self._sink = sink
        self._head_left = max_bytes // 2
        self._tail_budget = max_bytes - max_bytes // 2
        self._tail: deque[str] = deque()
        self._tail_bytes = 0
        self._held = False
        self.dropped_lines = 0
        self.dropped_bytes = 0

    async def __call__(self, line: str) -> None:
        line = line[:MAX_LINE_CHARS]
        size = len(line.encode(errors="replace")) + 1
        if not self._held and size <= self._head_left:
            self._head_left -= size
            await self._sink(line)
            return
        if not self._held:
            self._held = True
            await self._sink(
                "==> the build output is over the build.max_log_kb cap: the rest is held"
                " back and only its end will be kept"
            )
        self._tail.append(line)
        self._tail_bytes += size
        while self._tail_bytes > self._tail_budget and self._tail:
            dropped = self._tail.popleft()
            self._tail_bytes -= len(dropped.encode(errors="replace")) + 1
            self.dropped_lines += 1
            self.dropped_bytes += len(dropped.encode(errors="replace")) + 1

    async def close(self) -> None:
        """Write the marker and the kept tail (call once, when the build has ended)."""
        if self.dropped_lines:
            await self._sink(
                f"==> [{self.dropped_lines} lines ({self.dropped_bytes} bytes) of build output"
                " dropped: over the build.max_log_kb cap]"
            )
        while self._tail:
            await self._sink(self._tail.popleft())
        self._tail_bytes = 0
