"""Fixtures for build tests: throwaway git repositories, a loopback git daemon, base images."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import http.server
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from ipaas.config import Settings
from tests import services
from tests.support import free_port, wait_port

# shared/ lies beside the checkout (CI copies it there); /work/shared on developer machines.
SAMPLES = next(
    (
        p
        for p in (
            Path(__file__).resolve().parents[3] / "shared" / "samples",
            Path("/work/shared/samples"),
        )
        if p.is_dir()
    ),
    Path("/work/shared/samples"),
)
GIT_ID = ["-c", "user.name=ipaas-test", "-c", "user.email=test@ipaas.invalid"]


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def commit_all(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, sample: str | None = None, files: dict[str, str] | None = None) -> Path:
    """A git repository on branch main holding a sample and/or the given files."""
    path.mkdir(parents=True, exist_ok=True)
    if sample:
        shutil.copytree(SAMPLES / sample, path, dirs_exist_ok=True)
    for name, text in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    commit_all(path, "initial")
    return path


@pytest.fixture
def repo_factory(tmp_path: Path) -> Callable[..., Path]:
    def factory(sample: str | None = None, files: dict[str, str] | None = None) -> Path:
        return make_repo(tmp_path / f"repo-{uuid.uuid4().hex[:6]}", sample, files)

    return factory


class GitDaemon:
    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def add(self, name: str, sample: str | None = None, files: dict[str, str] | None = None) -> str:
        make_repo(self.base / name, sample, files)
        return self.url(name)


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    """`git daemon` exporting every repository under a temporary folder, on loopback."""
    base = tmp_path_factory.mktemp("git-daemon")
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={base}",
            "--export-all",
            f"--port={port}",
            "--listen=127.0.0.1",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield GitDaemon(base, port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def build_network() -> Iterator[None]:
    """The builder makes its network on first use; a run that made it removes it again."""
    import docker

    from ipaas.runtime.docker import BUILD_NETWORK

    client = docker.from_env()
    found = [n for n in client.networks.list(names=[BUILD_NETWORK]) if n.name == BUILD_NETWORK]
    yield
    if not found:
        for net in client.networks.list(names=[BUILD_NETWORK]):
            if net.name == BUILD_NETWORK:
                net.remove()
    client.close()


@pytest.fixture(scope="session")
def base_images(build_network: None) -> Settings:
    """Settings whose base images exist in the engine (bootstrapped once when missing)."""
    services.need("docker")
    from ipaas.builds.images import bootstrap, missing_base_images

    settings = Settings()
    if missing_base_images(settings):
        # A worker thread: the session's event loop may already be running here.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, bootstrap(settings)).result()
    return settings


class LogLines:
    """A LogSink that keeps the lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def log() -> LogLines:
    return LogLines()


class GitHttp:
    """A smart-HTTP git server on loopback (`git http-backend` behind Basic auth), recording
    the Authorization header of every request."""

    def __init__(self, base: Path, port: int, username: str, password: str) -> None:
        self.base = base
        self.port = port
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.authorizations: list[str | None] = []

    def url(self, name: str, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}/{name}"

    def add(self, name: str, sample: str | None = None, files: dict[str, str] | None = None) -> str:
        make_repo(self.base / name, sample, files)
        return self.url(name)


class _GitHttpHandler(http.server.BaseHTTPRequestHandler):
    server: _GitHttpServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass

    def _serve(self) -> None:
        site = self.server.site
        authorization = self.headers.get("Authorization")
        site.authorizations.append(authorization)
        if authorization != site.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, payload = self._backend(body)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _backend(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        return http_backend(self.server.site.base, self.command, self.path, self.headers, body)


def http_backend(
    root: Path, method: str, target: str, headers: Mapping[str, str], body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One smart-HTTP request answered by `git http-backend` for the repositories under root:
    (status, headers, body)."""
    path, _, query = target.partition("?")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_METHOD": method,
        "CONTENT_TYPE": headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": "test",
        "REMOTE_ADDR": "127.0.0.1",
    }
    if headers.get("Content-Encoding"):
        env["HTTP_CONTENT_ENCODING"] = headers["Content-Encoding"]
    if headers.get("Git-Protocol"):
        env["GIT_PROTOCOL"] = headers["Git-Protocol"]
    out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
    head, _, payload = out.stdout.partition(b"\r\n\r\n")
    status, found = 200, []
    for line in head.decode().split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            found.append((name, value.strip()))
    return status, found, payload


class _GitHttpServer(http.server.ThreadingHTTPServer):
    site: GitHttp


@contextlib.contextmanager
def serve_git_http(base: Path) -> Iterator[GitHttp]:
    """Repositories under base over http on loopback; only alice / tok-3xYz9-secret get in."""
    server = _GitHttpServer(("127.0.0.1", 0), _GitHttpHandler)
    server.site = GitHttp(base, server.server_address[1], "alice", "tok-3xYz9-secret")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def git_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttp]:
    with serve_git_http(tmp_path_factory.mktemp("git-http")) as site:
        yield site
