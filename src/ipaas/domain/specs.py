"""What a user asks of an app: the bodies of create and update, used by the API and the
application layer alike. Unknown fields are refused; every size and count is bounded."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ipaas.domain.names import DNS_LABEL

ENV_KEY = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
SECRET_KEY_WORDS = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE|CREDENTIAL)", re.I)
REDACTED = "********"
# The schema's ceiling on env vars per app; the `max_envs` setting (default 100) is the limit.
MAX_ENVS_HARD = 1000
MAX_REPLICAS_HARD = 100  # the schema's bound; the setting runtime.max_replicas is the real one
# Build and release numbers, event ids: what a 32-bit column holds, far beyond any real count.
MAX_NUMBER = 2**31 - 1

Name = Annotated[str, Field(min_length=2, max_length=63, pattern=DNS_LABEL)]
Command = Annotated[str, Field(min_length=1, max_length=4096)]
RelPath = Annotated[str, Field(max_length=255, pattern=r"^[A-Za-z0-9._\-/]*$")]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # NUL cannot be stored by PostgreSQL (nor passed to git or the engine): refuse it here.
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters")
        return data


class EnvVar(Strict):
    key: str = Field(pattern=ENV_KEY)
    value: str = Field(max_length=32_768)
    secret: bool | None = None  # None: decided from the key (PASSWORD, TOKEN, ...)
    build: bool = False  # also passed as a build argument

    def is_secret(self) -> bool:
        return self.secret if self.secret is not None else bool(SECRET_KEY_WORDS.search(self.key))


class BuildConfig(Strict):
    builder: Literal["auto", "dockerfile", "plan"] = "auto"
    dockerfile_path: RelPath = "Dockerfile"
    language: Literal["python", "node", "go", "static"] | None = None
    install_command: Command | None = None
    build_command: Command | None = None
    start_command: Command | None = None

    @field_validator("dockerfile_path")
    @classmethod
    def _no_escape(cls, v: str) -> str:
        return _relative(v or "Dockerfile")


class Resources(Strict):
    memory_mb: int | None = Field(default=None, ge=32, le=65_536)
    cpus: float | None = Field(default=None, ge=0.05, le=64)


class Volume(Strict):
    name: Name
    mount_path: str = Field(min_length=2, max_length=255, pattern=r"^/[A-Za-z0-9._\-/]+$")

    @field_validator("mount_path")
    @classmethod
    def _sane(cls, v: str) -> str:
        if ".." in v.split("/") or v.rstrip("/") in {"", "/proc", "/sys", "/dev"}:
            raise ValueError("mount_path must be an absolute path inside the container")
        return v


HealthCheck = Annotated[str, Field(max_length=255, pattern=r"^(tcp|/[\x21-\x7e]*)$")]


def _relative(v: str) -> str:
    if v.startswith("/") or ".." in v.split("/"):
        raise ValueError("must be a relative path inside the repository")
    return v


def _unique_envs(envs: list[EnvVar] | None) -> list[EnvVar] | None:
    if envs is not None and len({e.key for e in envs}) != len(envs):
        raise ValueError("env keys must be unique")
    return envs


class AppCreate(Strict):
    name: Name
    kind: Literal["web"] = "web"
    repo: str = Field(min_length=1, max_length=2048)
    branch: str | None = Field(default=None, min_length=1, max_length=255)
    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,40}$")
    root_directory: RelPath = ""
    port: int | None = Field(default=None, ge=1, le=65535)
    envs: list[EnvVar] = Field(default_factory=list, max_length=MAX_ENVS_HARD)
    build: BuildConfig = Field(default_factory=BuildConfig)
    health_check: HealthCheck = "tcp"
    volumes: list[Volume] = Field(default_factory=list, max_length=10)
    resources: Resources = Field(default_factory=Resources)
    # Up to the setting runtime.max_replicas, checked where settings are known.
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS_HARD)
    visibility: Literal["public", "private"] = "public"
    # git: `repo` is a URL; github: owner/repo on the platform's GitHub. None: owner/repo
    # means GitHub, anything else a URL.
    provider: Literal["git", "github"] | None = None
    previews: bool = False  # pull requests against the branch get preview apps

    _envs = field_validator("envs")(classmethod(lambda cls, v: _unique_envs(v)))
    _root = field_validator("root_directory")(classmethod(lambda cls, v: _relative(v)))

    @model_validator(mode="after")
    def _unique_volumes(self) -> AppCreate:
        names = [v.name for v in self.volumes]
        paths = [v.mount_path for v in self.volumes]
        if len(set(names)) != len(names) or len(set(paths)) != len(paths):
            raise ValueError("volume names and mount paths must be unique")
        return self


class AppUpdate(Strict):
    name: Name | None = None
    repo: str | None = Field(default=None, min_length=1, max_length=2048)
    branch: str | None = Field(default=None, min_length=1, max_length=255)
    commit: str | None = Field(default=None, pattern=r"^([0-9a-f]{7,40})?$")
    root_directory: RelPath | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    envs: list[EnvVar] | None = Field(default=None, max_length=MAX_ENVS_HARD)
    build: BuildConfig | None = None
    health_check: HealthCheck | None = None
    volumes: list[Volume] | None = Field(default=None, max_length=10)
    resources: Resources | None = None
    visibility: Literal["public", "private"] | None = None
    previews: bool | None = None
    replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS_HARD)

    _envs = field_validator("envs")(classmethod(lambda cls, v: _unique_envs(v)))
