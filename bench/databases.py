"""Databases, each engine: create → ready (images built), backup + verify of a ~100 MB
database beside a bare dump of it, and viewer pages of 1,000 rows (Redis: key-browser pages of
1,000 keys) through the API beside the same question asked without the API; the RSS of
`ipaas up` idle, and after the viewer's pages.

Baselines: the same page's two statements (catalog, then the keyset SELECT) on the viewer's
kept-open client in the container, asked from here over the engine's exec stream as the
platform asks them (the query alone: no HTTP, no decoding, no JSON); for PostgreSQL also the
SELECT sent straight to the server by asyncpg; for Redis the same `ipaas-db keys` exec.

With `--baseline REV`, a second `ipaas up` runs that git revision's source beside this one,
with a PostgreSQL database of its own, and the two servers' viewer pages are taken in turns
(page by page), so both see the same load on a shared machine.

Targets (issue 12): ready ≤ 10 s; viewer page p99 ≤ 100 ms; idle RSS ≤ 120 MB.
Needs the Docker engine and the database images (`ipaas images bootstrap`).
Usage: .venv/bin/python -m bench.databases [--runs 3] [--pages 200] [--mb 100] [--baseline REV]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from bench.api_status import rss_mb
from bench.memory import start_up
from bench.report import api_client, write_section

TITLE = "Databases (bench/databases.py)"
ENGINES = ("postgres", "mariadb", "redis")
NAMES = {"postgres": "PostgreSQL 15", "mariadb": "MariaDB 10.11", "redis": "Redis 7"}
COMPARED = ("postgres", "mariadb")  # the engines --baseline compares viewer pages of
ROW_BYTES = 180  # about what a row of `big` takes, to size it


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


def create_ready(api: httpx.Client, engine: str, name: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    r = api.post("/databases", json={"name": name, "engine": engine})
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


def admin(db: dict[str, Any], *argv: str) -> str:
    out = container_of(db).exec_run(["ipaas-db", "admin", *argv])
    assert out.exit_code == 0, out.output
    return str(out.output.decode())


def fill(db: dict[str, Any], creds: dict[str, Any], mb: int) -> int:
    """About `mb` MB of data; its size in bytes as the engine counts it. SQL: a table `big`
    (id primary key, two text columns) owned by the database's login; Redis: 1 KB strings."""
    rows = mb * 1024 * 1024 // ROW_BYTES
    name = creds["database"]
    if db["engine"] == "postgres":
        sql = (
            f'SET ROLE "{creds["username"]}"; '
            "CREATE TABLE big (id bigint PRIMARY KEY, name text, body text); "
            "INSERT INTO big SELECT n, md5(n::text), repeat(md5((n * 7)::text), 3) "
            f"FROM generate_series(1, {rows}) n; ANALYZE big; "
            "SELECT pg_total_relation_size('big')"
        )
        return int(admin(db, "-d", name, "-At", "-c", sql).split()[-1])
    if db["engine"] == "mariadb":
        sql = (
            "CREATE TABLE big (id bigint PRIMARY KEY, name text, body text); "
            "INSERT INTO big SELECT seq, md5(seq), repeat(md5(seq * 7), 3) "
            f"FROM seq_1_to_{rows}; ANALYZE TABLE big; "
            "SELECT data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = 'big'"
        )
        return int(admin(db, "-N", "-B", name, "-e", sql).split()[-1])
    # In steps of 8 MB: one script's writes are held until it ends (to be propagated as one),
    # and 100 MB at once ran the 256 MB container out of memory.
    script = (
        "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do local parts = {} "
        "for j = 1, 25 do parts[j] = redis.sha1hex(i .. ':' .. j) end "
        "redis.call('SET', 'key:' .. i, table.concat(parts)) end "
        "return redis.call('INFO', 'memory')"
    )
    step, info = 8 * 1024, ""
    for first in range(1, mb * 1024 + 1, step):
        last = min(first + step - 1, mb * 1024)
        info = admin(db, "EVAL", script, "0", str(first), str(last))
    used = next(line for line in info.splitlines() if line.startswith("used_memory:"))
    return int(used.split(":")[1])


def backup_verify(api: httpx.Client, db: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    backup = api.post(f"/databases/{db['id']}/backups").json()
    while backup["status"] == "running":
        time.sleep(0.2)
        backup = api.get(f"/databases/{db['id']}/backups/{backup['id']}").json()
    assert backup["status"] == "succeeded", backup
    return time.perf_counter() - started, int(backup["size_bytes"])


def bare_dump(db: dict[str, Any], database: str) -> float:
    """The baseline: the engine's dump alone, as a backup takes it, into /dev/null, in the
    same container."""
    started = time.perf_counter()
    out = container_of(db).exec_run(
        ["sh", "-c", f"ipaas-db dump {database} > /dev/null"], stdout=False
    )
    assert out.exit_code == 0, out.output
    return time.perf_counter() - started


@dataclass
class Pager:
    """One server's viewer pages of one database, page after page (following `next`)."""

    api: httpx.Client
    db: dict[str, Any]
    timings: list[float] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    size: int = 0

    def __post_init__(self) -> None:
        redis = self.db["engine"] == "redis"
        self.params = {"count": 1000} if redis else {"table": "big", "limit": 1000}

    def page(self) -> None:
        redis = self.db["engine"] == "redis"
        path = f"/databases/{self.db['id']}/{'keys' if redis else 'rows'}"
        started = time.perf_counter()
        r = self.api.get(path, params=self.params)
        self.timings.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text
        page = r.json()
        self.size = len(r.content)
        if redis:
            self.params["cursor"] = page["cursor"]
            return
        assert len(page["rows"]) == 1000 and page["paging"] == "key"
        self.params["cursor"] = page["next"]


def take_turns(pagers: list[Pager], pages: int) -> None:
    for _ in range(pages):
        for pager in pagers:
            pager.page()


class _Sessions:
    """What ViewerSessions needs of a runtime: an `ipaas-db session` over the exec stream."""

    async def open_session(self, container_id: str, argv: list[str]) -> Any:
        from ipaas.runtime.docker_databases import DockerSession

        api = docker.APIClient()
        exec_id = api.exec_create(container_id, argv, stdin=True, stdout=True, stderr=True)["Id"]
        hijacked = api.exec_start(exec_id, socket=True)
        return DockerSession(api, exec_id, getattr(hijacked, "_sock", hijacked))


async def session_pages(db: dict[str, Any], database: str, pages: int) -> list[float]:
    """The baseline: each page's two statements (the catalog, then the keyset SELECT of
    1,001 rows) on a kept-open viewer client, as the platform sends them, from this process:
    the query alone, without HTTP, decoding or JSON. ms each."""
    from ipaas.databases.viewer_sessions import ViewerSessions
    from ipaas.domain.dbpaging import (
        Position,
        catalog_query,
        choose_order,
        page_query,
        parse_catalog,
    )

    sessions = ViewerSessions(_Sessions(), 60)  # type: ignore[arg-type]
    engine, cid = db["engine"], container_of(db).id
    timings: list[float] = []
    position = Position()
    try:
        for _ in range(pages):
            started = time.perf_counter()
            out, _ = await sessions.ask(
                cid, engine, database, catalog_query(engine, "big", None), 1 << 20, 5
            )
            (table,) = parse_catalog(engine, out)
            order = choose_order(engine, table)
            sql = page_query(engine, table, order, position, 1001)
            out, _ = await sessions.ask(cid, engine, database, sql, 1 << 20, 5)
            timings.append((time.perf_counter() - started) * 1000)
            last = [line for line in out.splitlines() if line.startswith("[")][999]
            position = Position(after=(last.rsplit(",", 1)[1].strip(' "]'),))
    finally:
        await sessions.close()
    return timings


async def driver_pages(creds: dict[str, Any], address: str, pages: int) -> list[float]:
    """PostgreSQL's other baseline: the keyset SELECT (1,001 rows after the last id) sent by
    asyncpg from this host straight to the server, one connection kept open."""
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


def exec_pages(db: dict[str, Any], pages: int) -> list[float]:
    """Redis's baseline: the key browser's own exec (`ipaas-db keys`), run from here."""
    container, cursor, timings = container_of(db), "0", []
    for _ in range(pages):
        started = time.perf_counter()
        out = container.exec_run(["ipaas-db", "keys", cursor, "*", "1000", "256"])
        timings.append((time.perf_counter() - started) * 1000)
        assert out.exit_code == 0, out.output
        cursor = out.output.decode().split('"cursor":"', 1)[1].split('"', 1)[0]
    return timings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def p50_99(values: list[float]) -> str:
    return f"{percentile(values, 0.5):.1f} / {percentile(values, 0.99):.1f} ms"


@contextlib.contextmanager
def platform(tmp: Path, src: Path | None = None) -> Iterator[tuple[Any, str, str]]:
    """`ipaas up` on its own data dir (`src`: another source tree); its process, root URL and
    a bearer token."""
    proc, base = start_up(tmp, {"PYTHONPATH": str(src)} if src else None)
    try:
        time.sleep(10)
        yield proc, base, asyncio.run(seed(tmp))
    finally:
        proc.terminate()
        proc.wait(30)
        leftovers(f"bench-{base.rsplit(':', 1)[1]}")


def leftovers(instance: str) -> None:
    """Remove what a bench that stopped half-way left of its databases: their containers,
    volumes and the bench user's network (start_up names the instance bench-PORT)."""
    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": f"org.ipaas.platform={instance}"})
    volumes, networks = set(), set()
    for container in found:  # every container first: a volume in use cannot go
        if "org.ipaas.database" in container.labels:
            volumes.add(f"ipaas-db-{container.labels['org.ipaas.database']}")
        networks.update(container.attrs["NetworkSettings"]["Networks"])
        container.remove(force=True)
    for name in volumes:
        with contextlib.suppress(docker.errors.APIError):
            client.volumes.get(name).remove()
    for name in networks - {"bridge", "none", "host"}:
        with contextlib.suppress(docker.errors.APIError):
            client.networks.get(name).remove()


def source_of(rev: str, into: Path) -> tuple[Path, str]:
    """The `src` tree of git revision `rev`, written under `into`; and its short name."""
    archive = subprocess.run(["git", "archive", rev, "src"], check=True, capture_output=True)
    with tarfile.open(fileobj=__import__("io").BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    short = subprocess.run(["git", "rev-parse", "--short", rev], capture_output=True, text=True)
    return into / "src", short.stdout.strip()


@dataclass
class EngineFigures:
    ready: list[float] = field(default_factory=list)
    size: int = 0
    backups: list[tuple[float, int]] = field(default_factory=list)
    dumps: list[float] = field(default_factory=list)
    view: Pager | None = None
    alone: list[float] = field(default_factory=list)
    driver: list[float] = field(default_factory=list)


def measure_engine(
    api: httpx.Client, engine: str, runs: int, mb: int, fig: EngineFigures
) -> dict[str, Any]:
    """Backups and dumps of a filled database of `engine`; the database, left for pages."""
    _, db = create_ready(api, engine, f"bench-{engine}-big")
    creds = api.get(f"/databases/{db['id']}/credentials").json()
    fig.size = fill(db, creds, mb)
    fig.backups = [backup_verify(api, db) for _ in range(runs)]
    fig.dumps = [bare_dump(db, creds["database"]) for _ in range(runs)]
    return db


def compare_with(
    rev: str, root: Path, figs: dict[str, EngineFigures], pages: int
) -> tuple[str, dict[str, Pager]]:
    """A second `ipaas up` of revision `rev`, with a PostgreSQL and a MariaDB database of its
    own (the same table, rows enough for the pages); each engine's pages of both servers taken
    in turns. The revision's short name, and its pagers."""
    src, short = source_of(rev, root / "rev")
    (root / "b").mkdir()
    before: dict[str, Pager] = {}
    with platform(root / "b", src.resolve()) as (_, base, token), api_client(base, token) as api:
        for engine in COMPARED:
            _, db = create_ready(api, engine, f"bench-before-{engine}")
            creds = api.get(f"/databases/{db['id']}/credentials").json()
            fill(db, creds, (pages + 2) * 1000 * ROW_BYTES // 2**20 + 1)
            before[engine] = Pager(api, db)
            take_turns([figs[engine].view, before[engine]], pages)  # type: ignore[list-item]
            gone(api, db)
    return short, before


def main(runs: int, pages: int, mb: int, baseline: str | None) -> None:
    only = ["--only", ",".join(ENGINES)]  # this checkout's images (its ipaas-db script)
    cli = [sys.executable, "-m", "ipaas.cli.main", "images", "bootstrap", *only]
    subprocess.run(cli, check=True, capture_output=True)
    figs = {e: EngineFigures() for e in ENGINES}
    before: dict[str, Pager] = {}
    with tempfile.TemporaryDirectory(prefix="ipaas-bench-db-") as tmp:
        root = Path(tmp)
        (root / "a").mkdir()
        with platform(root / "a") as (proc, base, token), api_client(base, token) as api:
            idle = rss_mb(proc.pid)
            for n in range(runs):
                for engine in ENGINES:
                    seconds, db = create_ready(api, engine, f"bench-{engine}-{n}")
                    figs[engine].ready.append(seconds)
                    gone(api, db)
            dbs = {e: measure_engine(api, e, runs, mb, figs[e]) for e in ENGINES}
            for engine in ENGINES:
                figs[engine].view = Pager(api, dbs[engine])
            if baseline:
                baseline, before = compare_with(baseline, root, figs, pages)
            for engine in ENGINES:
                if engine not in before:
                    take_turns([figs[engine].view], pages)  # type: ignore[list-item]
            served = rss_mb(proc.pid)
            for engine in ("postgres", "mariadb"):
                creds = api.get(f"/databases/{dbs[engine]['id']}/credentials").json()
                figs[engine].alone = asyncio.run(
                    session_pages(dbs[engine], creds["database"], pages)
                )
            creds = api.get(f"/databases/{dbs['postgres']['id']}/credentials").json()
            nets = container_of(dbs["postgres"]).attrs["NetworkSettings"]["Networks"]
            address = next(iter(nets.values()))["IPAddress"]
            figs["postgres"].driver = asyncio.run(driver_pages(creds, address, pages))
            figs["redis"].alone = exec_pages(dbs["redis"], pages)
            for db in dbs.values():
                gone(api, db)
    report(figs, runs, pages, idle, served, before, baseline)


def report(
    figs: dict[str, EngineFigures], runs: int, pages: int, idle: float, served: float,
    before: dict[str, Pager], baseline: str | None,
) -> None:  # fmt: skip
    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    lines = ["| measure | " + " | ".join(NAMES[e] for e in ENGINES) + " | target |",
             "|---|---|---|---|---|"]  # fmt: skip

    def row(label: str, cell: Callable[[str, EngineFigures], str], target: str = "") -> None:
        lines.append(
            f"| {label} | " + " | ".join(cell(e, figs[e]) for e in ENGINES) + f" | {target} |"
        )

    med_ready = {e: statistics.median(f.ready) for e, f in figs.items()}
    row("create → running", lambda e, f: f"{med_ready[e]:.1f} s",
        "≤ 10 s: " + verdict(max(med_ready.values()) <= 10))  # fmt: skip
    row("data filled (as the engine counts it)", lambda e, f: f"{f.size / 2**20:.0f} MB")
    row("backup file", lambda e, f: f"{f.backups[0][1] / 2**20:.0f} MB")
    row("backup + verify", lambda e, f: f"{statistics.median(b[0] for b in f.backups):.1f} s")
    row("the dump alone (same command, into /dev/null)",
        lambda e, f: f"{statistics.median(f.dumps):.1f} s")  # fmt: skip
    views = {e: f.view.timings for e, f in figs.items() if f.view}
    worst = max(percentile(views[e], 0.99) for e in ("postgres", "mariadb"))
    row("viewer page of 1,000 rows (Redis: key-browser page of 1,000 keys) through the API, "
        "p50 / p99", lambda e, f: p50_99(views[e]),
        "rows, p99 ≤ 100 ms: " + verdict(worst <= 100))  # fmt: skip
    row("response size", lambda e, f: f"{f.view.size / 1024:.0f} KB" if f.view else "")
    row("the query alone: the page's catalog + SELECT on the viewer's open client "
        "(Redis: its `ipaas-db keys` exec), p50 / p99", lambda e, f: p50_99(f.alone))  # fmt: skip
    row("the SELECT by asyncpg straight to the server, p50 / p99",
        lambda e, f: p50_99(f.driver) if f.driver else "")  # fmt: skip
    row("the first page (opens the viewer's client)",
        lambda e, f: f"{f.view.timings[0]:.0f} ms" if f.view else "")  # fmt: skip
    table = "\n".join(lines)
    compare = ""
    if before:
        cells = []
        for e, then in before.items():
            view = figs[e].view
            now = view.timings if view else []
            cells.append(f"| {NAMES[e]}, `{baseline}` (before) | {p50_99(then.timings)} | "
                         f"{max(then.timings):.0f} ms |")  # fmt: skip
            cells.append(f"| {NAMES[e]}, this tree (after) | {p50_99(now)} | {max(now):.0f} ms |")
        compare = (
            f"""
Before and after, side by side in this run: a second `ipaas up` ran revision `{baseline}` beside
this tree, with databases of its own (the same table), and each engine's pages of the two
servers were taken in turns, page by page, so both saw the same load.

| viewer page of 1,000 rows, {pages} pages | p50 / p99 | max |
|---|---|---|
"""
            + "\n".join(cells)
            + "\n"
        )
    print(table)
    print(compare)
    print(f"RSS {idle:.0f} / {served:.0f} MB")
    load = Path("/proc/loadavg").read_text().split()[:3]
    body = f"""
`ipaas up` on SQLite (API, builder, warden, Caddy) on a **shared, noisy** 2-core Debian 12
machine (other sessions' builds and test suites ran beside it; load average at the end
{" / ".join(load)}), database images built beforehand. Medians over {runs} runs; viewer pages
over {pages} consecutive pages of each engine. Containers have the default limits (256 MB,
0.5 CPU).

{table}

`ipaas up` RSS idle / after the viewer's pages: {idle:.0f} / {served:.0f} MB (idle ≤ 120 MB:
{verdict(idle <= 120)}).
{compare}"""
    write_section(TITLE, body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--baseline", default=None, help="a git revision to compare pages with")
    args = parser.parse_args()
    main(args.runs, args.pages, args.mb, args.baseline)
