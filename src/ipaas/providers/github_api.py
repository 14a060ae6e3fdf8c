"""GitHub's REST and GraphQL APIs over httpx: ETag revalidation, rate limits, pagination links.

Every answer is cached per token for `cache_ttl_s`; after that a REST answer is revalidated
with `If-None-Match` (GitHub answers 304 without counting it against the rate limit), a GraphQL
one (GitHub gives no ETags there) is asked again. Rate limits are kept per token and resource
(`core` for REST, `graphql`); once a token has used one up, calls to it stop until the reset
time instead of being refused one by one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ipaas.auth.tokens import hash_token
from ipaas.domain.github import links
from ipaas.providers.base import ProviderError, RateLimit

log = structlog.get_logger()
_ACCEPT = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
_MAX_CACHED = 2000  # answers kept in memory across every user


@dataclass
class Answer:
    """A GitHub answer as the provider uses it: the JSON and the pagination links."""

    data: Any
    links: dict[str, str]
    etag: str | None = None
    fetched_at: float = 0.0


CORE, GRAPHQL = "core", "graphql"  # GitHub's names of the two rate-limit resources


def _rate_limit(headers: httpx.Headers) -> RateLimit | None:
    try:
        return RateLimit(
            limit=int(headers["x-ratelimit-limit"]),
            remaining=int(headers["x-ratelimit-remaining"]),
            reset_at=float(headers["x-ratelimit-reset"]),
        )
    except (KeyError, ValueError):
        return None


class GitHubApi:
    """One client for the platform; answers and rate limits are kept per token (by hash)."""

    def __init__(
        self,
        api_url: str,
        *,
        graphql_url: str,
        timeout_s: float,
        cache_ttl_s: float,
        client: Callable[[], httpx.AsyncClient],
    ) -> None:
        """`client`: the HTTP client, asked for at each request (made at the first)."""
        self.api_url = api_url.rstrip("/")
        self.graphql_url = graphql_url
        self.timeout_s = timeout_s
        self.cache_ttl_s = cache_ttl_s
        self.client = client
        self._cache: OrderedDict[tuple[str, str], Answer] = OrderedDict()
        self._limits: dict[tuple[str, str], RateLimit] = {}  # (token hash, resource)
        self.requests_sent = 0  # to GitHub (200s and 304s), for tests and metrics

    def rate_limit(self, token: str, resource: str = CORE) -> RateLimit | None:
        """The token's limit as GitHub last reported it."""
        return self._limits.get((hash_token(token), resource))

    def url(self, path: str) -> str:
        """A path, or a URL from a Link header: only ever under the API's own URL, so a token
        is never sent to another host."""
        if not path.startswith(("http://", "https://")):
            return self.api_url + path
        if not path.startswith(self.api_url + "/"):
            raise ProviderError("provider_unavailable", "GitHub linked to another host")
        return path

    async def get(self, token: str, path: str, *, cached: bool = True) -> Answer:
        """GET a path (or a full URL from a Link header) as the token's owner."""
        key = (hash_token(token), self.url(path))
        hit = self._cache.get(key) if cached else None
        if hit is not None and time.monotonic() - hit.fetched_at < self.cache_ttl_s:
            self._cache.move_to_end(key)
            return hit
        self._check_budget(key[0], CORE)
        headers = {**_ACCEPT, "Authorization": f"Bearer {token}"}
        if hit is not None and hit.etag:
            headers["If-None-Match"] = hit.etag
        response = await self._send("GET", key[1], headers)
        self._note_limit(key[0], response, CORE)
        if response.status_code == 304 and hit is not None:
            hit.fetched_at = time.monotonic()
            return hit
        answer = Answer(self._json(response), links(response.headers.get("link")))
        answer.etag, answer.fetched_at = response.headers.get("etag"), time.monotonic()
        if cached:
            self._remember(key, answer)
        return answer

    async def graphql(self, token: str, query: str, variables: dict[str, Any]) -> Any:
        """The `data` of a GraphQL query as the token's owner; cached like a REST answer but
        asked again after the TTL (GraphQL has no ETags). GitHub's typed errors become
        ProviderErrors: NOT_FOUND is `repo_not_found`, RATE_LIMITED `github_rate_limited`."""
        body = {"query": query, "variables": variables}
        digest = hash_token(token)
        asked = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        key = (digest, f"{self.graphql_url}#{asked}")
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit.fetched_at < self.cache_ttl_s:
            self._cache.move_to_end(key)
            return hit.data
        self._check_budget(digest, GRAPHQL)
        headers = {**_ACCEPT, "Authorization": f"Bearer {token}"}
        response = await self._send("POST", self.graphql_url, headers, body)
        self._note_limit(digest, response, GRAPHQL)
        answer = self._json(response)
        if not isinstance(answer, dict):
            raise ProviderError("provider_unavailable", "GitHub's GraphQL API answered nothing")
        errors = answer.get("errors") or []
        if errors:
            raise self._graphql_error(digest, errors)
        self._remember(key, Answer(answer.get("data"), {}, None, time.monotonic()))
        return answer.get("data")

    async def post(self, bearer: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST as an App (its JWT), a user, or nobody (an empty bearer); never cached."""
        headers = {**_ACCEPT, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
        response = await self._send("POST", self.url(path), headers, body or {})
        return self._json(response)

    async def get_as_app(self, app_jwt: str, path: str) -> Any:
        headers = {**_ACCEPT, "Authorization": f"Bearer {app_jwt}"}
        return self._json(await self._send("GET", self.url(path), headers))

    def forget(self, token: str) -> None:
        """Drop a token's cached answers (a user unlinked, or signed in again)."""
        digest = hash_token(token)
        for key in [k for k in self._cache if k[0] == digest]:
            del self._cache[key]

    # --- internals -----------------------------------------------------------------------------
    def _check_budget(self, digest: str, resource: str) -> None:
        limit = self._limits.get((digest, resource))
        if limit is not None and limit.remaining <= 0 and limit.reset_at > time.time():
            raise _used_up(limit, f"GitHub's {resource} rate limit is used up")

    def _note_limit(self, digest: str, response: httpx.Response, resource: str) -> None:
        limit = _rate_limit(response.headers)
        if limit is not None:
            named = response.headers.get("x-ratelimit-resource") or resource
            self._limits[(digest, named)] = limit

    def _graphql_error(self, digest: str, errors: list[Any]) -> ProviderError:
        kinds = {str(e.get("type", "")) for e in errors if isinstance(e, dict)}
        first = errors[0] if isinstance(errors[0], dict) else {}
        message = str(first.get("message", ""))[:200]
        if "RATE_LIMITED" in kinds:
            limit = self._limits.get((digest, GRAPHQL))
            if limit is None:
                return ProviderError("github_rate_limited", message, retry_after_s=60.0)
            return _used_up(limit, f"GitHub's graphql rate limit is used up: {message}")
        if "NOT_FOUND" in kinds:
            return ProviderError("repo_not_found", "not found on GitHub (or no access to it)")
        log.warning("github graphql error", kinds=sorted(kinds), message=message)
        return ProviderError("provider_unavailable", f"GitHub's GraphQL API refused: {message}")

    def _remember(self, key: tuple[str, str], answer: Answer) -> None:
        self._cache[key] = answer
        self._cache.move_to_end(key)
        while len(self._cache) > _MAX_CACHED:
            self._cache.popitem(last=False)

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None = None
    ) -> httpx.Response:
        self.requests_sent += 1
        try:
            return await self.client().request(
                method, url, headers=headers, json=body, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            # The message names the host only: a token is never part of a URL here.
            raise ProviderError(
                "provider_unavailable", f"GitHub did not answer: {type(exc).__name__}"
            ) from None

    def _json(self, response: httpx.Response) -> Any:
        status = response.status_code
        if status < 300:
            return response.json() if response.content else None
        message = _message(response)
        if status in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
            limit = _rate_limit(response.headers)
            wait = (limit.reset_at - time.time()) if limit else 60.0
            raise ProviderError(
                "github_rate_limited",
                f"GitHub's rate limit is used up: {message}",
                retry_after_s=wait,
            )
        if status == 401:
            raise ProviderError("github_unauthorized", f"GitHub refused the token: {message}")
        if status == 404:
            raise ProviderError("repo_not_found", "not found on GitHub (or no access to it)")
        log.warning("github error", status=status, message=message)
        raise ProviderError("provider_unavailable", f"GitHub answered {status}: {message}")


def _used_up(limit: RateLimit, why: str) -> ProviderError:
    until = time.strftime("%H:%M:%S", time.gmtime(limit.reset_at))
    return ProviderError(
        "github_rate_limited",
        f"{why} until {until} UTC",
        retry_after_s=max(limit.reset_at - time.time(), 1.0),
    )


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]
