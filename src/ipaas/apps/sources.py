"""Where an app's source comes from, and the credentials to fetch it with, at the moment of
fetching: a git URL with the credentials its owner gave, or a GitHub repository with a token
minted for this clone (App mode) or the owner's own (OAuth mode)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ipaas.auth.keys import Cipher
from ipaas.domain.errors import InvalidInput, IpaasError, NotFoundError, Throttled, Unavailable
from ipaas.domain.repo_access import RepoCredentials, decode_credentials
from ipaas.domain.repos import is_local_repo
from ipaas.providers.base import ProviderError, RepoProvider
from ipaas.store.identities import IdentityStore
from ipaas.store.models import Application

GITHUB = "github"


@dataclass(frozen=True)
class Source:
    url: str
    credentials: RepoCredentials | None
    # The URL was made from the operator's provider settings: its host is not a user's.
    trusted_host: bool = False
    extra_schemes: tuple[str, ...] = ()

    @property
    def allow_local(self) -> bool:
        return not self.trusted_host and is_local_repo(self.url)


class Sources:
    def __init__(
        self, cipher: Cipher, identities: IdentityStore, github: RepoProvider | None
    ) -> None:
        self.cipher = cipher
        self.identities = identities
        self.github = github

    async def provider(self, name: str) -> RepoProvider:
        if name != GITHUB or self.github is None or not await self.github.configured():
            raise InvalidInput("GitHub is not configured on this platform", code="no_provider")
        return self.github

    async def token(self, user_id: str) -> str | None:
        """The user's GitHub token (decrypted), or None when they have not linked GitHub."""
        identity = await self.identities.of_user(user_id, GITHUB)
        if identity is None or not identity.token_encrypted:
            return None
        return self.cipher.decrypt(identity.token_encrypted)

    async def require_token(self, user_id: str) -> str:
        token = await self.token(user_id)
        if token is None:
            raise InvalidInput(
                "sign in with GitHub first (/api/v1/auth/github/login)", code="github_not_linked"
            )
        return token

    async def of_app(self, app: Application) -> Source:
        """Raises ProviderError when the provider cannot give credentials now."""
        if app.provider != GITHUB:
            credentials = decode_credentials(self.cipher, app.repo_credentials_encrypted)
            return Source(app.repo, credentials)
        github = await self.provider(GITHUB)
        url = github.clone_url(app.repo)
        credentials = await github.clone_credentials(await self.token(app.owner_id), app.repo)
        return Source(url, credentials, True, (urlsplit(url).scheme,))


def user_error(exc: ProviderError) -> IpaasError:
    """A provider's refusal as the caller sees it (a 4xx with the same code, 429, or 503)."""
    if exc.code == "github_rate_limited":
        wait = max(int(exc.retry_after_s or 60), 1)
        return Throttled(exc.detail, code=exc.code, retry_after=wait)
    if exc.code == "provider_unavailable":
        return Unavailable(exc.detail, code=exc.code)
    if exc.code in ("repo_not_found", "not_a_file"):
        return NotFoundError(exc.detail, code=exc.code)
    return InvalidInput(exc.detail, code=exc.code)


__all__ = ["GITHUB", "ProviderError", "Source", "Sources", "user_error"]
