"""Logs: time to page through 100,000 lines (lines/s) with limit=1000 and limit=10000, and the
follow latency (a line written → received over SSE), p50/p99.

The whole platform in one process (as bench/deploy.py runs it), one app that writes numbered
lines on request. Usage: .venv/bin/python -m bench.logs [--runs 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from bench.deploy import bench_settings, cleanup, ensure_base_images
from bench.report import write_section
from ipaas.auth.passwords import hash_password
from ipaas.platform import api_process
from ipaas.store.migrate import upgrade
from tests.e2e.test_logs import DOCKERFILE, SERVER
from tests.live import start_live

TITLE = "Logs (bench/logs.py)"
LINES = 100_000
# Writes "tick <wall ns>" every 20 ms for a while: the follower subtracts that from its clock.
TICKER = SERVER.replace(
    'print("listening", flush=True)',
    """print("listening", flush=True)
import threading, time
def tick():
    while True:
        time.sleep(0.02)
        if os.path.exists("/tmp/tick"):
            print(f"tick {time.time_ns()}", flush=True)
threading.Thread(target=tick, daemon=True).start()""",
).replace(
    'if url.path == "/emit":',
    'if url.path == "/tick":\n'
    '            open("/tmp/tick", "w").close()\n'
    '        if url.path == "/emit":',
)


def make_repo(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "Dockerfile").write_text(DOCKERFILE)
    (dest / "server.py").write_text(TICKER)
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@ipaas.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "app"]):
        subprocess.run(["git", *ident, *args], cwd=dest, check=True)
    return dest


def page_all(client: httpx.Client, app_id: str, limit: int) -> tuple[int, float]:
    start = time.perf_counter()
    params: dict[str, str | int] = {"limit": limit, "from": "now-1h"}
    count = 0
    while True:
        body = client.get(f"/applications/{app_id}/logs", params=params).json()
        count += len(body["lines"])
        if not body["has_more"]:
            return count, time.perf_counter() - start
        params = {"limit": limit, "cursor": body["next"]}


def follow_latency(client: httpx.Client, app_id: str, address: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def poke() -> None:
        time.sleep(0.5)
        httpx.get(f"http://{address}/tick", timeout=5)

    threading.Thread(target=poke, daemon=True).start()
    params = {"follow": 1, "from": "now"}
    with client.stream("GET", f"/applications/{app_id}/logs", params=params) as stream:
        for raw in stream.iter_lines():
            if raw.startswith("data: "):
                line = json.loads(raw[6:])["line"]
                if line.startswith("tick "):
                    latencies.append((time.time_ns() - int(line.split()[1])) / 1e6)
            if time.monotonic() > stop:
                break
    return latencies


def main(runs: int, write: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ipaas-bench-logs-") as tmp:
        work = Path(tmp)
        database_url = f"sqlite+aiosqlite:///{work / 'ipaas.db'}"
        upgrade(database_url)
        settings = bench_settings(work / "data", database_url)
        ensure_base_images(settings)
        plane = api_process(settings)
        live = start_live(plane)
        user = live.run(
            plane.stores.users.create(f"b{uuid.uuid4().hex[:8]}", hash_password("x"), "admin")
        )
        token = plane.stores.access_tokens.issue(user.id, "admin")
        client = httpx.Client(
            base_url=f"{live.base}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        app_ids: list[str] = []
        try:
            repo = make_repo(work / "repo")
            r = client.post(
                "/applications",
                json={"name": f"logs-{uuid.uuid4().hex[:6]}", "repo": f"file://{repo}"},
            )
            app_id = r.json()["id"]
            app_ids.append(app_id)
            while client.get(f"/applications/{app_id}/status").json()["state"] != "running":
                time.sleep(0.3)
            address = client.get(f"/applications/{app_id}").json()["address"]
            httpx.get(f"http://{address}/emit", params={"n": LINES, "block": 500}, timeout=300)
            time.sleep(1)
            rows = []
            for limit in (1000, 10_000):
                results = [page_all(client, app_id, limit) for _ in range(runs)]
                counts = {c for c, _ in results}
                secs = statistics.median(s for _, s in results)
                lines = max(counts)
                rows.append(
                    f"| page through, limit={limit:,} | {lines:,} lines | {secs:.2f} s | "
                    f"{lines / secs:,.0f} lines/s |"
                )
                print(rows[-1], flush=True)
            lat = sorted(follow_latency(client, app_id, address, 10))
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            figures = f"p50 {p50:.0f} ms | p99 {p99:.0f} ms"
            rows.append(f"| follow: write → received | {len(lat)} lines | {figures} |")
            print(rows[-1], flush=True)
        finally:
            client.close()
            live.stop()
            cleanup(app_ids, user.id)
    body = (
        f"One app's {LINES:,} numbered lines (a third on stderr), paged through "
        f"`GET /applications/{{id}}/logs` by cursor over the engine's log API, {runs} runs, "
        "medians; then a line written every 20 ms for 10 s while a client follows over SSE "
        "(latency = receive time − the wall time the app put in the line; same clock). "
        "Targets: ≥ 50,000 lines/s paging; follow p99 < 500 ms.\n\n"
        "| what | size | time | rate |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    if write:
        write_section(TITLE, body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    main(args.runs, not args.no_write)
