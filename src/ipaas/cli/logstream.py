"""Reading log lines (an app's or a build's): pages with a cursor, or a followed SSE stream.

Both endpoints share one shape: `{"lines": [...], "next": cursor, "has_more": bool}`, and
`?follow=1` streams one line object per event with the cursor as the event id.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ipaas.cli.client import Client

PAGE_LIMIT = 1000
POLL_INTERVAL_S = 1.0
RETRY_S = 1.0
_DURATION = re.compile(r"^\d+(ns|ms|s|m|h|d)$")


def since_param(since: str) -> str | None:
    """`15m` → `now-15m`; `now…` and RFC 3339 pass through; anything else is None (invalid)."""
    since = since.strip()
    if _DURATION.match(since):
        return f"now-{since}"
    if since.startswith("now") or re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]", since):
        return since
    return None


def read_pages(
    client: Client, path: str, params: dict[str, Any], limit: int | None
) -> Iterator[dict[str, Any]]:
    """Every line from the first page on, at most `limit` of them, following `next`."""
    got, cursor = 0, None
    while limit is None or got < limit:
        size = PAGE_LIMIT if limit is None else min(PAGE_LIMIT, limit - got)
        query = {"cursor": cursor, "limit": size} if cursor else {**params, "limit": size}
        page = client.get(path, **query)
        for line in page.get("lines", [])[:size]:
            got += 1
            yield line
        cursor = page.get("next") or cursor
        if not page.get("has_more") or not cursor:
            return


def poll_pages(
    client: Client,
    path: str,
    params: dict[str, Any],
    done: Callable[[], bool],
    stop: threading.Event | None = None,
    cursor: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Follow without SSE: page, and when caught up ask `done()` or wait and page again."""
    while stop is None or not stop.is_set():
        query = {"cursor": cursor, "limit": PAGE_LIMIT} if cursor else {**params}
        page = client.get(path, **query)
        yield from page.get("lines", [])
        cursor = page.get("next") or cursor
        if page.get("has_more"):
            continue
        if done():
            return
        if stop is not None:
            stop.wait(POLL_INTERVAL_S)
        else:
            time.sleep(POLL_INTERVAL_S)


def follow(
    client: Client,
    path: str,
    params: dict[str, Any],
    *,
    done: Callable[[], bool],
    reconnect: bool,
    stop: threading.Event | None = None,
) -> Iterator[dict[str, Any]]:
    """Lines as they come, over SSE; a dropped connection resumes from the last event id.

    `reconnect`: also reconnect when the server ends the stream cleanly (app logs go on for
    ever; a build log's stream ends with the build). Servers without SSE are polled instead.
    """
    import httpx

    cursor: str | None = None
    connected = False
    while stop is None or not stop.is_set():
        try:
            with client.sse(path, {**params, "follow": 1}, last_event_id=cursor) as events:
                connected = True
                if events is None:
                    yield from poll_pages(client, path, params, done, stop, cursor)
                    return
                for event_id, data in events:
                    cursor = event_id or cursor
                    yield _line_of(data)
        except (httpx.TransportError, httpx.StreamError):
            if not connected:
                raise  # never reached the server: report it rather than retry for ever
        else:
            if not reconnect:
                return
        if done():
            return
        if stop is not None:
            stop.wait(RETRY_S)
        else:
            time.sleep(RETRY_S)


def _line_of(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {"line": data}
    return value if isinstance(value, dict) else {"line": str(value)}


def format_time(ts: str | None) -> str:
    """RFC 3339 with nanoseconds → 'YYYY-MM-DD HH:MM:SS.mmm' (UTC as the server sends it)."""
    if not ts:
        return ""
    return ts.replace("T", " ")[:23]
