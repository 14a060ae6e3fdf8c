"""Pages of log lines, pure.

Order: (timestamp, container, stream, position in its own stream). A page never ends inside a
group of lines that share one timestamp, so "from = last timestamp + X-Last-Log-Nano" neither
repeats nor drops a line. The cursor is the last timestamp delivered (plus the window's end and
filter), opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Iterable
from dataclasses import dataclass

from ipaas.domain.timeparse import MAX_NS


@dataclass(frozen=True, order=True)
class LogLine:
    ts_ns: int
    container: str
    stream: str
    seq: int  # position within its (container, stream): keeps equal timestamps in order
    line: str


@dataclass(frozen=True)
class SourceChunk:
    """What one source (a container, a build) gave for a page: lines in order, and whether it
    stopped because of the limit (True) or ran out (False)."""

    lines: list[LogLine]
    cut: bool


@dataclass(frozen=True)
class Cursor:
    after_ns: int  # every line at or before this time was delivered
    to_ns: int | None
    stream: str | None

    def encode(self) -> str:
        raw = json.dumps({"a": self.after_ns, "t": self.to_ns, "s": self.stream}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            after, to, stream = data["a"], data["t"], data["s"]
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise ValueError("malformed cursor") from None
        if not isinstance(after, int) or not (to is None or isinstance(to, int)):
            raise ValueError("malformed cursor")
        if not (-1 <= after <= MAX_NS and (to is None or 0 <= to <= MAX_NS)):
            raise ValueError("malformed cursor")
        if stream not in (None, "stdout", "stderr"):
            raise ValueError("malformed cursor")
        return cls(after, to, stream)


def page(chunks: Iterable[SourceChunk], limit: int) -> tuple[list[LogLine], bool]:
    """Merge the sources and cut after `limit` lines, at a timestamp boundary.

    Each source must hold at least `limit` lines when `cut` (and whole timestamp groups), so
    every line up to the page's last timestamp is among them. Returns (lines, has_more).
    """
    chunks = list(chunks)
    merged = list(heapq.merge(*(c.lines for c in chunks)))
    more = any(c.cut for c in chunks)
    if len(merged) <= limit:
        return merged, more
    end = limit
    last_ts = merged[end - 1].ts_ns
    while end < len(merged) and merged[end].ts_ns == last_ts:
        end += 1  # finish the group of equal timestamps
    return merged[:end], True
