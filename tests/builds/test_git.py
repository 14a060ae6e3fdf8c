"""URL/ref validation and fetching with the real git binary (local paths and `git daemon`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ipaas.builds import git as gitfetch
from ipaas.builds.base import BuildFailed

from .conftest import GitDaemon, commit_all, free_port, git

MB = 1_000_000


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/app.git",
        "https://user:token@git.example.com/acme/app",
        "ssh://git@github.com/acme/app.git",
        "git@github.com:acme/app.git",
        "git://127.0.0.1:9418/app",
    ],
)
def test_accepted_urls(url: str) -> None:
    assert gitfetch.validate_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "-oProxyCommand=touch /tmp/x",
        "--upload-pack=touch /tmp/x",
        "ext::sh -c touch% /tmp/x",
        "fd::17",
        "file:///etc",
        "/srv/repos/app",
        "http://example.com/app.git",
        "ssh://-oProxyCommand=touch/x",
        "https://",
        "relative/path",
        "https://example.com/a b",
        "https://example.com/a\nb",
        "",
    ],
)
def test_rejected_urls(url: str) -> None:
    with pytest.raises(BuildFailed) as info:
        gitfetch.validate_url(url)
    assert info.value.user_fault and info.value.code == "invalid_repo"


def test_local_urls_only_when_allowed() -> None:
    assert gitfetch.validate_url("/srv/app", allow_local=True) == "/srv/app"
    assert gitfetch.validate_url("file:///srv/app", allow_local=True) == "file:///srv/app"
    with pytest.raises(BuildFailed):
        gitfetch.validate_url("ext::sh -c id", allow_local=True)
    with pytest.raises(BuildFailed):
        gitfetch.validate_url("git://h/x", allowed_schemes=["https"])


@pytest.mark.parametrize("branch", ["main", "feature/x-1", "release-2.0", "v1+build", "a_b"])
def test_accepted_branches(branch: str) -> None:
    assert gitfetch.validate_branch(branch) == branch


@pytest.mark.parametrize(
    "branch",
    [
        "--upload-pack=touch /tmp/x",
        "-b",
        "a..b",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "x@{1}",
        "a\\b",
        "foo.lock",
        "a/.hidden",
        "trailing/",
        "/lead",
        "a//b",
        "end.",
        "HEAD",
        "",
        "x" * 300,
    ],
)
def test_rejected_branches(branch: str) -> None:
    with pytest.raises(BuildFailed) as info:
        gitfetch.validate_branch(branch)
    assert info.value.user_fault and info.value.code == "bad_ref"


@pytest.mark.parametrize("commit", ["abc1234", "A" * 40, "0123456789abcdef"])
def test_accepted_commits(commit: str) -> None:
    assert gitfetch.validate_commit(commit) == commit.lower()


@pytest.mark.parametrize("commit", ["abc", "g" * 40, "-abcdef1", "a" * 41, "HEAD"])
def test_rejected_commits(commit: str) -> None:
    with pytest.raises(BuildFailed):
        gitfetch.validate_commit(commit)


def test_redact_url() -> None:
    assert gitfetch.redact_url("https://u:secret@h/x") == "https://***@h/x"
    assert gitfetch.redact_url("git@github.com:a/b") == "git@github.com:a/b"


def test_parse_ls_remote() -> None:
    out = "ref: refs/heads/trunk\tHEAD\nabc\tHEAD\nabc\trefs/heads/trunk\ndef\trefs/heads/dev\n"
    assert gitfetch.parse_ls_remote(out) == ("trunk", {"dev": "def", "trunk": "abc"})


# --- fetching -------------------------------------------------------------------------------


async def fetch(url: str, dest: Path, branch: str | None = "main", **kw: object) -> str:
    options: dict[str, object] = {"timeout_s": 30, "max_bytes": 50 * MB, "allow_local": True}
    options.update(kw)
    return await gitfetch.fetch(url, branch, None, dest, **options)  # type: ignore[arg-type]


async def test_fetch_local_path_returns_exact_sha(
    repo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    repo = repo_factory("static-site")
    sha = await fetch(str(repo), tmp_path / "out")
    assert sha == git(repo, "rev-parse", "HEAD") and len(sha) == 40
    assert (tmp_path / "out" / "index.html").is_file()
    # Shallow: one commit only.
    assert git(tmp_path / "out", "rev-list", "--count", "HEAD") == "1"


async def test_fetch_default_branch(repo_factory: Callable[..., Path], tmp_path: Path) -> None:
    repo = repo_factory("static-site")
    assert await fetch(str(repo), tmp_path / "out", branch=None) == git(repo, "rev-parse", "HEAD")


async def test_local_path_refused_without_allow_local(
    repo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    repo = repo_factory("static-site")
    with pytest.raises(BuildFailed) as info:
        await fetch(str(repo), tmp_path / "out", allow_local=False)
    assert info.value.code == "invalid_repo"
    with pytest.raises(BuildFailed):
        await fetch(f"file://{repo}", tmp_path / "out2", allow_local=False)


@pytest.mark.parametrize("abbreviate", [False, True])
async def test_fetch_older_commit(
    repo_factory: Callable[..., Path], tmp_path: Path, abbreviate: bool
) -> None:
    repo = repo_factory("static-site")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "new.txt").write_text("new")
    commit_all(repo)
    commit = first[:10] if abbreviate else first
    sha = await gitfetch.fetch(
        str(repo),
        "main",
        commit,
        tmp_path / "out",
        timeout_s=30,
        max_bytes=50 * MB,
        allow_local=True,
    )
    assert sha == first
    assert not (tmp_path / "out" / "new.txt").exists()


async def test_fetch_unknown_commit(repo_factory: Callable[..., Path], tmp_path: Path) -> None:
    repo = repo_factory("static-site")
    with pytest.raises(BuildFailed) as info:
        await gitfetch.fetch(
            str(repo),
            "main",
            "deadbeef" * 5,
            tmp_path / "out",
            timeout_s=30,
            max_bytes=50 * MB,
            allow_local=True,
        )
    assert info.value.user_fault and info.value.code == "commit_not_found"


async def test_size_cap(repo_factory: Callable[..., Path], tmp_path: Path) -> None:
    repo = repo_factory(files={"big.bin": "x" * 200_000, "index.html": ""})
    with pytest.raises(BuildFailed) as info:
        await fetch(str(repo), tmp_path / "out", max_bytes=100_000)
    assert info.value.user_fault and info.value.code == "repo_too_large"


async def test_fetch_over_git_daemon(git_daemon: GitDaemon, tmp_path: Path) -> None:
    url = git_daemon.add("daemon-ok.git", "static-site")
    sha = await fetch(url, tmp_path / "out", allow_local=False)
    assert sha == git(git_daemon.base / "daemon-ok.git", "rev-parse", "HEAD")


async def test_missing_branch_over_git_daemon(git_daemon: GitDaemon, tmp_path: Path) -> None:
    url = git_daemon.add("daemon-branch.git", "static-site")
    with pytest.raises(BuildFailed) as info:
        await fetch(url, tmp_path / "out", branch="no-such-branch", allow_local=False)
    assert info.value.user_fault and info.value.code == "branch_not_found"


async def test_missing_repo_over_git_daemon(git_daemon: GitDaemon, tmp_path: Path) -> None:
    with pytest.raises(BuildFailed) as info:
        await fetch(git_daemon.url("nope.git"), tmp_path / "out", allow_local=False)
    assert info.value.user_fault and info.value.code == "repo_not_found"


async def test_missing_local_repo(tmp_path: Path) -> None:
    with pytest.raises(BuildFailed) as info:
        await fetch(str(tmp_path / "nope"), tmp_path / "out")
    assert info.value.user_fault and info.value.code == "repo_not_found"


async def test_unreachable_server_is_a_platform_fault(tmp_path: Path) -> None:
    url = f"git://127.0.0.1:{free_port()}/x.git"  # nothing listens there
    with pytest.raises(BuildFailed) as info:
        await fetch(url, tmp_path / "out", allow_local=False)
    assert not info.value.user_fault and info.value.code == "fetch_failed"


async def test_timeout_kills_git_and_is_a_platform_fault(tmp_path: Path) -> None:
    import socket

    # A server that accepts and never answers: git waits until killed.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(BuildFailed) as info:
            await fetch(f"git://127.0.0.1:{port}/x.git", tmp_path / "out", timeout_s=1)
    assert not info.value.user_fault and info.value.code == "fetch_failed"
    assert "timed out" in info.value.reason


async def test_option_injection_creates_nothing(
    repo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    repo = repo_factory("static-site")
    marker = tmp_path / "pwned"
    attempts = [
        (str(repo), f"--upload-pack=touch {marker}"),
        (f"-oProxyCommand=touch {marker}", "main"),
        (f"--upload-pack=touch {marker}", "main"),
        (f"ext::sh -c touch% {marker}", "main"),
    ]
    for index, (url, branch) in enumerate(attempts):
        with pytest.raises(BuildFailed) as info:
            await fetch(url, tmp_path / f"out{index}", branch=branch)
        assert info.value.user_fault
    assert not marker.exists()


async def test_ls_remote(git_daemon: GitDaemon) -> None:
    url = git_daemon.add("daemon-ls.git", "static-site")
    git(git_daemon.base / "daemon-ls.git", "branch", "feature/a")
    default, heads = await gitfetch.ls_remote(url, timeout_s=30)
    assert default == "main"
    assert list(heads) == ["feature/a", "main"]
    assert heads["main"] == heads["feature/a"] and len(heads["main"]) == 40


async def test_ls_remote_missing_repo(git_daemon: GitDaemon) -> None:
    with pytest.raises(BuildFailed) as info:
        await gitfetch.ls_remote(git_daemon.url("missing.git"), timeout_s=30)
    assert info.value.code == "repo_not_found"
