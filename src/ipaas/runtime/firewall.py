"""Host firewall: app and build containers may not open connections to the host itself.

Why: a container on a bridge network reaches every address of the host (its bridge's gateway,
docker0's gateway, the host's LAN address) and so every service that listens on 0.0.0.0 there:
the ipaas API, Caddy's admin API, PostgreSQL, RabbitMQ, docker-proxy's published ports. An app
(or a build step) is untrusted code; none of those are its business.

How: every bridge the platform creates is named with one interface prefix (`ipaas`, see
`bridge_name`), so one wildcard (`-i ipaas+`) covers app networks and the build network alike.
- INPUT (packets addressed to the host): from `ipaas+`, replies of connections the host opened
  (ESTABLISHED, RELATED: Caddy and health checks reaching the containers) go on; anything new
  is rejected, so a stray connect fails at once ("connection refused") instead of hanging.
- DOCKER-USER (forwarded packets, consulted by Docker before its own rules): a NEW connection
  from `ipaas+` that was DNAT-ed is one to a port the engine published on a host address; it
  is rejected too. Everything else forwarded (other containers of the same owner network, the
  outside world through NAT) is left to Docker's own rules and the host's policy.
The engine's embedded DNS (127.0.0.11) lives inside each container's namespace, and it forwards
queries from there: name resolution never touches the host's INPUT chain.

The rules live in two chains of our own, reached by one jump each; every rule carries the
comment `ipaas` so it can be found and removed. `apply` is idempotent: run at every start, it
leaves exactly one set of rules.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

INTERFACE_PREFIX = "ipaas"  # every bridge the platform creates; Linux allows 15 characters
COMMENT = "ipaas"
INPUT_CHAIN = "IPAAS-INPUT"
FORWARD_CHAIN = "IPAAS-FORWARD"
DOCKER_USER = "DOCKER-USER"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
_IFNAMSIZ = 15
_TAG = ("-m", "comment", "--comment", COMMENT)
_REJECT_TCP = ("-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
_REJECT = ("-j", "REJECT", "--reject-with", "icmp-port-unreachable")
_LOCK_FILE = Path(tempfile.gettempdir()) / "ipaas-firewall.lock"
_thread_lock = threading.Lock()


class FirewallError(Exception):
    """The rules could not be applied: the platform must not run containers without them."""


def bridge_name(network: str) -> str:
    """The host interface of a platform network: the prefix and a hash of the network's name
    (network names are longer than the 15 characters an interface name may have)."""
    digest = hashlib.sha256(network.encode()).hexdigest()
    return (INTERFACE_PREFIX + digest)[:_IFNAMSIZ]


def chain_rules() -> dict[str, list[tuple[str, ...]]]:
    """The content of our own chains, in order."""
    established = ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN")
    # Two conntrack matches are ANDed: the first packet of a connection whose destination
    # was rewritten, i.e. one sent to a port published on a host address.
    published = ("-m", "conntrack", "--ctstate", "NEW", "-m", "conntrack", "--ctstate", "DNAT")
    return {
        INPUT_CHAIN: [established + _TAG, _REJECT_TCP + _TAG, _REJECT + _TAG],
        FORWARD_CHAIN: [published + _REJECT_TCP + _TAG, published + _REJECT + _TAG],
    }


def jump_rules(prefix: str = INTERFACE_PREFIX) -> dict[str, tuple[str, ...]]:
    """Built-in (or Docker's) chain -> the one rule that sends our bridges' traffic to ours."""
    wildcard = ("-i", prefix + "+")
    return {
        "INPUT": wildcard + _TAG + ("-j", INPUT_CHAIN),
        DOCKER_USER: wildcard + _TAG + ("-j", FORWARD_CHAIN),
    }


class HostFirewall:
    """Applies and removes the rules with the iptables command (the process runs as root)."""

    def __init__(self, iptables: str = "iptables", prefix: str = INTERFACE_PREFIX) -> None:
        self.iptables = iptables
        self.prefix = prefix

    def apply(self) -> None:
        """Install the rules, or repair them; never leaves duplicates. Raises FirewallError."""
        self._check_binary()
        with _exclusive():
            self._apply()

    def _apply(self) -> None:
        for chain, rules in chain_rules().items():
            self._ensure_chain(chain)
            if not self._chain_is(chain, rules):
                self._ipt("-F", chain)
                for rule in rules:
                    self._ipt("-A", chain, *rule)
        self._ensure_chain(DOCKER_USER)  # Docker makes it at start; an early apply may not see it
        for chain, jump in jump_rules(self.prefix).items():
            found = False
            for tagged in self._tagged(chain):
                if tuple(tagged) == jump and not found:
                    found = True
                    continue
                self._ipt("-D", chain, *tagged)  # an older rule of ours, or a duplicate
            if not found:
                # First: a host rule further up (say, accept all from bridges) must not win.
                self._ipt("-I", chain, "1", *jump)

    def remove(self) -> None:
        """Remove every rule tagged `ipaas` and our chains."""
        self._check_binary()
        with _exclusive():
            self._remove()

    def _remove(self) -> None:
        for chain in ("INPUT", DOCKER_USER):
            if self._exists(chain):
                for rule in self._tagged(chain):
                    self._ipt("-D", chain, *rule)
        for chain in chain_rules():
            if self._exists(chain):
                self._ipt("-F", chain)
                self._ipt("-X", chain)

    def installed(self) -> bool:
        """Whether both jumps and both chains are in place."""
        if shutil.which(self.iptables) is None:
            return False
        chains = all(self._exists(chain) for chain in chain_rules())
        return chains and all(
            self._has(chain, jump) for chain, jump in jump_rules(self.prefix).items()
        )

    def tagged_rules(self) -> list[str]:
        """Every rule carrying our comment, in the `iptables -S` spelling (for checks)."""
        listing = self._ipt("-S").stdout
        return [line for line in listing.splitlines() if _is_tagged(line.split())]

    # -- plumbing ----------------------------------------------------------------------------

    def _check_binary(self) -> None:
        if shutil.which(self.iptables) is None:
            raise FirewallError(
                f"{self.iptables} is not installed: install it (Debian: apt-get install "
                "iptables; scripts/ensure-docker.sh does) or set runtime.firewall to false "
                "to run app and build containers that can reach the host"
            )

    def _ipt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # -w: wait for the xtables lock, which dockerd takes while it edits its own rules.
        command = [self.iptables, "-w", "5", *args]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirewallError(f"{' '.join(command)}: {exc}") from exc
        if check and result.returncode != 0:
            raise FirewallError(
                f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}"
                " (the runtime must run as root; runtime.firewall: false turns this off)"
            )
        return result

    def _exists(self, chain: str) -> bool:
        return self._ipt("-S", chain, check=False).returncode == 0

    def _ensure_chain(self, chain: str) -> None:
        if not self._exists(chain):
            self._ipt("-N", chain)

    def _has(self, chain: str, rule: Sequence[str]) -> bool:
        return self._ipt("-C", chain, *rule, check=False).returncode == 0

    def _chain_is(self, chain: str, rules: list[tuple[str, ...]]) -> bool:
        present = self._ipt("-S", chain).stdout.splitlines()[1:]  # the first line is "-N chain"
        return len(present) == len(rules) and all(self._has(chain, rule) for rule in rules)

    def _tagged(self, chain: str) -> list[list[str]]:
        """Our rules in a built-in chain, as argument lists for -D."""
        rules = []
        for line in self._ipt("-S", chain).stdout.splitlines():
            words = line.split()
            if words[:2] == ["-A", chain] and _is_tagged(words):
                rules.append(words[2:])
        return rules


def _is_tagged(words: list[str]) -> bool:
    """Whether a rule (in `iptables -S` words) carries exactly our comment."""
    return any(a == "--comment" and b == COMMENT for a, b in zip(words, words[1:], strict=False))


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One apply or remove at a time on this machine: the API process and a builder process
    (or two build threads) starting together would otherwise both insert a jump."""
    with _thread_lock, open(_LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
