"""The GitProvider seam."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
