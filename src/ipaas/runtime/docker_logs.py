"""Reading a container's logs from the engine with exact nanosecond timestamps and streams.

The engine's log API multiplexes stdout and stderr in frames (one frame per log message) inside
a chunked HTTP body; we read the frames ourselves so each line keeps its stream.

Two things about the engine shape this module:
- It timestamps stdout and stderr in two goroutines and may store a stderr line after a later
  stdout line (inversions of a few ms seen), so the file is not quite in timestamp order. We
  read ahead `REORDER_NS` of log time past a page's cut and sort, so a cursor on timestamps
  neither skips nor repeats a line.
- It has no offset, only `since`, and decodes the log from its start for every request: paging
  by reopening costs O(lines^2). A reader (an open engine stream) is kept between pages and
  serves the next one when asked for lines after a point it has not gone past.
"""

from __future__ import annotations

import bisect
import calendar
import threading
import time
from collections.abc import Iterator
from typing import Any

from ipaas.domain.logpages import LogLine, SourceChunk
from ipaas.domain.timeparse import NS, BadTime, parse_rfc3339_ns

MAX_LINE = 16 * 1024
CUT_MARK = " …[line cut]"
READ_BLOCK = 64 * 1024
REORDER_NS = 100_000_000  # the most a line is stored after a later-stamped line
TAIL_PROBE = 2000  # entries read from the end when following (see _tail)
_STREAMS = {1: "stdout", 2: "stderr"}


def _engine_time(ns: int) -> str:
    ns = max(ns, 0)
    return f"{ns // NS}.{ns % NS:09d}"


def read_container_logs(
    api: Any,
    container_id: str,
    container_name: str,
    *,
    stopped: bool,
    after_ns: int,
    until_ns: int | None,
    limit: int,
    stream: str | None = None,
    kind: str = "containers",
) -> SourceChunk:
    """Lines strictly after `after_ns` (and at or before `until_ns`), in timestamp order:
    `limit` and the rest of the last timestamp group, with every line up to the last one's
    time; or all of them. `api` is a docker.APIClient; `stopped`: the container had stopped
    when this call began (then its log will not grow: what a new reader reads is all).
    `kind` "services": the merged log of a Swarm service's tasks (same stream format)."""
    reader = _readers.take((container_id, stream), after_ns)
    at_end = False
    if reader is not None and reader.stale(after_ns, until_ns, limit):
        # Lines may have come after it reached the end (even if the container has stopped
        # since, it may have written them first): read afresh.
        reader.close()
        reader, at_end = None, True
    if reader is not None:
        try:
            chunk = reader.take(after_ns, until_ns, limit)
        except Exception:  # noqa: BLE001 - a broken engine stream: read afresh
            reader.close()
        else:
            _readers.give_back(reader)
            return chunk
    if at_end and stream is None:
        chunk_or_none = _tail(
            api, (kind, container_id), container_name, after_ns, until_ns, limit, stopped
        )
        if chunk_or_none is not None:
            return chunk_or_none
    reader = _open(api, (kind, container_id), container_name, stream, after_ns)
    reader.final = stopped
    try:
        chunk = reader.take(after_ns, until_ns, limit)
    except BaseException:
        reader.close()
        raise
    _readers.give_back(reader)
    return chunk


def _tail(
    api: Any,
    source: tuple[str, str],
    container: str,
    after_ns: int,
    until_ns: int | None,
    limit: int,
    stopped: bool,
) -> SourceChunk | None:
    """Near the end of the log (following it): read only its last TAIL_PROBE entries, which
    the engine finds from the end instead of decoding the whole log. If fewer came back
    (since `after_ns - REORDER_NS`), one of them is older than that, and nothing stored
    before it can be later than `after_ns`: every line we want is among them. Else None."""
    reader = _open(api, source, container, None, after_ns, tail=TAIL_PROBE)
    reader.final = stopped
    try:
        reader.take(after_ns, None, TAIL_PROBE)  # read it all: at most TAIL_PROBE entries
        if not (reader.done and reader.frames < TAIL_PROBE):
            reader.close()
            return None
        chunk = reader.take(after_ns, until_ns, limit)  # from what it holds
    except BaseException:
        reader.close()
        raise
    _readers.give_back(reader)
    return chunk


def _open(
    api: Any,
    source: tuple[str, str],  # ("containers" | "services", id)
    container: str,
    stream: str | None,
    after_ns: int,
    tail: int | None = None,
) -> _Reader:
    params: dict[str, Any] = {
        "stdout": stream in (None, "stdout"),
        "stderr": stream in (None, "stderr"),
        "timestamps": True,
        "follow": False,
        "since": _engine_time(after_ns),  # inclusive: equal timestamps are skipped
    }
    if tail is not None:
        params["tail"] = str(tail)
        params["since"] = _engine_time(after_ns - REORDER_NS)
    opened = time.time_ns()
    kind, container_id = source
    response = api._get(api._url(f"/{kind}/{{0}}/logs", container_id), params=params, stream=True)
    try:
        api._raise_for_status(response)
    except BaseException:
        response.close()
        raise
    return _Reader((container_id, stream), container, response, after_ns, opened)


_END = 1 << 80


def _ts(line: LogLine) -> int:
    return line.ts_ns


class _Reader:
    """An open engine log stream of one container (and stream filter), kept between pages."""

    def __init__(
        self,
        key: tuple[str, str | None],
        container: str,
        response: Any,
        after_ns: int,
        opened_ns: int,
    ) -> None:
        self.key = key
        self.response = response
        self.base = after_ns  # every line at or before it is behind us
        self.pending: list[LogLine] = []  # read, after `base`, maybe not delivered: sorted
        self.parsed = parse(frames(response.raw), container)
        self.horizon = after_ns  # the latest time read so far
        # The latest time read of each stream (the engine's `since` is inclusive).
        self.last = {s: after_ns for s in ("stdout", "stderr") if key[1] in (None, s)}
        self.done = False  # the engine's stream ended (it is not a follow)
        self.final = False  # ... and the container has stopped
        # Once at the end we hold every line stamped up to here; later ones may still come.
        self.known_ns = opened_ns - REORDER_NS
        self.used = time.monotonic()
        self.frames = 0  # lines read from the engine

    def stale(self, after_ns: int, until_ns: int | None, limit: int) -> bool:
        """At its end, lines written since may fall in the window, and what it holds up to
        `known_ns` does not fill the page (if it does, the page ends before `known_ns`)."""
        if not self.done or self.final or (until_ns is not None and until_ns <= self.known_ns):
            return False
        held = bisect.bisect_right(self.pending, self.known_ns, key=_ts) - bisect.bisect_right(
            self.pending, after_ns, key=_ts
        )
        return held <= limit

    def complete_ns(self) -> int:
        """Every line stamped at or before this is in hand: a stream's own stamps never go
        back, and no line is stored more than REORDER_NS after a later-stamped one."""
        if self.done:
            return _END if self.final else self.known_ns
        return max(self.horizon - REORDER_NS, min(self.last.values()) - 1)

    def take(self, after_ns: int, until_ns: int | None, limit: int) -> SourceChunk:
        self.base = after_ns
        window_end = _END if until_ns is None else until_ns
        lines = self.pending[bisect.bisect_right(self.pending, after_ns, key=_ts) :]
        count = bisect.bisect_right(lines, window_end, key=_ts)
        top = lines[count - 1].ts_ns if count else after_ns  # the latest in the window
        # Read until every line up to the page's end is surely in hand: up to the time by
        # which `limit` lines are in hand, or the window's end.
        target = window_end if count < limit else lines[limit - 1].ts_ns
        last, horizon = self.last, self.horizon
        complete = self.complete_ns()
        while complete < target:
            line = next(self.parsed, None)
            if line is None:
                self.done = True
                break
            self.frames += 1
            ts = line.ts_ns
            last[line.stream] = ts
            if ts > horizon:
                horizon = ts
            complete = max(horizon - REORDER_NS, min(last.values()) - 1)
            if ts <= after_ns:
                continue
            lines.append(line)
            if ts <= window_end:
                count += 1
                if ts > top:
                    top = ts
                if count == limit:
                    target = min(target, top)
        self.horizon = horizon
        lines.sort()
        self.pending = lines
        complete = min(self.complete_ns(), window_end)
        eligible = lines[: bisect.bisect_right(lines, complete, key=_ts)]
        if len(eligible) > limit:
            end, last_ts = limit, eligible[limit - 1].ts_ns
            while end < len(eligible) and eligible[end].ts_ns == last_ts:
                end += 1
            return SourceChunk(eligible[:end], cut=True)
        # More: lines in hand past `complete` but in the window, or a stream not read to its
        # end that may hold some.
        held = bisect.bisect_right(lines, window_end, key=_ts) > len(eligible)
        return SourceChunk(eligible, cut=held or (not self.done and complete < window_end))

    def close(self) -> None:
        self.done = True
        self.response.close()


class _Readers:
    """Open readers, taken out while in use (calls run in threads)."""

    MAX = 16
    IDLE_S = 30.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[_Reader] = []

    def take(self, key: tuple[str, str | None], after_ns: int) -> _Reader | None:
        with self.lock:
            now = time.monotonic()
            for stale in [r for r in self.open if now - r.used > self.IDLE_S]:
                self.open.remove(stale)
                stale.close()
            fits = [r for r in self.open if r.key == key and r.base <= after_ns]
            best = max(fits, key=lambda r: r.base, default=None)
            if best is not None:
                self.open.remove(best)
            return best

    def give_back(self, reader: _Reader) -> None:
        reader.used = time.monotonic()
        with self.lock:
            self.open.append(reader)
            while len(self.open) > self.MAX:
                self.open.pop(0).close()


_readers = _Readers()


def frames(raw: Any) -> Iterator[tuple[int, bytes]]:
    """The engine's multiplexed frames (8-byte header: stream, 0, 0, 0, size; then the
    payload), read in blocks from the de-chunked body; a frame may span blocks."""
    buf = b""
    while True:
        block = raw.read(READ_BLOCK)
        if not block:
            return
        buf += block
        pos, n = 0, len(buf)
        while n - pos >= 8:
            end = pos + 8 + int.from_bytes(buf[pos + 4 : pos + 8], "big")
            if end > n:
                break
            yield buf[pos], buf[pos + 8 : end]
            pos = end
        buf = buf[pos:]


class _Clock:
    """The engine's stamps are RFC3339NanoFixed in UTC: cache the whole seconds."""

    def __init__(self) -> None:
        self.seconds: dict[bytes, int] = {}

    def ns(self, stamp: bytes) -> int:
        if len(stamp) == 30 and stamp[19:20] == b"." and stamp[29:30] == b"Z":
            whole = stamp[:19]
            secs = self.seconds.get(whole)
            if secs is None:
                if len(self.seconds) > 4096:
                    self.seconds.clear()
                secs = self.seconds[whole] = _epoch_seconds(whole)
            return secs * NS + int(stamp[20:29])
        return parse_rfc3339_ns(stamp.decode("ascii", "replace"))


def _epoch_seconds(whole: bytes) -> int:
    text = whole.decode("ascii")
    try:
        year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
        hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    except ValueError:
        raise BadTime(text) from None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def parse(payloads: Iterator[tuple[int, bytes]], container: str) -> Iterator[LogLine]:
    in_long_line = {1: False, 2: False}
    clock = _Clock()
    seq = 0
    for stream_id, data in payloads:
        stamp, _, raw_body = data.partition(b" ")
        complete = raw_body.endswith(b"\n")
        if in_long_line.get(stream_id):  # the rest of a line already cut (split at 16 KiB)
            in_long_line[stream_id] = not complete
            continue
        try:
            ts = clock.ns(stamp)
        except (BadTime, ValueError):
            continue
        body = raw_body.decode("utf-8", "replace").rstrip("\n")
        if not complete or len(body) > MAX_LINE:
            body = body[:MAX_LINE] + CUT_MARK
            in_long_line[stream_id] = not complete
        yield LogLine(ts, container, _STREAMS.get(stream_id, "stdout"), seq, body)
        seq += 1
