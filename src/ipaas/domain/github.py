"""GitHub's vocabulary as data: repository names, pagination links, clone URLs."""

from __future__ import annotations

import re

# GitHub's own rules: owners are letters, digits and single hyphens; repository names also
# allow '.' and '_' (but are never '.' or '..').
_FULL_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


def full_name_problem(text: str) -> str | None:
    """Why `owner/repo` is not a GitHub repository name, or None."""
    if not _FULL_NAME_RE.match(text):
        return "expected owner/repo (letters, digits, '-', and '.' '_' in the repository name)"
    if text.split("/", 1)[1] in (".", "..") or text.endswith(".git"):
        return "not a repository name"
    return None


def looks_like_full_name(text: str) -> bool:
    """`owner/repo` rather than a URL or a path."""
    return "://" not in text and ":" not in text and _FULL_NAME_RE.match(text) is not None


def clone_url(git_url: str, full_name: str) -> str:
    """Where git fetches a repository of the configured GitHub (never with credentials)."""
    return f"{git_url.rstrip('/')}/{full_name}.git"


def links(header: str | None) -> dict[str, str]:
    """rel -> URL of a `Link` header (RFC 8288), as GitHub paginates."""
    return {rel: url for url, rel in _LINK_RE.findall(header or "")}
