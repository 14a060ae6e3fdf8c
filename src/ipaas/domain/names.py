"""Application names that users may not take: host names the platform or operators need."""

from __future__ import annotations

from collections.abc import Iterable

# `<name>.<base_domain>` for these would shadow the platform's own hosts, mail and name
# servers, or look official to a phishing victim. Operators replace the list with the
# `reserved_names` setting.
DEFAULT_RESERVED_NAMES: tuple[str, ...] = (
    # the platform itself
    "api", "admin", "administrator", "ipaas", "dashboard", "console", "panel", "app", "apps",
    "static", "assets", "cdn", "media", "docs", "doc", "help", "support", "status", "billing",
    "metrics", "health", "healthz", "internal", "system", "registry", "git", "proxy", "router",
    # accounts
    "auth", "login", "logout", "signin", "signup", "register", "account", "accounts", "oauth",
    "sso", "root", "security",
    # well-known service hosts
    "www", "mail", "email", "webmail", "smtp", "imap", "pop", "pop3", "mx", "ftp", "sftp", "ssh",
    "dns", "ns", "ns1", "ns2", "ns3", "ns4", "autoconfig", "autodiscover", "localhost",
    # RFC 2142 mailbox names, often verified through a host of the same name
    "abuse", "postmaster", "hostmaster", "webmaster", "noc",
)  # fmt: skip


def is_reserved(name: str, reserved: Iterable[str]) -> bool:
    """True when `name` is on the list (names are lowercase DNS labels; compared as such)."""
    return name.lower() in {r.lower() for r in reserved}
