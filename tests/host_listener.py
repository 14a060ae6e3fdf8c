"""A TCP service of the test process on every host address: what a container must not reach."""

from __future__ import annotations

import socket
import subprocess
import threading

import docker

SECRET = b"HOST-SERVICE-ANSWERED"


class HostListener:
    """Listens on 0.0.0.0:<free port>, like the API or PostgreSQL would; answers SECRET to
    anyone who connects and records the peers."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("0.0.0.0", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="host-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except OSError:
                continue
            with conn:
                self.peers.append(peer[0])
                conn.sendall(SECRET + b"\n")

    def check(self) -> None:
        """The control: the service really answers, so a silent container means blocked."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            assert sock.recv(100).startswith(SECRET)
        self.peers.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def gateway(client: docker.DockerClient, network: str) -> str:
    """The host's own address on a Docker network (its bridge's gateway)."""
    attrs = client.networks.get(network).attrs
    config = attrs["IPAM"]["Config"]
    if config and config[0].get("Gateway"):
        return str(config[0]["Gateway"])
    # The default bridge may list no gateway: its interface's address is the one.
    interface = attrs["Options"]["com.docker.network.bridge.name"]
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", interface], capture_output=True, text=True, check=True
    ).stdout
    return out.split(" inet ", 1)[1].split("/", 1)[0]
