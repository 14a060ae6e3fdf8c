"""Local base images built from the Debian archive, for hosts that cannot reach a registry.

`bootstrap()` builds one image per recipe (python, node, go, static) with mmdebstrap piped into
`docker import`, and tags it with every tag that needs that recipe: the configured
`settings.build.base_images` plus the official tags that user Dockerfiles commonly name
(STANDIN_TAGS). Images that already exist - built here or really pulled - are left alone unless
`force` is given, so a second run is a handful of `docker image inspect` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipaas.config import Settings

LABEL_BASE = "org.ipaas.base"
LABEL_RECIPE = "org.ipaas.base.recipe"
STANDIN = "standin"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SUITE = "bookworm"
PARALLEL = 2  # mmdebstrap is I/O- and CPU-heavy; two at a time suits a 2-core machine

# Official tags that user Dockerfiles name, mapped to the recipe that stands in for them.
STANDIN_TAGS: dict[str, str] = {"python:3.11-slim": "python"}

# Every tool a build may use can trust the host's extra CAs through these variables.
_CA_ENV = {
    "SSL_CERT_FILE": CA_BUNDLE,
    "REQUESTS_CA_BUNDLE": CA_BUNDLE,
    "PIP_CERT": CA_BUNDLE,
    "NODE_EXTRA_CA_CERTS": CA_BUNDLE,
    "GIT_SSL_CAINFO": CA_BUNDLE,
}

Log = Callable[[str], object]
# mmdebstrap unpacks the whole tree in TMPDIR; RAM is much faster than disk for that.
_TMPDIR = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"


@dataclass(frozen=True)
class Recipe:
    name: str
    packages: tuple[str, ...]  # empty: the busybox-only scratch image
    cmd: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    "python": Recipe(
        "python",
        ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates"),
        ("python3",),
        # Like the official image: `pip install` outside a venv is allowed (PEP 668 would block
        # the Dockerfiles written for python:*-slim).
        {"PIP_BREAK_SYSTEM_PACKAGES": "1", "PYTHONUNBUFFERED": "1"},
    ),
    "node": Recipe("node", ("nodejs", "npm", "ca-certificates"), ("node",)),
    "go": Recipe(
        "go",
        ("golang-go", "ca-certificates", "git"),
        ("go", "version"),
        # No Go module proxy is reachable from many such hosts; fetch modules directly.
        {"GOPROXY": "direct", "GOTOOLCHAIN": "local"},
    ),
    "static": Recipe("static", (), ("/bin/sh",)),
}


class BootstrapError(RuntimeError):
    pass


def wanted_images(settings: Settings) -> dict[str, list[str]]:
    """Recipe name -> the tags it must provide (configured tags first)."""
    wanted: dict[str, list[str]] = {}
    pairs = list(settings.build.base_images.items()) + [
        (recipe, tag) for tag, recipe in STANDIN_TAGS.items()
    ]
    for recipe, tag in pairs:
        if recipe in RECIPES and tag not in wanted.setdefault(recipe, []):
            wanted[recipe].append(tag)
    return wanted


def _inspect(reference: str, template: str = "{{.Id}}") -> str | None:
    """A field of an image (a Go template), or None when there is no such image."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", template, reference],
        capture_output=True,
        timeout=30,
    )
    return result.stdout.decode().strip() if result.returncode == 0 else None


def _image_exists(tag: str) -> bool:
    return _inspect(tag) is not None


@contextlib.asynccontextmanager
async def replacing(tags: Iterable[str]) -> AsyncIterator[None]:
    """Rebuild under these tags without leaving the images they named dangling: each one no
    tag names afterwards is removed. One still in use (a parent of app images, a container's)
    stays, as the engine refuses to remove it."""
    before = {image for image in map(_inspect, tags) if image}
    yield
    for image in before:
        if _inspect(image, "{{len .RepoTags}}") == "0":
            with contextlib.suppress(BootstrapError):
                await _run(["docker", "image", "rm", image])


def missing_base_images(settings: Settings) -> list[str]:
    """Tags of base images (and database engine images) not present in the local engine."""
    from ipaas.builds.dbimages import missing_engine_images

    missing = [
        tag for tags in wanted_images(settings).values() for tag in tags if not _image_exists(tag)
    ]
    return missing + missing_engine_images()


def collect_ca_certs(paths: Iterable[Path]) -> list[Path]:
    """The PEM files named by `extra_ca_certs`: files as given, folders' *.crt and *.pem."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".crt", ".pem")))
        elif path.is_file():
            found.append(path)
    return [p for p in found if p.is_file()]


def stage_ca_certs(paths: Iterable[Path], dest: Path) -> list[str]:
    """Copy the extra CA certs into dest as uniquely named *.crt (update-ca-certificates only
    reads that suffix); return the file names."""
    dest.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for index, cert in enumerate(collect_ca_certs(paths)):
        name = f"ipaas-extra-{index:02d}-{cert.stem}.crt"
        shutil.copyfile(cert, dest / name)
        names.append(name)
    return names


def _changes(recipe: Recipe, has_certs: bool) -> list[str]:
    env = dict(recipe.env)
    if has_certs:
        env.update(_CA_ENV)
    changes = [f"LABEL {LABEL_BASE}={STANDIN} {LABEL_RECIPE}={recipe.name}"]
    changes.append("ENV LANG=C.UTF-8 " + " ".join(f"{k}={v}" for k, v in env.items()))
    changes.append("CMD " + json.dumps(list(recipe.cmd)))
    return changes


def _mmdebstrap_argv(recipe: Recipe, cert_dir: Path) -> list[str]:
    certs = shlex.quote(str(cert_dir))
    hooks = [
        f'cp {certs}/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true',
        'chroot "$1" update-ca-certificates >/dev/null',
        # Keep the image small: apt lists and caches are not needed at run time.
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
    ]
    argv = ["mmdebstrap", "--quiet", "--variant=apt", "--include=" + ",".join(recipe.packages)]
    for hook in hooks:
        argv.append("--customize-hook=" + hook)
    sources = "/etc/apt/sources.list.d/debian.sources"
    argv += [SUITE, "-"]
    # Reuse the host's apt sources (its mirror and snapshot) when it has the deb822 file.
    if Path(sources).exists():
        argv.append(sources)
    return argv


async def _run_pipeline(first: list[str], second: list[str], env: dict[str, str]) -> str:
    """first | second; returns second's stdout; raises with both stderrs on failure."""
    read_fd, write_fd = os.pipe()
    try:
        producer = await asyncio.create_subprocess_exec(
            *first, stdout=write_fd, stderr=asyncio.subprocess.PIPE, env=env
        )
        consumer = await asyncio.create_subprocess_exec(
            *second,
            stdin=read_fd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(read_fd)
        os.close(write_fd)
    (_, err1), (out2, err2) = await asyncio.gather(producer.communicate(), consumer.communicate())
    if producer.returncode != 0 or consumer.returncode != 0:
        raise BootstrapError(
            f"{first[0]} exited {producer.returncode}: {err1.decode(errors='replace')[-2000:]}\n"
            f"{second[0]} exited {consumer.returncode}: {err2.decode(errors='replace')[-2000:]}"
        )
    return out2.decode().strip()


async def _run(argv: list[str], cwd: Path | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise BootstrapError(f"{argv[0]} {argv[1]} failed: {out.decode(errors='replace')[-2000:]}")
    return out.decode()


async def _build_debian(recipe: Recipe, tag: str, work: Path, has_certs: bool) -> None:
    argv = ["docker", "import"]
    for change in _changes(recipe, has_certs):
        argv += ["-c", change]
    argv += ["-", tag]
    env = {**os.environ, "TMPDIR": _TMPDIR}
    await _run_pipeline(_mmdebstrap_argv(recipe, work / "certs"), argv, env)


def _busybox_binary() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(candidate).is_file():
            return Path(candidate)
    raise BootstrapError("no busybox binary: install busybox-static")


async def _build_static(recipe: Recipe, tag: str, work: Path) -> None:
    """FROM scratch + a static busybox: a 2 MB image that can serve files with httpd."""
    context = work / "static"
    context.mkdir()
    shutil.copyfile(_busybox_binary(), context / "busybox")
    (context / "busybox").chmod(0o755)
    dockerfile = "\n".join(
        [
            "FROM scratch",
            "COPY busybox /bin/busybox",
            'RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/tmp"]',
            'RUN ["/bin/busybox", "--install", "-s"]',
            *(c for c in _changes(recipe, has_certs=False) if not c.startswith("ENV")),
            "",
        ]
    )
    (context / "Dockerfile").write_text(dockerfile)
    await _run(["docker", "build", "-q", "-t", tag, str(context)])


async def build_recipe(recipe: Recipe, tags: list[str], settings: Settings, log: Log) -> None:
    """Build one recipe into its first tag and add the other tags."""
    with tempfile.TemporaryDirectory(prefix="ipaas-base-") as tmp:
        work = Path(tmp)
        has_certs = bool(stage_ca_certs(settings.build.extra_ca_certs, work / "certs"))
        log(f"building {recipe.name} base image as {', '.join(tags)}")
        async with replacing(tags):
            if recipe.packages:
                await _build_debian(recipe, tags[0], work, has_certs)
            else:
                await _build_static(recipe, tags[0], work)
            for tag in tags[1:]:
                await _run(["docker", "tag", tags[0], tag])
    log(f"built {recipe.name} base image: {', '.join(tags)}")


async def bootstrap(
    settings: Settings,
    only: Iterable[str] | None = None,
    force: bool = False,
    log: Log = print,
) -> list[str]:
    """Build the missing base and database engine images (all of them with force); return
    the tags built."""
    from ipaas.builds import dbimages
    from ipaas.domain.databases import Engine

    selected = set(only) if only else None
    unknown = (selected or set()) - set(RECIPES) - set(dbimages.engine_tags())
    if unknown:
        raise BootstrapError(f"unknown base image(s): {', '.join(sorted(unknown))}")
    jobs: list[tuple[Recipe, list[str]]] = []
    for name, tags in wanted_images(settings).items():
        if selected is not None and name not in selected:
            continue
        todo = tags if force else [t for t in tags if not _image_exists(t)]
        if todo:
            jobs.append((RECIPES[name], todo))
        else:
            log(f"{name}: {', '.join(tags)} already present")
    limit = asyncio.Semaphore(PARALLEL)

    async def one(recipe: Recipe, tags: list[str]) -> None:
        async with limit:
            await build_recipe(recipe, tags, settings, log)

    async def engine(engine: Engine, tag: str, whole: bool) -> None:
        async with limit:
            if whole:
                await dbimages.build_engine_image(engine, tag, log)
            else:
                await dbimages.refresh_script(tag, log)

    engines = dbimages.engine_jobs(selected, force, log)
    await asyncio.gather(*(one(r, t) for r, t in jobs), *(engine(*job) for job in engines))
    return [tag for _, tags in jobs for tag in tags] + [tag for _, tag, _ in engines]


def list_base_images(settings: Settings) -> list[dict[str, Any]]:
    """Every wanted base tag with its state (standin, pulled or missing), plus any other
    bootstrapped image still in the engine."""
    import docker

    client = docker.from_env()
    try:
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for recipe, tags in wanted_images(settings).items():
            for tag in tags:
                seen.add(tag)
                rows.append(_describe(client, recipe, tag))
        for image in client.images.list(filters={"label": f"{LABEL_BASE}={STANDIN}"}):
            # Images built FROM a stand-in inherit its labels; a stand-in itself has at most
            # the few layers bootstrap makes (1 for imports, 3 for the busybox image).
            if len(image.attrs.get("RootFS", {}).get("Layers", [])) > 3:
                continue
            for tag in image.tags:
                if tag not in seen:
                    seen.add(tag)
                    rows.append(_describe(client, image.labels.get(LABEL_RECIPE, "?"), tag))
        return rows
    finally:
        client.close()


def _describe(client: Any, recipe: str, tag: str) -> dict[str, Any]:
    import docker

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return {"recipe": recipe, "tag": tag, "state": "missing", "id": None, "size_mb": None}
    state = STANDIN if image.labels.get(LABEL_BASE) == STANDIN else "pulled"
    size = round(image.attrs.get("Size", 0) / 1e6, 1)
    return {
        "recipe": recipe,
        "tag": tag,
        "state": state,
        "id": image.short_id.removeprefix("sha256:"),
        "size_mb": size,
        "created": image.attrs.get("Created", "")[:19],
    }
