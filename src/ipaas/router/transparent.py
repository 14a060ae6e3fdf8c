"""A router with no proxy: users reach the app at its published address directly."""

from __future__ import annotations

from collections.abc import Sequence

from ipaas.domain.domains import CertificateInfo
from ipaas.router.base import Issuance, Route


class TransparentRouter:
    """For development and benchmarks: the URL is the upstream itself, nothing is proxied
    (so no custom domain is served and no certificate is held)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.drained: dict[str, tuple[str, ...]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def set_route(self, route: Route) -> str:
        self.routes[route.host] = route
        return f"http://{route.upstream}/"

    async def remove_route(self, host: str) -> None:
        self.routes.pop(host, None)

    async def drain(self, host: str, upstreams: Sequence[str]) -> None:
        """Nothing to steer: clients reach the upstreams themselves. Kept for the tests."""
        if upstreams:
            self.drained[host] = tuple(upstreams)
        else:
            self.drained.pop(host, None)

    async def sync(self, routes: list[Route]) -> None:
        self.routes = {route.host: route for route in routes}

    async def health(self) -> str:
        return f"transparent: no proxy, apps are reached directly ({len(self.routes)} routes)"

    def url_for(self, host: str) -> str:
        route = self.routes.get(host)
        return f"http://{route.upstream}/" if route else f"http://{host}/"

    def certificate(self, host: str) -> CertificateInfo | None:
        return None

    def forget_certificate(self, host: str) -> None:
        return None

    def issuances(self) -> list[Issuance]:
        return []
