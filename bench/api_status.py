"""API hot paths under load: GET /applications/{id}/status (200 and 304) and
GET /applications?limit=50, with 1,000 apps stored, on SQLite and PostgreSQL.

One uvicorn worker (the embedded mode), wrk on loopback with 32 connections, several runs,
medians. Usage: .venv/bin/python -m bench.api_status [--seconds 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.report import WrkResult, median_result, write_section, wrk

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(database_url: str, data_dir: Path, apps: int) -> tuple[str, str]:
    """Create a user with `apps` applications; return (token, one app id)."""
    from ipaas.auth.passwords import hash_password
    from ipaas.config import Settings
    from ipaas.domain.states import State
    from ipaas.platform import admin_process
    from ipaas.store.models import Application, Event, new_id

    p = admin_process(Settings(data_dir=data_dir, database_url=database_url))
    user = await p.users.create("bench", hash_password("bench bench"), "user")
    ids = [new_id() for _ in range(apps)]
    async with p.apps.sessions() as s:
        for i, app_id in enumerate(ids):
            s.add(
                Application(
                    id=app_id,
                    name=f"bench-{i:04d}",
                    owner_id=user.id,
                    repo="https://example.invalid/r.git",
                    state=State.RUNNING.value,
                    envs_encrypted="",
                )
            )
            s.add(Event(app_id=app_id, to_state="running", reason="seeded"))
        await s.commit()
    token = p.access_tokens.issue(user.id, "user")
    await p.engine.dispose()
    return token, ids[apps // 2]


def start_server(database_url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "IPAAS_DATABASE_URL": database_url,
        "IPAAS_DATA_DIR": str(data_dir),
        "IPAAS_ACCESS_TOKEN_TTL": "3600",
    }
    code = (
        "import uvicorn;"
        "from ipaas.config import Settings;"
        "from ipaas.platform import control_plane, default_adapters, open_stores;"
        "from ipaas.api.app import create_app;"
        "s = Settings(); st = open_stores(s);"
        "p = control_plane(s, st, default_adapters(s, st), run_builder=False, run_warden=False);"
        f"uvicorn.run(create_app(p), host='127.0.0.1', port={port}, log_level='error',"
        " access_log=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the API server did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_backend(label: str, database_url: str, seconds: float, runs: int) -> list[str]:
    from ipaas.store.migrate import upgrade

    data_dir = Path(tempfile.mkdtemp(prefix="ipaas-bench-"))
    upgrade(database_url)
    token, app_id = asyncio.run(seed(database_url, data_dir, 1000))
    port = free_port()
    server = start_server(database_url, data_dir, port)
    try:
        base = f"http://127.0.0.1:{port}/api/v1/applications"
        auth = {"Authorization": f"Bearer {token}"}
        etag = httpx.get(f"{base}/{app_id}/status", headers=auth).headers["etag"]
        cases = {
            "status 200": (f"{base}/{app_id}/status", auth),
            "status 304": (f"{base}/{app_id}/status", {**auth, "If-None-Match": etag}),
            "list limit=50": (f"{base}?limit=50", auth),
        }
        wrk(cases["status 200"][0], connections=32, seconds=2, headers=auth)  # warm-up
        rows = []
        for name, (url, headers) in cases.items():
            results: list[WrkResult] = [
                wrk(url, connections=32, seconds=seconds, headers=headers) for _ in range(runs)
            ]
            m = median_result(results)
            figures = f"{m.rps:,.0f} | {m.p50_ms:.1f} | {m.p99_ms:.1f} | {m.errors}"
            rows.append(f"| {label} | {name} | {figures} |")
            print(rows[-1], flush=True)
        rows.append(f"| {label} | server RSS after the runs | {rss_mb(server.pid):.0f} MB | | | |")
        return rows
    finally:
        server.terminate()
        server.wait(10)


def psql(sql: str) -> None:
    cmd = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", sql]
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        rows += bench_backend("SQLite", sqlite_url, args.seconds, args.runs)
    name = f"ipaas_bench_{uuid.uuid4().hex[:8]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        rows += bench_backend("PostgreSQL", f"{PG}/{name}", args.seconds, args.runs)
    finally:
        psql(f'DROP DATABASE "{name}" WITH (FORCE)')
    body = f"""
`bench/api_status.py`: one uvicorn worker, 1,000 apps stored, `wrk` on loopback with 32
connections and 2 threads (sharing the 2 cores with the server), {args.runs} runs of
{args.seconds:.0f} s each; medians. Target: status ≥ 2,000 requests/s with p99 < 25 ms.

| store | request | requests/s | p50 ms | p99 ms | errors |
|---|---|---|---|---|---|
""" + "\n".join(rows)
    write_section("API (bench/api_status.py)", body)


if __name__ == "__main__":
    main()
