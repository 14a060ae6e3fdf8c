"""A real multi-node Docker Swarm on one machine, for the tests (ENVIRONMENT.md, "Swarm"):
a bridge with an address on the host, one network namespace per node joined to it by a veth
pair, and in each namespace a dockerd of its own (data root, exec root, socket, pid file under
one temporary directory). Everything it makes is removed by `destroy`, also after a half-made
`create`.

Nothing here touches the machine's own dockerd: its sockets, data and iptables rules stay as they
are, but for one FORWARD rule for this bridge (added, then removed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

# A bridge name of our own (not `ipaas*`: the platform's firewall matches those) and addresses
# nothing else on the machine uses (checked in `create`).
BRIDGE = "ipsw0"
SUBNET_PREFIX = "10.99.0"
SWARM_POOL = "10.98.0.0/16"  # overlay networks: away from the bridge and the main engine's pool


def _run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


@dataclass
class Node:
    name: str  # also the network namespace's name
    address: str
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "d.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def exec_root(self) -> Path:
        return self.root / "x"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=30)


@dataclass
class LocalSwarm:
    size: int
    insecure_registries: tuple[str, ...] = ()
    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000}")
    nodes: list[Node] = field(default_factory=list)
    workdir: Path | None = None
    _rule: tuple[str, ...] = ("FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")
    _bridge_made: bool = False
    _rule_added: bool = False

    @property
    def gateway(self) -> str:
        """The host's address on the bridge: what the nodes reach the host's services at."""
        return f"{SUBNET_PREFIX}.1"

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    # -- building ----------------------------------------------------------------------------

    def create(self) -> LocalSwarm:
        try:
            self._make_bridge()
            # Short paths: a unix socket path may not exceed 107 bytes.
            self.workdir = Path(tempfile.mkdtemp(prefix="ipsw-", dir="/tmp"))
            for index in range(self.size):
                self.nodes.append(self._make_node(index))
            for node in self.nodes:
                self._start_dockerd(node)
            self._form_swarm()
        except BaseException:
            self.destroy()
            raise
        return self

    def _make_bridge(self) -> None:
        if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            raise RuntimeError(f"{BRIDGE} exists already: another swarm test runs, or leaked")
        used = _run("ip", "-4", "-o", "addr").stdout
        if f" {SUBNET_PREFIX}." in used:
            raise RuntimeError(f"{SUBNET_PREFIX}.0/24 is in use on this machine")
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        self._bridge_made = True
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # Docker's FORWARD policy drops bridged traffic between the veths otherwise.
        _run("iptables", "-I", *self._rule)
        self._rule_added = True

    def _make_node(self, index: int) -> Node:
        assert self.workdir is not None
        name = f"ipsw{self.tag}n{index + 1}"
        node = Node(name, f"{SUBNET_PREFIX}.{index + 2}", self.workdir / f"n{index + 1}")
        node.root.mkdir()
        _run("ip", "netns", "add", name)
        host_end = self._veth(index)
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", name)
        _run("ip", "link", "set", host_end, "master", BRIDGE, "up")
        inside = ("ip", "netns", "exec", name)
        _run(*inside, "ip", "addr", "add", f"{node.address}/24", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "route", "add", "default", "via", self.gateway)
        return node

    def _start_dockerd(self, node: Node) -> None:
        args = [
            "nsenter", f"--net=/var/run/netns/{node.name}",
            "dockerd",
            "--data-root", str(node.root / "data"),
            "--exec-root", str(node.exec_root),
            "-H", node.url,
            "--pidfile", str(node.root / "d.pid"),
            "--storage-driver", "overlay2",
        ]  # fmt: skip
        for registry in self.insecure_registries:
            args += ["--insecure-registry", registry]
        log = (node.root / "dockerd.log").open("wb")
        node.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.wait_engine(node)

    def wait_engine(self, node: Node, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"dockerd of {node.name} exited: {self.engine_log(node)}")
            if _run("docker", "-H", node.url, "info", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd of {node.name} did not answer: {self.engine_log(node)}")

    def engine_log(self, node: Node) -> str:
        path = node.root / "dockerd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _form_swarm(self) -> None:
        manager = self.manager.client()
        manager.swarm.init(
            advertise_addr=self.manager.address,
            listen_addr=f"{self.manager.address}:2377",
            default_addr_pool=[SWARM_POOL],
            subnet_size=24,
        )
        tokens = manager.swarm.attrs["JoinTokens"]
        for node in self.nodes[1:]:
            with contextlib.closing(node.client()) as client:
                client.swarm.join(
                    remote_addrs=[f"{self.manager.address}:2377"],
                    join_token=tokens["Worker"],
                    advertise_addr=node.address,
                    listen_addr=f"{node.address}:2377",
                )
        manager.close()

    # -- faults ----------------------------------------------------------------------------------

    def kill_engine(self, node: Node) -> None:
        """The node dies: its dockerd is killed (its containers with it)."""
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait(10)
        self._kill_leftovers(node)

    def power_off(self, node: Node) -> None:
        """The whole machine stops: its engine and everything it ran are killed, and its
        network link goes down, so packets to it are lost (no refusal, as with a machine that
        is off) until `power_on`."""
        _run("ip", "link", "set", self._host_end(node), "down")
        self.kill_engine(node)

    def power_on(self, node: Node, timeout_s: float = 60.0) -> None:
        """The machine is back: link up, its dockerd started on the same data (it rejoins the
        Swarm by itself); returns once the manager sees it ready."""
        _run("ip", "link", "set", self._host_end(node), "up")
        self._start_dockerd(node)
        deadline = time.monotonic() + timeout_s
        with contextlib.closing(self.manager.client()) as manager:
            while time.monotonic() < deadline:
                states = {
                    (n.get("Status") or {}).get("Addr"): (n.get("Status") or {}).get("State")
                    for n in manager.api.nodes()
                }
                if states.get(node.address) == "ready":
                    return
                time.sleep(0.5)
        raise RuntimeError(f"{node.name} did not rejoin the Swarm: {self.engine_log(node)}")

    def _host_end(self, node: Node) -> str:
        return self._veth(self.nodes.index(node))

    def _veth(self, index: int) -> str:
        """The host's end of the veth pair of node `index`."""
        return f"ipswv{self.tag}{index + 1}"[:15]

    # -- tearing down ------------------------------------------------------------------------------

    def _kill_leftovers(self, node: Node) -> None:
        """containerd, shims and app processes a killed dockerd left in the namespace."""
        pids = _run("ip", "netns", "pids", node.name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)

    def _unmount_under(self, root: Path) -> None:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(root))), reverse=True):
            _run("umount", "-l", mount, check=False)

    def destroy(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                # A node's engine that died on its own: its last words, for the run's log.
                print(f"dockerd of {node.name} had exited: {self.engine_log(node)}")
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(15)
                except subprocess.TimeoutExpired:
                    node.process.kill()
            self._kill_leftovers(node)
        if self.workdir is not None:
            self._unmount_under(self.workdir)
        for node in self.nodes:
            _run("ip", "netns", "delete", node.name, check=False)
        self.nodes.clear()
        if self._rule_added:
            _run("iptables", "-D", *self._rule, check=False)
            self._rule_added = False
        if self._bridge_made:
            _run("ip", "link", "delete", BRIDGE, check=False)
            self._bridge_made = False
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
