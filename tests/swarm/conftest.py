"""The Swarm tests route through a real Caddy: the router tests' fixtures."""

from __future__ import annotations

from tests.router.conftest import make_router, router, router_settings

__all__ = ["make_router", "router", "router_settings"]
