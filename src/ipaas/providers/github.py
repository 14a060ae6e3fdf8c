"""GitHub as a repository provider: who a token is, its repositories and branches, one file,
the OAuth code exchange, and clone credentials (the user's token, or in App mode an
installation token minted from the App's private key for each clone)."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
import jwt

from ipaas.config import GitHubSettings
from ipaas.domain.github import clone_url, full_name_problem
from ipaas.domain.repo_access import RepoCredentials
from ipaas.providers.base import (
    Branch,
    Page,
    ProviderError,
    ProviderUser,
    RateLimit,
    RepoSummary,
    paged,
)
from ipaas.providers.github_api import GitHubApi

# The user name git sends with a token: GitHub reads the token from the password.
TOKEN_USER = "x-access-token"
_FULL_PAGE = 100
_MAX_FILE_BYTES = 1_048_576


def _summary(data: dict[str, Any]) -> RepoSummary:
    return RepoSummary(
        full_name=str(data["full_name"]),
        private=bool(data.get("private")),
        default_branch=data.get("default_branch"),
        pushed_at=data.get("pushed_at"),
        html_url=str(data.get("html_url", "")),
    )


# A repository's default branch and its branches, newest commit first. TAG_COMMIT_DATE orders
# refs by the commit they point to (for tags, the tagged commit).
_BRANCHES_QUERY = """
query($owner: String!, $name: String!, $after: String) {
  repository(owner: $owner, name: $name) {
    defaultBranchRef { ...branch }
    refs(refPrefix: "refs/heads/", first: 100, after: $after,
         orderBy: {field: TAG_COMMIT_DATE, direction: DESC}) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { ...branch }
    }
  }
}
fragment branch on Ref { name target { oid ... on Commit { committedDate } } }
"""


def _branch(node: dict[str, Any], default: bool) -> Branch:
    target = node.get("target") or {}
    return Branch(
        str(node["name"]), str(target.get("oid", "")), default, target.get("committedDate")
    )


def _checked(full_name: str) -> str:
    problem = full_name_problem(full_name)
    if problem is not None:
        raise ProviderError("invalid_repo", f"{full_name!r}: {problem}")
    return full_name


@dataclass(frozen=True)
class GitHubRegistration:
    """Who the platform is at GitHub: an OAuth App, or a GitHub App (its id and private key
    mint installation tokens). From the settings, or made with the manifest flow and kept
    encrypted in the store."""

    mode: Literal["oauth", "app"]
    client_id: str
    client_secret: str = field(repr=False)
    app_id: str | None = None
    private_key: Callable[[], bytes] | None = field(default=None, repr=False)  # PEM
    slug: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: GitHubSettings) -> GitHubRegistration | None:
        if not settings.enabled:
            return None
        key_file = settings.private_key_file
        return cls(
            settings.mode, settings.client_id or "", settings.client_secret or "",
            settings.app_id, key_file.read_bytes if key_file else None, settings.app_slug,
            settings.webhook_secret,
        )  # fmt: skip

    def app_jwt(self) -> str | None:
        """A JWT of the GitHub App (RS256, ten minutes at most, as GitHub requires), used only
        to mint installation tokens; None when this is not a GitHub App with a key."""
        if self.mode != "app" or not self.app_id or self.private_key is None:
            return None
        now = int(time.time())
        # Issued a minute back: GitHub refuses a JWT from the future when clocks drift.
        claims = {"iat": now - 60, "exp": now + 540, "iss": self.app_id}
        return jwt.encode(claims, self.private_key(), algorithm="RS256")


# Where a registration kept in the store comes from (None: none was made).
RegistrationLoader = Callable[[], Awaitable[GitHubRegistration | None]]


@dataclass(frozen=True)
class ConvertedApp:
    """A GitHub App made from a manifest, as GitHub hands it over once (with its secrets)."""

    app_id: str
    slug: str
    name: str
    owner: str
    html_url: str
    client_id: str
    client_secret: str = field(repr=False)
    webhook_secret: str | None = field(repr=False)
    pem: str = field(repr=False)


class GitHubProvider:
    def __init__(
        self,
        settings: GitHubSettings,
        client: httpx.AsyncClient | None = None,
        stored: RegistrationLoader | None = None,
        reload_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self._client = client  # None: made at the first request (an SSL context costs memory)
        self.api = GitHubApi(
            settings.api_url,
            graphql_url=settings.effective_graphql_url,
            timeout_s=settings.timeout_s,
            cache_ttl_s=settings.cache_ttl_s,
            client=self.client,
        )
        self._configured = GitHubRegistration.from_settings(settings)
        self._stored = stored
        self._reload_s = reload_s
        self._loaded: tuple[float, GitHubRegistration | None] | None = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    # --- who the platform is at GitHub --------------------------------------------------------
    async def registration(self) -> GitHubRegistration | None:
        """The settings' App when they name one; else the App made with the manifest flow
        (read from the store again every `reload_s`, or at each use while there is none, so
        every process picks a new one up)."""
        if self._configured is not None or self._stored is None:
            return self._configured
        now = time.monotonic()
        if (
            self._loaded is None
            or self._loaded[1] is None
            or now - self._loaded[0] >= self._reload_s
        ):
            self._loaded = (now, await self._stored())
        return self._loaded[1]

    def forget_registration(self) -> None:
        """Read the stored App again at the next use (it was just made or removed)."""
        self._loaded = None

    async def configured(self) -> bool:
        return await self.registration() is not None

    async def webhook_secret(self) -> str | None:
        """The secret of the GitHub App's own webhook (every repository it is installed on)."""
        found = await self.registration()
        return found.webhook_secret if found else None

    @property
    def configured_in_settings(self) -> bool:
        return self._configured is not None

    async def _required(self) -> GitHubRegistration:
        found = await self.registration()
        if found is None:
            raise ProviderError("no_provider", "GitHub is not configured on this platform")
        return found

    async def convert_manifest(self, code: str) -> ConvertedApp:
        """Exchange the code GitHub gave for a manifest (single use, one hour) for the App it
        made: `POST /app-manifests/{code}/conversions`, which needs no credentials."""
        if not code or len(code) > 512 or not code.isascii() or "/" in code:
            raise ProviderError("bad_code", "not a manifest code")
        try:
            answer = await self.api.post("", f"/app-manifests/{quote(code, safe='')}/conversions")
        except ProviderError as exc:
            if exc.code == "repo_not_found":  # GitHub's 404: unknown, used or expired
                raise ProviderError(
                    "bad_code", "GitHub does not know this code (used already, or expired)"
                ) from None
            raise
        try:
            return ConvertedApp(
                str(answer["id"]), str(answer["slug"]), str(answer.get("name") or answer["slug"]),
                str((answer.get("owner") or {}).get("login", "")), str(answer.get("html_url", "")),
                str(answer["client_id"]), str(answer["client_secret"]),
                answer.get("webhook_secret"), str(answer["pem"]),
            )  # fmt: skip
        except (KeyError, TypeError):
            raise ProviderError(
                "provider_unavailable", "GitHub's answer to the conversion lacks the App"
            ) from None

    # --- OAuth web flow ----------------------------------------------------------------------
    async def authorize_url(self, state: str, redirect_uri: str) -> str:
        registration = await self._required()
        query = {"client_id": registration.client_id, "redirect_uri": redirect_uri}
        query["state"] = state
        if registration.mode == "oauth":  # a GitHub App's permissions are set on the App
            query["scope"] = " ".join(self.settings.scopes)
        return f"{self.settings.web_url.rstrip('/')}/login/oauth/authorize?{urlencode(query)}"

    async def exchange_code(self, code: str, redirect_uri: str) -> str:
        """The user's access token for an authorization code (single use, GitHub checks)."""
        registration = await self._required()
        form = {
            "client_id": registration.client_id,
            "client_secret": registration.client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
        }
        url = f"{self.settings.web_url.rstrip('/')}/login/oauth/access_token"
        try:
            response = await self.client().post(
                url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self.settings.timeout_s,
            )
            data = response.json()
        except (httpx.HTTPError, ValueError):
            raise ProviderError(
                "provider_unavailable", "GitHub did not answer the sign-in"
            ) from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            error = data.get("error", "no token") if isinstance(data, dict) else "no token"
            raise ProviderError("github_signin_failed", f"GitHub refused the sign-in: {error}")
        return token

    # --- what a token sees -------------------------------------------------------------------
    async def identify(self, token: str) -> ProviderUser:
        data = (await self.api.get(token, "/user")).data
        return ProviderUser(
            subject=str(data["id"]), login=str(data["login"]), email=data.get("email")
        )

    async def organisations(self, token: str) -> list[str]:
        answer = await self.api.get(token, f"/user/orgs?per_page={_FULL_PAGE}")
        return [str(org["login"]) for org in answer.data]

    async def repos(
        self, token: str, *, page: int, per_page: int, search: str | None = None
    ) -> Page[RepoSummary]:
        """Newest push first. A search reads up to `max_pages` full pages and filters them."""
        if not search:
            query = urlencode(
                {"sort": "pushed", "direction": "desc", "per_page": per_page, "page": page}
            )
            answer = await self.api.get(token, f"/user/repos?{query}")
            items = [_summary(r) for r in answer.data]
            return Page(items, page, per_page, "next" in answer.links)
        query = urlencode({"sort": "pushed", "direction": "desc", "per_page": _FULL_PAGE})
        found = [
            _summary(r) for r in await self._all(token, f"/user/repos?{query}")
            if search.lower() in str(r["full_name"]).lower()
        ]  # fmt: skip
        return paged(found, page, per_page)

    async def repo(self, token: str, full_name: str) -> RepoSummary:
        return _summary((await self.api.get(token, f"/repos/{_checked(full_name)}")).data)

    async def branches(
        self, token: str, full_name: str, *, page: int, per_page: int
    ) -> Page[Branch]:
        """The default branch first, then the others by their last commit, newest first.

        GitHub's REST branch listing is by name only, so this asks GraphQL for the refs
        ordered by commit date, 100 a query, and only as many queries as the page needs
        (at most `max_pages`)."""
        owner, name = _checked(full_name).split("/")
        wanted = page * per_page
        default: Branch | None = None
        others: list[Branch] = []
        total, after = 0, None
        for _ in range(self.settings.max_pages):
            variables = {"owner": owner, "name": name, "after": after}
            repo = (await self.api.graphql(token, _BRANCHES_QUERY, variables))["repository"]
            if repo is None:
                raise ProviderError("repo_not_found", "not found on GitHub (or no access to it)")
            if repo.get("defaultBranchRef"):
                default = _branch(repo["defaultBranchRef"], True)
            refs = repo["refs"]
            total = int(refs["totalCount"])
            others += [_branch(node, False) for node in refs["nodes"] if node]
            if len(others) >= wanted or not refs["pageInfo"]["hasNextPage"]:
                break
            after = refs["pageInfo"]["endCursor"]
        listed = ([default] if default else []) + [
            b for b in others if default is None or b.name != default.name
        ]
        return paged(listed, page, per_page, min(total, self.settings.max_pages * _FULL_PAGE))

    async def read_file(self, token: str, full_name: str, path: str, ref: str | None) -> bytes:
        clean = path.strip("/")
        if not clean or any(part in ("", ".", "..") for part in clean.split("/")):
            raise ProviderError("invalid_path", f"not a file path in a repository: {path!r}")
        query = f"?{urlencode({'ref': ref})}" if ref else ""
        data = (
            await self.api.get(
                token, f"/repos/{_checked(full_name)}/contents/{quote(clean)}{query}"
            )
        ).data
        if not isinstance(data, dict) or data.get("type") != "file":
            raise ProviderError("not_a_file", f"{clean} is not a file")
        if int(data.get("size", 0)) > _MAX_FILE_BYTES:
            raise ProviderError("file_too_large", f"{clean} is over {_MAX_FILE_BYTES} bytes")
        try:
            return base64.b64decode(str(data.get("content", "")))
        except binascii.Error:
            raise ProviderError("provider_unavailable", "GitHub sent an unreadable file") from None

    def rate_limit(self, token: str, resource: str = "core") -> RateLimit | None:
        return self.api.rate_limit(token, resource)

    # --- cloning -----------------------------------------------------------------------------
    def clone_url(self, full_name: str) -> str:
        return clone_url(self.settings.effective_git_url, _checked(full_name))

    async def clone_credentials(self, token: str | None, full_name: str) -> RepoCredentials:
        """App mode: a fresh installation token (one hour, this repository only); OAuth mode:
        the owner's own token."""
        _checked(full_name)
        app_jwt = (await self._required()).app_jwt()
        if app_jwt is not None:
            return RepoCredentials(TOKEN_USER, await self._installation_token(app_jwt, full_name))
        if token is None:
            raise ProviderError("github_not_linked", "the app's owner has no GitHub account linked")
        return RepoCredentials(TOKEN_USER, token)

    async def _installation_token(self, app_jwt: str, full_name: str) -> str:
        try:
            installation = await self.api.get_as_app(app_jwt, f"/repos/{full_name}/installation")
        except ProviderError as exc:
            if exc.code == "repo_not_found":
                raise ProviderError(
                    "github_app_not_installed", f"the GitHub App is not installed on {full_name}"
                ) from None
            raise
        repository = full_name.split("/", 1)[1]
        path = f"/app/installations/{int(installation['id'])}/access_tokens"
        minted = await self.api.post(app_jwt, path, {"repositories": [repository]})
        return str(minted["token"])

    async def _all(self, token: str, first: str) -> list[dict[str, Any]]:
        """Every item of a paginated listing, following `next` links up to `max_pages`."""
        items: list[dict[str, Any]] = []
        url: str | None = first
        for _ in range(self.settings.max_pages):
            if url is None:
                break
            answer = await self.api.get(token, url)
            items += answer.data
            url = answer.links.get("next")
        return items
