"""Build benchmark: cold build vs code-only rebuild for the python and node samples.

    .venv/bin/python bench/build.py [--runs 3] [--no-write]

Cold = no layer cache for the app (base images stay); rebuild = one source file changed and
committed, so only the layers after `COPY . .` should run. Prints a Markdown table and puts it
in docs/BENCHMARKS.md under "## Builds (bench/build.py)". Target: rebuild <= 25% of cold.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ipaas.builds.base import BuildRequest
from ipaas.builds.docker_builder import DockerImageBuilder
from ipaas.builds.images import bootstrap, missing_base_images
from ipaas.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = Path("/work/shared/samples")
BENCH_DOC = ROOT / "docs" / "BENCHMARKS.md"
HEADING = "## Builds (bench/build.py)"
# sample -> (the source file a code-only change touches, its comment marker)
CASES = {"python-flask": ("app.py", "#"), "node-express": ("server.js", "//")}
TARGET = 0.25


@dataclass
class Figures:
    cold: list[float] = field(default_factory=list)
    rebuild: list[float] = field(default_factory=list)
    size_mb: float = 0.0
    cached: list[bool] = field(default_factory=list)


def git(repo: Path, *args: str) -> None:
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@ipaas.invalid"]
    subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True)


def make_repo(sample: str, dest: Path) -> Path:
    shutil.copytree(SAMPLES / sample, dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "initial")
    return dest


def remove_images(name: str) -> None:
    """The images built for the bench app (app id = name), found by the platform's label."""
    out = subprocess.run(
        [
            "docker",
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            f"label=org.ipaas.app={name}",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    if out:
        subprocess.run(["docker", "rmi", "-f", *out], capture_output=True)


def image_size_mb(tag: str) -> float:
    size = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(size) / 1e6


async def quiet(_: str) -> None:
    return None


async def timed_build(builder: DockerImageBuilder, request: BuildRequest) -> tuple[float, dict]:
    started = time.monotonic()
    result = await builder.build(request, quiet)
    return time.monotonic() - started, {"plan": result.plan, "tag": result.image_tag}


async def bench_sample(builder: DockerImageBuilder, sample: str, runs: int, work: Path) -> Figures:
    source, comment = CASES[sample]
    figures = Figures()
    name = f"bench-{sample.split('-')[0]}-{uuid.uuid4().hex[:6]}"
    repo = make_repo(sample, work / name)
    try:
        for run in range(runs):
            remove_images(name)
            base = dict(app_id=name, app_name=name, repo_url=str(repo), allow_local=True)
            cold, _ = await timed_build(
                builder, BuildRequest(release=2 * run + 1, no_cache=True, **base)
            )
            with (repo / source).open("a") as handle:
                handle.write(f"\n{comment} code-only change {run}\n")
            git(repo, "commit", "-q", "-am", f"change {run}")
            rebuild, info = await timed_build(builder, BuildRequest(release=2 * run + 2, **base))
            figures.cold.append(cold)
            figures.rebuild.append(rebuild)
            figures.cached.append(bool(info["plan"].get("install_cached")))
            figures.size_mb = image_size_mb(info["tag"])
            print(f"{sample} run {run + 1}: cold {cold:.2f} s, rebuild {rebuild:.2f} s", flush=True)
    finally:
        remove_images(name)
    return figures


def machine() -> str:
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    uname = platform.uname()
    docker_version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs, {mem_kb / 1024 / 1024:.1f} GiB RAM, {uname.system} "
        f"{uname.release} ({uname.machine}), Docker engine {docker_version} (classic builder)"
    )


def table(results: dict[str, Figures], runs: int) -> str:
    lines = [
        "| sample | cold build (median s) | code-only rebuild (median s) | rebuild / cold "
        "| install step cached on rebuild | image size (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for sample, fig in results.items():
        cold, rebuild = statistics.median(fig.cold), statistics.median(fig.rebuild)
        ratio = rebuild / cold
        verdict = "ok" if ratio <= TARGET else "over target"
        lines.append(
            f"| {sample} | {cold:.2f} | {rebuild:.2f} | {ratio:.0%} ({verdict}) "
            f"| {sum(fig.cached)}/{len(fig.cached)} | {fig.size_mb:.0f} |"
        )
    return "\n".join(lines)


def section(body: str, runs: int) -> str:
    today = datetime.date.today().isoformat()
    return (
        f"{HEADING}\n\n"
        f"Measured {today} on {machine()}. {runs} runs per sample, medians. Cold: the app's "
        "image and layer cache removed and `no_cache=True` (base images kept); rebuild: one "
        "source line changed and committed. Both include the shallow git fetch and the "
        f"build-context upload. Target: rebuild <= {TARGET:.0%} of cold.\n\n{body}\n"
    )


def write_doc(text: str) -> None:
    BENCH_DOC.parent.mkdir(parents=True, exist_ok=True)
    current = BENCH_DOC.read_text() if BENCH_DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current).rstrip() + "\n"
    else:
        updated = current.rstrip() + "\n\n" + text
    BENCH_DOC.write_text(updated)


async def main(runs: int, write: bool) -> int:
    settings = Settings()
    if missing_base_images(settings):
        await bootstrap(settings)
    builder = DockerImageBuilder(settings)
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="ipaas-bench-") as tmp:
        for sample in CASES:
            results[sample] = await bench_sample(builder, sample, runs, Path(tmp))
    body = table(results, runs)
    print(body)
    if write:
        write_doc(section(body, runs))
        print(f"written to {BENCH_DOC}")
    ratios = [statistics.median(f.rebuild) / statistics.median(f.cold) for f in results.values()]
    return 0 if all(r <= TARGET for r in ratios) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.runs, not args.no_write)))
