"""CaddyRouter with a real Caddy in front of real containers."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import time
from pathlib import Path

import httpx
import pytest

from ipaas.config import RouterSettings
from ipaas.router.base import Route
from ipaas.router.caddy import CaddyRouter
from ipaas.runtime.docker import DockerRuntime
from tests import services
from tests.router.conftest import RouterFactory, free_port
from tests.runtime.conftest import SpecFactory


@pytest.fixture(autouse=True)
def _docker() -> None:
    services.need("docker")


async def _upstream(runtime: DockerRuntime, make_spec: SpecFactory, text: str) -> str:
    info = await runtime.start(make_spec(env={"APP_TEXT": text}))
    return f"127.0.0.1:{info.host_port}"


async def _get(router: CaddyRouter, host: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(
            f"http://127.0.0.1:{router.settings.http_port}/", headers={"Host": host}
        )


async def _eventually_text(router: CaddyRouter, host: str, text: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            if (await _get(router, host)).text == text:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{host} did not answer {text!r} in time"
        await asyncio.sleep(0.1)


async def test_route_then_remove(
    router: CaddyRouter, runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    upstream = await _upstream(runtime, make_spec, "app one")
    url = await router.set_route(Route("one.localhost", upstream))
    assert url == f"http://one.localhost:{router.settings.http_port}/"
    response = await _get(router, "one.localhost")
    assert (response.status_code, response.text) == (200, "app one\n")
    assert (await _get(router, "other.localhost")).status_code == 404
    await router.remove_route("one.localhost")
    assert (await _get(router, "one.localhost")).status_code == 404
    await router.remove_route("one.localhost")  # removing twice is fine


async def test_routes_survive_restart_and_sync(
    make_router: RouterFactory, runtime: DockerRuntime, make_spec: SpecFactory, tmp_path: Path
) -> None:
    upstream = await _upstream(runtime, make_spec, "kept")
    first = make_router()
    await first.start()
    await first.set_route(Route("kept.localhost", upstream))
    await first.close()
    # Same data dir: Caddy starts from the persisted file with the route.
    second = make_router()
    await second.start()
    assert (await _get(second, "kept.localhost")).text == "kept\n"
    await second.close()
    # A fresh data dir knows no route until sync gives it the list.
    third = make_router(data_dir=tmp_path / "fresh")
    await third.start()
    assert (await _get(third, "kept.localhost")).status_code == 404
    await third.sync([Route("kept.localhost", upstream)])
    assert (await _get(third, "kept.localhost")).text == "kept\n"
    # The warden syncs periodically: an unchanged list must not reload Caddy (a reload
    # closes idle client connections).
    reloads = third.log_path.read_text().count("admin endpoint started")
    files = [third.config_path, third.upstreams_dir / "kept.localhost"]
    written = [(f.stat().st_ino, f.stat().st_mtime_ns) for f in files]
    await third.sync([Route("kept.localhost", upstream)])
    assert third.log_path.read_text().count("admin endpoint started") == reloads
    # Nor rewrite its files: with hundreds of apps that was most of a warden's pass.
    assert [(f.stat().st_ino, f.stat().st_mtime_ns) for f in files] == written
    await third.sync([])
    assert (await _get(third, "kept.localhost")).status_code == 404


async def test_attaches_to_running_caddy(
    make_router: RouterFactory, runtime: DockerRuntime, make_spec: SpecFactory, tmp_path: Path
) -> None:
    upstream = await _upstream(runtime, make_spec, "attached")
    owner = make_router(stop_on_close=False)
    await owner.start()
    await owner.set_route(Route("att.localhost", upstream))
    pid = owner.pid
    await owner.close()  # an ipaas restart: Caddy keeps serving
    assert (await _get(owner, "att.localhost")).text == "attached\n"
    reloads = owner.log_path.read_text().count("admin endpoint started")
    same = make_router(stop_on_close=False)  # the restarted ipaas: same dir, same settings
    await same.start()
    assert same.pid is None and same.routes == owner.routes
    assert owner.log_path.read_text().count("admin endpoint started") == reloads  # no reload
    await same.close()
    later = make_router(data_dir=tmp_path / "other")
    await later.start()
    assert later.pid is None and "att.localhost" in later.routes
    assert (await _get(later, "att.localhost")).text == "attached\n"
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # the orphan: nobody else owns it


async def test_sigkilled_caddy_is_restarted_with_routes(
    router: CaddyRouter, runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    upstream = await _upstream(runtime, make_spec, "phoenix")
    await router.set_route(Route("phoenix.localhost", upstream))
    pid = router.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await _eventually_text(router, "phoenix.localhost", "phoenix\n", within_s=10)
    assert router.pid not in (None, pid)


async def test_upstream_switch_drops_nothing(
    router: CaddyRouter, runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    blue, green = await asyncio.gather(
        _upstream(runtime, make_spec, "blue"), _upstream(runtime, make_spec, "green")
    )
    host = "switch.localhost"
    await router.set_route(Route(host, blue))
    seen: dict[str, int] = {}
    failures: list[str] = []
    stop = asyncio.Event()

    async def hammer() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            while not stop.is_set():
                try:
                    r = await http.get(
                        f"http://127.0.0.1:{router.settings.http_port}/", headers={"Host": host}
                    )
                    key = r.text.strip() if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    key = f"{type(exc).__name__}: {exc}"
                seen[key] = seen.get(key, 0) + 1
                if key not in ("blue", "green"):
                    failures.append(key)

    loops = [asyncio.create_task(hammer()) for _ in range(4)]
    for i in range(10):
        await asyncio.sleep(0.15)
        await router.set_route(Route(host, green if i % 2 == 0 else blue))
    await asyncio.sleep(0.15)
    stop.set()
    await asyncio.gather(*loops)
    assert failures == [], seen
    assert seen.get("blue", 0) > 10 and seen.get("green", 0) > 10, seen


async def test_a_drained_upstream_gets_no_new_requests_and_caddy_is_not_reloaded(
    router: CaddyRouter, runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    """A Swarm app's node whose task is about to stop is drained: its share of the requests
    goes to the others, by file (a reload would close idle client connections), and comes
    back when the drain ends; a full sync of the routes keeps the drain."""
    a, b, c = await asyncio.gather(
        *(_upstream(runtime, make_spec, text) for text in ("a", "b", "c"))
    )
    host = "drained.localhost"
    route = Route(host, ",".join([a, b, c]))
    await router.set_route(route)
    reloads = router.log_path.read_text().count("admin endpoint started")

    async def answers(count: int) -> dict[str, int]:
        seen: dict[str, int] = {}
        for _ in range(count):
            r = await _get(router, host)
            key = r.text.strip() if r.status_code == 200 else f"HTTP {r.status_code}"
            seen[key] = seen.get(key, 0) + 1
        return seen

    assert set(await answers(12)) == {"a", "b", "c"}
    await router.drain(host, [c])
    assert set(await answers(12)) == {"a", "b"}
    await router.sync([route])  # the warden's periodic sync: the drain stays
    await router.drain(host, [a, c])
    assert set(await answers(12)) == {"b"}
    await router.drain(host, [a, b, c])  # nothing would serve: no drain
    assert set(await answers(12)) == {"a", "b", "c"}
    await router.drain(host, [b])
    await router.drain(host, [])
    assert set(await answers(12)) == {"a", "b", "c"}
    assert router.log_path.read_text().count("admin endpoint started") == reloads
    assert router.routes[host] == route
    await router.remove_route(host)
    assert sorted(p.name for p in router.upstreams_dir.iterdir() if host in p.name) == []


async def test_server_sent_events_are_not_buffered(
    router: CaddyRouter, runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    upstream = await _upstream(runtime, make_spec, "sse")
    await router.set_route(Route("sse.localhost", upstream))
    url = f"http://127.0.0.1:{router.settings.http_port}/cgi-bin/sse"
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream("GET", url, headers={"Host": "sse.localhost"}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        started = time.monotonic()
        chunks = response.aiter_text()
        first = await anext(chunks)
        assert "data: one" in first and "data: two" not in first
        assert time.monotonic() - started < 2  # before the script's 3 s pause ends
        rest = "".join([chunk async for chunk in chunks])
        assert "data: two" in rest


async def test_static_upstreams_switch_by_reload(
    make_router: RouterFactory, runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    router = make_router(upstream_files=False)
    await router.start()
    blue, green = await asyncio.gather(
        _upstream(runtime, make_spec, "blue"), _upstream(runtime, make_spec, "green")
    )
    await router.set_route(Route("static.localhost", blue))
    assert (await _get(router, "static.localhost")).text == "blue\n"
    await router.set_route(Route("static.localhost", green))
    assert (await _get(router, "static.localhost")).text == "green\n"


def test_url_for_omits_default_ports(tmp_path: Path) -> None:
    plain = CaddyRouter(RouterSettings(http_port=80), "example.org", tmp_path)
    assert plain.url_for("a.example.org") == "http://a.example.org/"
    tls = CaddyRouter(RouterSettings(tls=True, https_port=443), "example.org", tmp_path)
    assert tls.url_for("a.example.org") == "https://a.example.org/"


def test_route_order_alone_does_not_force_a_reload() -> None:
    from ipaas.router.caddy import SERVER, _same_config

    def config(ids: list[str]) -> dict[str, object]:
        routes: list[dict[str, object]] = [{"@id": i, "match": [{"host": [i]}]} for i in ids]
        routes.append({"handle": [{"handler": "static_response", "status_code": 404}]})
        return {"apps": {"http": {"servers": {SERVER: {"routes": routes}}}}}

    assert _same_config(config(["b", "a"]), config(["a", "b"]))
    assert not _same_config(config(["a"]), config(["a", "b"]))


async def test_tls_mode_serves_https_and_redirects_plain_http(
    runtime: DockerRuntime, make_spec: SpecFactory, tmp_path: Path
) -> None:
    """`tls: true`: each route host gets a certificate (for *.localhost from Caddy's own CA,
    kept in the data dir; the machine's trust store is left alone) and plain HTTP redirects."""
    settings = RouterSettings(
        admin_address=f"127.0.0.1:{free_port()}",
        http_port=free_port(),
        https_port=free_port(),
        tls=True,
    )
    router = CaddyRouter(settings, "localhost", tmp_path / "caddy", stop_on_close=True)
    await router.start()
    try:
        upstream = await _upstream(runtime, make_spec, "over tls")
        url = await router.set_route(Route("secure.localhost", upstream))
        assert url == f"https://secure.localhost:{settings.https_port}/"
        root = tmp_path / "caddy" / "certificates" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + 30
        while not root.exists():  # the CA and the certificate are made in the background
            assert time.monotonic() < deadline, "Caddy made no CA"
            await asyncio.sleep(0.2)
        ssl_context = ssl.create_default_context(cafile=str(root))
        async with httpx.AsyncClient(verify=ssl_context, timeout=5) as http:
            answer = None
            while answer is None:
                try:
                    answer = await http.get(
                        f"https://127.0.0.1:{settings.https_port}/",
                        headers={"Host": "secure.localhost"},
                        extensions={"sni_hostname": "secure.localhost"},
                    )
                except httpx.ConnectError:  # certificate not issued yet
                    assert time.monotonic() < deadline, "no certificate for the route"
                    await asyncio.sleep(0.2)
            assert (answer.status_code, answer.text) == (200, "over tls\n")
            plain = await http.get(
                f"http://127.0.0.1:{settings.http_port}/x", headers={"Host": "secure.localhost"}
            )
            assert plain.status_code in (301, 308)
            assert plain.headers["location"].startswith("https://secure.localhost")
    finally:
        await router.close()


def test_routes_with_domains_and_redirects_are_adopted_as_they_were(tmp_path: Path) -> None:
    """A restarted platform reads its routes back from Caddy (or its file): custom domains
    and www redirects included, public or private."""
    from ipaas.router.caddy import _route_from_json

    caddy = CaddyRouter(RouterSettings(), "localhost", tmp_path, upstream_files=False)
    for private in (False, True):
        route = Route(
            "shop.localhost",
            "127.0.0.1:9",
            private=private,
            domains=("shop.acme.io", "store.acme.io"),
            redirects=(("www.shop.acme.io", "shop.acme.io"),),
        )
        caddy._routes = {route.host: route}
        assert _route_from_json(caddy._route_json(route.host)) == route
    plain = Route("plain.localhost", "127.0.0.1:9")
    caddy._routes = {plain.host: plain}
    assert _route_from_json(caddy._route_json(plain.host)) == plain
    # With upstream files, a Swarm app's route reads its list back, drained or not.
    files = CaddyRouter(RouterSettings(), "localhost", tmp_path / "files")
    nodes = Route("nodes.localhost", "10.0.0.2:30001,10.0.0.3:30001")
    files._routes = {nodes.host: nodes}
    files._drained = {nodes.host: ("10.0.0.3:30001",)}
    files._write_files()
    assert (files.upstreams_dir / "nodes.localhost#1").read_text() == "10.0.0.2:30001"
    assert _route_from_json(files._route_json(nodes.host)) == nodes
    # Without upstream files, a drain is written into the route (a reload).
    caddy._routes, caddy._drained = files._routes, files._drained
    proxy = caddy._route_json(nodes.host)["handle"][-1]
    assert [u["dial"] for u in proxy["upstreams"]] == ["10.0.0.2:30001", "10.0.0.2:30001"]
    assert "tls" not in caddy.config()["apps"]


def test_only_custom_domains_get_on_demand_certificates_from_the_acme_ca(tmp_path: Path) -> None:
    settings = RouterSettings(
        tls=True, acme_directory="https://ca.test/dir", acme_email="ops@acme.io"
    )
    caddy = CaddyRouter(settings, "localhost", tmp_path, gate_dial="127.0.0.1:8123")
    caddy._routes = {
        "a.localhost": Route("a.localhost", "127.0.0.1:9", domains=("shop.acme.io",),
                             redirects=(("www.shop.acme.io", "shop.acme.io"),)),
        "b.localhost": Route("b.localhost", "127.0.0.1:10"),
    }  # fmt: skip
    automation = caddy.config()["apps"]["tls"]["automation"]
    [policy] = automation["policies"]
    assert policy["subjects"] == ["shop.acme.io", "www.shop.acme.io"] and policy["on_demand"]
    assert policy["issuers"] == [
        {"module": "acme", "ca": "https://ca.test/dir", "email": "ops@acme.io"}
    ]
    ask = automation["on_demand"]["permission"]
    assert ask == {"module": "http", "endpoint": "http://127.0.0.1:8123/.ipaas/ask"}
