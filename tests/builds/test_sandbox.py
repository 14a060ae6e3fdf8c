"""A hostile repository against the real builder: real git, real engine, real files.

The "host files" are temporary files this test owns; each test checks they were neither
written nor read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipaas.builds.base import BuildFailed, BuildOptions, BuildRequest, BuildResult
from ipaas.builds.docker_builder import DockerImageBuilder
from ipaas.config import RuntimeSettings, Settings
from ipaas.runtime.docker import DockerRuntime
from tests import services

from .conftest import SAMPLES, LogLines, commit_all, make_repo

pytestmark = pytest.mark.docker


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=check)
    return result.stdout.strip()


class Apps:
    """App ids and names made per test; every image labelled with those ids is removed after."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def request(self, repo: Path, name: str | None = None, **options: object) -> BuildRequest:
        app_id = uuid.uuid4().hex
        self.ids.append(app_id)
        return BuildRequest(
            app_id=app_id,
            app_name=name or f"t{app_id[:8]}",
            release=1,
            repo_url=str(repo),
            branch="main",
            options=BuildOptions(**options),  # type: ignore[arg-type]
            allow_local=True,
        )

    def cleanup(self) -> None:
        # As the platform does when it deletes an app (a release built FROM another included).
        runtime = DockerRuntime(RuntimeSettings())
        for app_id in self.ids:
            asyncio.run(runtime.remove_app_images(app_id))


@pytest.fixture
def apps() -> Iterator[Apps]:
    registry = Apps()
    yield registry
    registry.cleanup()


def settings_with(base: Settings, **build: object) -> Settings:
    return base.model_copy(update={"build": base.build.model_copy(update=build)})


@pytest.fixture
def builder(base_images: Settings) -> DockerImageBuilder:
    services.need("docker")
    return DockerImageBuilder(base_images)


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    """Stands in for /etc/cron.d/x, /etc/shadow and the like."""
    path = tmp_path / "host" / "precious"
    path.parent.mkdir()
    path.write_text("HOST-SECRET-CONTENT\n")
    return path


def static_repo(tmp_path: Path, links: dict[str, Path]) -> Path:
    """The static sample plus symlinks (committed as symlinks) to paths outside the repo; a
    file of the sample with the same name is replaced by the symlink."""
    repo = tmp_path / f"repo-{uuid.uuid4().hex[:6]}"
    shutil.copytree(SAMPLES / "static-site", repo)
    for name, target in links.items():
        (repo / name).unlink(missing_ok=True)
        (repo / name).symlink_to(target)
    return make_repo(repo)


def text_of(path: Path) -> str:
    return path.read_text()


def write(path: Path, text: str) -> None:
    path.write_text(text)


def ca_and_host_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A real CA certificate to add to builds, and an empty folder standing in for /root."""
    cert = next(Path("/etc/ssl/certs").glob("*.pem"))
    ca = tmp_path / "extra-ca.crt"
    ca.write_bytes(cert.read_bytes())
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    return ca, host_dir


async def test_generated_dockerfile_name_symlinked_to_a_host_file(
    builder: DockerImageBuilder, apps: Apps, tmp_path: Path, host_file: Path, log: LogLines
) -> None:
    """`.ipaas.Dockerfile -> /etc/cron.d/x` used to make the builder overwrite that file."""
    repo = static_repo(tmp_path, {".ipaas.Dockerfile": host_file})
    error: BuildFailed | None = None
    try:
        await builder.build(apps.request(repo), log)
    except BuildFailed as exc:
        error = exc
    assert text_of(host_file) == "HOST-SECRET-CONTENT\n"  # checked whether or not it built
    assert error is None, error.reason


async def test_ca_folder_symlinked_to_a_host_folder(
    base_images: Settings, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    """`.ipaas-ca -> /root` used to make the builder copy files into that folder."""
    ca, host_dir = ca_and_host_dir(tmp_path)
    settings = settings_with(base_images, extra_ca_certs=[ca])
    repo = static_repo(tmp_path, {".ipaas-ca": host_dir})
    await DockerImageBuilder(settings).build(apps.request(repo), log)
    assert list(host_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["Dockerfile", "Procfile", ".dockerignore", "index.html"])
async def test_repository_files_symlinked_to_a_host_file_are_refused(
    builder: DockerImageBuilder,
    apps: Apps,
    tmp_path: Path,
    host_file: Path,
    log: LogLines,
    name: str,
) -> None:
    write(host_file, "FROM busybox:stable\nRUN echo HOST-SECRET-CONTENT\n")
    repo = static_repo(tmp_path, {name: host_file})
    with pytest.raises(BuildFailed) as info:
        await builder.build(apps.request(repo), log)
    assert info.value.user_fault and info.value.code == "unsafe_path"
    assert name in info.value.reason
    assert "HOST-SECRET-CONTENT" not in log.text() + info.value.reason
    assert text_of(host_file).startswith("FROM busybox")


class Ticker:
    """A task that should run every 10 ms; records the longest gap (a blocked event loop)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now


async def test_dockerignore_to_dev_zero_fails_fast_without_blocking(
    builder: DockerImageBuilder, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    """docker-py read `.dockerignore` with a plain open(): /dev/zero never ends (and fills
    memory). Now it is refused at once and the event loop keeps running."""
    repo = static_repo(tmp_path, {".dockerignore": Path("/dev/zero")})
    started = time.monotonic()
    async with Ticker() as ticker:
        with pytest.raises(BuildFailed) as info:
            await asyncio.wait_for(builder.build(apps.request(repo), log), timeout=60)
    assert info.value.user_fault and info.value.code == "unsafe_path"
    assert time.monotonic() - started < 30
    assert ticker.longest < 0.5


async def test_a_huge_procfile_line_does_not_freeze_the_control_plane(
    builder: DockerImageBuilder, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    """The Procfile regex backtracked quadratically, on the event loop (~8 s for this line)."""
    procfile = "web: a" + " " * 40_000 + "b\n"
    repo = make_repo(tmp_path / "repo", "static-site", {"Procfile": procfile})
    async with Ticker() as ticker:
        with pytest.raises(BuildFailed) as info:
            await builder.build(apps.request(repo), log)
    assert info.value.user_fault and info.value.code == "bad_manifest"
    assert ticker.longest < 0.5


async def build_static(builder: DockerImageBuilder, request: BuildRequest) -> BuildResult:
    return await builder.build(request, LogLines())


async def test_from_another_apps_image_is_refused(
    builder: DockerImageBuilder, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    victim = await build_static(builder, apps.request(make_repo(tmp_path / "v", "static-site")))
    for dockerfile in (
        f"FROM {victim.image_tag}\nRUN cat /app/index.html\n",
        f"ARG BASE={victim.image_tag}\nFROM $BASE\n",
        f"FROM busybox:stable\nCOPY --from={victim.image_tag} /app /stolen\n",
        f"FROM {victim.image_id}\n",
    ):
        repo = make_repo(tmp_path / uuid.uuid4().hex[:6], files={"Dockerfile": dockerfile})
        with pytest.raises(BuildFailed) as info:
            await builder.build(apps.request(repo), log)
        assert info.value.user_fault and info.value.code == "base_image_not_allowed"
        assert victim.image_tag in info.value.reason or victim.image_id in info.value.reason
    assert "Step 1/" not in log.text()  # refused before the engine saw it


async def test_from_the_same_apps_image_is_allowed(
    builder: DockerImageBuilder, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    repo = make_repo(tmp_path / "repo", "static-site")
    request = apps.request(repo)
    first = await build_static(builder, request)
    assert request.app_id in first.image_tag  # the app's id is part of its image names
    (repo / "Dockerfile").write_text(f"FROM {first.image_tag}\nRUN test -f /app/index.html\n")
    commit_all(repo, "build on release 1")
    second = await builder.build(dataclasses.replace(request, release=2), log)
    assert second.plan["language"] == "dockerfile"
    # Deleting the app removes both, release 1 whichever order the engine lists them in.
    await DockerRuntime(RuntimeSettings()).remove_app_images(request.app_id)
    for image in (first.image_id, second.image_id):
        assert docker("images", "-q", "--no-trunc", "--all").count(image) == 0


async def test_a_recreated_app_never_sees_the_old_apps_images(
    builder: DockerImageBuilder, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    """Same name, new app: release 1 of each is its own image, and the old one is refused."""
    name = f"t{uuid.uuid4().hex[:8]}-same"
    old = await build_static(
        builder, apps.request(make_repo(tmp_path / "old", "static-site"), name)
    )
    new_repo = make_repo(tmp_path / "new", files={"Dockerfile": f"FROM {old.image_tag}\n"})
    with pytest.raises(BuildFailed) as info:
        await builder.build(apps.request(new_repo, name), log)
    assert info.value.code == "base_image_not_allowed"
    (new_repo / "Dockerfile").unlink()
    (new_repo / "index.html").write_text("new app\n")
    commit_all(new_repo, "static")
    new = await build_static(builder, apps.request(new_repo, name))
    assert new.image_tag != old.image_tag
    assert docker("image", "inspect", "--format", "{{.Id}}", old.image_tag) == old.image_id


async def test_build_output_over_the_cap_keeps_the_end_and_says_what_was_cut(
    base_images: Settings, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    dockerfile = (
        "FROM busybox:stable\n"
        'RUN i=0; while [ $i -lt 4000 ]; do echo "noise-line-$i"; i=$((i+1)); done;'
        " echo LAST-LINE\n"
    )
    repo = make_repo(tmp_path / "repo", files={"Dockerfile": dockerfile})
    builder = DockerImageBuilder(settings_with(base_images, max_log_kb=16))
    await builder.build(apps.request(repo), log)
    kept = sum(len(line.encode()) + 1 for line in log.lines)
    assert kept < 20 * 1024, kept  # 4000 lines are about 60 KB
    marker = next(i for i, line in enumerate(log.lines) if "of build output dropped" in line)
    assert "lines (" in log.lines[marker] and "bytes)" in log.lines[marker]
    assert any("LAST-LINE" in line for line in log.lines[marker:])
    assert any(line.startswith("==> built") for line in log.lines[marker:])
    assert any("Step 1/" in line for line in log.lines[:marker])  # the start is kept too


async def test_a_context_over_the_cap_is_refused(
    base_images: Settings, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    repo = make_repo(tmp_path / "repo", "static-site")
    (repo / "blob.bin").write_bytes(os.urandom(1_500_000))
    commit_all(repo, "a big file")
    builder = DockerImageBuilder(settings_with(base_images, max_context_mb=1))
    with pytest.raises(BuildFailed) as info:
        await builder.build(apps.request(repo), log)
    assert info.value.user_fault and info.value.code == "context_too_large"
    assert "Step 1/" not in log.text()


async def test_build_steps_run_under_the_cpu_quota(
    base_images: Settings, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    dockerfile = (
        "FROM busybox:stable\n"
        "RUN cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; true\n"
    )
    repo = make_repo(tmp_path / "repo", files={"Dockerfile": dockerfile})
    builder = DockerImageBuilder(settings_with(base_images, cpus=0.5))
    await builder.build(apps.request(repo), log)
    assert any(line.split()[:1] == ["50000"] for line in log.lines), log.text()


async def test_a_fork_bomb_step_stops_at_the_process_cap(
    base_images: Settings, apps: Apps, tmp_path: Path, log: LogLines
) -> None:
    # Each child sleeps, so the step keeps every process it made: 300 are asked for, 64 allowed.
    forks = (
        "import os, time\n"
        "for i in range(300):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "print('made them all')\n"
    )
    dockerfile = "FROM python:3.11-slim\nCOPY fork.py /fork.py\nRUN python3 /fork.py\n"
    repo = make_repo(tmp_path / "repo", files={"Dockerfile": dockerfile, "fork.py": forks})
    builder = DockerImageBuilder(settings_with(base_images, pids_limit=64))
    started = time.monotonic()
    with pytest.raises(BuildFailed) as info:
        await builder.build(apps.request(repo), log)
    assert info.value.user_fault and info.value.code == "build_too_many_processes"
    assert "64" in info.value.reason and "build.pids_limit" in info.value.reason
    assert "made them all" not in log.text()
    assert time.monotonic() - started < 60  # stopped at the cap, not by the build timeout


def test_the_process_cap_cgroup_is_made_and_removed(tmp_path: Path) -> None:
    from ipaas.builds.cgroups import BuildCgroup

    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "tasks").write_text("")
    cgroup = BuildCgroup("ipaas-build-t", 64, root=tmp_path)
    assert cgroup.create() == "ipaas-build-t"
    assert (tmp_path / "pids" / "ipaas-build-t" / "pids.max").read_text() == "64"
    (tmp_path / "pids" / "ipaas-build-t" / "pids.max").unlink()  # a real cgroup dir is empty
    cgroup.remove()
    assert not (tmp_path / "pids" / "ipaas-build-t").exists()
    assert BuildCgroup("x", 64, root=tmp_path / "nowhere").create() is None
    assert BuildCgroup("x", 0, root=tmp_path).create() is None
