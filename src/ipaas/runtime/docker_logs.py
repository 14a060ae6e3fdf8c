"""Reading a container's logs from the engine with exact nanosecond timestamps and streams.

The engine's log API multiplexes stdout and stderr in frames (one frame per log message); we
read the frames ourselves so each line keeps its stream, and stop reading once we have enough.
"""

from __future__ import annotations

from typing import Any

from docker.utils.socket import frames_iter

from ipaas.logs.paging import LogLine, SourceChunk
from ipaas.logs.timeparse import NS, BadTime, parse_rfc3339_ns

MAX_LINE = 16 * 1024
CUT_MARK = " …[line cut]"
_STREAMS = {1: "stdout", 2: "stderr"}


def _engine_time(ns: int) -> str:
    return f"{ns // NS}.{ns % NS:09d}"


def read_container_logs(
    api: Any,
    container_id: str,
    container_name: str,
    *,
    after_ns: int,
    until_ns: int | None,
    limit: int,
    stream: str | None = None,
) -> SourceChunk:
    """Lines strictly after `after_ns` (and at or before `until_ns`), at most `limit` plus the
    rest of the last timestamp group. `api` is a docker.APIClient."""
    params: dict[str, Any] = {
        "stdout": stream in (None, "stdout"),
        "stderr": stream in (None, "stderr"),
        "timestamps": True,
        "follow": False,
        "since": _engine_time(after_ns),  # inclusive: equal timestamps are skipped below
    }
    if until_ns is not None:
        params["until"] = _engine_time(until_ns)
    response = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
    api._raise_for_status(response)
    try:
        return _collect(api, response, container_name, after_ns, limit)
    finally:
        response.close()


def _collect(api: Any, response: Any, container: str, after_ns: int, limit: int) -> SourceChunk:
    lines: list[LogLine] = []
    in_long_line = False
    socket = api._get_raw_response_socket(response)
    for stream_id, data in frames_iter(socket, False):
        text = data.decode("utf-8", "replace")
        stamp, _, body = text.partition(" ")
        complete = body.endswith("\n")
        if in_long_line:  # the rest of a line already cut: skip it
            in_long_line = not complete
            continue
        try:
            ts = parse_rfc3339_ns(stamp)
        except BadTime:
            continue
        if ts <= after_ns:
            continue
        if len(lines) >= limit and ts != lines[-1].ts_ns:
            return SourceChunk(lines, cut=True)
        body = body.rstrip("\n")
        if not complete or len(body) > MAX_LINE:
            body = body[:MAX_LINE] + CUT_MARK
            in_long_line = not complete
        lines.append(LogLine(ts, container, _STREAMS.get(stream_id, "stdout"), len(lines), body))
    return SourceChunk(lines, cut=False)
