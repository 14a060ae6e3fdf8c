"""git borrows nothing of the server's account, credentials never reach argv or .git/config,
and a user's repository host is resolved once, checked, and pinned (real git, loopback only)."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ipaas.builds import git as gitfetch
from ipaas.builds.base import BuildFailed
from ipaas.builds.repo_guard import RepoGuard
from ipaas.domain.addresses import AddressPolicy
from ipaas.domain.repo_access import RepoCredentials

from .conftest import GitDaemon, GitHttp

MB = 1_000_000
TOKEN = "tok-3xYz9-secret"
PUBLIC = "93.184.216.34"  # never contacted: git is stopped before it connects
LOOPBACK_ONLY = AddressPolicy.from_lists([], ["127.0.0.0/8"])


class Spawns:
    """Records every process git.py starts (argv and environment); optionally starts none."""

    def __init__(self, run: bool) -> None:
        self.run = run
        self.calls: list[tuple[tuple[str, ...], dict[str, str]]] = []
        self._real = asyncio.create_subprocess_exec

    async def __call__(self, *argv: str, **kw: Any) -> Any:
        self.calls.append((argv, dict(kw.get("env") or {})))
        if self.run:
            return await self._real(*argv, **kw)
        return _NoProcess()

    def text(self) -> str:
        return "\n".join(" ".join(argv) + "\n" + repr(env) for argv, env in self.calls)


class _NoProcess:
    """Stands in for git when the test only looks at what git would have been given."""

    pid = -1
    returncode = 128

    async def communicate(self) -> tuple[bytes, None]:
        return b"fatal: not run by this test\n", None

    async def wait(self) -> int:
        return self.returncode


@pytest.fixture
def spawns(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], Spawns]:
    def install(run: bool = True) -> Spawns:
        spy = Spawns(run)
        monkeypatch.setattr(gitfetch.asyncio, "create_subprocess_exec", spy)
        return spy

    return install


def resolver(answers: dict[str, list[list[str]]]) -> Callable[[str, int], Any]:
    """A fake DNS: each lookup of a name takes the next answer (the last one repeats)."""
    asked: dict[str, int] = {}

    async def resolve(host: str, port: int) -> list[str]:
        index = asked.get(host, 0)
        asked[host] = index + 1
        replies = answers.get(host, [[]])
        return replies[min(index, len(replies) - 1)]

    return resolve


def _output(argv: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout


async def fetch(url: str, dest: Path, **kw: Any) -> str:
    options: dict[str, Any] = {"timeout_s": 30, "max_bytes": 50 * MB, "allow_local": False}
    options.update(kw)
    return await gitfetch.fetch(url, "main", None, dest, **options)


# --- no borrowed identity -------------------------------------------------------------------


def _home_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str) -> Path:
    """A HOME for this test process whose git configuration (both places) holds `config`."""
    home = tmp_path / "server-home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".gitconfig").write_text(config)
    (home / ".config" / "git" / "config").write_text(config)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


async def test_clone_ignores_the_git_configuration_of_the_servers_home(
    repo_factory: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = repo_factory(files={"wanted.txt": "the user's repository"})
    other = repo_factory(files={"other.txt": "what the server's config points to"})
    home = _home_with(
        tmp_path, monkeypatch, f'[url "file://{other}"]\n\tinsteadOf = file://{wanted}\n'
    )
    # The configuration is live for a git run the ordinary way, with that HOME...
    plain = _output(
        ["git", "ls-remote", "--get-url", f"file://{wanted}"],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert plain.strip() == f"file://{other}"
    # ...but not for the platform's git.
    await fetch(str(wanted), tmp_path / "out", allow_local=True)
    assert (tmp_path / "out" / "wanted.txt").is_file()
    assert not (tmp_path / "out" / "other.txt").exists()


async def test_no_credential_helper_of_the_server_is_asked(
    git_http: GitHttp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "helper-ran"
    helper = f"!f() {{ touch {marker}; echo username=alice; echo password={TOKEN}; }}; f"
    _home_with(tmp_path, monkeypatch, f'[credential]\n\thelper = "{helper}"\n')
    url = git_http.add("helper.git", files={"index.html": "hi"})
    seen = len(git_http.authorizations)
    with pytest.raises(BuildFailed) as info:
        await fetch(url, tmp_path / "out", allowed_schemes=["http"])
    assert info.value.user_fault and info.value.code == "repo_not_found"
    assert not marker.exists()
    assert git_http.expected not in git_http.authorizations[seen:]


async def test_ssh_uses_no_key_agent_or_configuration_of_the_server(
    spawns: Callable[[bool], Spawns], tmp_path: Path
) -> None:
    spy = spawns(False)
    guard = RepoGuard(AddressPolicy(), resolver({"git.example.com": [[PUBLIC]]}))
    with pytest.raises(BuildFailed):
        await fetch("git@git.example.com:acme/app.git", tmp_path / "out", guard=guard)
    (argv, env), *_ = spy.calls
    assert "SSH_AUTH_SOCK" not in env and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["HOME"] != str(Path.home())
    # What ssh would do with exactly the command git was given (`ssh -G` connects nowhere).
    command = env["GIT_SSH_COMMAND"].split()
    effective = _output([*command, "-G", "git.example.com"])
    config = dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)
    assert config["identityfile"] == "none" and config["identityagent"] == "none"
    assert config["batchmode"] == "yes" and config["stricthostkeychecking"] == "accept-new"
    assert config["userknownhostsfile"].startswith(env["HOME"])
    assert config["hostname"] == PUBLIC  # pinned to the address that was checked
    assert config["hostkeyalias"] == "git.example.com"


# --- credentials ----------------------------------------------------------------------------


async def test_credentials_in_the_url_reach_the_server_but_not_argv_or_the_checkout(
    git_http: GitHttp, spawns: Callable[[bool], Spawns], tmp_path: Path
) -> None:
    spy = spawns(True)
    git_http.add("private.git", files={"index.html": "private"})
    url = git_http.url("private.git", userinfo=f"alice:{TOKEN}@")
    seen = len(git_http.authorizations)
    await fetch(url, tmp_path / "out", allowed_schemes=["http"])
    assert (tmp_path / "out" / "index.html").read_text() == "private"
    assert git_http.expected in git_http.authorizations[seen:]  # the server got them
    assert spy.calls and all(TOKEN not in " ".join(argv) for argv, _ in spy.calls)
    assert TOKEN not in (tmp_path / "out" / ".git" / "config").read_text()


async def test_stored_credentials_are_used_for_a_clean_url(
    git_http: GitHttp, tmp_path: Path
) -> None:
    url = git_http.add("stored.git", files={"index.html": "stored"})
    credentials = RepoCredentials("alice", TOKEN)
    await fetch(url, tmp_path / "out", allowed_schemes=["http"], credentials=credentials)
    assert (tmp_path / "out" / "index.html").read_text() == "stored"


async def test_wrong_credentials_fail_without_showing_them(
    git_http: GitHttp, tmp_path: Path
) -> None:
    git_http.add("wrong.git", files={"index.html": "x"})
    url = git_http.url("wrong.git", userinfo="alice:not-the-token-42@")
    with pytest.raises(BuildFailed) as info:
        await fetch(url, tmp_path / "out", allowed_schemes=["http"])
    assert info.value.code == "repo_not_found" and "not-the-token-42" not in info.value.reason
    wrong = "Basic " + base64.b64encode(b"alice:not-the-token-42").decode()
    assert wrong in git_http.authorizations  # they were tried, then refused by the server


# --- host checks and pinning ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "git://127.0.0.1:9/x.git",
        "https://[::1]/x.git",
        "https://2130706433/x.git",
        "https://0x7f.1/x.git",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/x.git",
        "https://api.localhost/x.git",
        "ssh://git@10.1.2.3/x.git",
        "git@192.168.0.10:acme/app.git",
        "https://[::ffff:127.0.0.1]/x.git",
    ],
)
async def test_internal_hosts_are_refused_before_git_starts(
    url: str, spawns: Callable[[bool], Spawns], tmp_path: Path
) -> None:
    spy = spawns(False)
    with pytest.raises(BuildFailed) as info:
        await fetch(url, tmp_path / "out", guard=RepoGuard(AddressPolicy()))
    assert info.value.user_fault and info.value.code == "repo_host_forbidden"
    assert spy.calls == []  # no git, so no connection


async def test_ls_remote_refuses_internal_hosts_too(
    git_daemon: GitDaemon, spawns: Callable[[bool], Spawns]
) -> None:
    spy = spawns(False)
    with pytest.raises(BuildFailed) as info:
        await gitfetch.ls_remote(
            git_daemon.url("any.git"), timeout_s=10, guard=RepoGuard(AddressPolicy())
        )
    assert info.value.code == "repo_host_forbidden" and spy.calls == []


async def test_a_name_that_rebinds_to_loopback_at_clone_time_is_refused(
    spawns: Callable[[bool], Spawns], tmp_path: Path
) -> None:
    spy = spawns(False)
    dns = resolver({"rebind.example.com": [[PUBLIC], ["127.0.0.1"]]})
    guard = RepoGuard(AddressPolicy(), dns)
    url = "https://rebind.example.com/acme/app.git"
    await guard.check(url)  # when the app is created: a public address, accepted
    with pytest.raises(BuildFailed) as info:
        await fetch(url, tmp_path / "out", guard=guard)  # when it is built: loopback
    assert info.value.code == "repo_host_forbidden" and spy.calls == []


@pytest.mark.parametrize(
    ("url", "pinned"),
    [
        ("https://pin.example.com/acme/app.git", "http.curloptResolve=pin.example.com:443:"),
        ("https://pin.example.com:8443/a.git", "http.curloptResolve=pin.example.com:8443:"),
        ("git://pin.example.com/acme/app.git", "git://"),
    ],
)
async def test_git_is_given_the_address_that_was_checked(
    url: str, pinned: str, spawns: Callable[[bool], Spawns], tmp_path: Path
) -> None:
    spy = spawns(False)
    # One lookup: the checked answer is what git uses; later answers are never asked for.
    dns = resolver({"pin.example.com": [[PUBLIC], ["127.0.0.1"]]})
    with pytest.raises(BuildFailed):  # the stand-in for git fails
        await fetch(url, tmp_path / "out", guard=RepoGuard(AddressPolicy(), dns))
    (argv, env), *_ = spy.calls
    assert any(arg.startswith(pinned) and PUBLIC in arg for arg in argv), argv
    assert "http.followRedirects=false" in argv  # a redirect would leave the pinned address
    assert "127.0.0.1" not in spy.text()


async def test_pinned_https_name_reaches_the_checked_address_with_real_git(
    git_http: GitHttp, tmp_path: Path
) -> None:
    # The name exists in no DNS: the clone works only because git connects to the pinned
    # address (operator-allowed loopback) instead of resolving the name itself.
    git_http.add("pinned.git", files={"index.html": "pinned"})
    url = f"http://alice:{TOKEN}@git.pinned.example:{git_http.port}/pinned.git"
    guard = RepoGuard(LOOPBACK_ONLY, resolver({"git.pinned.example": [["127.0.0.1"]]}))
    await fetch(url, tmp_path / "out", allowed_schemes=["http"], guard=guard)
    assert (tmp_path / "out" / "index.html").read_text() == "pinned"


async def test_pinned_git_protocol_name_reaches_the_checked_address_with_real_git(
    git_daemon: GitDaemon, tmp_path: Path
) -> None:
    git_daemon.add("pinned-daemon.git", files={"index.html": "daemon"})
    url = f"git://git.pinned.example:{git_daemon.port}/pinned-daemon.git"
    guard = RepoGuard(LOOPBACK_ONLY, resolver({"git.pinned.example": [["127.0.0.1"]]}))
    await fetch(url, tmp_path / "out", guard=guard)
    assert (tmp_path / "out" / "index.html").read_text() == "daemon"


async def test_operator_allowed_host_is_fetched_by_name(
    git_daemon: GitDaemon, tmp_path: Path
) -> None:
    url = git_daemon.add("allowed-host.git", files={"index.html": "ok"})
    guard = RepoGuard(AddressPolicy.from_lists(["127.0.0.1"], []))
    await fetch(url, tmp_path / "out", guard=guard)
    assert (tmp_path / "out" / "index.html").is_file()


async def test_a_name_that_does_not_resolve_fails_the_clone(
    spawns: Callable[[bool], Spawns], tmp_path: Path
) -> None:
    spy = spawns(False)
    with pytest.raises(BuildFailed) as info:
        await fetch(
            "https://nothing.invalid/x.git", tmp_path / "out", guard=RepoGuard(AddressPolicy())
        )
    assert info.value.user_fault and info.value.code == "repo_not_found" and spy.calls == []


async def test_slow_resolution_times_out_as_a_platform_fault(tmp_path: Path) -> None:
    async def hang(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return []

    guard = RepoGuard(AddressPolicy(), hang, timeout_s=0.2)
    with pytest.raises(BuildFailed) as info:
        await fetch("https://slow.example.com/x.git", tmp_path / "out", guard=guard)
    assert not info.value.user_fault and info.value.code == "fetch_failed"
