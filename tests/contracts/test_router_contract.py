"""What the deployer relies on from a router, checked on Caddy and on the fake."""

from __future__ import annotations

import pytest

from ipaas.router.base import Route, Router
from tests.fakes import FakeRouter
from tests.router.conftest import RouterFactory


@pytest.fixture(params=["fake", "caddy"])
async def any_router(request: pytest.FixtureRequest, make_router: RouterFactory) -> Router:
    if request.param == "fake":
        return FakeRouter()
    caddy = make_router()
    await caddy.start()
    return caddy


async def test_a_route_gives_the_host_url(any_router: Router) -> None:
    url = await any_router.set_route(Route("web.localhost", "127.0.0.1:9"))
    assert url.startswith("http") and "web.localhost" in url
    assert any_router.url_for("web.localhost") == url


async def test_routes_are_replaced_removed_and_synced_without_errors(any_router: Router) -> None:
    await any_router.set_route(Route("a.localhost", "127.0.0.1:9"))
    await any_router.set_route(Route("a.localhost", "127.0.0.1:10"))
    await any_router.drain("a.localhost", ["127.0.0.1:10"])  # a drain of all drains none
    await any_router.drain("never-added.localhost", ["127.0.0.1:9"])
    await any_router.drain("a.localhost", [])
    await any_router.remove_route("a.localhost")
    await any_router.remove_route("never-added.localhost")
    await any_router.sync([Route("b.localhost", "127.0.0.1:9")])
    await any_router.sync([])


async def test_health_counts_the_routes_and_a_stopped_proxy_is_a_failure(
    any_router: Router,
) -> None:
    await any_router.set_route(Route("h.localhost", "127.0.0.1:9"))
    assert "1 routes" in await any_router.health()
    if isinstance(any_router, FakeRouter):
        return
    await any_router.close()
    with pytest.raises(Exception, match="does not answer"):
        await any_router.health()
