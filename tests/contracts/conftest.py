"""Each seam's contract runs against the real adapter and its in-memory fake alike."""

from __future__ import annotations

from tests.router.conftest import make_router, router, router_settings
from tests.runtime.conftest import app_image, docker_client, make_spec, runtime

__all__ = [
    "app_image",
    "docker_client",
    "make_router",
    "make_spec",
    "router",
    "router_settings",
    "runtime",
]
