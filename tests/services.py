"""Which real services the tests may use. In CI (IPAAS_TEST_REQUIRE=docker,postgres,...) a
missing service fails the test instead of skipping it, so a green run means it really ran."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

REQUIRED = {s.strip() for s in os.environ.get("IPAAS_TEST_REQUIRE", "").split(",") if s.strip()}


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _docker_up() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode == 0


_CHECKS = {
    "docker": _docker_up,
    "postgres": lambda: _port_open(5432),
    "rabbitmq": lambda: _port_open(5672),
    # Let's Encrypt's test CA and its DNS server (Debian: apt-get install pebble).
    "pebble": lambda: all(shutil.which(b) for b in ("pebble", "pebble-challtestsrv")),
}
_seen: dict[str, bool] = {}


def need(service: str) -> None:
    """Skip (locally) or fail (when required) unless the service answers."""
    if service not in _seen:
        _seen[service] = _CHECKS[service]()
    if _seen[service]:
        return
    message = f"{service} is not available"
    if service in REQUIRED:
        pytest.fail(message + " and IPAAS_TEST_REQUIRE names it", pytrace=False)
    pytest.skip(message)
