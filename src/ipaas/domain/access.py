"""Who may open an app's URL: everyone for a public app, its owner and admins for a private one."""

from __future__ import annotations

from enum import StrEnum

# Paths a private app's host serves from the control plane, and the cookie of a sign-in there.
GATE_PREFIX = "/.ipaas/"
GATE_CHECK = "/.ipaas/check"
# Caddy asks here before it requests a certificate for a custom domain (`?domain=<name>`).
ASK_PATH = "/.ipaas/ask"
PASS_COOKIE = "ipaas_pass"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class Gate(StrEnum):
    ALLOW = "allow"  # proxy the request to the app
    LOGIN = "login"  # nobody is signed in for this app: ask who it is
    DENY = "deny"  # signed in, but not the owner nor an admin


def gate(visibility: str, owner_id: str, viewer_id: str | None, viewer_role: str | None) -> Gate:
    if visibility != Visibility.PRIVATE:
        return Gate.ALLOW
    if viewer_id is None:
        return Gate.LOGIN
    if viewer_id == owner_id or viewer_role == "admin":
        return Gate.ALLOW
    return Gate.DENY


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a path on the same host only (no open redirect)."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 32 for c in path):
        return "/"
    return path
