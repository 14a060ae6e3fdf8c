"""Fetching user repositories with the `git` binary.

Every URL, branch and commit comes from a user, so each is validated before it reaches an
argument vector, always placed after `--`, and git runs without a shell, without prompts and
in its own process group so a timeout can kill it and everything it started (ssh, helpers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ipaas.builds.base import BuildFailed
from ipaas.builds.repo_guard import Pin, RepoGuard
from ipaas.domain.repo_access import RepoCredentials, split_credentials
from ipaas.domain.repo_access import redact_url as redact_url
from ipaas.domain.repos import DEFAULT_SCHEMES, repo_url_problem

_COMMIT_RE = re.compile(r"^[0-9a-fA-F]{7,40}$")
_BRANCH_CHARS = re.compile(r"^[A-Za-z0-9._/+-]+$")

# stderr fragments -> (code, user_fault). First match wins, so branch errors come first.
_ERRORS: tuple[tuple[str, str, bool], ...] = (
    ("remote branch", "branch_not_found", True),
    ("couldn't find remote ref", "branch_not_found", True),
    ("not our ref", "commit_not_found", True),
    ("did not match any", "commit_not_found", True),
    ("reference is not a tree", "commit_not_found", True),
    ("repository not found", "repo_not_found", True),
    ("not found", "repo_not_found", True),
    ("does not exist", "repo_not_found", True),
    ("does not appear to be a git repository", "repo_not_found", True),
    ("not exported", "repo_not_found", True),
    ("access denied", "repo_not_found", True),
    ("authentication failed", "repo_not_found", True),
    ("could not read username", "repo_not_found", True),
    ("could not read password", "repo_not_found", True),
    ("permission denied", "repo_not_found", True),
    ("terminal prompts disabled", "repo_not_found", True),
    ("host key verification failed", "repo_not_found", True),
)


class GitError(BuildFailed):
    pass


def validate_url(
    url: str, *, allow_local: bool = False, allowed_schemes: Iterable[str] = DEFAULT_SCHEMES
) -> str:
    """Return the URL if git may fetch it, else raise a user-fault BuildFailed (the same rule
    as at create and update: `domain.repos`)."""
    problem = repo_url_problem(url, allow_local=allow_local, allowed_schemes=allowed_schemes)
    if problem is not None:
        raise GitError(
            f"repository URL rejected: {problem.why}", user_fault=True, code="invalid_repo"
        )
    return url


def validate_branch(branch: str) -> str:
    """git check-ref-format --branch rules, plus a conservative character set and no
    leading '-' (which git would read as an option)."""

    def bad(why: str) -> GitError:
        return GitError(f"invalid branch name {branch!r}: {why}", user_fault=True, code="bad_ref")

    if not branch or len(branch) > 255:
        raise bad("empty or too long")
    if branch.startswith("-"):
        raise bad("it must not start with '-'")
    if not _BRANCH_CHARS.match(branch):
        raise bad("only letters, digits and . _ / + - are allowed")
    if ".." in branch or "//" in branch or branch.endswith((".", "/", ".lock")):
        raise bad("'..', '//' and a trailing '.', '/' or '.lock' are not allowed")
    if branch.startswith("/") or branch == "HEAD":
        raise bad("not a branch name")
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        raise bad("no path component may start with '.' or end with '.lock'")
    return branch


def validate_commit(commit: str) -> str:
    if not _COMMIT_RE.match(commit):
        raise GitError(
            f"invalid commit {commit!r}: 7 to 40 hexadecimal digits expected",
            user_fault=True,
            code="bad_ref",
        )
    return commit.lower()


_ASKPASS = """#!/bin/sh
# Answers git's prompts from two files of the private HOME (mode 0600), so credentials reach
# neither an argument vector nor an environment (both of which `ps` can show); with none
# given, it fails and git gives up instead of waiting.
case "$1" in
  Username*) f="$HOME/.ipaas-username" ;;
  *) f="$HOME/.ipaas-password" ;;
esac
[ -f "$f" ] && cat "$f" && printf '\\n'
"""


def _private_home(home: Path, credentials: RepoCredentials | None) -> Path:
    """Fill an empty HOME for git and ssh: their known_hosts, the askpass script and the
    credentials it answers with (the folder is the caller's temporary one, mode 0700)."""
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    askpass = home / "askpass"
    askpass.write_text(_ASKPASS)
    askpass.chmod(0o700)
    if credentials is not None:
        for name, value in (("username", credentials.username), ("password", credentials.password)):
            secret = home / f".ipaas-{name}"
            secret.touch(mode=0o600)
            secret.write_text(value)
    return askpass


def _ssh_command(home: Path, pin: Pin | None) -> str:
    """ssh with no configuration, key, agent or known host of the server's account (ssh reads
    those from the passwd home, not $HOME, so each is switched off by an option)."""
    options = [
        "-F", "/dev/null",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityFile=none",
        "-o", "IdentityAgent=none",
        "-o", "ControlPath=none",
        "-o", "ProxyCommand=none",
        "-o", "PermitLocalCommand=no",
        "-o", "ForwardAgent=no",
        # A fresh HOME each run: accept-new trusts a host's first key for this run only, and
        # the operator's /etc/ssh/ssh_known_hosts still pins the keys of hosts listed there.
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={home / '.ssh' / 'known_hosts'}",
    ]  # fmt: skip
    if pin is not None and pin.ip is not None:
        # Connect to the address that was checked; keys stay filed under the name.
        options += ["-o", f"HostName={pin.ip}", "-o", f"HostKeyAlias={pin.endpoint.host}"]
        options += ["-o", "CheckHostIP=no"]
    return " ".join(shlex.quote(part) for part in ["ssh", *options])


def _git_env(home: Path, pin: Pin | None, credentials: RepoCredentials | None) -> dict[str, str]:
    """A minimal environment with nothing of the server's identity: an empty private HOME, no
    system or global git configuration, no credential helper, no ssh agent, never a prompt."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR")}
    askpass = _private_home(home, credentials)
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": str(askpass),
            "SSH_ASKPASS": "/bin/false",
            "SSH_ASKPASS_REQUIRE": "never",
            "GIT_SSH_COMMAND": _ssh_command(home, pin),
            "GIT_SSH_VARIANT": "ssh",
            "GIT_PROTOCOL_FROM_USER": "0",
            "LC_ALL": "C",  # stderr is matched against English messages
        }
    )
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def _config_args(
    allow_local: bool, allowed_schemes: Iterable[str] = DEFAULT_SCHEMES, pin: Pin | None = None
) -> list[str]:
    """Command-line configuration (never written to the checkout's .git/config)."""
    protocols = {s.lower() for s in allowed_schemes if s.lower() != "file"}
    if allow_local:
        protocols.add("file")
    settings = [
        "protocol.allow=never",  # every transport not named below, ext:: and fd:: included
        *(f"protocol.{name}.allow=always" for name in sorted(protocols)),
        "credential.helper=",  # an empty value clears any helper from any configuration
        "http.followRedirects=false",  # a redirect would leave the pinned address
        "advice.detachedHead=false",
        "core.hooksPath=/dev/null",
    ]
    if pin is not None and pin.ip is not None and pin.endpoint.scheme in ("https", "http"):
        endpoint = pin.endpoint
        ip = f"[{pin.ip}]" if ":" in pin.ip else pin.ip
        settings.append(f"http.curloptResolve={endpoint.host}:{endpoint.port}:{ip}")
    return [arg for setting in settings for arg in ("-c", setting)]


def pinned_source(url: str, pin: Pin | None) -> str:
    """The URL to give git: git:// URLs name the checked address itself (git has no option to
    pin a git:// host); https is pinned by http.curloptResolve and ssh by its HostName."""
    if pin is None or pin.ip is None or pin.endpoint.scheme != "git":
        return url
    parts = urlsplit(url)
    ip = f"[{pin.ip}]" if ":" in pin.ip else pin.ip
    netloc = f"{ip}:{parts.port}" if parts.port else ip
    return urlunsplit(parts._replace(netloc=netloc))


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None,
    timeout_s: float,
    allow_local: bool,
    allowed_schemes: Iterable[str] = DEFAULT_SCHEMES,
    pin: Pin | None = None,
    credentials: RepoCredentials | None = None,
) -> tuple[int, str]:
    """Run git with the safe environment; return (exit code, stdout+stderr).

    On timeout or cancellation the whole process group is killed; timeout raises
    a platform-fault BuildFailed (the network is the usual cause).
    """
    with tempfile.TemporaryDirectory(prefix="ipaas-git-home-") as home:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *_config_args(allow_local, allowed_schemes, pin),
            *args,
            cwd=cwd,
            env=_git_env(Path(home), pin, credentials),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, so killpg reaches ssh too
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=max(timeout_s, 0.1))
        except TimeoutError:
            _kill_group(proc)
            await proc.wait()
            raise GitError(
                f"git {args[0]} timed out after {timeout_s:.0f} s",
                user_fault=False,
                code="fetch_failed",
            ) from None
        except asyncio.CancelledError:
            _kill_group(proc)
            await proc.wait()
            raise
    return proc.returncode or 0, _scrub(out.decode(errors="replace"), credentials)


def _scrub(output: str, credentials: RepoCredentials | None) -> str:
    """git's output without the password, should a server or git ever echo it."""
    if credentials is not None and len(credentials.password) >= 4:
        output = output.replace(credentials.password, "***")
    return output


def classify(output: str, url: str, what: str) -> GitError:
    """Turn git's output into a BuildFailed with the right code and fault."""
    lower = output.lower()
    detail = output.strip().splitlines()[-3:] if output.strip() else []
    message = f"{what} {redact_url(url)} failed: " + " | ".join(detail)
    for fragment, code, user_fault in _ERRORS:
        if fragment in lower:
            return GitError(message, user_fault=user_fault, code=code)
    return GitError(message, user_fault=False, code="fetch_failed")


def tree_size(root: Path, limit: int) -> int:
    """Bytes of regular files under root (symlinks not followed); stops once over limit."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
        if total > limit:
            break
    return total


@dataclass(frozen=True)
class Remote:
    """How git may reach one repository: what it may use, the pinned address, credentials."""

    url: str  # what the user gave, without credentials (for messages)
    source: str  # what git is given (a git:// URL names the pinned address)
    allow_local: bool = False
    allowed_schemes: tuple[str, ...] = DEFAULT_SCHEMES
    pin: Pin | None = None
    credentials: RepoCredentials | None = None

    async def git(self, args: Sequence[str], cwd: Path | None, timeout_s: float) -> tuple[int, str]:
        return await run_git(
            args,
            cwd=cwd,
            timeout_s=timeout_s,
            allow_local=self.allow_local,
            allowed_schemes=self.allowed_schemes,
            pin=self.pin,
            credentials=self.credentials,
        )


async def open_remote(
    url: str,
    *,
    allow_local: bool,
    allowed_schemes: Iterable[str],
    guard: RepoGuard | None,
    credentials: RepoCredentials | None,
    timeout_s: float,
) -> Remote:
    """Validate the URL, split off credentials written in it, and (with a guard, for users who
    are not admins) resolve, check and pin its host before git connects to anything; all of
    it within `timeout_s`."""
    return await asyncio.wait_for(
        _open_remote(url, allow_local, allowed_schemes, guard, credentials),
        timeout=max(timeout_s, 0.1),
    )


async def _open_remote(
    url: str,
    allow_local: bool,
    allowed_schemes: Iterable[str],
    guard: RepoGuard | None,
    credentials: RepoCredentials | None,
) -> Remote:
    url, inline = split_credentials(url)
    url = validate_url(url, allow_local=allow_local, allowed_schemes=allowed_schemes)
    pin = await guard.pin(url) if guard is not None else None
    # A plain path makes git copy the whole repository (--depth is ignored); file:// does not.
    source = f"file://{url}" if url.startswith("/") else pinned_source(url, pin)
    return Remote(
        url=url,
        source=source,
        allow_local=allow_local,
        allowed_schemes=tuple(allowed_schemes),
        pin=pin,
        credentials=credentials or inline,
    )


async def fetch(
    url: str,
    branch: str | None,
    commit: str | None,
    dest: Path,
    *,
    timeout_s: float,
    max_bytes: int,
    allow_local: bool = False,
    allowed_schemes: Iterable[str] = DEFAULT_SCHEMES,
    guard: RepoGuard | None = None,
    credentials: RepoCredentials | None = None,
) -> str:
    """Shallow-clone branch (None: the default branch) of url into dest, check out commit if
    given, and return the exact SHA of what is checked out."""
    if branch is not None:
        validate_branch(branch)
    if commit is not None:
        commit = validate_commit(commit)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s

    def left() -> float:
        return deadline - loop.time()

    remote = await open_remote(
        url,
        allow_local=allow_local,
        allowed_schemes=allowed_schemes,
        guard=guard,
        credentials=credentials,
        timeout_s=left(),
    )
    branch_args = ["--branch", branch] if branch else []
    clone = ["clone", "--depth", "1", "--single-branch", "--no-tags", *branch_args]
    code, out = await remote.git([*clone, "--", remote.source, str(dest)], None, left())
    if code != 0:
        raise classify(out, remote.url, "clone of")
    if commit is not None:
        await _checkout_commit(remote, commit, dest, left)
    size = tree_size(dest, max_bytes)
    if size > max_bytes:
        raise GitError(
            f"repository checkout is larger than {max_bytes // 1_000_000} MB",
            user_fault=True,
            code="repo_too_large",
        )
    return await _head(remote, dest, left())


async def _is_shallow(remote: Remote, dest: Path, timeout_s: float) -> bool:
    code, out = await remote.git(["rev-parse", "--is-shallow-repository"], dest, timeout_s)
    return code == 0 and out.strip() == "true"


async def _head(remote: Remote, dest: Path, timeout_s: float) -> str:
    code, out = await remote.git(["rev-parse", "HEAD"], dest, timeout_s)
    if code != 0:
        raise GitError(
            f"git rev-parse failed: {out.strip()}", user_fault=False, code="fetch_failed"
        )
    return out.strip()


async def _checkout_commit(
    remote: Remote, commit: str, dest: Path, left: Callable[[], float]
) -> None:
    """Fetch just that commit when the server allows it; otherwise deepen the clone."""
    if (await _head(remote, dest, left())).startswith(commit):
        return
    if len(commit) == 40:
        fetch_one = ["fetch", "--depth", "1", "--no-tags", "origin", "--", commit]
        code, _ = await remote.git(fetch_one, dest, left())
    else:
        code = 1  # abbreviated SHAs cannot be fetched by name
    if code != 0:
        # Servers that refuse unadvertised wants: fetch the branch's history instead.
        deepen = "--unshallow" if await _is_shallow(remote, dest, left()) else "-q"
        code, out = await remote.git(["fetch", deepen, "origin"], dest, left())
        if code != 0:
            raise classify(out, remote.url, "fetch of")
    code, out = await remote.git(["checkout", "--detach", commit, "--"], dest, left())
    if code != 0:
        raise GitError(
            f"commit {commit} not found on the branch: {out.strip()[-300:]}",
            user_fault=True,
            code="commit_not_found",
        )


async def ls_remote(
    url: str,
    *,
    timeout_s: float,
    allow_local: bool = False,
    allowed_schemes: Iterable[str] = DEFAULT_SCHEMES,
    guard: RepoGuard | None = None,
    credentials: RepoCredentials | None = None,
) -> tuple[str | None, dict[str, str]]:
    """(default branch or None, branch name -> head commit) of a remote repository."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    remote = await open_remote(
        url,
        allow_local=allow_local,
        allowed_schemes=allowed_schemes,
        guard=guard,
        credentials=credentials,
        timeout_s=timeout_s,
    )
    args = ["ls-remote", "--symref", "--", remote.source, "HEAD", "refs/heads/*"]
    code, out = await remote.git(args, None, deadline - loop.time())
    if code != 0:
        raise classify(out, remote.url, "ls-remote of")
    return parse_ls_remote(out)


def parse_ls_remote(output: str) -> tuple[str | None, dict[str, str]]:
    default: str | None = None
    heads: dict[str, str] = {}
    for line in output.splitlines():
        left, _, right = line.partition("\t")
        if left.startswith("ref: refs/heads/") and right == "HEAD":
            default = left.removeprefix("ref: refs/heads/")
        elif right.startswith("refs/heads/"):
            heads[right.removeprefix("refs/heads/")] = left
    return default, dict(sorted(heads.items()))
