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


_LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
APP_NAME_MAX = 34  # GitHub's limit on a GitHub App's name
# What the platform's GitHub App may do: read code (to clone and to show a file), its metadata,
# and pull requests (previews). Nothing else, nothing written.
APP_PERMISSIONS = {"contents": "read", "metadata": "read", "pull_requests": "read"}
APP_EVENTS = ["push", "pull_request"]


def login_problem(text: str) -> str | None:
    """Why `text` is not a GitHub user or organisation login, or None."""
    if not _LOGIN_RE.match(text) or "--" in text or text.endswith("-"):
        return "expected a GitHub login: letters, digits and single hyphens, at most 39"
    return None


def app_name_problem(text: str) -> str | None:
    if not text.strip() or len(text) > APP_NAME_MAX:
        return f"a GitHub App's name has 1 to {APP_NAME_MAX} characters"
    if any(not c.isprintable() for c in text):
        return "a GitHub App's name is printable text"
    return None


def default_app_name(public_url: str) -> str:
    """`ipaas <host>`, cut to GitHub's limit (a name is unique on GitHub: admins may pick)."""
    host = public_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return f"ipaas {host}"[:APP_NAME_MAX].strip()


def app_manifest(
    *, name: str, public_url: str, redirect_url: str, signin_callback: str, hook_url: str
) -> dict[str, object]:
    """The GitHub App manifest the platform registers itself with: private, the permissions
    above, users sign in through it, and one webhook for every repository it is installed on."""
    return {
        "name": name,
        "url": public_url,
        "description": f"Deploys repositories to the platform at {public_url}",
        "public": False,
        "redirect_url": redirect_url,
        "callback_urls": [signin_callback],
        "request_oauth_on_install": False,
        "hook_attributes": {"url": hook_url, "active": True},
        "default_permissions": dict(APP_PERMISSIONS),
        "default_events": list(APP_EVENTS),
    }


def manifest_post_url(web_url: str, org: str | None) -> str:
    """Where the manifest form is posted: the user's account, or an organisation's."""
    base = web_url.rstrip("/")
    return f"{base}/organizations/{org}/settings/apps/new" if org else f"{base}/settings/apps/new"


def install_url(html_url: str) -> str:
    """Where an admin installs the App on accounts and repositories."""
    return f"{html_url.rstrip('/')}/installations/new"
