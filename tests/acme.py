"""Let's Encrypt's test servers from the Debian archive (`apt-get install pebble`), on loopback:

- `pebble-challtestsrv`, a DNS server whose answers tests set over HTTP (A and TXT records);
  the platform's resolver (`domains.nameserver`) and Pebble ask it;
- `pebble`, an ACME CA that validates challenges for real (HTTP-01 on the router's HTTP port,
  TLS-ALPN-01 on its HTTPS port) and issues certificates under a root made at each start.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests import services
from tests.support import free_port, stop_process, wait_port

# Names of a TLD that is not reserved (the platform refuses those), answered only here.
TEST_ZONE = "ipaas-e2e.net"


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )


class ChallengeDns:
    """pebble-challtestsrv as a DNS server: no name resolves until a test says so."""

    def __init__(self, folder: Path) -> None:
        services.need("pebble")
        self.port = free_port()
        self.management = f"http://127.0.0.1:{free_port()}"
        cmd = [
            "pebble-challtestsrv", "-defaultIPv4", "", "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{self.port}", "-management", self.management[7:],
            "-http01", "", "-https01", "", "-tlsalpn01", "",
        ]  # fmt: skip
        self.proc = _start(cmd, folder / "challtestsrv.log")
        wait_port(int(self.management.rsplit(":", 1)[1]))

    def _post(self, path: str, body: dict[str, object]) -> None:
        httpx.post(f"{self.management}/{path}", json=body, timeout=5).raise_for_status()

    def add_a(self, host: str, *addresses: str) -> None:
        self._post("add-a", {"host": host, "addresses": list(addresses)})

    def clear_a(self, host: str) -> None:
        self._post("clear-a", {"host": host})

    def set_txt(self, name: str, value: str) -> None:
        self._post("set-txt", {"host": f"{name}.", "value": value})

    def close(self) -> None:
        stop_process(self.proc)


@dataclass(frozen=True)
class TestCa:
    cert: Path
    key: Path


def make_listener_cert(folder: Path) -> TestCa:
    """A self-signed certificate for Pebble's own HTTPS (its ACME and management listeners);
    the platform trusts it through `router.acme_ca_root`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble listener")])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = TestCa(folder / "pebble-listener.pem", folder / "pebble-listener.key")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class Pebble:
    """An ACME CA on loopback validating challenges at the router's ports, its DNS `dns`."""

    def __init__(self, folder: Path, dns: ChallengeDns, http_port: int, tls_port: int) -> None:
        services.need("pebble")
        self.listener = make_listener_cert(folder)
        port, management = free_port(), free_port()
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{port}",
                "managementListenAddress": f"127.0.0.1:{management}",
                "certificate": str(self.listener.cert),
                "privateKey": str(self.listener.key),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        config_file = folder / "pebble.json"
        config_file.write_text(json.dumps(config))
        # No random waits before validating, and no nonces refused for the sake of testing.
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        cmd = [
            "pebble", "-config", str(config_file), "-dnsserver", f"127.0.0.1:{dns.port}",
            "-strict=false",
        ]  # fmt: skip
        self.proc = _start(cmd, folder / "pebble.log", env)
        self.directory = f"https://127.0.0.1:{port}/dir"
        self.management = f"https://127.0.0.1:{management}"
        wait_port(port)
        wait_port(management)

    def root_pem(self) -> str:
        """The root it issues under (made at its start), from its management interface."""
        deadline = time.monotonic() + 10
        while True:
            trust = ssl.create_default_context(cafile=str(self.listener.cert))
            r = httpx.get(f"{self.management}/roots/0", verify=trust)
            if r.status_code == 200 or time.monotonic() > deadline:
                r.raise_for_status()
                return r.text
            time.sleep(0.1)

    def close(self) -> None:
        stop_process(self.proc)
