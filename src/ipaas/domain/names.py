"""App names: DNS labels, unique on the platform; some are reserved for the platform itself
and for what operators need (`<name>.<base_domain>` for these would shadow the platform's own
hosts, mail and name servers, or look official to a phishing victim)."""

from __future__ import annotations

import re
from collections.abc import Iterable

DNS_LABEL = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])$"
_LABEL = re.compile(DNS_LABEL)

# Operators replace the list with the `reserved_names` setting.
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
DEFAULT_RESERVED = frozenset(DEFAULT_RESERVED_NAMES)


def is_reserved(name: str, reserved: Iterable[str]) -> bool:
    """True when `name` is on the list (names are lowercase DNS labels; compared as such)."""
    return name.lower() in {r.lower() for r in reserved}


def name_problem(name: str, reserved: Iterable[str] = DEFAULT_RESERVED) -> str | None:
    """None for a usable name; else why it cannot be an app's name."""
    if not 2 <= len(name) <= 63:
        return "a name has 2 to 63 characters"
    if not _LABEL.match(name):
        return "lowercase letters, digits and '-', not starting or ending with '-'"
    if is_reserved(name, reserved):
        return "this name is reserved"
    return None
