"""Fixtures for router tests: Caddy on free ports in a temporary data dir, real app containers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ipaas.config import RouterSettings
from ipaas.router.caddy import CaddyRouter
from tests.runtime.conftest import app_image, docker_client, make_spec, runtime
from tests.support import free_port

__all__ = ["app_image", "docker_client", "make_spec", "runtime"]

RouterFactory = Callable[..., CaddyRouter]


@pytest.fixture
def router_settings() -> RouterSettings:
    # Never the defaults (2019/8080): a platform may be running on this machine.
    return RouterSettings(admin_address=f"127.0.0.1:{free_port()}", http_port=free_port())


@pytest.fixture
async def make_router(
    router_settings: RouterSettings, tmp_path: Path
) -> AsyncIterator[RouterFactory]:
    """CaddyRouters sharing this test's settings; all are closed (Caddy stopped) afterwards."""
    made: list[CaddyRouter] = []

    def factory(data_dir: Path | None = None, **kwargs: object) -> CaddyRouter:
        router = CaddyRouter(
            router_settings,
            "localhost",
            data_dir or tmp_path / "caddy",
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(router)
        return router

    yield factory
    for router in reversed(made):
        router.stop_on_close = True
        await router.close()


@pytest.fixture
async def router(make_router: RouterFactory) -> CaddyRouter:
    caddy = make_router(supervise_interval_s=0.2)
    await caddy.start()
    return caddy
