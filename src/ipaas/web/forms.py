"""From form fields to the application layer's requests, and its refusals back to the field
they concern (the API's own error text, shown next to the field)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ipaas.domain.errors import IpaasError
from ipaas.domain.specs import EnvVar
from ipaas.web.auth import Form, first

# Error codes of the application layer, by the form field they are about.
_FIELD_OF_CODE = {
    "name_taken": "name",
    "name_reserved": "name",
    "invalid_repo": "repo",
    "local_repo_forbidden": "repo",
    "repo_host_forbidden": "repo",
    "repo_not_found": "repo",
    "fetch_failed": "repo",
    "too_many_envs": "envs",
    "invalid_name": "name",
    "unknown_engine": "engine",
    "unknown_engine_version": "version",
    "too_small": "memory_mb",
}
# Nested request fields whose errors belong to their inner field (resources.memory_mb).
_NESTED = ("resources", "build")

Errors = dict[str, str]


def errors_of(exc: ValidationError) -> Errors:
    found: Errors = {}
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[1] if len(loc) > 1 and loc[0] in _NESTED else (loc[0] if loc else "form")
        message = str(error.get("msg", "not valid")).removeprefix("Value error, ")
        found.setdefault(field, message)
    return found


def error_of(exc: IpaasError) -> Errors:
    return {_FIELD_OF_CODE.get(exc.code, "form"): exc.detail}


def given(form: Form, *names: str) -> dict[str, str]:
    """The fields that were filled in, stripped (an empty field is the default)."""
    values = {name: first(form, name).strip() for name in names}
    return {name: value for name, value in values.items() if value}


def number(value: str | None) -> Any:
    """A number field as pydantic should judge it: ints stay ints, the rest is passed on."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def parse_env_lines(text: str) -> list[dict[str, Any]]:
    """`KEY=value` lines (blank lines and `#` comments skipped) as env var requests."""
    envs = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        envs.append({"key": key.strip(), "value": value})
    return envs


def with_env(current: list[dict[str, Any]], new: EnvVar) -> list[EnvVar]:
    """The app's env vars (values in clear) with `new` set: replaced in place or appended."""
    out = [EnvVar(**e) for e in current if e["key"] != new.key]
    index = next((i for i, e in enumerate(current) if e["key"] == new.key), len(out))
    out.insert(index, new)
    return out


def without_env(current: list[dict[str, Any]], key: str) -> list[EnvVar]:
    return [EnvVar(**e) for e in current if e["key"] != key]
