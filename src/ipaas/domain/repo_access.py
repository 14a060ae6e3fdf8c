"""Repository URLs as data: where they point, and the credentials split off them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22, "git": 9418}
# Schemes whose userinfo is a credential (user:token); ssh's user is an account name.
_CREDENTIAL_SCHEMES = ("https", "http")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# scp-like ssh syntax: [user@]host:path, where no slash comes before the colon.
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\s\[\]]+):(?!//)")

_HOST_RE = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|[0-9a-f:.]*:[0-9a-f:.]*)$")


class RepoUrlError(ValueError):
    """The URL cannot be parsed into a host and a port."""


@dataclass(frozen=True)
class RepoCredentials:
    """What a user pasted before the '@' of an https URL (a token, or user and password)."""

    username: str
    password: str

    def to_json(self) -> str:
        return json.dumps({"username": self.username, "password": self.password})

    @classmethod
    def from_json(cls, text: str) -> RepoCredentials:
        data = json.loads(text)
        return cls(username=str(data["username"]), password=str(data["password"]))


@dataclass(frozen=True)
class RepoAddress:
    """Where git will connect for a URL: scheme, host (no brackets, lower case) and port."""

    scheme: str
    host: str
    port: int


def is_local(url: str) -> bool:
    return url.startswith(("/", "./", "../")) or url.lower().startswith("file:")


def repo_address(url: str) -> RepoAddress | None:
    """The network endpoint of a repository URL; None for a local path (nothing to reach)."""
    if is_local(url):
        return None
    match = _SCHEME_RE.match(url)
    if match:
        scheme = match.group(1).lower()
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise RepoUrlError(f"invalid host or port: {exc}") from None
        if "\\" in parts.netloc:
            raise RepoUrlError("a backslash in the host part is not allowed")
        port = port or DEFAULT_PORTS.get(scheme, 0)
        return RepoAddress(scheme, _host(parts.hostname or ""), port)
    scp = _SCP_RE.match(url)
    if scp:
        return RepoAddress("ssh", _host(scp.group("host").strip("[]")), DEFAULT_PORTS["ssh"])
    raise RepoUrlError("not a URL git can fetch")


def _host(raw: str) -> str:
    """A host name or IP literal in one spelling, or RepoUrlError: parsers that disagree on
    odd characters would let the address checked differ from the one git connects to."""
    host = raw.lower().rstrip(".")
    if not host:
        raise RepoUrlError("the URL has no host")
    if not _HOST_RE.match(host):
        raise RepoUrlError(f"invalid host {raw!r}")
    return host


def split_credentials(url: str) -> tuple[str, RepoCredentials | None]:
    """(the URL without its userinfo, the credentials) for http(s) URLs with a user:token part.

    Other URLs come back unchanged: an ssh user is an account name, not a secret.
    """
    match = _SCHEME_RE.match(url)
    if not match or match.group(1).lower() not in _CREDENTIAL_SCHEMES:
        return url, None
    rest = url[match.end() :]
    authority, sep, path = _split_authority(rest)
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    clean = f"{match.group(0)}{hostport}{sep}{path}"
    return clean, RepoCredentials(unquote(user), unquote(password))


_REDACTED = RepoCredentials("***", "")


def redact_url(url: str) -> str:
    """The URL without the userinfo of its authority, for logs and error messages."""
    match = _SCHEME_RE.match(url)
    if not match:
        return url
    authority, sep, path = _split_authority(url[match.end() :])
    _userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return url
    return f"{match.group(0)}***@{hostport}{sep}{path}"


def _split_authority(rest: str) -> tuple[str, str, str]:
    """(authority, separator, remainder): the authority ends at the first '/', '?' or '#'."""
    end = next((i for i, ch in enumerate(rest) if ch in "/?#"), len(rest))
    return rest[:end], rest[end : end + 1], rest[end + 1 :]


class Encrypter(Protocol):
    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, token: str) -> str: ...


def encode_credentials(cipher: Encrypter, credentials: RepoCredentials | None) -> str | None:
    return cipher.encrypt(credentials.to_json()) if credentials else None


def decode_credentials(cipher: Encrypter, blob: str | None) -> RepoCredentials | None:
    return RepoCredentials.from_json(cipher.decrypt(blob)) if blob else None


def repo_columns(
    cipher: Encrypter, new_url: str, old_url: str | None = None, old_blob: str | None = None
) -> dict[str, str | None]:
    """The `repo` and `repo_credentials_encrypted` columns for a URL a user sent.

    Credentials are bound to their URL: a new URL without credentials drops the old ones (they
    must never be sent to another host), the same URL without credentials keeps them.
    """
    clean, credentials = split_credentials(new_url)
    if credentials == _REDACTED:
        credentials = None  # the URL as API output shows it, sent back
    if old_url is not None and old_blob is None:
        # A row from before credentials were split off its URL.
        old_url, inline = split_credentials(old_url)
        old_blob = encode_credentials(cipher, inline)
    same = clean == old_url
    if same and credentials in (None, decode_credentials(cipher, old_blob)):
        return {"repo": clean, "repo_credentials_encrypted": old_blob}
    return {"repo": clean, "repo_credentials_encrypted": encode_credentials(cipher, credentials)}
