"""Pages of an app's runtime logs (every container it had that still exists) and of a build's
log, in one shape; and their live follow."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from ipaas.domain.logpages import Cursor, LogLine, SourceChunk, page
from ipaas.domain.statuses import ACTIVE_BUILDS
from ipaas.domain.timeparse import format_ns
from ipaas.runtime.base import Runtime
from ipaas.store.builds import BuildStore

FOLLOW_POLL_S = 0.1
# Lines newer than this are not served yet: the engine may still store a line of another stream
# (or container) stamped a little earlier, and a cursor past it would skip it for good.
SETTLE_NS = 100_000_000

PageFn = Callable[[Cursor, int], Awaitable[tuple[list[LogLine], bool]]]


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]
    has_more: bool
    next: Cursor


def line_json(line: LogLine) -> dict[str, str | None]:
    return {
        "timestamp": format_ns(line.ts_ns),
        "stream": line.stream,
        "container": line.container or None,
        "line": line.line,
    }


def advance(cursor: Cursor, lines: list[LogLine]) -> Cursor:
    return Cursor(lines[-1].ts_ns, cursor.to_ns, cursor.stream) if lines else cursor


class LogService:
    """Log pages of an app's containers (from the runtime) and of its builds (from the store)."""

    def __init__(self, runtime: Runtime, builds: BuildStore, log_max_age_s: float) -> None:
        self.runtime = runtime
        self.builds = builds
        self.log_max_age_s = log_max_age_s

    def app_pager(self, app_id: str) -> PageFn:
        async def fetch(cursor: Cursor, limit: int) -> tuple[list[LogLine], bool]:
            now = time.time_ns()
            settled = now - SETTLE_NS
            until = settled if cursor.to_ns is None else min(cursor.to_ns, settled)
            max_age_ns = int(self.log_max_age_s * 1e9)
            # Past the retention age: not served (the engine only bounds a log's size).
            after = max(cursor.after_ns, now - max_age_ns - 1) if max_age_ns else cursor.after_ns
            if until <= after:
                return [], False
            containers = await self.runtime.list_containers(app_id, detail=False)
            chunks = await asyncio.gather(
                *(self.runtime.read_logs(c, after, until, limit, cursor.stream) for c in containers)
            )
            return page(chunks, limit)

        return fetch

    def build_pager(self, build_id: str) -> PageFn:
        async def fetch(cursor: Cursor, limit: int) -> tuple[list[LogLine], bool]:
            if cursor.stream not in (None, "build"):
                return [], False
            rows, cut = await self.builds.log_window(build_id, cursor.after_ns, cursor.to_ns, limit)
            lines = [LogLine(r.ts_ns, "", "build", r.seq, r.line) for r in rows]
            return page([SourceChunk(lines, cut)], limit)

        return fetch

    async def build_done(self, build_id: str) -> bool:
        return await self.builds.status_of(build_id) not in ACTIVE_BUILDS


async def read_page(fetch: PageFn, cursor: Cursor, limit: int) -> LogPage:
    lines, more = await fetch(cursor, limit)
    return LogPage(lines, more, advance(cursor, lines))


async def follow(
    fetch: PageFn,
    cursor: Cursor,
    disconnected: Callable[[], Awaitable[bool]],
    finished: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[str]:
    """Server-Sent Events: one event a line; the id is the cursor a reconnect resumes from."""
    idle = 0.0
    while not await disconnected():
        lines, more = await fetch(cursor, 1000)
        for i, line in enumerate(lines):
            # Only the last line of a timestamp group moves the resume point past that time.
            group_ends = i + 1 == len(lines) or lines[i + 1].ts_ns != line.ts_ns
            if group_ends:
                cursor = advance(cursor, [line])
            yield f"id: {cursor.encode()}\ndata: {json.dumps(line_json(line))}\n\n"
        if lines:
            idle = 0.0
            continue
        if finished is not None and await finished():
            return
        idle += FOLLOW_POLL_S
        if idle >= 15:
            idle = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(FOLLOW_POLL_S)
