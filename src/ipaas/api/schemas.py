"""Response bodies, and the request bodies of the API's own routes (app requests live in
`domain.specs`). Unknown fields are refused; every size and count is bounded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from ipaas.domain.names import DNS_LABEL
from ipaas.domain.specs import (
    MAX_ENVS_HARD,
    MAX_NUMBER,
    REDACTED,
    AppCreate,
    AppUpdate,
    BuildConfig,
    EnvVar,
    Resources,
    Strict,
    Volume,
)

# A build's or release's number in a path: bounded before it reaches the store (a number
# beyond the column's range answered 500).
BuildNumber = Annotated[int, Path(ge=1, le=MAX_NUMBER)]
MAX_ROW_ID = 2**63 - 1

__all__ = [
    "DNS_LABEL",
    "MAX_ENVS_HARD",
    "MAX_NUMBER",
    "REDACTED",
    "AppCreate",
    "AppUpdate",
    "BuildConfig",
    "EnvVar",
    "Resources",
    "Strict",
    "Volume",
]


class EnvOut(BaseModel):
    key: str
    value: str
    secret: bool
    build: bool


class AppOut(BaseModel):
    id: str
    name: str
    kind: str
    owner: str
    repo: str
    branch: str | None
    commit: str | None
    built_commit: str | None
    root_directory: str
    port: int | None
    envs: list[EnvOut]
    build: dict[str, Any]
    health_check: str
    volumes: list[dict[str, Any]]
    resources: dict[str, Any]
    replicas: int
    visibility: str
    provider: str  # git | github
    previews: bool
    preview_of: str | None  # a pull-request preview: the app it previews
    state: str
    state_reason: str | None
    current_release: int | None
    url: str | None
    address: str | None
    dns_name: str
    created_at: datetime
    updated_at: datetime


class AppCreated(BaseModel):
    id: str
    state: str


class AppPage(BaseModel):
    items: list[AppOut]
    total: int
    limit: int
    offset: int


class StatusOut(BaseModel):
    id: str
    state: str
    reason: str | None
    version: int
    url: str | None
    current_release: int | None
    updated_at: datetime


class EventOut(BaseModel):
    id: int
    at: datetime
    from_state: str | None
    to_state: str
    reason: str | None


class NameCheck(Strict):
    name: str = Field(max_length=255)


class NameCheckOut(BaseModel):
    name: str
    valid: bool
    available: bool
    reason: str | None = None


class RepoCheck(Strict):
    repo: str = Field(min_length=1, max_length=2048)
    branch: str | None = Field(default=None, min_length=1, max_length=255)


class RepoCheckOut(BaseModel):
    repo: str
    exists: bool
    default_branch: str | None
    branches: list[str]
    branch_exists: bool | None


class Login(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Refresh(Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class ApiTokenCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiTokenCreated(ApiTokenOut):
    token: str  # shown once


class UserCreate(Strict):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=8, max_length=1024)
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    role: Literal["user", "admin"] = "user"


class UserOut(BaseModel):
    id: str
    username: str
    email: str | None
    role: str
    created_at: datetime


class ReleaseOut(BaseModel):
    number: int
    commit: str | None
    image_id: str
    image_tag: str
    plan: dict[str, Any]
    build_duration_s: float
    created_at: datetime
    current: bool


class BuildOut(BaseModel):
    number: int
    status: str
    attempt: int
    commit: str | None
    error: str | None
    error_code: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RollbackRequest(Strict):
    release: int = Field(ge=1, le=MAX_NUMBER)


class DeleteOptions(Strict):
    volumes: bool = False
