"""DockerImageBuilder against the real engine, real git and the bootstrapped base images."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ipaas.builds.base import BuildCancelled, BuildFailed, BuildOptions, BuildRequest
from ipaas.builds.docker_builder import USING_CACHE, DockerImageBuilder
from ipaas.config import RuntimeSettings, Settings
from ipaas.domain.labels import image_repository
from ipaas.domain.repo_access import RepoCredentials
from ipaas.runtime.base import LABEL_APP, LABEL_PLATFORM, LABEL_RELEASE
from ipaas.runtime.docker import DockerRuntime
from tests import services

from .conftest import SAMPLES, GitDaemon, GitHttp, LogLines, commit_all, git

pytestmark = pytest.mark.docker


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=check)
    return result.stdout.strip()


class Apps:
    """Unique app names per test; every image tagged for them is removed afterwards."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def name(self, hint: str) -> str:
        name = f"t{uuid.uuid4().hex[:8]}-{hint}"
        self.names.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.names:
            tags = docker(
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                f"label={LABEL_APP}=app-{name}",
            )
            # Earlier stages of multi-stage builds carry only a tag in the app's repository.
            tags += "\n" + docker(
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                image_repository(name, f"app-{name}"),
            )
            if tags.split():
                docker("rmi", "-f", *set(tags.split()), check=False)


@pytest.fixture
def apps() -> Iterator[Apps]:
    registry = Apps()
    yield registry
    registry.cleanup()


@pytest.fixture
def builder(base_images: Settings) -> DockerImageBuilder:
    services.need("docker")
    return DockerImageBuilder(base_images)


def request(
    name: str, url: str, release: int = 1, *, local: bool = True, **options: object
) -> BuildRequest:
    return BuildRequest(
        app_id=f"app-{name}",
        app_name=name,
        release=release,
        repo_url=url,
        branch="main",
        options=BuildOptions(**options),  # type: ignore[arg-type]
        allow_local=local,
        check_host=False,  # as for an admin's app: the test repositories are on loopback
    )


def serve_and_check(image: str) -> None:
    """Run the image as the runtime will (its capabilities only) and wait for GET /health."""
    caps = [f"--cap-add={name}" for name in RuntimeSettings().capabilities]
    security = ["--cap-drop=ALL", *caps, "--security-opt=no-new-privileges"]
    container = docker(
        "run", "-d", "--init", *security, "-p", "127.0.0.1::8080", "-e", "PORT=8080", "--rm", image
    )
    try:
        port = docker("port", container, "8080/tcp").splitlines()[0].rsplit(":", 1)[1]
        deadline = time.monotonic() + 30
        last: object = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if response.status_code == 200 and response.text.strip() == "ok":
                    return
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
        raise AssertionError(f"/health never answered ok ({last}): {logs.stdout}{logs.stderr}")
    finally:
        docker("rm", "-f", container, check=False)


def install_step_cached(lines: list[str]) -> bool:
    """Whether the step that installs dependencies was reused, read from the raw log."""
    for index, line in enumerate(lines):
        if line.startswith("Step ") and any(
            word in line for word in ("pip install", "npm ci", "go mod download")
        ):
            return USING_CACHE in lines[index + 1]
    raise AssertionError("no install step in the log")


@pytest.mark.parametrize(
    "sample", ["python-flask", "node-express", "go-http", "static-site", "dockerfile-python"]
)
async def test_build_and_run_each_sample(
    builder: DockerImageBuilder,
    repo_factory: Callable[..., Path],
    apps: Apps,
    log: LogLines,
    sample: str,
) -> None:
    repo = repo_factory(sample)
    name = apps.name(sample.split("-")[0])
    result = await builder.build(request(name, str(repo), release=3), log)
    assert result.image_tag == f"ipaas/{name}-app-{name}:r3"  # the app id is in the name
    assert result.commit == git(repo, "rev-parse", "HEAD")
    labels = json.loads(
        docker("image", "inspect", "--format", "{{json .Config.Labels}}", result.image_tag)
    )
    assert labels[LABEL_PLATFORM] == "1"
    assert labels[LABEL_APP] == f"app-{name}"
    assert labels[LABEL_RELEASE] == "3"
    assert result.image_id.startswith("sha256:")
    assert result.plan["language"] == (
        "dockerfile" if sample == "dockerfile-python" else sample.split("-")[0]
    )
    serve_and_check(result.image_tag)


async def test_code_change_reuses_install_and_dependency_change_reinstalls(
    builder: DockerImageBuilder, git_daemon: GitDaemon, apps: Apps
) -> None:
    name = apps.name("cache")
    url = git_daemon.add(f"{name}.git", "python-flask")
    repo = git_daemon.base / f"{name}.git"
    first = LogLines()
    await builder.build(request(name, url, 1, local=False), first)

    (repo / "app.py").write_text((repo / "app.py").read_text() + "\n# a code-only change\n")
    commit_all(repo, "code only")
    second = LogLines()
    result = await builder.build(request(name, url, 2, local=False), second)
    assert install_step_cached(second.lines), second.text()
    assert result.plan["install_cached"] is True
    assert "==> dependencies: cached (install step reused)" in second.lines

    (repo / "requirements.txt").write_text((repo / "requirements.txt").read_text() + "# bump\n")
    commit_all(repo, "dependencies")
    third = LogLines()
    result = await builder.build(request(name, url, 3, local=False), third)
    assert not install_step_cached(third.lines), third.text()
    assert result.plan["install_cached"] is False
    serve_and_check(result.image_tag)


async def test_nothing_to_build(
    builder: DockerImageBuilder, repo_factory: Callable[..., Path], apps: Apps, log: LogLines
) -> None:
    repo = repo_factory(files={"README.md": "just words\n"})
    with pytest.raises(BuildFailed) as info:
        await builder.build(request(apps.name("empty"), str(repo)), log)
    assert info.value.user_fault and info.value.code == "nothing_to_build"


async def test_missing_branch_over_git_daemon(
    builder: DockerImageBuilder, git_daemon: GitDaemon, apps: Apps, log: LogLines
) -> None:
    name = apps.name("branch")
    url = git_daemon.add(f"{name}.git", "static-site")
    req = request(name, url, local=False)
    req = dataclasses.replace(req, branch="does-not-exist")
    with pytest.raises(BuildFailed) as info:
        await builder.build(req, log)
    assert info.value.user_fault and info.value.code == "branch_not_found"


async def test_a_users_build_refuses_an_internal_repo_host(
    builder: DockerImageBuilder, git_daemon: GitDaemon, apps: Apps, log: LogLines
) -> None:
    name = apps.name("ssrf")
    url = git_daemon.add(f"{name}.git", "static-site")  # on loopback: internal
    req = dataclasses.replace(request(name, url, local=False), check_host=True)
    with pytest.raises(BuildFailed) as info:
        await builder.build(req, log)
    assert info.value.user_fault and info.value.code == "repo_host_forbidden"
    assert not any(line.startswith("==> commit") for line in log.lines)


@pytest.mark.parametrize("inline", [True, False])
async def test_repo_credentials_never_reach_the_build_log(
    base_images: Settings, git_http: GitHttp, apps: Apps, log: LogLines, inline: bool
) -> None:
    settings = base_images.model_copy(update={"allowed_repo_schemes": ["https", "http"]})
    name = apps.name("creds")
    git_http.add(f"{name}.git", files={"README.md": "nothing to build here\n"})
    token = "tok-3xYz9-secret"
    if inline:  # as an app stored before credentials were split off its URL
        req = request(name, git_http.url(f"{name}.git", f"alice:{token}@"), local=False)
    else:
        req = dataclasses.replace(
            request(name, git_http.url(f"{name}.git"), local=False),
            credentials=RepoCredentials("alice", token),
        )
    seen = len(git_http.authorizations)
    with pytest.raises(BuildFailed) as info:
        await DockerImageBuilder(settings).build(req, log)
    assert info.value.code == "nothing_to_build"  # so the clone with credentials worked
    assert any(line.startswith("==> commit") for line in log.lines)
    assert token not in log.text() and token not in info.value.reason
    assert git_http.expected in git_http.authorizations[seen:]


async def test_failing_install_command_is_a_user_fault(
    builder: DockerImageBuilder, repo_factory: Callable[..., Path], apps: Apps, log: LogLines
) -> None:
    repo = repo_factory("python-flask")
    command = "echo installing-fails >&2; exit 3"
    with pytest.raises(BuildFailed) as info:
        await builder.build(request(apps.name("fail"), str(repo), install_command=command), log)
    assert info.value.user_fault and info.value.code == "install_failed"
    assert "non-zero code: 3" in info.value.reason
    assert "installing-fails" in info.value.reason  # the last log lines are quoted


async def test_a_build_over_its_memory_cap_fails_and_says_so(
    base_images: Settings, repo_factory: Callable[..., Path], apps: Apps, log: LogLines
) -> None:
    services.need("docker")
    settings = base_images.model_copy(
        update={"build": base_images.build.model_copy(update={"memory_mb": 64})}
    )
    greedy = "python3 -c 'blocks = [bytearray(1 << 20) for _ in range(512)]'"
    repo = repo_factory("python-flask")
    # The dependency layers first, uncapped: under 64 MB even ensurepip can fail (exit 1, no
    # OOM kill), and only the greedy step is meant to meet the cap.
    await DockerImageBuilder(base_images).build(request(apps.name("warm"), str(repo)), log)
    with pytest.raises(BuildFailed) as info:
        await DockerImageBuilder(settings).build(
            request(apps.name("oom"), str(repo), build_command=greedy), log
        )
    assert info.value.user_fault and info.value.code == "build_out_of_memory"
    assert "out of memory" in info.value.reason and "64 MB" in info.value.reason


async def test_failing_build_in_user_dockerfile(
    builder: DockerImageBuilder, repo_factory: Callable[..., Path], apps: Apps, log: LogLines
) -> None:
    dockerfile = "FROM python:3.11-slim\nRUN python3 -c 'raise SystemExit(7)'\n"
    repo = repo_factory(files={"Dockerfile": dockerfile})
    with pytest.raises(BuildFailed) as info:
        await builder.build(request(apps.name("dfail"), str(repo)), log)
    assert info.value.user_fault and info.value.code == "build_failed"


def layers_in(lines: list[str]) -> list[str]:
    """The layers the build committed: the ' ---> <id>' line that ends each step but FROM
    (the image it names) and those found in the cache."""
    made, step = [], ""
    for index, line in enumerate(lines):
        if line.startswith("Step "):
            step = line
        layer = re.search(r"---> ([0-9a-f]{12})$", line)
        if layer and " : FROM " not in step and USING_CACHE not in lines[index - 1]:
            made.append(layer.group(1))
    return made


def image_exists(image: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
    )


async def test_a_failed_build_leaves_no_layers_of_its_own(
    builder: DockerImageBuilder, repo_factory: Callable[..., Path], apps: Apps, log: LogLines
) -> None:
    marker = uuid.uuid4().hex  # steps no earlier build has cached
    dockerfile = (
        "FROM python:3.11-slim\nCOPY marker /marker\n"
        f"RUN echo {marker} > /made\nRUN echo second > /also\n"
        "RUN python3 -c 'raise SystemExit(7)'\n"
    )
    repo = repo_factory(files={"Dockerfile": dockerfile, "marker": marker})
    with pytest.raises(BuildFailed):
        await builder.build(request(apps.name("layers"), str(repo)), log)
    made = layers_in(log.lines)
    assert len(made) >= 3, log.lines  # the COPY and the two steps that ran were committed ...
    assert [image for image in made if image_exists(image)] == []  # ... and are gone


async def test_a_retried_build_leaves_no_dangling_image_of_the_first_try(
    builder: DockerImageBuilder, repo_factory: Callable[..., Path], apps: Apps, log: LogLines
) -> None:
    name = apps.name("retry")
    tag = f"{image_repository(name, f'app-{name}')}:r1"
    repo = repo_factory(
        files={"Dockerfile": f"FROM python:3.11-slim\nRUN echo {uuid.uuid4().hex}\n"}
    )
    first = await builder.build(request(name, str(repo)), log)
    (repo / "Dockerfile").write_text(f"FROM python:3.11-slim\nRUN echo {uuid.uuid4().hex}\n")
    commit_all(repo, "second try")
    second = await builder.build(request(name, str(repo)), log)  # the same release again
    assert first.image_id != second.image_id
    assert not image_exists(first.image_id)
    assert image_exists(second.image_id) and docker("image", "inspect", "-f", "{{.Id}}", tag)


def _stages(marker: str) -> str:
    return (
        f"FROM python:3.11-slim AS build\nRUN echo {marker} > /made\n"
        "FROM python:3.11-slim\nCOPY --from=build /made /made\n"
    )


async def test_a_multi_stage_build_leaves_no_dangling_stage(
    builder: DockerImageBuilder, repo_factory: Callable[..., Path], apps: Apps, log: LogLines
) -> None:
    """The classic builder leaves each earlier stage as an untagged image: it is tagged as the
    app's cache, replaced by the next build's, and removed with the app's images."""
    name = apps.name("stages")
    stage = f"{image_repository(name, f'app-{name}')}:stage-1"
    repo = repo_factory(files={"Dockerfile": _stages(uuid.uuid4().hex)})
    await builder.build(request(name, str(repo)), log)
    first = docker("image", "inspect", "-f", "{{.Id}}", stage)
    await builder.build(request(name, str(repo), release=2), log)  # nothing changed: cached
    assert docker("image", "inspect", "-f", "{{.Id}}", stage) == first
    (repo / "Dockerfile").write_text(_stages(uuid.uuid4().hex))
    commit_all(repo, "the first stage changes")
    await builder.build(request(name, str(repo), release=3), log)
    assert docker("image", "inspect", "-f", "{{.Id}}", stage) != first
    assert not image_exists(first)  # superseded: gone, not dangling
    (repo / "Dockerfile").write_text("FROM python:3.11-slim\nRUN echo one stage\n")
    commit_all(repo, "one stage only")
    await builder.build(request(name, str(repo), release=4), log)
    assert not image_exists(stage)
    (repo / "Dockerfile").write_text(_stages(uuid.uuid4().hex))
    commit_all(repo, "two stages again")
    await builder.build(request(name, str(repo), release=5), log)
    kept = docker("image", "inspect", "-f", "{{.Id}}", stage)
    assert await DockerRuntime(RuntimeSettings()).remove_app_images(f"app-{name}") >= 2
    assert not image_exists(kept)
    assert docker("images", "-q", image_repository(name, f"app-{name}")) == ""


async def test_option_injection_branch_creates_nothing(
    builder: DockerImageBuilder,
    repo_factory: Callable[..., Path],
    apps: Apps,
    log: LogLines,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "x"
    repo = repo_factory("static-site")
    req = request(apps.name("inject"), str(repo))
    for branch, url in [
        (f"--upload-pack=touch {marker}", str(repo)),
        ("main", f"ext::sh -c touch% {marker}"),
    ]:
        with pytest.raises(BuildFailed) as info:
            await builder.build(dataclasses.replace(req, branch=branch, repo_url=url), log)
        assert info.value.user_fault and info.value.code in ("bad_ref", "invalid_repo")
    assert not marker.exists()


async def test_engine_unreachable_is_a_platform_fault(
    repo_factory: Callable[..., Path], log: LogLines
) -> None:
    builder = DockerImageBuilder(Settings(), docker_host="unix:///nonexistent/docker.sock")
    repo = repo_factory("static-site")
    with pytest.raises(BuildFailed) as info:
        await builder.build(request("t-engine-down", str(repo)), log)
    assert not info.value.user_fault and info.value.code == "engine_unavailable"


def _running_sleepers(token: str) -> list[str]:
    out = docker("ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}")
    return [line for line in out.splitlines() if token in line]


class WatchLog(LogLines):
    """Sets `seen` once a line containing the needle arrives."""

    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle = needle
        self.seen = asyncio.Event()

    async def __call__(self, line: str) -> None:
        await super().__call__(line)
        if self.needle in line:
            self.seen.set()


async def test_cancel_stops_the_build(
    builder: DockerImageBuilder, repo_factory: Callable[..., Path], apps: Apps
) -> None:
    token = uuid.uuid4().hex[:8]
    log = WatchLog("sleep 60")
    repo = repo_factory("python-flask")
    cancel = asyncio.Event()
    req = request(apps.name("cancel"), str(repo), install_command=f"sleep 60 # {token}")

    async def cancel_when_sleeping() -> None:
        await log.seen.wait()
        for _ in range(50):  # the RUN container must really be running before we cancel
            if await asyncio.to_thread(_running_sleepers, token):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the install container never ran")
        cancel.set()

    trigger = asyncio.create_task(cancel_when_sleeping())
    started = time.monotonic()
    with pytest.raises(BuildCancelled):
        await builder.build(req, log, cancel)
    trigger.cancel()
    assert time.monotonic() - started < 30
    await _wait_gone(token)


async def test_timeout_is_a_user_fault(
    base_images: Settings, repo_factory: Callable[..., Path], apps: Apps, log: LogLines
) -> None:
    settings = base_images.model_copy(deep=True)
    settings.build.timeout_s = 3
    builder = DockerImageBuilder(settings)
    token = uuid.uuid4().hex[:8]
    repo = repo_factory("python-flask")
    req = request(apps.name("slow"), str(repo), install_command=f"sleep 60 # {token}")
    with pytest.raises(BuildFailed) as info:
        await builder.build(req, log)
    assert info.value.user_fault and info.value.code == "build_timeout"
    await _wait_gone(token)


async def _wait_gone(token: str) -> None:
    """The engine notices the closed connection and kills the build container."""
    deadline = time.monotonic() + 20
    while _running_sleepers(token):
        assert time.monotonic() < deadline, "the build container kept running"
        await asyncio.sleep(0.5)


async def test_concurrency_limit(
    base_images: Settings, repo_factory: Callable[..., Path], apps: Apps
) -> None:
    settings = base_images.model_copy(deep=True)
    settings.build.concurrency = 1
    builder = DockerImageBuilder(settings)
    repo = repo_factory("static-site")
    logs = [LogLines(), LogLines()]
    results = await asyncio.gather(
        *(builder.build(request(apps.name(f"c{i}"), str(repo)), logs[i]) for i in range(2))
    )
    assert len(results) == 2
    waited = [any("waiting for a free build slot" in line for line in lg.lines) for lg in logs]
    assert waited.count(True) == 1


async def test_work_dir_is_removed(
    base_images: Settings, repo_factory: Callable[..., Path], apps: Apps, tmp_path: Path
) -> None:
    work_root = tmp_path / "work"
    work_root.mkdir()
    builder = DockerImageBuilder(base_images, work_root=work_root)
    good = repo_factory("static-site")
    await builder.build(request(apps.name("wd"), str(good)), LogLines())
    bad = repo_factory(files={"README.md": ""})
    with pytest.raises(BuildFailed):
        await builder.build(request(apps.name("wd2"), str(bad)), LogLines())
    assert list(work_root.iterdir()) == []


NODE_SERVER = """const http = require("http");
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => res.end(req.url === "/health" ? "ok\\n" : "hello\\n"))
  .listen(port, "0.0.0.0");
"""
NODE_PACKAGE = '{"name": "pm", "version": "1.0.0", "scripts": {"start": "node server.js"}}\n'
YARN_LOCK = (
    "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\n"
)
PNPM_LOCK = """lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .: {}
"""
# No [[source]]: pipenv then uses the default package index.
PIPFILE = """[packages]
flask = "==3.0.3"
gunicorn = "==23.0.0"
"""
FLASK_APP = (SAMPLES / "python-flask" / "app.py").read_text()
FLASK_PROCFILE = (SAMPLES / "python-flask" / "Procfile").read_text()


@pytest.mark.parametrize(
    ("manager", "files"),
    [
        ("yarn", {"package.json": NODE_PACKAGE, "yarn.lock": YARN_LOCK, "server.js": NODE_SERVER}),
        (
            "pnpm",
            {"package.json": NODE_PACKAGE, "pnpm-lock.yaml": PNPM_LOCK, "server.js": NODE_SERVER},
        ),
        ("pipenv", {"Pipfile": PIPFILE, "app.py": FLASK_APP, "Procfile": FLASK_PROCFILE}),
    ],
)
async def test_other_package_managers_build_and_run(
    builder: DockerImageBuilder,
    repo_factory: Callable[..., Path],
    apps: Apps,
    log: LogLines,
    manager: str,
    files: dict[str, str],
) -> None:
    """yarn.lock, pnpm-lock.yaml and a Pipfile are installed with their own tool (fetched into
    the image when the base image lacks it), and the image serves."""
    repo = repo_factory(files=files)
    result = await builder.build(request(apps.name(manager), str(repo)), log)
    install = result.plan["install_command"]
    assert (manager in install) if manager != "pipenv" else ("pipenv install" in install)
    if manager != "pipenv":
        assert result.plan["package_manager"] == manager
    assert any(f"RUN {install}" in line or install in line for line in log.lines), log.text()
    serve_and_check(result.image_tag)
