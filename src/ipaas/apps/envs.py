"""Env vars at rest: one encrypted JSON document per app."""

from __future__ import annotations

import json
from typing import Any

from ipaas.auth.keys import Cipher
from ipaas.domain.specs import REDACTED, EnvVar


def encode_envs(cipher: Cipher, envs: list[EnvVar]) -> str:
    doc = [
        {"key": e.key, "value": e.value, "secret": e.is_secret(), "build": e.build} for e in envs
    ]
    return cipher.encrypt(json.dumps(doc))


def decode_envs(cipher: Cipher, blob: str) -> list[dict[str, Any]]:
    return json.loads(cipher.decrypt(blob)) if blob else []


def env_vars(cipher: Cipher, blob: str) -> list[EnvVar]:
    return [EnvVar(**e) for e in decode_envs(cipher, blob)]


def shown_envs(cipher: Cipher, blob: str, reveal: bool = False) -> list[dict[str, Any]]:
    """The app's env vars as its owner sees them: secret values redacted unless revealed."""
    return [
        {**e, "value": e["value"] if reveal or not e["secret"] else REDACTED}
        for e in decode_envs(cipher, blob)
    ]


def env_dict(cipher: Cipher, blob: str, build_only: bool = False) -> dict[str, str]:
    return {e["key"]: e["value"] for e in decode_envs(cipher, blob) if e["build"] or not build_only}
