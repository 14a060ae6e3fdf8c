"""The Router seam."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ipaas.domain.domains import CertificateInfo


@dataclass(frozen=True)
class Route:
    host: str  # "<name>.<base_domain>"
    upstream: str  # "127.0.0.1:49153": where the app answers
    # Private: every request first asks the control plane whether its sender may pass.
    private: bool = False
    # The app's verified custom domains: served like `host`, with certificates on demand.
    domains: tuple[str, ...] = ()
    # (from, to): a www/apex partner answering with a permanent redirect to its domain.
    redirects: tuple[tuple[str, str], ...] = ()

    @property
    def custom_hosts(self) -> tuple[str, ...]:
        return self.domains + tuple(source for source, _ in self.redirects)


@dataclass(frozen=True)
class Issuance:
    """The proxy tried to obtain a certificate: it got one (`error` None), or the CA's error."""

    host: str
    error: str | None
    at: datetime


class Router(Protocol):
    async def start(self) -> None:
        """Start (or attach to) the proxy; idempotent."""
        ...

    async def close(self) -> None: ...

    async def set_route(self, route: Route) -> str:
        """Point the host (and its domains) at the upstream; return the host's URL. Domains
        no longer on the route stop being served."""
        ...

    async def remove_route(self, host: str) -> None: ...

    async def drain(self, host: str, upstreams: Sequence[str]) -> None:
        """Send no new request to these upstreams of the host's route (a Swarm app's nodes
        whose task is about to stop, or not proven yet) until the next call for the host; an
        empty list ends the drain. Requests under way finish where they are. A drain of every
        upstream drains none; the route itself (and what `sync` is given) does not change."""
        ...

    async def sync(self, routes: list[Route]) -> None:
        """Make the proxy's routes exactly these (after a restart)."""
        ...

    async def health(self) -> str:
        """What the proxy says about itself now (for the admin page); raises when it does
        not answer."""
        ...

    def url_for(self, host: str) -> str: ...

    def certificate(self, host: str) -> CertificateInfo | None:
        """The certificate the proxy holds for the host, if any."""
        ...

    def forget_certificate(self, host: str) -> None:
        """Drop what the proxy keeps of the host's certificate (the domain was removed)."""
        ...

    def issuances(self) -> list[Issuance]:
        """Certificate requests that ended since the last call, oldest first."""
        ...
