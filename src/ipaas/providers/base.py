"""The GitProvider seam."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ipaas.domain.repo_access import RepoCredentials


@dataclass(frozen=True)
class RepoInfo:
    url: str
    default_branch: str | None
    branches: list[str]
    heads: dict[str, str] | None = None  # branch -> commit SHA


class RepoError(Exception):
    """The repository cannot be used; `code` is machine-readable (repo_not_found, ...)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class GitProvider(Protocol):
    async def inspect(
        self,
        url: str,
        token: str | None = None,
        *,
        allow_local: bool = False,
        check_host: bool = True,  # False for admins only: no address check of the host
        credentials: RepoCredentials | None = None,
    ) -> RepoInfo: ...


class ProviderError(RepoError):
    """A provider (GitHub) refused or failed; `retry_after_s` when it asks us to wait."""

    def __init__(self, code: str, detail: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(code, detail)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    reset_at: float  # epoch seconds


@dataclass(frozen=True)
class ProviderUser:
    """Who a provider token belongs to."""

    subject: str  # the provider's stable id (a login can be renamed)
    login: str
    email: str | None = None


@dataclass(frozen=True)
class RepoSummary:
    full_name: str
    private: bool
    default_branch: str | None
    pushed_at: str | None  # RFC 3339
    html_url: str


@dataclass(frozen=True)
class Branch:
    name: str
    commit: str
    default: bool
    committed_at: str | None = None  # RFC 3339, when the provider tells


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    has_next: bool


def paged(items: list[T], page: int, per_page: int, total: int | None = None) -> Page[T]:
    """Page `page` (from 1) of a listing held whole; `total` when more exist than are held."""
    start = (page - 1) * per_page
    known = len(items) if total is None else total
    return Page(items[start : start + per_page], page, per_page, start + per_page < known)


def branch_listing(default: str | None, heads: dict[str, str]) -> list[Branch]:
    """Branches as git tells them (no dates): the default branch first, then by name."""
    every = [Branch(name, sha, name == default) for name, sha in heads.items()]
    return sorted(every, key=lambda b: (not b.default, b.name))


class RepoProvider(Protocol):
    """A hosted provider (GitHub): everything is asked with the user's own token."""

    async def configured(self) -> bool:
        """Does the platform have an App at the provider (in its settings, or made)?"""
        ...

    async def identify(self, token: str) -> ProviderUser: ...

    async def organisations(self, token: str) -> list[str]: ...

    async def repos(
        self, token: str, *, page: int, per_page: int, search: str | None = None
    ) -> Page[RepoSummary]: ...

    async def repo(self, token: str, full_name: str) -> RepoSummary: ...

    async def branches(
        self, token: str, full_name: str, *, page: int, per_page: int
    ) -> Page[Branch]: ...

    async def read_file(self, token: str, full_name: str, path: str, ref: str | None) -> bytes: ...

    async def clone_credentials(self, token: str | None, full_name: str) -> RepoCredentials: ...

    def clone_url(self, full_name: str) -> str: ...

    def rate_limit(self, token: str, resource: str = "core") -> RateLimit | None:
        """As the provider last reported it: `core` (REST), or `graphql` (branches)."""
        ...
