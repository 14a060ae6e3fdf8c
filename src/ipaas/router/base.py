"""The Router seam."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Route:
    host: str  # "<name>.<base_domain>"
    upstream: str  # "127.0.0.1:49153": where the app answers
    # Private: every request first asks the control plane whether its sender may pass.
    private: bool = False


class Router(Protocol):
    async def start(self) -> None:
        """Start (or attach to) the proxy; idempotent."""
        ...

    async def close(self) -> None: ...

    async def set_route(self, route: Route) -> str:
        """Point the host at the upstream; return the URL users reach the app at."""
        ...

    async def remove_route(self, host: str) -> None: ...

    async def sync(self, routes: list[Route]) -> None:
        """Make the proxy's routes exactly these (after a restart)."""
        ...

    def url_for(self, host: str) -> str: ...
