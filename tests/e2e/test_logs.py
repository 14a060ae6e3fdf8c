"""Logs for real: an app's output read back through GET /logs with the engine underneath —
paging by cursor and by X-Last-Log-Nano, live follow with resume, a crashed container's last
lines, build logs, bad input. Plus the equal-timestamp cases, which the engine (a stamp per
line, in nanoseconds) does not produce on demand, against a fake engine stream."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ipaas.auth.passwords import hash_password
from ipaas.domain.logpages import Cursor, LogLine, SourceChunk, page
from ipaas.domain.timeparse import format_ns, parse_rfc3339_ns
from ipaas.runtime.docker_logs import read_container_logs
from tests.e2e.conftest import E2E

DOCKERFILE = """FROM python:3.11-slim
WORKDIR /srv
COPY server.py .
ENV PORT=8080
CMD ["python3", "-u", "server.py"]
"""

# /emit?n=&tag=&block=: lines "<tag> <i>", i = 0..n-1; every third on stderr; written `block`
# lines at a time per stream (one write() each). /crash: a marker, then exit 1.
SERVER = r"""
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/crash":
            print("about to crash: marker-logs-5e21", flush=True)
            os._exit(1)
        if url.path == "/emit":
            n, tag, block = int(q["n"]), q.get("tag", "x"), int(q.get("block", "100"))
            for start in range(0, n, block):
                out, err = [], []
                for i in range(start, min(n, start + block)):
                    (err if i % 3 == 2 else out).append(f"{tag} {i}\n")
                sys.stdout.write("".join(out))
                sys.stdout.flush()
                sys.stderr.write("".join(err))
                sys.stderr.flush()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")

print("listening", flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""

N = 20_000


@pytest.fixture(scope="module")
def app(e2e: E2E) -> str:
    app_id = e2e.create(e2e.repo(files={"Dockerfile": DOCKERFILE, "server.py": SERVER}))
    assert e2e.wait(app_id)["state"] == "running", e2e.get(app_id, "/events")
    return app_id


def emit(e2e: E2E, app_id: str, n: int, tag: str, block: int = 100) -> None:
    address = e2e.get(app_id)["address"]
    r = httpx.get(f"http://{address}/emit", params={"n": n, "tag": tag, "block": block}, timeout=60)
    assert r.status_code == 200


def logs(e2e: E2E, app_id: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    r = httpx.get(
        f"{e2e.api}/{app_id}/logs",
        params=params,
        headers={**e2e.headers, **(headers or {})},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r


def check_complete(lines: list[dict[str, Any]], tag: str, n: int) -> None:
    """Every "<tag> i" once; each stream in its own order; times never go back."""
    mine = [x for x in lines if x["line"].startswith(f"{tag} ")]
    numbers = [int(x["line"].split()[1]) for x in mine]
    assert len(numbers) == n and sorted(numbers) == list(range(n)), (len(numbers), n)
    for stream in ("stdout", "stderr"):
        ours = [int(x["line"].split()[1]) for x in mine if x["stream"] == stream]
        assert ours == sorted(ours) and ours, stream
        assert all((i % 3 == 2) == (stream == "stderr") for i in ours)
    stamps = [parse_rfc3339_ns(x["timestamp"]) for x in lines]
    assert stamps == sorted(stamps)


def test_paging_by_cursor_gives_every_line_once_in_order(e2e: E2E, app: str) -> None:
    emit(e2e, app, N, "page", block=500)
    time.sleep(0.5)
    lines: list[dict[str, Any]] = []
    body = logs(e2e, app, limit=1000).json()
    pages = 1
    while True:
        lines += body["lines"]
        assert len(body["lines"]) <= 1000 + 50  # a page ends only at a timestamp boundary
        if not body["has_more"]:
            break
        body = logs(e2e, app, limit=1000, cursor=body["next"]).json()
        pages += 1
    assert pages >= N // 1000
    check_complete(lines, "page", N)
    # The engine stamps each line as it reads it: lines of one write() rarely share a time.
    stamps = [x["timestamp"] for x in lines]
    print(f"{len(stamps) - len(set(stamps))} lines share a timestamp with the line before")


def test_header_loop_never_repeats_nor_drops(e2e: E2E, app: str) -> None:
    emit(e2e, app, N, "head", block=500)
    time.sleep(0.5)
    lines: list[dict[str, Any]] = []
    r = logs(e2e, app, limit=1000)
    while r.json()["lines"]:
        got = r.json()["lines"]
        lines += got
        last = r.headers["x-last-log-nano"]
        assert last == got[-1]["timestamp"]
        r = logs(e2e, app, {"X-Last-Log-Nano": last}, limit=1000, **{"from": last})
    assert "x-last-log-nano" not in r.headers
    check_complete(lines, "head", N)


def sse(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    event_id, data = "", ""
    for raw in response.iter_lines():
        if raw.startswith("id: "):
            event_id = raw[4:]
        elif raw.startswith("data: "):
            data = raw[6:]
        elif raw == "" and data:
            yield event_id, json.loads(data)
            data = ""


def test_follow_delivers_new_lines_and_resumes_without_gap(e2e: E2E, app: str) -> None:
    url = f"{e2e.api}/{app}/logs"
    received: list[tuple[float, str, dict[str, Any]]] = []
    # 1. Lines written after the request arrive within a couple of seconds.
    with httpx.stream(
        "GET", url, params={"follow": 1, "from": "now"}, headers=e2e.headers, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        started = time.monotonic()
        threading.Timer(0.5, emit, (e2e, app, 300, "live")).start()
        for event_id, line in sse(response):
            received.append((time.monotonic(), event_id, line))
            # Events come in timestamp order: "live 299" need not be the last one.
            if sum(x[2]["line"].startswith("live ") for x in received) == 300:
                break
    assert time.monotonic() - started < 10
    live = [x for x in received if x[2]["line"].startswith("live ")]
    check_complete([x[2] for x in live], "live", 300)
    first_delay = received[0][0] - (started + 0.5)
    print(f"follow: first line {first_delay * 1000:.0f} ms after the write was triggered")
    assert first_delay < 2.5

    # 2. Stop half-way through a burst, reconnect with Last-Event-ID: no gap, no duplicate.
    before: list[dict[str, Any]] = []
    last_id = ""
    with httpx.stream(
        "GET", url, params={"follow": 1, "from": "now"}, headers=e2e.headers, timeout=30
    ) as response:
        threading.Timer(0.3, emit, (e2e, app, 2000, "resume", 10)).start()
        for event_id, line in sse(response):
            if line["line"].startswith("resume "):
                before.append(line)
                last_id = event_id
            if len(before) == 700:
                break
    after: list[dict[str, Any]] = []
    with httpx.stream(
        "GET", url, params={"follow": 1}, headers={**e2e.headers, "Last-Event-ID": last_id}
    ) as response:
        for _, line in sse(response):
            after.append(line)
            if len(before) + len(after) >= 2000:
                break
    assert not set(map(json.dumps, before)) & set(map(json.dumps, after))
    check_complete(before + after, "resume", 2000)


def test_crashed_containers_last_lines_survive_the_restart(e2e: E2E, app: str) -> None:
    first = serving(e2e, app)
    with contextlib.suppress(httpx.HTTPError):  # the process dies mid-request
        httpx.get(f"http://{e2e.get(app)['address']}/crash", timeout=10)
    e2e.wait(app, {"crashed"}, timeout_s=30)
    assert e2e.wait(app, {"running"}, timeout_s=60)["state"] == "running"
    assert serving(e2e, app) != first
    body = logs(e2e, app, limit=10_000, **{"from": "now-10m"}).json()
    lines = body["lines"]
    while body["has_more"]:
        body = logs(e2e, app, limit=10_000, cursor=body["next"]).json()
        lines += body["lines"]
    markers = [x for x in lines if "marker-logs-5e21" in x["line"]]
    assert len(markers) == 1 and markers[0]["stream"] == "stdout"
    # Both containers are in the answer: the crashed one and the new one.
    assert len({x["container"] for x in lines}) >= 2
    assert any(x["line"] == "listening" and x["timestamp"] > markers[0]["timestamp"] for x in lines)


def test_logs_past_the_retention_age_are_neither_served_nor_kept(e2e: E2E, app: str) -> None:
    """`runtime.log_max_age_s` (2 s here): older lines are not served, and a retired container
    stopped longer ago than that is removed by the warden, its log with it."""
    emit(e2e, app, 30, "aged")
    retired = serving(e2e, app)
    assert e2e.post(app, "restart").status_code == 202
    e2e.wait(app, {"running"}, timeout_s=60)
    assert serving(e2e, app) != retired
    time.sleep(2.5)
    emit(e2e, app, 30, "young")
    time.sleep(0.3)  # lines are served once 0.1 s old (SETTLE_NS)
    plane = e2e.live.plane
    saved = plane.log_service.log_max_age_s
    plane.log_service.log_max_age_s = plane.warden.log_max_age_s = 2.0
    try:
        lines = logs(e2e, app, limit=10_000, **{"from": "now-1h"}).json()["lines"]
        assert not [x for x in lines if x["line"].startswith("aged ")]
        check_complete(lines, "young", 30)
        e2e.live.run(plane.warden.reconcile())
    finally:
        plane.log_service.log_max_age_s = plane.warden.log_max_age_s = saved
    left = {c.id for c in e2e.live.run(plane.adapters.runtime.list_containers(app))}
    assert retired not in left and serving(e2e, app) in left
    assert e2e.get(app, "/status")["state"] == "running"


def serving(e2e: E2E, app_id: str) -> str:
    row = e2e.live.run(e2e.live.plane.stores.apps.get(app_id))
    assert row.container_id
    return str(row.container_id)


def test_build_log_pages_the_same_way(e2e: E2E) -> None:
    # A buildpack build (a Dockerfile one has no dependencies step).
    app = e2e.create(e2e.repo("python-flask"), health_check="/health")
    assert e2e.wait(app)["state"] == "running", e2e.get(app, "/events")
    url = f"{e2e.api}/{app}/builds/1/log"
    whole = httpx.get(url, params={"limit": 10_000}, headers=e2e.headers).json()
    assert not whole["has_more"] and whole["lines"]
    lines: list[dict[str, Any]] = []
    body = httpx.get(url, params={"limit": 5}, headers=e2e.headers).json()
    while True:
        lines += body["lines"]
        if not body["has_more"]:
            break
        body = httpx.get(url, params={"limit": 5, "cursor": body["next"]}, headers=e2e.headers)
        body = body.json()
    assert len(lines) > 5
    assert lines == whole["lines"]
    assert len({(x["timestamp"], x["line"]) for x in lines}) == len(lines)
    assert {x["stream"] for x in lines} == {"build"}
    assert any(x["line"].startswith("==> dependencies:") for x in lines)


def test_bad_input_is_a_400_with_a_code(e2e: E2E, app: str) -> None:
    url = f"{e2e.api}/{app}/logs"
    cases: list[tuple[dict[str, str], dict[str, str], str]] = [
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, {}, "bad_window"),
        ({"from": "yesterday"}, {}, "bad_time"),
        ({"to": "2026-13-45T00:00:00Z"}, {}, "bad_time"),
        ({"cursor": "not-a-cursor!"}, {}, "bad_cursor"),
        ({"cursor": Cursor(1, None, None).encode()[:-3]}, {}, "bad_cursor"),
        ({}, {"Last-Event-ID": "garbage"}, "bad_cursor"),
        ({}, {"X-Last-Log-Nano": "12:00"}, "bad_last_log_nano"),
    ]
    for params, headers, code in cases:
        r = httpx.get(url, params=params, headers={**e2e.headers, **headers})
        assert r.status_code == 400 and r.json()["code"] == code, (params, headers, r.text)
    build = httpx.get(f"{e2e.api}/{app}/builds/1/log?cursor=x", headers=e2e.headers)
    assert build.status_code == 400 and build.json()["code"] == "bad_cursor"

    live = e2e.live
    other = live.run(live.plane.stores.users.create(f"u{uuid.uuid4().hex[:8]}", hash_password("x")))
    token = live.plane.stores.access_tokens.issue(other.id, "user")
    theirs = {"Authorization": f"Bearer {token}"}
    for path in ("/logs", "/logs?follow=1", "/builds/1/log"):
        r = httpx.get(f"{e2e.api}/{app}{path}", headers=theirs)
        assert r.status_code == 404, (path, r.text)
    assert httpx.get(f"{e2e.api}/{app}/builds/99/log", headers=e2e.headers).status_code == 404


# ---- Equal timestamps: a fake engine stream through the real reader, and the pure page. ----

T0 = parse_rfc3339_ns("2026-11-28T12:00:00.000000001Z")


class FakeEngine:
    """Just enough of docker.APIClient for read_container_logs: one container's log."""

    def __init__(self, entries: list[tuple[int, str, str]]) -> None:
        self.entries = entries  # (ts_ns, stream, text) in the order the engine stored them
        self.requests = 0

    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _get(self, url: str, params: dict[str, Any], stream: bool) -> Any:
        self.requests += 1
        since = int(params["since"].split(".")[0]) * 10**9 + int(params["since"].split(".")[1])
        body = b""
        for ts, name, text in self.entries:
            if ts >= since and params[name]:
                payload = f"{format_ns(ts)} {text}\n".encode()
                stream_id = 1 if name == "stdout" else 2
                body += bytes([stream_id, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

        class Response:
            raw = _Chunky(body)

            def close(self) -> None:
                pass

        return Response()

    def _raise_for_status(self, response: Any) -> None:
        pass


class _Chunky:
    """A body read a few bytes at a time, so frames span reads."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> bytes:
        piece = self.data[self.pos : self.pos + 7]
        self.pos += len(piece)
        return piece


def read_all(engine: FakeEngine, limit: int) -> list[list[LogLine]]:
    cid, after, pages = uuid.uuid4().hex, 0, []
    while True:
        chunk = read_container_logs(
            engine, cid, "c", stopped=True, after_ns=after, until_ns=None, limit=limit
        )
        pages.append(chunk.lines)
        if chunk.lines:
            after = chunk.lines[-1].ts_ns
        if not chunk.cut:
            return pages


def test_pages_end_at_timestamp_boundaries_through_the_reader() -> None:
    entries = [(T0, "stdout", f"a{i}") for i in range(5)]
    entries += [(T0 + 1, "stdout", "b0"), (T0 + 1, "stderr", "b1"), (T0 + 1, "stdout", "b2")]
    entries += [(T0 + 2, "stderr", f"c{i}") for i in range(3)] + [(T0 + 3, "stdout", "d0")]
    engine = FakeEngine(entries)
    pages = read_all(engine, limit=2)
    texts = [[x.line for x in p] for p in pages]
    assert texts[:4] == [
        ["a0", "a1", "a2", "a3", "a4"],  # the group of five is not split
        ["b1", "b0", "b2"],  # (timestamp, container, stream, position)
        ["c0", "c1", "c2"],
        ["d0"],
    ]
    assert all(p == [] for p in texts[4:])
    assert engine.requests <= 2  # one open engine stream serves every page


def test_the_reader_puts_lines_stored_out_of_order_back_in_order() -> None:
    # The engine may store a stderr line after a later-stamped stdout line.
    ms = 1_000_000
    entries = [(T0 + i * ms, "stdout", f"o{i}") for i in range(0, 40, 2)]
    entries.insert(10, (T0 + 3 * ms, "stderr", "late"))
    engine = FakeEngine(entries + [(T0 + 41 * ms, "stderr", "e41")])
    lines = [x for p in read_all(engine, limit=4) for x in p]
    assert [x.ts_ns for x in lines] == sorted(x.ts_ns for x in lines)
    assert [x.line for x in lines].count("late") == 1 and len(lines) == 22


def test_page_and_cursor_with_equal_timestamps() -> None:
    def lines(container: str, stamps: list[int]) -> list[LogLine]:
        return [
            LogLine(ts, container, "stdout", i, f"{container}{i}") for i, ts in enumerate(stamps)
        ]

    a = SourceChunk(lines("a", [1, 2, 2, 2]), cut=True)
    b = SourceChunk(lines("b", [2, 2, 3]), cut=False)
    got, more = page([a, b], limit=2)
    assert [x.line for x in got] == ["a0", "a1", "a2", "a3", "b0", "b1"] and more
    got, more = page([SourceChunk(lines("a", [5, 6]), cut=False)], limit=2)
    assert len(got) == 2 and not more
    cursor = Cursor(got[-1].ts_ns, 10, "stderr")
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "e30", "bm90IGpzb24", "eyJhIjogIngiLCAidCI6IG51bGwsICJzIjogbnVsbH0"):
        with pytest.raises(ValueError):
            Cursor.decode(bad)


def test_the_output_of_a_start_that_failed_stays_readable(e2e: E2E) -> None:
    dockerfile = (
        "FROM python:3.11-slim\n"
        'CMD ["python3", "-c", "print(\'booting: marker-c0ffee\', flush=True); raise SystemExit(4)"]\n'
    )
    app_id = e2e.create(e2e.repo(files={"Dockerfile": dockerfile}))
    status = e2e.wait(app_id)
    assert status["state"] == "failed" and "marker-c0ffee" in status["reason"]
    lines = logs(e2e, app_id, limit=1000, **{"from": "now-1h"}).json()["lines"]
    seen = [x for x in lines if "marker-c0ffee" in x["line"]]
    # Every start attempt's container kept its output (and no port or memory).
    assert len(seen) == e2e.settings.runtime.start_attempts, lines
