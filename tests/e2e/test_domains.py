"""Custom domains end to end: a real app container behind Caddy, certificates from a real ACME
CA (Pebble, validating HTTP-01 / TLS-ALPN-01 at the router's ports), names answered by a DNS
server the test runs (pebble-challtestsrv), which the platform's ownership check asks too."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ipaas.config import Settings
from tests.acme import TEST_ZONE, ChallengeDns, Pebble
from tests.e2e.apps import DOCKERFILE, SERVER
from tests.e2e.conftest import E2E, e2e_settings, running_platform
from tests.support import free_port

pytestmark = pytest.mark.slow


@dataclass
class Acme:
    dns: ChallengeDns
    pebble: Pebble
    http_port: int
    https_port: int
    trust: ssl.SSLContext  # the test client's: Pebble's root only


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acme]:
    folder = tmp_path_factory.mktemp("acme")
    http_port, https_port = free_port(), free_port()
    dns = ChallengeDns(folder)
    pebble = Pebble(folder, dns, http_port, https_port)
    try:
        trust = ssl.create_default_context(cadata=pebble.root_pem())
        yield Acme(dns, pebble, http_port, https_port, trust)
    finally:
        pebble.close()
        dns.close()


@pytest.fixture(scope="module")
def platform(
    module_database_url: str,
    base_images: Settings,
    acme: Acme,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[E2E]:
    router = {
        "http_port": acme.http_port,
        "https_port": acme.https_port,
        "tls": True,
        "acme_directory": acme.pebble.directory,
        "acme_ca_root": str(acme.pebble.listener.cert),
        "acme_email": f"ops@{TEST_ZONE}",
    }
    domains = {
        "nameserver": "127.0.0.1",
        "nameserver_port": acme.dns.port,
        "public_addresses": ["127.0.0.1"],
        "watch_interval_s": 0.3,
    }
    data = tmp_path_factory.mktemp("platform")
    settings = e2e_settings(data, module_database_url, router=router, domains=domains)
    with running_platform(settings, tmp_path_factory) as running:
        yield running


def https_get(acme: Acme, host: str, path: str = "/", timeout: float = 10) -> httpx.Response:
    """Over TLS to the router on loopback, the name given as SNI and Host, as a browser would
    once DNS points the name here; the certificate must chain to Pebble's root."""
    with httpx.Client(verify=acme.trust, timeout=timeout) as client:
        return client.get(
            f"https://127.0.0.1:{acme.https_port}{path}",
            headers={"Host": host},
            extensions={"sni_hostname": host},
        )


def refused_tls(acme: Acme, host: str) -> bool:
    """No certificate is served for the name: the handshake fails."""
    try:
        https_get(acme, host, timeout=5)
    except httpx.TransportError:
        return True
    return False


def obtained(platform: E2E, host: str) -> bool:
    """Did Caddy's ACME client start on the name (it logs each attempt)?"""
    log = (Path(platform.settings.data_dir) / "caddy.log").read_text()
    return f'"identifier":"{host}"' in log


def domains_of(platform: E2E, app_id: str) -> dict[str, Any]:
    return {d["domain"]: d for d in platform.get(app_id, "/domains")}


def wait_for(probe: Any, what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while (found := probe()) is None or found is False:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return found


def test_a_verified_domain_gets_a_certificate_from_the_ca_and_loses_it_when_removed(
    platform: E2E, acme: Acme
) -> None:
    app_id = platform.create(platform.repo(files={"Dockerfile": DOCKERFILE, "server.py": SERVER}))
    assert platform.wait(app_id)["state"] == "running"
    api = f"{platform.api}/{app_id}/domains"
    name = f"shop-{uuid.uuid4().hex[:8]}.{TEST_ZONE}"

    # Claimed, but DNS does not point here yet: not served, no certificate asked for.
    r = httpx.post(api, json={"domain": name, "redirect_www": True}, headers=platform.headers)
    assert r.status_code == 201, r.text
    assert {d["domain"]: d["verified"] for d in r.json()} == {name: False, f"www.{name}": False}
    assert refused_tls(acme, name)
    assert httpx.get(f"{platform.live.base}/.ipaas/ask", params={"domain": name}).status_code == 403
    assert not obtained(platform, name)

    acme.dns.add_a(name, "127.0.0.1")
    acme.dns.add_a(f"www.{name}", "127.0.0.1")
    for host in (name, f"www.{name}"):
        r = httpx.post(f"{api}/{host}/verify", headers=platform.headers)
        assert r.json()["verified_by"] == "address", r.text

    # The first HTTPS request makes Caddy obtain the certificate from Pebble.
    answer = https_get(acme, name, "/hello", timeout=30)
    assert obtained(platform, name)
    assert (answer.status_code, answer.text) == (200, "ok\n")
    shown = domains_of(platform, app_id)[name]["certificate"]
    assert shown["state"] == "issued" and shown["issuer"].startswith("Pebble")
    assert shown["not_after"] > "2026"
    redirected = https_get(acme, f"www.{name}", "/a?b=1", timeout=30)
    assert redirected.status_code == 308
    assert redirected.headers["location"] == f"https://{name}:{acme.https_port}/a?b=1"

    # Removed: the route goes and so does the certificate (no handshake for the name,
    # nothing left in Caddy's storage).
    assert httpx.delete(f"{api}/{name}", headers=platform.headers).status_code == 204
    assert domains_of(platform, app_id) == {}
    assert refused_tls(acme, name) and refused_tls(acme, f"www.{name}")
    storage = Path(platform.settings.data_dir) / "certificates" / "certificates"
    assert not list(storage.glob(f"*/{name}")) and not list(storage.glob(f"*/www.{name}"))


def test_unverified_and_unknown_names_get_no_certificate_and_a_failed_issuance_is_an_event(
    platform: E2E, acme: Acme
) -> None:
    app_id = platform.create(platform.repo(files={"Dockerfile": DOCKERFILE, "server.py": SERVER}))
    assert platform.wait(app_id)["state"] == "running"
    api = f"{platform.api}/{app_id}/domains"
    unknown = f"nobody-{uuid.uuid4().hex[:8]}.{TEST_ZONE}"
    acme.dns.add_a(unknown, "127.0.0.1")  # points here, but no app claimed it
    assert refused_tls(acme, unknown)
    assert not obtained(platform, unknown)  # the CA was never asked

    # Verified by its TXT record, but its address is not the router's: the CA cannot reach
    # the challenge, and the app hears why.
    name = f"broken-{uuid.uuid4().hex[:8]}.{TEST_ZONE}"
    [added] = httpx.post(api, json={"domain": name}, headers=platform.headers).json()
    acme.dns.set_txt(f"_ipaas-challenge.{name}", added["missing"][-1]["value"])
    acme.dns.add_a(name, "127.0.0.2")
    assert httpx.post(f"{api}/{name}/verify", headers=platform.headers).json()["verified"]
    assert refused_tls(acme, name)

    def failure() -> str | None:
        return next(
            (e for e in platform.reasons(app_id) if e.startswith(f"certificate for {name} failed")),
            None,
        )

    event = wait_for(failure, "the failed issuance's event")
    assert "urn:ietf:params:acme:error" in event and "127.0.0.2" in event
    shown = domains_of(platform, app_id)[name]["certificate"]
    assert shown["state"] == "failed" and "acme:error" in shown["error"]
