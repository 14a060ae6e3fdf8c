"""Each seam's contract runs against the real adapter and its in-memory fake alike."""

from __future__ import annotations

from tests.router.conftest import make_router, router, router_settings
from tests.runtime.conftest import app_image, docker_client, make_spec, runtime
from tests.swarm.conftest import (
    manager_client,
    registry_settings,
    swarm_cluster,
    swarm_image,
    swarm_registry,
    swarm_runtime,
    swarm_settings,
    swarm_spec,
)

__all__ = [
    "app_image",
    "docker_client",
    "make_router",
    "make_spec",
    "manager_client",
    "registry_settings",
    "router",
    "router_settings",
    "runtime",
    "swarm_cluster",
    "swarm_image",
    "swarm_registry",
    "swarm_runtime",
    "swarm_settings",
    "swarm_spec",
]
