"""TransparentRouter: no proxy, the URL is the upstream."""

from __future__ import annotations

from ipaas.router.base import Route
from ipaas.router.transparent import TransparentRouter


async def test_transparent_router_points_at_upstream() -> None:
    router = TransparentRouter()
    await router.start()
    assert (
        await router.set_route(Route("a.localhost", "127.0.0.1:49153")) == "http://127.0.0.1:49153/"
    )
    assert router.url_for("a.localhost") == "http://127.0.0.1:49153/"
    await router.sync([Route("b.localhost", "127.0.0.1:49154")])
    assert router.url_for("b.localhost") == "http://127.0.0.1:49154/"
    assert router.url_for("a.localhost") == "http://a.localhost/"
    await router.remove_route("b.localhost")
    assert router.routes == {}
    await router.close()
