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
import signal
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ipaas.builds.base import BuildFailed
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


def redact_url(url: str) -> str:
    """The URL without any user:password@ part, for logs and error messages."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url)


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


def _git_env() -> dict[str, str]:
    """A minimal environment: never prompt, never use the caller's credentials helpers."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/true",
            "SSH_ASKPASS": "/bin/true",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            "GIT_PROTOCOL_FROM_USER": "0",
            "LC_ALL": "C",  # stderr is matched against English messages
        }
    )
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def _config_args(allow_local: bool) -> list[str]:
    file_allow = "always" if allow_local else "never"
    return [
        "-c",
        f"protocol.file.allow={file_allow}",
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "advice.detachedHead=false",
        "-c",
        "core.hooksPath=/dev/null",
    ]


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_git(
    args: Sequence[str], *, cwd: Path | None, timeout_s: float, allow_local: bool
) -> tuple[int, str]:
    """Run git with the safe environment; return (exit code, stdout+stderr).

    On timeout or cancellation the whole process group is killed; timeout raises
    a platform-fault BuildFailed (the network is the usual cause).
    """
    proc = await asyncio.create_subprocess_exec(
        "git",
        *_config_args(allow_local),
        *args,
        cwd=cwd,
        env=_git_env(),
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
    return proc.returncode or 0, out.decode(errors="replace")


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
) -> str:
    """Shallow-clone branch (None: the default branch) of url into dest, check out commit if
    given, and return the exact SHA of what is checked out."""
    url = validate_url(url, allow_local=allow_local, allowed_schemes=allowed_schemes)
    if branch is not None:
        validate_branch(branch)
    if commit is not None:
        commit = validate_commit(commit)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s

    def left() -> float:
        return deadline - loop.time()

    # A plain path makes git copy the whole repository (--depth is ignored); file:// does not.
    source = f"file://{url}" if url.startswith("/") else url
    branch_args = ["--branch", branch] if branch else []
    clone = ["clone", "--depth", "1", "--single-branch", "--no-tags", *branch_args]
    code, out = await run_git(
        [*clone, "--", source, str(dest)], cwd=None, timeout_s=left(), allow_local=allow_local
    )
    if code != 0:
        raise classify(out, url, "clone of")
    if commit is not None:
        await _checkout_commit(url, commit, dest, left, allow_local)
    size = tree_size(dest, max_bytes)
    if size > max_bytes:
        raise GitError(
            f"repository checkout is larger than {max_bytes // 1_000_000} MB",
            user_fault=True,
            code="repo_too_large",
        )
    return await _head(dest, left(), allow_local)


async def _is_shallow(dest: Path, timeout_s: float) -> bool:
    code, out = await run_git(
        ["rev-parse", "--is-shallow-repository"], cwd=dest, timeout_s=timeout_s, allow_local=False
    )
    return code == 0 and out.strip() == "true"


async def _head(dest: Path, timeout_s: float, allow_local: bool) -> str:
    code, out = await run_git(
        ["rev-parse", "HEAD"], cwd=dest, timeout_s=timeout_s, allow_local=allow_local
    )
    if code != 0:
        raise GitError(
            f"git rev-parse failed: {out.strip()}", user_fault=False, code="fetch_failed"
        )
    return out.strip()


async def _checkout_commit(
    url: str, commit: str, dest: Path, left: Callable[[], float], allow_local: bool
) -> None:
    """Fetch just that commit when the server allows it; otherwise deepen the clone."""
    if (await _head(dest, left(), allow_local)).startswith(commit):
        return
    if len(commit) == 40:
        code, _ = await run_git(
            ["fetch", "--depth", "1", "--no-tags", "origin", "--", commit],
            cwd=dest,
            timeout_s=left(),
            allow_local=allow_local,
        )
    else:
        code = 1  # abbreviated SHAs cannot be fetched by name
    if code != 0:
        # Servers that refuse unadvertised wants: fetch the branch's history instead.
        code, out = await run_git(
            ["fetch", "--unshallow" if await _is_shallow(dest, left()) else "-q", "origin"],
            cwd=dest,
            timeout_s=left(),
            allow_local=allow_local,
        )
        if code != 0:
            raise classify(out, url, "fetch of")
    code, out = await run_git(
        ["checkout", "--detach", commit, "--"],
        cwd=dest,
        timeout_s=left(),
        allow_local=allow_local,
    )
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
) -> tuple[str | None, dict[str, str]]:
    """(default branch or None, branch name -> head commit) of a remote repository."""
    url = validate_url(url, allow_local=allow_local, allowed_schemes=allowed_schemes)
    code, out = await run_git(
        ["ls-remote", "--symref", "--", url, "HEAD", "refs/heads/*"],
        cwd=None,
        timeout_s=timeout_s,
        allow_local=allow_local,
    )
    if code != 0:
        raise classify(out, url, "ls-remote of")
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
