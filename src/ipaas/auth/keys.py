"""Secrets generated on first start, kept in the data directory with mode 0600, never printed.

A missing secrets file is only created anew when the store holds nothing encrypted with it:
otherwise a new key would silently make every stored secret unreadable.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


@dataclass(frozen=True)
class Keys:
    jwt_key: str
    fernet_key: str


class SecretsMissing(RuntimeError):
    """secrets.json is gone but the store holds values encrypted with its key."""


def private_dir(path: Path) -> None:
    """Create the directory (and parents) readable by this user only; tighten it if looser."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def private_file(path: Path) -> None:
    """An existing file this user only may read (a copy restored from a backup may not be)."""
    if path.exists() and path.stat().st_mode & 0o077:
        path.chmod(0o600)


def load_or_create_keys(
    path: Path, holds_encrypted_data: Callable[[], bool] = lambda: False
) -> Keys:
    """The keys in `path` (secrets.json); created when missing, unless the store holds
    encrypted data (`holds_encrypted_data`, asked only then): SecretsMissing."""
    if path.exists():
        private_file(path)
        data = json.loads(path.read_text())
        return Keys(jwt_key=data["jwt_key"], fernet_key=data["fernet_key"])
    if holds_encrypted_data():
        raise SecretsMissing(
            f"{path} is missing, but the store holds values encrypted with its key (app "
            "environment variables or provider tokens). Restore that file (every process that "
            "shares the store needs the same one); a new key would make those values unreadable, "
            "so none was created."
        )
    private_dir(path.parent)
    keys = Keys(jwt_key=secrets.token_urlsafe(48), fernet_key=Fernet.generate_key().decode())
    # O_EXCL: two processes starting at once must not write different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_keys(path)
    with os.fdopen(fd, "w") as fh:
        json.dump({"jwt_key": keys.jwt_key, "fernet_key": keys.fernet_key}, fh)
    return keys


class Cipher:
    """Encrypts values at rest (env values, provider tokens, database passwords)."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: wrong key or corrupted value") from exc
