"""The one rule for repository URLs, applied at create, at update and again at build time."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_SCHEMES = ("https", "ssh", "git")
LOCAL_PREFIXES = ("file://", "/", "./", "../")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCP_RE = re.compile(r"^(?:[^@/:\s]+@)?([^@/:\s]+):(?!//)")  # git@host:owner/repo


@dataclass(frozen=True)
class RepoUrlProblem:
    """Why a URL is refused: `code` is stable, `local` says only an admin's path was refused."""

    why: str
    local: bool = False

    @property
    def code(self) -> str:
        return "local_repo_forbidden" if self.local else "invalid_repo"


def is_local_repo(url: str) -> bool:
    return url.startswith(LOCAL_PREFIXES)


def repo_url_problem(
    url: str, *, allow_local: bool = False, allowed_schemes: Iterable[str] = DEFAULT_SCHEMES
) -> RepoUrlProblem | None:
    """None when git may fetch `url`; else why not. Local paths only with `allow_local`."""
    schemes = {s.lower() for s in allowed_schemes}
    if allow_local:
        schemes.add("file")
    if not url or len(url) > 2048:
        return RepoUrlProblem("empty or too long")
    if url.startswith("-"):
        return RepoUrlProblem("it must not start with '-'")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return RepoUrlProblem("it must not contain whitespace or control characters")
    if _TRANSPORT_RE.match(url):
        return RepoUrlProblem("transport::address URLs (such as ext::) are not allowed")
    match = _SCHEME_RE.match(url)
    if match:
        return _scheme_problem(match.group(1).lower(), url[match.end() :], schemes)
    if is_local_repo(url):
        return None if allow_local else RepoUrlProblem("only admins may deploy local paths", True)
    scp = _SCP_RE.match(url)
    if scp:
        if "ssh" not in schemes:
            return RepoUrlProblem("ssh URLs are not allowed")
        return RepoUrlProblem("invalid host") if scp.group(1).startswith("-") else None
    return RepoUrlProblem("use an https://, ssh:// or git:// URL")


def _scheme_problem(scheme: str, rest: str, schemes: set[str]) -> RepoUrlProblem | None:
    if scheme == "file" and "file" not in schemes:
        return RepoUrlProblem("only admins may deploy local paths", True)
    if scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        return RepoUrlProblem(f"scheme {scheme!r} is not allowed (allowed: {allowed})")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if scheme != "file" and (not host or host.startswith("-")):
        return RepoUrlProblem("missing or invalid host")
    return None
