"""Secrets generated on first start, kept in the data directory with mode 0600, never printed."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


@dataclass(frozen=True)
class Keys:
    jwt_key: str
    fernet_key: str


def load_or_create_keys(data_dir: Path) -> Keys:
    path = data_dir / "secrets.json"
    if path.exists():
        data = json.loads(path.read_text())
        return Keys(jwt_key=data["jwt_key"], fernet_key=data["fernet_key"])
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = Keys(jwt_key=secrets.token_urlsafe(48), fernet_key=Fernet.generate_key().decode())
    # O_EXCL: two processes starting at once must not write different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_keys(data_dir)
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
