"""Pages of an app's runtime logs (every container it had that still exists) and of a build's
log, in one shape; and their live follow."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select

from ipaas.logs.paging import Cursor, LogLine, SourceChunk, page
from ipaas.logs.timeparse import format_ns
from ipaas.platform import Platform
from ipaas.store.models import Build, BuildLogLine

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


def app_pager(p: Platform, app_id: str) -> PageFn:
    async def fetch(cursor: Cursor, limit: int) -> tuple[list[LogLine], bool]:
        if p.runtime is None:
            return [], False
        runtime, now = p.runtime, time.time_ns()
        settled = now - SETTLE_NS
        until = settled if cursor.to_ns is None else min(cursor.to_ns, settled)
        max_age_ns = int(p.settings.runtime.log_max_age_s * 1e9)
        # Past the retention age: not served (the engine only bounds a log's size).
        after = max(cursor.after_ns, now - max_age_ns - 1) if max_age_ns else cursor.after_ns
        if until <= after:
            return [], False
        containers = await runtime.list_containers(app_id, detail=False)
        chunks = await asyncio.gather(
            *(runtime.read_logs(c, after, until, limit, cursor.stream) for c in containers)
        )
        return page(chunks, limit)

    return fetch


def build_pager(p: Platform, build_id: str) -> PageFn:
    async def fetch(cursor: Cursor, limit: int) -> tuple[list[LogLine], bool]:
        if cursor.stream not in (None, "build"):
            return [], False
        return page([await _build_chunk(p, build_id, cursor, limit)], limit)

    return fetch


async def _build_chunk(p: Platform, build_id: str, cursor: Cursor, limit: int) -> SourceChunk:
    where = [BuildLogLine.build_id == build_id, BuildLogLine.ts_ns > cursor.after_ns]
    if cursor.to_ns is not None:
        where.append(BuildLogLine.ts_ns <= cursor.to_ns)
    stmt = select(BuildLogLine).where(*where).order_by(BuildLogLine.seq).limit(limit + 1)
    async with p.builds.sessions() as s:
        rows = list((await s.execute(stmt)).scalars().all())
        cut = len(rows) > limit
        if cut:  # finish the last timestamp group
            rows = rows[:limit]
            rest = select(BuildLogLine).where(
                BuildLogLine.build_id == build_id,
                BuildLogLine.ts_ns == rows[-1].ts_ns,
                BuildLogLine.seq > rows[-1].seq,
            )
            rows += list((await s.execute(rest.order_by(BuildLogLine.seq))).scalars().all())
    lines = [LogLine(r.ts_ns, "", "build", r.seq, r.line) for r in rows]
    return SourceChunk(lines, cut)


async def build_done(p: Platform, build_id: str) -> bool:
    async with p.builds.sessions() as s:
        status = (await s.execute(select(Build.status).where(Build.id == build_id))).scalar()
    return status not in ("queued", "running", "cancelling")


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
