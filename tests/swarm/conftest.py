"""The Swarm tests route through a real Caddy (the router tests' fixtures), and the whole
platform on the Swarm builds from the base images (the builder tests' fixtures)."""

from __future__ import annotations

from tests.builds.conftest import base_images, build_network
from tests.router.conftest import make_router, router, router_settings

__all__ = ["base_images", "build_network", "make_router", "router", "router_settings"]
