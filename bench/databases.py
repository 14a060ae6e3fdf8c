"""Databases: create → ready for each engine (images built), backup + verify of a ~100 MB
PostgreSQL database beside a bare `pg_dump` of it, and viewer pages of 1,000 rows through the
API beside the same SELECT sent straight to the server with asyncpg; the RSS of `ipaas up`
idle, and after the viewer's pages.

Targets (issue 12): ready ≤ 10 s; viewer page p99 ≤ 100 ms; idle RSS ≤ 120 MB.
Needs the Docker engine and the database images (`ipaas images bootstrap`).
Usage: .venv/bin/python -m bench.databases [--runs 3] [--pages 200] [--mb 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import httpx

from bench.api_status import rss_mb
from bench.memory import start_up
from bench.report import api_client, write_section

TITLE = "Databases (bench/databases.py)"
ENGINES = ("postgres", "mariadb", "redis")


async def seed(data_dir: Path) -> str:
    """A user with room for the databases; their bearer token."""
    from ipaas.auth.passwords import hash_password
    from ipaas.config import Settings
    from ipaas.platform import admin_process

    stores = admin_process(Settings(data_dir=data_dir))
    user = await stores.users.create("bench", hash_password("bench bench bench"), "admin")
    token = stores.access_tokens.issue(user.id, "admin")
    await stores.engine.dispose()
    return token


def wait_state(api: httpx.Client, db_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        db = api.get(f"/databases/{db_id}").json()
        if db["state"] != "creating":
            return dict(db)
        time.sleep(0.05)
    raise RuntimeError(f"database {db_id} never left creating")


def create_ready(api: httpx.Client, engine: str, n: int) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    r = api.post("/databases", json={"name": f"bench-{engine}-{n}", "engine": engine})
    assert r.status_code == 201, r.text
    db = wait_state(api, r.json()["id"])
    assert db["state"] == "running", db
    return time.perf_counter() - started, db


def gone(api: httpx.Client, db: dict[str, Any]) -> None:
    """Deleted (no final backup), and waited for: its memory is the quota's again."""
    api.delete(f"/databases/{db['id']}", params={"final_backup": "false"})
    deadline = time.monotonic() + 60
    while api.get(f"/databases/{db['id']}").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.2)


def container_of(db: dict[str, Any]) -> Any:
    (found,) = docker.from_env().containers.list(
        filters={"label": f"org.ipaas.database={db['id']}"}
    )
    return found


def fill(db: dict[str, Any], creds: dict[str, Any], mb: int) -> int:
    """A table `big` (id primary key, two text columns) of about `mb` MB, owned by the
    database's login; its size in bytes."""
    rows = mb * 1024 * 1024 // 180
    sql = (
        f'SET ROLE "{creds["username"]}"; '
        "CREATE TABLE big (id bigint PRIMARY KEY, name text, body text); "
        "INSERT INTO big SELECT n, md5(n::text), repeat(md5((n * 7)::text), 3) "
        f"FROM generate_series(1, {rows}) n; ANALYZE big; "
        "SELECT pg_total_relation_size('big')"
    )
    argv = ["ipaas-db", "admin", "-d", creds["database"], "-At", "-c", sql]
    out = container_of(db).exec_run(argv)
    assert out.exit_code == 0, out.output
    return int(out.output.decode().split()[-1])


def backup_verify(api: httpx.Client, db: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    backup = api.post(f"/databases/{db['id']}/backups").json()
    while backup["status"] == "running":
        time.sleep(0.2)
        backup = api.get(f"/databases/{db['id']}/backups/{backup['id']}").json()
    assert backup["status"] == "succeeded", backup
    return time.perf_counter() - started, int(backup["size_bytes"])


def bare_dump(db: dict[str, Any], database: str) -> float:
    """The baseline: pg_dump alone (the same format) into /dev/null, in the same container."""
    started = time.perf_counter()
    out = container_of(db).exec_run(
        ["sh", "-c", f"ipaas-db dump {database} > /dev/null"], stdout=False
    )
    assert out.exit_code == 0, out.output
    return time.perf_counter() - started


def viewer_pages(api: httpx.Client, db: dict[str, Any], pages: int) -> tuple[list[float], int]:
    """`pages` pages of 1,000 rows through the API, following `next`; ms each, and the ids
    where each page started (for the baseline to ask the same)."""
    timings: list[float] = []
    params: dict[str, Any] = {"table": "big", "limit": 1000}
    for _ in range(pages):
        started = time.perf_counter()
        r = api.get(f"/databases/{db['id']}/rows", params=params)
        timings.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["rows"]) == 1000 and page["paging"] == "key"
        params["cursor"] = page["next"]
    return timings, len(r.content)


async def driver_pages(creds: dict[str, Any], address: str, pages: int) -> list[float]:
    """The baseline: the same keyset SELECT (1,000 rows after the last id), sent by asyncpg
    from this host straight to the server, one connection kept open."""
    import asyncpg

    conn = await asyncpg.connect(
        host=address, port=5432, user=creds["username"], password=creds["password"],
        database=creds["database"],
    )  # fmt: skip
    timings: list[float] = []
    last = 0
    try:
        for _ in range(pages):
            started = time.perf_counter()
            rows = await conn.fetch(
                "SELECT id, name, body FROM big WHERE id > $1 ORDER BY id LIMIT 1001", last
            )
            timings.append((time.perf_counter() - started) * 1000)
            last = rows[999]["id"]
    finally:
        await conn.close()
    return timings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(runs: int, pages: int, mb: int) -> None:
    only = ["--only", ",".join(ENGINES)]  # this checkout's images (its ipaas-db script)
    cli = [sys.executable, "-m", "ipaas.cli.main", "images", "bootstrap", *only]
    subprocess.run(cli, check=True, capture_output=True)
    ready: dict[str, list[float]] = {e: [] for e in ENGINES}
    with tempfile.TemporaryDirectory(prefix="ipaas-bench-db-") as tmp:
        proc, base = start_up(Path(tmp))
        try:
            time.sleep(10)
            idle = rss_mb(proc.pid)
            token = asyncio.run(seed(Path(tmp)))
            with api_client(base, token) as api:
                for n in range(runs):
                    for engine in ENGINES:
                        seconds, db = create_ready(api, engine, n)
                        ready[engine].append(seconds)
                        gone(api, db)
                _, db = create_ready(api, "postgres", 99)
                creds = api.get(f"/databases/{db['id']}/credentials").json()
                size = fill(db, creds, mb)
                backups = [backup_verify(api, db) for _ in range(runs)]
                dumps = [bare_dump(db, creds["database"]) for _ in range(runs)]
                view, page_bytes = viewer_pages(api, db, pages)
                served = rss_mb(proc.pid)
                nets = container_of(db).attrs["NetworkSettings"]["Networks"]
                address = next(iter(nets.values()))["IPAddress"]
                direct = asyncio.run(driver_pages(creds, address, pages))
                gone(api, db)
        finally:
            proc.terminate()
            proc.wait(30)
    med = {e: statistics.median(v) for e, v in ready.items()}
    backup_s = statistics.median(b[0] for b in backups)
    dump_s = statistics.median(dumps)
    v50, v99 = percentile(view, 0.5), percentile(view, 0.99)
    d50, d99 = percentile(direct, 0.5), percentile(direct, 0.99)
    print(f"ready {med}; backup {backup_s:.1f} s vs dump {dump_s:.1f} s")
    print(f"viewer {v50:.1f}/{v99:.1f} ms vs driver {d50:.1f}/{d99:.1f} ms")
    print(f"RSS {idle:.0f} / {served:.0f} MB")

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    body = f"""
`ipaas up` on SQLite (API, builder, warden, Caddy) on a shared 2-core Debian 12 machine (other
work ran beside it: figures are pessimistic), database images built beforehand. Medians over
{runs} runs; viewer pages over {pages} consecutive pages. Containers have the default limits
(256 MB, 0.5 CPU).

| measure | ipaas | baseline | ratio | target |
|---|---|---|---|---|
| create → running, PostgreSQL 15 | {med["postgres"]:.1f} s | | | ≤ 10 s: \
{verdict(med["postgres"] <= 10)} |
| create → running, MariaDB 10.11 | {med["mariadb"]:.1f} s | | | ≤ 10 s: \
{verdict(med["mariadb"] <= 10)} |
| create → running, Redis 7 | {med["redis"]:.1f} s | | | ≤ 10 s: {verdict(med["redis"] <= 10)} |
| backup + verify, PostgreSQL table of {size / 2**20:.0f} MB (dump {backups[0][1] / 2**20:.0f} \
MB) vs `pg_dump -Fc` alone | {backup_s:.1f} s | {dump_s:.1f} s | {backup_s / dump_s:.1f}× | |
| viewer page of 1,000 rows (3 columns, {page_bytes / 1024:.0f} KB of JSON), p50 / p99: \
API vs the same SELECT by asyncpg | {v50:.1f} / {v99:.1f} ms | {d50:.1f} / {d99:.1f} ms \
| {v50 / d50:.1f}× / {v99 / d99:.1f}× | p99 ≤ 100 ms: {verdict(v99 <= 100)} |
| the first of those pages (opens the database's viewer client) | {view[0]:.0f} ms | \
{direct[0]:.1f} ms | | |
| `ipaas up` RSS idle / after the viewer's pages | {idle:.0f} / {served:.0f} MB | | | idle ≤ \
120 MB: {verdict(idle <= 120)} |

A backup is a dump and then a restore of it into a scratch container where every table is
counted, so it costs about a dump plus a restore. A viewer page is a catalog lookup and the
keyset SELECT on a client kept open inside the database's container (no process started per
page), answered as JSON through the API; the baseline sends only the SELECT, over one
connection, and decodes binary rows.
"""
    write_section(TITLE, body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    main(args.runs, args.pages, args.mb)
