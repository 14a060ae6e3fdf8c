"""Repository hosts: resolved once, refused when internal, and pinned so git connects to the
very address that was checked (a second DNS answer cannot point it elsewhere)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ipaas.builds.base import BuildFailed
from ipaas.config import Settings
from ipaas.domain.addresses import AddressPolicy, host_refusal, literal_address
from ipaas.domain.repo_access import RepoAddress, RepoUrlError, repo_address

# (host, port) -> the addresses it resolves to; [] when the name does not exist.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class RepoHostForbidden(BuildFailed):
    """The URL's host is (or resolves to) an address users may not reach."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, user_fault=True, code="repo_host_forbidden")


@dataclass(frozen=True)
class Pin:
    """The endpoint of a URL and the one address git must connect to (None: not pinned, the
    operator allowed the host by name)."""

    endpoint: RepoAddress
    ip: str | None


def known_answer(host: str) -> list[str] | None:
    """The addresses of a host that needs no lookup: an IP literal, or a name reserved by
    RFC 6761 (*.localhost is loopback whatever a DNS server says; *.invalid never exists)."""
    if literal_address(host) is not None:
        return [host]
    if host == "localhost" or host.endswith(".localhost"):
        return ["127.0.0.1", "::1"]
    if host == "invalid" or host.endswith(".invalid"):
        return []
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses through the system resolver, off the event loop."""
    known = known_answer(host)
    if known is not None:
        return known
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return []
        raise BuildFailed(
            f"cannot resolve {host}: {exc.strerror}", user_fault=False, code="fetch_failed"
        ) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class RepoGuard:
    """Applies the address policy to repository URLs of users who are not admins."""

    def __init__(
        self, policy: AddressPolicy, resolver: Resolver | None = None, timeout_s: float = 5.0
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver | None = None) -> RepoGuard:
        policy = AddressPolicy.from_lists(
            settings.repo_allowed_hosts, settings.repo_allowed_networks
        )
        return cls(policy, resolver, settings.repo_resolve_timeout_s)

    async def check(self, url: str) -> None:
        """Refuse a URL whose host is internal. A name that does not resolve (yet), or not in
        time, passes: there is nothing to reach, and the clone resolves and checks again."""
        try:
            await self._resolve_checked(url)
        except BuildFailed as exc:
            if exc.user_fault:
                raise

    async def pin(self, url: str) -> Pin | None:
        """Resolve, check and return the address git must use; None for a local path."""
        resolved = await self._resolve_checked(url)
        if resolved is None:
            return None
        endpoint, addresses = resolved
        if self._policy.host_allowed(endpoint.host):
            return Pin(endpoint, None)
        if not addresses:
            raise BuildFailed(
                f"the repository host {endpoint.host} does not resolve",
                user_fault=True,
                code="repo_not_found",
            )
        return Pin(endpoint, addresses[0])

    async def _resolve_checked(self, url: str) -> tuple[RepoAddress, list[str]] | None:
        try:
            endpoint = repo_address(url)
        except RepoUrlError as exc:
            raise BuildFailed(
                f"repository URL rejected: {exc}", user_fault=True, code="invalid_repo"
            ) from None
        if endpoint is None:
            return None
        if self._policy.host_allowed(endpoint.host):
            return endpoint, []
        # Decided before any lookup: an odd numeric host is refused without resolving it.
        refusal = host_refusal(endpoint.host, [], self._policy)
        if refusal is None:
            known = known_answer(endpoint.host)
            addresses = known if known is not None else await self._resolve(endpoint)
            refusal = host_refusal(endpoint.host, addresses, self._policy)
        if refusal is not None:
            raise RepoHostForbidden(f"repository host refused: {refusal}")
        return endpoint, addresses

    async def _resolve(self, endpoint: RepoAddress) -> list[str]:
        resolver = self._resolver or system_resolve
        try:
            return await asyncio.wait_for(
                resolver(endpoint.host, endpoint.port), timeout=self._timeout_s
            )
        except TimeoutError:
            raise BuildFailed(
                f"resolving {endpoint.host} took more than {self._timeout_s:g} s",
                user_fault=False,
                code="fetch_failed",
            ) from None
