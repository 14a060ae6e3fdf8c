"""A login flood against a real API: 64 concurrent wrong-password logins for 10 s while one
client polls GET /applications/{id}/status. Does hashing stay off the event loop, and what
does the throttle answer?

One uvicorn worker (the embedded mode) in its own process, SQLite, loopback only. The flood is
a small asyncio HTTP client in this process; the status poller is `wrk` with one connection (its own
process, so the flood client's scheduling does not count in its latencies). Scenarios: no
flood (baseline), the flood with the default throttle, and the flood with the throttle out of
the way (every login costs one Argon2 verification). Fresh server per run; medians of runs.
Usage: .venv/bin/python -m bench.login [--seconds 10] [--runs 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.api_status import free_port, start_server
from bench.report import WrkResult, write_section, wrk

NO_THROTTLE = {
    "IPAAS_AUTH__LOGIN_MAX_FAILURES": "1000000000",
    "IPAAS_AUTH__LOGIN_ADDRESS_MAX_FAILURES": "1000000000",
}


@dataclass(frozen=True)
class Run:
    status: WrkResult
    answers: Counter[int]
    seconds: float

    @property
    def login_rate(self) -> float:
        return sum(self.answers.values()) / self.seconds if self.seconds else 0.0


async def seed(database_url: str, data_dir: Path) -> tuple[str, str, str]:
    """A user with one app; return (username, access token, app id)."""
    from ipaas.auth.passwords import hash_password
    from ipaas.config import Settings
    from ipaas.domain.states import State
    from ipaas.platform import admin_process
    from ipaas.store.models import Application, new_id

    p = admin_process(Settings(data_dir=data_dir, database_url=database_url))
    user = await p.users.create("bench", hash_password("the right password"), "user")
    app_id = new_id()
    await p.apps.create(
        Application(
            id=app_id,
            name="bench-login",
            owner_id=user.id,
            repo="https://example.invalid/r.git",
            state=State.RUNNING.value,
            envs_encrypted="",
        )
    )
    token = p.access_tokens.issue(user.id, "user")
    await p.engine.dispose()
    return user.username, token, app_id


async def flood(base: str, username: str, concurrency: int, seconds: float) -> Counter[int]:
    """`concurrency` keep-alive connections sending wrong passwords back to back until the time
    is up. Plain HTTP/1.1 on asyncio streams: a full client library costs more CPU than the
    server's answer to a refused login, and this machine has two cores for both."""
    host, port = base.removeprefix("http://").split(":")
    answers: Counter[int] = Counter()
    deadline = time.monotonic() + seconds

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        n = 0
        try:
            while time.monotonic() < deadline:
                n += 1
                body = json.dumps({"username": username, "password": f"guess {i} {n}"}).encode()
                writer.write(_login_request(host, port, body))
                answers[await _read_status(reader)] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(concurrency)))
    return answers


def _login_request(host: str, port: str, body: bytes) -> bytes:
    head = (
        f"POST /api/v1/auth/login HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_status(reader: asyncio.StreamReader) -> int:
    """Read one response (headers and a Content-Length body); return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines[1:])
    length = next((int(v) for k, _, v in fields if k.lower() == "content-length"), 0)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


def one_run(env: dict[str, str], concurrency: int, seconds: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="ipaas-bench-login-") as tmp:
        from ipaas.store.migrate import upgrade

        data_dir = Path(tmp)
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        upgrade(url)
        username, token, app_id = asyncio.run(seed(url, data_dir))
        port = free_port()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            server = start_server(url, data_dir, port)
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        try:
            return _measure(port, username, token, app_id, concurrency, seconds)
        finally:
            server.terminate()
            server.wait(10)


def _measure(
    port: int, username: str, token: str, app_id: str, concurrency: int, seconds: float
) -> Run:
    base = f"http://127.0.0.1:{port}"
    status_url = f"{base}/api/v1/applications/{app_id}/status"
    headers = {"Authorization": f"Bearer {token}"}
    answers: Counter[int] = Counter()
    elapsed = 0.0
    flooder = None
    if concurrency:

        def run_flood() -> None:
            nonlocal answers, elapsed
            started = time.monotonic()
            answers = asyncio.run(flood(base, username, concurrency, seconds))
            elapsed = time.monotonic() - started

        flooder = threading.Thread(target=run_flood)
        flooder.start()
        time.sleep(0.5)  # the flood is under way before the poller starts
    status = wrk(status_url, connections=1, threads=1, seconds=seconds - 1, headers=headers)
    if flooder is not None:
        flooder.join()
    return Run(status, answers, elapsed)


def scenario(label: str, env: dict[str, str], conc: int, secs: float, runs: int) -> str:
    results = [one_run(env, conc, secs) for _ in range(runs)]
    p50 = statistics.median(r.status.p50_ms for r in results)
    p99 = statistics.median(r.status.p99_ms for r in results)
    polls = statistics.median(r.status.rps for r in results)
    rate = statistics.median(r.login_rate for r in results)
    c401 = statistics.median(r.answers[401] for r in results)
    c429 = statistics.median(r.answers[429] for r in results)
    other = sum(sum(v for k, v in r.answers.items() if k not in (401, 429)) for r in results)
    p99s = ", ".join(f"{r.status.p99_ms:.1f}" for r in results)
    login = f"{rate:,.0f} | {c401:,.0f} | {c429:,.0f} | {other}" if conc else "– | – | – | –"
    row = f"| {label} | {p50:.1f} | {p99:.1f} ({p99s}) | {polls:,.0f} | {login} |"
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    c, s, n = args.concurrency, args.seconds, args.runs
    load = Path("/proc/loadavg").read_text().split()[0]
    rows = [
        scenario("no flood (baseline)", {}, 0, s, n),
        scenario(f"{c} concurrent wrong-password logins, default throttle", {}, c, s, n),
        scenario(f"{c} concurrent wrong-password logins, throttle off", NO_THROTTLE, c, s, n),
    ]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "?",
    )
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    body = f"""
`bench/login.py`: one uvicorn worker on SQLite, one user with one app. {c} clients send
wrong passwords for that user back to back for {s:.0f} s (a small asyncio HTTP/1.1 client
in the bench process) while `wrk` (1 connection, its own process) polls
`GET /applications/{{id}}/status`; a fresh server per run, {n} runs, medians (the p99 of
each run in brackets). nproc {nproc}, CPU {cpu}; load average {load} when the bench
started (other work shares this machine).
Argon2id runs on `auth.hash_workers` threads (default: half the cores), never on the event
loop. "Throttle off" raises the failure limits out of reach, so every login is one full
Argon2 verification. Target: status p99 < 50 ms during the flood.

| scenario | status p50 ms | status p99 ms | polls/s | logins/s | 401 | 429 | other |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows)
    write_section("Login flood (bench/login.py)", body)


if __name__ == "__main__":
    main()
