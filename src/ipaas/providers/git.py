"""Generic git provider: any URL `git ls-remote` can reach (https, ssh, git; local for admins)."""

from __future__ import annotations

from ipaas.builds.base import BuildFailed
from ipaas.builds.git import ls_remote
from ipaas.builds.repo_guard import RepoGuard
from ipaas.config import Settings
from ipaas.domain.repo_access import RepoCredentials
from ipaas.providers.base import RepoError, RepoInfo


class GitCliProvider:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def inspect(
        self,
        url: str,
        token: str | None = None,
        *,
        allow_local: bool = False,
        check_host: bool = True,
        credentials: RepoCredentials | None = None,
    ) -> RepoInfo:
        """Branches of the repository. check_host=False only for admins: everyone else's
        repository host is resolved, checked and pinned (see builds/repo_guard.py)."""

        guard = RepoGuard.from_settings(self.settings) if check_host else None
        try:
            default, heads = await ls_remote(
                url,
                timeout_s=self.settings.build.clone_timeout_s,
                allow_local=allow_local,
                allowed_schemes=self.settings.allowed_repo_schemes,
                guard=guard,
                credentials=credentials,
            )
        except BuildFailed as exc:
            raise RepoError(exc.code, exc.reason) from exc
        return RepoInfo(url=url, default_branch=default, branches=list(heads), heads=heads)
