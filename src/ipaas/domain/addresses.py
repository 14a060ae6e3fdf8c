"""Which hosts a user's repository URL may reach: the pure decision, given resolved addresses."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# A label made of digits, or a 0x number: inet_aton (used by curl, git and ssh through
# getaddrinfo) reads "2130706433", "0x7f.1" and "0177.0.0.1" as 127.0.0.1.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


@dataclass(frozen=True)
class AddressPolicy:
    """The operator's exceptions: host names, and networks whose addresses may be reached."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_lists(cls, hosts: Iterable[str], networks: Iterable[str]) -> AddressPolicy:
        return cls(
            allowed_hosts=frozenset(h.lower().rstrip(".") for h in hosts),
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in networks),
        )

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allowed_hosts

    def address_allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed_networks)


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as a canonical IP literal stands for, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def numeric_form_refusal(host: str) -> str | None:
    """Why a host that only looks like a name is refused: an IPv4 address in another spelling.

    Such spellings are how address filters are usually bypassed, and no real host needs one.
    """
    if literal_address(host) is not None:
        return None
    last = host.lower().rstrip(".").rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.match(last):
        return f"{host!r} is an IP address in an unusual notation; write it as a.b.c.d"
    return None


def address_kind(address: IPAddress) -> str | None:
    """The kind of a non-public address ("loopback", "private", ...), or None if public."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return address_kind(embedded)
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "shared (CGNAT)"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "non-public"),
    )
    return next((kind for hit, kind in checks if hit), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), 6to4 or NAT64 IPv6 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def host_refusal(host: str, addresses: Iterable[str], policy: AddressPolicy) -> str | None:
    """Why a repository on `host`, which resolves to `addresses`, may not be fetched; None if
    it may. Every address must pass: a name with one public and one internal address would
    let the connection go to either."""
    if policy.host_allowed(host):
        return None
    numeric = numeric_form_refusal(host)
    if numeric:
        return numeric
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if policy.address_allowed(address):
            continue
        kind = address_kind(address)
        if kind is not None:
            return f"{host} resolves to {address}, a {kind} address"
    return None
