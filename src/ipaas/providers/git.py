"""Generic git provider: any URL `git ls-remote` can reach (https, ssh, git; local for admins)."""

from __future__ import annotations

from ipaas.builds.base import BuildFailed
from ipaas.builds.git import ls_remote
from ipaas.config import Settings
from ipaas.providers.base import RepoError, RepoInfo


class GitCliProvider:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def inspect(
        self, url: str, token: str | None = None, *, allow_local: bool = False
    ) -> RepoInfo:
        try:
            default, heads = await ls_remote(
                url,
                timeout_s=self.settings.build.clone_timeout_s,
                allow_local=allow_local,
                allowed_schemes=self.settings.allowed_repo_schemes,
            )
        except BuildFailed as exc:
            raise RepoError(exc.code, exc.reason) from exc
        return RepoInfo(url=url, default_branch=default, branches=list(heads), heads=heads)
