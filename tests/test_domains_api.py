"""Custom domains through the API: claiming, refusals, DNS verification against a real DNS
server (pebble-challtestsrv), the route a verified domain joins, and Caddy's `ask` question.
The router is the in-memory one here; certificates from a real CA: tests/e2e/test_domains.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ipaas.api.app import create_app
from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from ipaas.store.migrate import upgrade
from tests.acme import TEST_ZONE, ChallengeDns
from tests.conftest import auth, make_settings, signed_in_user
from tests.fakes import FakeRouter, fake_plane
from tests.support import unique_name

APPS = "/api/v1/applications"
PUBLIC = "203.0.113.7"  # the platform's public address in these tests
BASE = f"apps.{TEST_ZONE}"


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChallengeDns]:
    server = ChallengeDns(tmp_path_factory.mktemp("dns"))
    yield server
    server.close()


@pytest.fixture(scope="module")
async def plane(
    database_url: str, dns: ChallengeDns, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControlPlane]:
    upgrade(database_url)
    settings = make_settings(
        tmp_path_factory.mktemp("data"),
        database_url,
        base_domain=BASE,
        domains={
            "nameserver": "127.0.0.1",
            "nameserver_port": dns.port,
            "public_addresses": [PUBLIC],
            "max_per_app": 4,
            "lookup_timeout_s": 2,
        },
    )
    made = fake_plane(settings)
    yield made
    await made.lifecycle.close()


@pytest.fixture(scope="module")
async def api(plane: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(plane, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://ipaas.test") as c:
        yield c


def domain(label: str = "shop") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.{TEST_ZONE}"


class Owner:
    """A user with one app, as the tests see them through the API."""

    def __init__(self, api: httpx.AsyncClient, user: dict[str, str], app_id: str) -> None:
        self.api, self.user, self.app_id = api, user, app_id

    @property
    def path(self) -> str:
        return f"{APPS}/{self.app_id}/domains"

    async def add(self, name: str, **body: Any) -> httpx.Response:
        return await self.api.post(
            self.path, json={"domain": name, **body}, headers=auth(self.user)
        )

    async def verify(self, name: str) -> dict[str, Any]:
        r = await self.api.post(f"{self.path}/{name}/verify", headers=auth(self.user))
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def listed(self) -> list[dict[str, Any]]:
        r = await self.api.get(self.path, headers=auth(self.user))
        assert r.status_code == 200, r.text
        return list(r.json())

    async def remove(self, name: str) -> httpx.Response:
        return await self.api.delete(f"{self.path}/{name}", headers=auth(self.user))

    async def events(self) -> list[str]:
        r = await self.api.get(f"{APPS}/{self.app_id}/events", headers=auth(self.user))
        return [e["reason"] or "" for e in r.json()]


async def new_owner(api: httpx.AsyncClient, plane: ControlPlane, running: bool = True) -> Owner:
    user = await signed_in_user(plane)
    body = {"name": unique_name("dom"), "repo": "https://example.com/r.git"}
    r = await api.post(APPS, json=body, headers=auth(user))
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    if running:  # as a deploy leaves it: an address, a route
        apps = plane.stores.apps
        for state in (State.BUILDING, State.STARTING):
            await apps.transition(app_id, state, "test")
        await apps.transition(app_id, State.RUNNING, "test", address="10.254.0.9:8080")
        await plane.deployer.reroute(app_id, body["name"])
    return Owner(api, user, app_id)


def routed_domains(plane: ControlPlane) -> set[str]:
    router = plane.adapters.router
    assert isinstance(router, FakeRouter)
    return {h for route in router.routes.values() for h in route.custom_hosts}


async def ask(api: httpx.AsyncClient, name: str) -> int:
    return (await api.get("/.ipaas/ask", params={"domain": name})).status_code


@pytest.fixture
async def owner(api: httpx.AsyncClient, plane: ControlPlane) -> Owner:
    return await new_owner(api, plane)


async def test_a_new_domain_waits_for_dns_and_says_what_to_set(
    owner: Owner, plane: ControlPlane, api: httpx.AsyncClient
) -> None:
    name = domain()
    r = await owner.add(name.upper() + ".")  # stored in one form
    assert r.status_code == 201, r.text
    [added] = r.json()
    assert added["domain"] == name and not added["verified"]
    assert added["certificate"]["state"] == "unverified"
    token = added["missing"][-1]["value"]
    assert [(m["type"], m["name"], m["value"]) for m in added["missing"]] == [
        ("A", name, PUBLIC), ("TXT", f"_ipaas-challenge.{name}", token),
    ]  # fmt: skip
    assert len(token) >= 32
    # Not served, and Caddy may not ask a CA for it.
    assert name not in routed_domains(plane)
    assert await ask(api, name) == 403


async def test_an_address_pointing_at_the_platform_verifies_and_routes_it(
    owner: Owner, plane: ControlPlane, api: httpx.AsyncClient, dns: ChallengeDns
) -> None:
    name = domain()
    assert (await owner.add(name)).status_code == 201
    dns.add_a(name, PUBLIC, "198.51.100.1")  # shared with someone else: not ours
    shared = await owner.verify(name)
    assert not shared["verified"]
    assert sorted(shared["found"]["addresses"]) == ["198.51.100.1", PUBLIC]
    dns.clear_a(name)
    dns.add_a(name, PUBLIC)
    found = await owner.verify(name)
    assert found["verified"] and found["verified_by"] == "address" and found["missing"] == []
    assert name in routed_domains(plane)
    assert await ask(api, name) == 200
    assert f"domain {name} verified (address)" in await owner.events()


async def test_the_txt_token_verifies_and_removing_unroutes(
    owner: Owner, plane: ControlPlane, api: httpx.AsyncClient, dns: ChallengeDns
) -> None:
    name = domain()
    [added] = (await owner.add(name)).json()
    dns.set_txt(f"_ipaas-challenge.{name}", "not the token")
    assert not (await owner.verify(name))["verified"]
    dns.set_txt(f"_ipaas-challenge.{name}", added["missing"][-1]["value"])
    assert (await owner.verify(name))["verified_by"] == "txt"
    assert name in routed_domains(plane)

    assert (await owner.remove(name)).status_code == 204
    assert name not in routed_domains(plane)
    assert await ask(api, name) == 403
    assert await owner.listed() == []
    assert (await owner.remove(name)).status_code == 404
    assert f"domain {name} removed" in await owner.events()


async def test_a_domain_found_at_once_is_served_at_once(owner: Owner, dns: ChallengeDns) -> None:
    name = domain()
    dns.add_a(name, PUBLIC)
    [added] = (await owner.add(name)).json()
    assert added["verified"] and added["certificate"]["state"] == "no_tls"


async def test_www_partner_redirects_and_goes_with_its_domain(
    owner: Owner, plane: ControlPlane, dns: ChallengeDns
) -> None:
    name = domain()
    dns.add_a(name, PUBLIC)
    dns.add_a(f"www.{name}", PUBLIC)
    r = await owner.add(name, redirect_www=True)
    assert r.status_code == 201, r.text
    rows = {d["domain"]: d for d in r.json()}
    assert rows[name]["redirect_to"] is None
    assert rows[f"www.{name}"]["redirect_to"] == name and rows[f"www.{name}"]["verified"]
    router = plane.adapters.router
    assert isinstance(router, FakeRouter)
    [route] = [r for r in router.routes.values() if name in r.domains]
    assert route.redirects == ((f"www.{name}", name),)
    # The other way round: the apex redirects to www.
    apex = domain("apex")
    r = await owner.add(f"www.{apex}", redirect_www=True)
    assert {d["domain"]: d["redirect_to"] for d in r.json()} == {
        f"www.{apex}": None,
        apex: f"www.{apex}",
    }

    assert (await owner.remove(name)).status_code == 204
    assert {d["domain"] for d in await owner.listed()} == {f"www.{apex}", apex}
    assert f"www.{name}" not in routed_domains(plane)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (BASE, "domain_platform"),
        (f"shop.{BASE}", "domain_platform"),
        ("shop.example.com", "domain_reserved"),
        ("printer.local", "domain_reserved"),
        ("app.localhost", "domain_reserved"),
        ("127.0.0.1", "domain_ip_literal"),
        ("[::1]", "domain_ip_literal"),
        ("0x7f.1", "domain_ip_literal"),
        ("shop", "domain_invalid"),
        ("*.shop.io", "domain_invalid"),
        ("shop.io/admin", "domain_invalid"),
        ("-x.shop.io", "domain_invalid"),
        ("a" * 70 + ".io", "domain_invalid"),
    ],
)
async def test_names_that_cannot_be_claimed(owner: Owner, name: str, code: str) -> None:
    r = await owner.add(name)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code
    assert await owner.listed() == []


async def test_over_long_and_odd_bodies_are_refused(owner: Owner) -> None:
    assert (await owner.add("a" * 300 + ".io")).status_code == 422
    r = await owner.api.post(
        owner.path, json={"domain": "x.io", "admin": True}, headers=auth(owner.user)
    )
    assert r.status_code == 422


async def test_a_domain_belongs_to_one_app_on_the_whole_platform(
    owner: Owner, api: httpx.AsyncClient, plane: ControlPlane
) -> None:
    name = domain()
    assert (await owner.add(name)).status_code == 201
    again = await owner.add(name)
    assert again.status_code == 409 and again.json()["code"] == "domain_taken"
    other = await new_owner(api, plane)
    r = await other.add(name.upper())
    assert r.status_code == 409 and r.json()["code"] == "domain_taken"
    # A partner that is taken refuses the whole request: nothing half-claimed.
    apex = domain()
    assert (await other.add(f"www.{apex}")).status_code == 201
    r = await owner.add(apex, redirect_www=True)
    assert r.status_code == 409 and r.json()["code"] == "domain_taken"
    assert apex not in {d["domain"] for d in await owner.listed()}


async def test_another_users_app_and_domains_are_out_of_reach(
    owner: Owner, api: httpx.AsyncClient, plane: ControlPlane
) -> None:
    name = domain()
    assert (await owner.add(name)).status_code == 201
    stranger = await new_owner(api, plane)
    intruder = Owner(api, stranger.user, owner.app_id)  # the stranger, on the owner's app
    assert (await intruder.add(domain())).status_code == 404
    assert (await api.get(intruder.path, headers=auth(stranger.user))).status_code == 404
    assert (await intruder.remove(name)).status_code == 404
    r = await api.post(f"{intruder.path}/{name}/verify", headers=auth(stranger.user))
    assert r.status_code == 404
    # Through their own app, the owner's domain is not theirs either.
    assert (await stranger.remove(name)).status_code == 404
    assert [d["domain"] for d in await owner.listed()] == [name]


async def test_an_app_has_a_bounded_number_of_domains(owner: Owner) -> None:
    """Four here (`domains.max_per_app`), partners counted."""
    assert (await owner.add(domain(), redirect_www=True)).status_code == 201
    assert (await owner.add(domain())).status_code == 201
    pair = await owner.add(domain(), redirect_www=True)  # would make five
    assert pair.status_code == 409 and pair.json()["code"] == "too_many_domains"
    assert (await owner.add(domain())).status_code == 201
    r = await owner.add(domain())
    assert r.status_code == 409 and r.json()["code"] == "too_many_domains"
    assert len(await owner.listed()) == 4


async def test_no_certificate_for_a_stopped_app_or_an_unknown_name(
    api: httpx.AsyncClient, plane: ControlPlane, dns: ChallengeDns
) -> None:
    stopped = await new_owner(api, plane, running=False)
    name = domain()
    dns.add_a(name, PUBLIC)
    [added] = (await stopped.add(name)).json()
    assert added["verified"]
    assert await ask(api, name) == 403  # verified, but nothing serves it
    assert await ask(api, domain("nobody")) == 403
    assert await ask(api, "") == 403


async def test_a_private_app_asks_for_a_sign_in_on_its_domain_too(
    owner: Owner, api: httpx.AsyncClient, dns: ChallengeDns
) -> None:
    r = await api.patch(
        f"{APPS}/{owner.app_id}", json={"visibility": "private"}, headers=auth(owner.user)
    )
    assert r.status_code == 200
    name = domain()
    dns.add_a(name, PUBLIC)
    assert (await owner.add(name)).status_code == 201
    check = await api.get("/.ipaas/check", headers={"Host": f"{name}:8443"})
    assert check.status_code == 401 and check.json()["code"] == "sign_in_required"
    unknown = await api.get("/.ipaas/check", headers={"Host": domain()})
    assert unknown.status_code == 404


async def test_a_resolver_that_does_not_answer_leaves_the_domain_waiting(
    database_url: str, tmp_path: Path
) -> None:
    from tests.support import free_port

    settings = make_settings(
        tmp_path, database_url,
        domains={"nameserver": "127.0.0.1", "nameserver_port": free_port(), "lookup_timeout_s": 0.5},
    )  # fmt: skip
    quiet = fake_plane(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(quiet, manage_lifecycle=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://ipaas.test") as c:
            user = await new_owner(c, quiet, running=False)
            [added] = (await user.add(domain())).json()
            assert not added["verified"] and added["found"]["error"]
    finally:
        await quiet.lifecycle.close()
