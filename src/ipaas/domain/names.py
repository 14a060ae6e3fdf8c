"""App names: DNS labels, unique on the platform, some reserved for the platform itself."""

from __future__ import annotations

import re

DNS_LABEL = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])$"
_LABEL = re.compile(DNS_LABEL)
DEFAULT_RESERVED = frozenset({"api", "www", "admin", "ipaas", "dashboard", "static"})


def name_problem(name: str, reserved: frozenset[str] | set[str] = DEFAULT_RESERVED) -> str | None:
    """None for a usable name; else why it cannot be an app's name."""
    if not 2 <= len(name) <= 63:
        return "a name has 2 to 63 characters"
    if not _LABEL.match(name):
        return "lowercase letters, digits and '-', not starting or ending with '-'"
    if name in reserved:
        return "this name is reserved"
    return None
