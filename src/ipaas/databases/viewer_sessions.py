"""The viewer's clients, kept open: one `ipaas-db session` per database container, asked one
question at a time, closed after `viewer_session_idle_s` without a question. Starting a
client inside a container costs a process, a login and tens of milliseconds; a question on an
open one costs a round trip, so a page of rows is quick wherever it is."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field

import structlog

from ipaas.domain.databases import Engine
from ipaas.runtime.databases import DatabaseRuntime, DbSession, SessionLost

log = structlog.get_logger()
MAX_OPEN = 32  # sessions at most; the longest idle one goes first


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: DbSession | None = None
    used: float = 0.0


class ViewerSessions:
    def __init__(self, runtime: DatabaseRuntime, idle_s: float) -> None:
        self.runtime = runtime
        self.idle_s = idle_s
        self._entries: dict[str, _Entry] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def ask(
        self, container_id: str, engine: str, database: str, sql: str, limit: int, timeout_s: float
    ) -> tuple[str, bool]:
        """The client's output for one statement (errors included, as the engine words them)
        and whether it was cut at `limit` bytes. A session that was found dead is opened
        again once; SessionLost when a fresh one fails too."""
        entry = self._entries.setdefault(container_id, _Entry())
        async with entry.lock:
            for attempt in (1, 2):
                fresh = entry.session is None
                if entry.session is None:
                    await self._make_room()
                    argv = ["ipaas-db", "session", database]
                    entry.session = await self.runtime.open_session(container_id, argv)
                    self._watch()
                try:
                    return await self._ask(entry, engine, sql, limit, timeout_s)
                except SessionLost:
                    entry.session = None
                    if fresh or attempt == 2:
                        raise
                    log.info("viewer session lost, opening another", container_id=container_id)
        raise AssertionError("unreachable")

    @staticmethod
    async def _ask(
        entry: _Entry, engine: str, sql: str, limit: int, timeout_s: float
    ) -> tuple[str, bool]:
        assert entry.session is not None
        end = f"END-{secrets.token_hex(8)}"
        ms = int(timeout_s * 1000)
        if engine == Engine.POSTGRES:
            text = f"SET statement_timeout = {ms};\n{sql};\n\\echo {end}\n"
        else:
            text = f"SET SESSION max_statement_time = {ms / 1000:g};\n{sql};\nSELECT '{end}';\n"
        entry.used = time.monotonic()
        out, cut = await entry.session.ask(text.encode(), end.encode(), limit, timeout_s + 5)
        if cut:
            entry.session = None  # closed by the cut
        return out.decode(errors="replace"), cut

    async def _make_room(self) -> None:
        open_ = [(e.used, cid) for cid, e in self._entries.items() if e.session is not None]
        if len(open_) >= MAX_OPEN:
            await self._drop(min(open_)[1])

    async def _drop(self, container_id: str) -> None:
        entry = self._entries.get(container_id)
        if entry is None or entry.lock.locked():
            return
        session, entry.session = entry.session, None  # the entry stays: someone may wait on it
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

    def _watch(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap(), name="viewer-sessions"
            )

    async def _reap(self) -> None:
        """Close the sessions idle past `idle_s`; ends when none is open."""
        while any(e.session is not None for e in self._entries.values()):
            await asyncio.sleep(min(self.idle_s, 5.0))
            now = time.monotonic()
            for cid, entry in list(self._entries.items()):
                if entry.session is not None and now - entry.used > self.idle_s:
                    await self._drop(cid)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for cid in list(self._entries):
            await self._drop(cid)
