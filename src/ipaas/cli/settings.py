"""`ipaas apps set NAME key=value ...`: the app's settings (the fields of PATCH
/applications/{id}) as typed KEY=VALUE pairs, checked before anything is sent.

An empty value goes back to the default where the API has one (`port=` is $PORT again,
`commit=` the branch head). Settings kept in groups (`resources`, `build`) are sent whole, so
one of them changes and the others stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer

Parse = Callable[[str], Any]
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
PARAM = "KEY=VALUE"


def _text(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _text_or_default(raw: str) -> str | None:
    return raw or None


def _number(kind: type[int] | type[float], low: float, high: float) -> Parse:
    def parse(raw: str) -> int | float | None:
        if not raw:
            return None
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"must be a number from {low:g} to {high:g}") from None
        if not low <= value <= high:
            raise ValueError(f"must be from {low:g} to {high:g}")
        return value

    return parse


def _one_of(*words: str, default_ok: bool = False) -> Parse:
    def parse(raw: str) -> str | None:
        if default_ok and not raw:
            return None
        if raw not in words:
            raise ValueError(f"must be one of {', '.join(words)}")
        return raw

    return parse


def _commit(raw: str) -> str:
    if raw and not COMMIT.match(raw):
        raise ValueError("must be a commit id (7 to 40 hex digits), or empty for the branch head")
    return raw


def _health_check(raw: str) -> str:
    if raw != "tcp" and not raw.startswith("/"):
        raise ValueError("use tcp or an HTTP path like /health")
    return raw


def _volumes(raw: str) -> list[dict[str, str]]:
    volumes = []
    for spec in filter(None, (s.strip() for s in raw.split(","))):
        name, sep, path = spec.partition(":")
        if not sep or not name or not path.startswith("/"):
            raise ValueError(f"{spec!r} is not NAME:/path (several: a,b; none: empty)")
        volumes.append({"name": name, "mount_path": path})
    return volumes


@dataclass(frozen=True)
class Setting:
    field: str  # the PATCH field
    key: str | None  # inside a group field (resources, build); None for a plain field
    parse: Parse


SETTINGS: dict[str, Setting] = {
    "name": Setting("name", None, _text),
    "repo": Setting("repo", None, _text),
    "branch": Setting("branch", None, _text_or_default),  # empty: the repo's default
    "commit": Setting("commit", None, _commit),
    "root_directory": Setting("root_directory", None, str),
    "port": Setting("port", None, _number(int, 1, 65535)),
    "health_check": Setting("health_check", None, _health_check),
    "volumes": Setting("volumes", None, _volumes),
    "visibility": Setting("visibility", None, _one_of("public", "private")),
    "memory": Setting("resources", "memory_mb", _number(int, 32, 65536)),
    "cpus": Setting("resources", "cpus", _number(float, 0.05, 64)),
    "builder": Setting("build", "builder", _one_of("auto", "dockerfile", "plan")),
    "dockerfile": Setting("build", "dockerfile_path", _text),
    "language": Setting(
        "build", "language", _one_of("python", "node", "go", "static", default_ok=True)
    ),
    "install_command": Setting("build", "install_command", _text_or_default),
    "build_command": Setting("build", "build_command", _text_or_default),
    "start_command": Setting("build", "start_command", _text_or_default),
}
ALIASES = {"memory_mb": "memory", "dockerfile_path": "dockerfile", "health": "health_check"}
KEYS_HELP = ", ".join(SETTINGS)


def parse_settings(pairs: list[str]) -> list[tuple[Setting, Any]]:
    """The settings asked for, typed; bad input exits 2 naming the pair and what is wrong."""
    return [_parse_pair(pair) for pair in pairs]


def _parse_pair(pair: str) -> tuple[Setting, Any]:
    key, sep, raw = pair.partition("=")
    word = key.strip().lower().replace("-", "_")
    word = ALIASES.get(word, word)
    if not sep:
        raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=PARAM)
    if word in ("env", "envs"):
        raise typer.BadParameter(
            "environment variables have their own commands: `ipaas apps env set NAME K=V`",
            param_hint=PARAM,
        )
    setting = SETTINGS.get(word)
    if setting is None:
        raise typer.BadParameter(
            f"unknown setting {key!r}; the settings are: {KEYS_HELP}", param_hint=PARAM
        )
    try:
        return setting, setting.parse(raw.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"{key}: {exc}", param_hint=PARAM) from None


def patch_body(changes: list[tuple[Setting, Any]], app: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body: plain fields as given, groups as the app has them with the changes."""
    body: dict[str, Any] = {}
    for setting, value in changes:
        if setting.key is None:
            body[setting.field] = value
            continue
        group = body.setdefault(setting.field, dict(app.get(setting.field) or {}))
        group[setting.key] = value
    return body
