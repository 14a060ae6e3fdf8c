"""Control-plane memory: the RSS of `ipaas up` (API + builder + warden in one process) idle, and
after serving an API load, beside its Caddy child. Target: ≤ 120 MB idle.

Usage: .venv/bin/python -m bench.memory [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.api_status import free_port, rss_mb
from bench.report import write_section, wrk

TITLE = "Control-plane memory (bench/memory.py)"


def start_up(
    data_dir: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`ipaas up` on `data_dir` (`extra_env`: say PYTHONPATH, to run another source tree)."""
    port = free_port()
    env = {
        **os.environ,
        **(extra_env or {}),
        "IPAAS_DATA_DIR": str(data_dir),
        "IPAAS_PORT": str(port),
        "IPAAS_ROUTER__HTTP_PORT": str(free_port()),
        "IPAAS_ROUTER__ADMIN_ADDRESS": f"127.0.0.1:{free_port()}",
        "IPAAS_RUNTIME__INSTANCE": f"bench-{port}",
    }
    cmd = [sys.executable, "-m", "ipaas.cli.main", "up", "--no-bootstrap"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("ipaas up did not answer")


def children_rss_mb(pid: int) -> float:
    """The RSS of the process's children (Caddy)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sum(rss_mb(int(child)) for child in out.split())


def one_run() -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="ipaas-bench-mem-") as tmp:
        proc, base = start_up(Path(tmp))
        try:
            time.sleep(10)  # settled: the warden's first reconcile, Caddy started
            idle = rss_mb(proc.pid)
            caddy = children_rss_mb(proc.pid)
            wrk(f"{base}/healthz", connections=32, seconds=5)
            wrk(f"{base}/api/v1/applications", connections=32, seconds=5)  # 401s: auth path
            loaded = rss_mb(proc.pid)
            return idle, loaded, caddy
        finally:
            proc.terminate()
            proc.wait(20)


def main(runs: int) -> None:
    results = [one_run() for _ in range(runs)]
    idle, loaded, caddy = (statistics.median(r[i] for r in results) for i in range(3))
    for label, figure in (("idle", idle), ("after load", loaded), ("caddy", caddy)):
        print(f"{label}: {figure:.0f} MB", flush=True)
    verdict = "met" if idle <= 120 else "missed"
    body = f"""
`ipaas up` on SQLite with the embedded build worker, the warden and a supervised Caddy, no apps;
RSS from /proc after 10 s idle, then after 10 s of `wrk` load (32 connections) on /healthz and an
unauthenticated API path; {runs} runs, medians. Migrations run in a child process, so Alembic never
loads into the platform, and `ipaas up` execs into a serving module once
set up, so the CLI's modules (Typer, Rich, the commands) are not resident either (122 MB before).
Comparison: Dokku, CapRover and Coolify ask for 1–2 GB for their control
plane. Target: ≤ 120 MB idle: **{verdict}**.

| process | RSS |
|---|---|
| ipaas (API + builder + warden), idle | {idle:.0f} MB |
| ipaas, after the load | {loaded:.0f} MB |
| Caddy (its child) | {caddy:.0f} MB |
"""
    write_section(TITLE, body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    main(parser.parse_args().runs)
