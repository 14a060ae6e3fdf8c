"""Custom domains of apps: which names a user may put on an app, what proves they own one,
and what state its certificate is in. Pure: the lookups and the certificate files are read
elsewhere and handed in."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# The TXT record that proves ownership: `_ipaas-challenge.<domain>` holding the domain's token.
CHALLENGE_LABEL = "_ipaas-challenge"
MAX_DOMAIN_LENGTH = 253
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMBER = r"(?:0x[0-9a-f]+|[0-9]+)"
_NUMERIC_HOST = re.compile(rf"{_NUMBER}(?:\.{_NUMBER})+")

# Names no user may claim (operators replace the list with `domains.reserved`): special-use
# names (RFC 6761, 6762, 7686, 8375, 2606), and the suffixes of private networks.
DEFAULT_RESERVED_DOMAINS: tuple[str, ...] = (
    "localhost", "local", "test", "example", "invalid", "internal", "intranet", "lan", "home",
    "corp", "private", "onion", "arpa", "alt", "home.arpa",
    "example.com", "example.net", "example.org",
)  # fmt: skip


class DomainProblem(StrEnum):
    """Why a name cannot be an app's domain; each is an API error `code`."""

    INVALID = "domain_invalid"
    IP_LITERAL = "domain_ip_literal"
    PLATFORM = "domain_platform"
    RESERVED = "domain_reserved"


@dataclass(frozen=True)
class Refusal:
    code: DomainProblem
    why: str


def normalize(name: str) -> str:
    """Lower case, no trailing dot; a name in Unicode becomes its ASCII (IDNA) form."""
    name = name.strip().rstrip(".").lower()
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name  # refused as malformed by domain_problem


def _is_ip_literal(name: str) -> bool:
    candidate = name.strip("[]")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        # Dotted numbers in other notations (`127.1`, `0x7f.1`) are addresses to some
        # resolvers: refused as what they are.
        return bool(_NUMERIC_HOST.fullmatch(candidate))
    return True


def _malformed(name: str) -> str | None:
    if not name or len(name) > MAX_DOMAIN_LENGTH:
        return f"a domain has 1 to {MAX_DOMAIN_LENGTH} characters"
    labels = name.split(".")
    if len(labels) < 2:
        return "a domain has at least two labels (example: shop.example.com)"
    if not all(_LABEL.match(label) for label in labels):
        return "each label: letters, digits and '-', 1 to 63 characters, no '-' at either end"
    if labels[-1].isdigit():
        return "the last label is not a number"
    return None


def is_within(name: str, suffix: str) -> bool:
    """True when `name` is `suffix` or one of its subdomains."""
    suffix = suffix.strip(".").lower()
    return name == suffix or name.endswith("." + suffix)


def domain_problem(name: str, base_domain: str, reserved: Iterable[str]) -> Refusal | None:
    """None when `name` (normalized) may be an app's domain; else the code and the reason."""
    if _is_ip_literal(name):
        return Refusal(DomainProblem.IP_LITERAL, "an IP address is not a domain")
    why = _malformed(name)
    if why is not None:
        return Refusal(DomainProblem.INVALID, why)
    if is_within(name, base_domain):
        return Refusal(
            DomainProblem.PLATFORM, f"{base_domain} and its subdomains belong to the platform"
        )
    for suffix in reserved:
        if is_within(name, suffix):
            return Refusal(DomainProblem.RESERVED, f"names under {suffix} cannot be claimed")
    return None


def counterpart(name: str) -> str | None:
    """The www ↔ apex partner a domain can redirect: `www.shop.com` ↔ `shop.com`. None when
    the partner would be a bare top-level name (`www.com` has no apex to redirect)."""
    if name.startswith("www."):
        rest = name[4:]
        return rest if "." in rest else None
    return f"www.{name}"


def challenge_name(name: str) -> str:
    return f"{CHALLENGE_LABEL}.{name}"


class VerifiedBy(StrEnum):
    ADDRESS = "address"  # the name resolves to the platform's public address
    TXT = "txt"  # the challenge record holds the domain's token


@dataclass(frozen=True)
class Lookup:
    """What DNS said about a domain. `error` is set when the resolver could not answer."""

    addresses: tuple[str, ...] = ()
    txt: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Record:
    """A DNS record the owner can set to verify the domain (either one is enough)."""

    type: str
    name: str
    value: str


def verified_by(lookup: Lookup, public_addresses: Sequence[str], token: str) -> VerifiedBy | None:
    """How the lookup proves ownership, or None. An address counts only when every address
    the name has is the platform's: a name split between us and someone else is not ours."""
    ours = {_canonical(a) for a in public_addresses}
    found = {_canonical(a) for a in lookup.addresses}
    if found and ours and found <= ours:
        return VerifiedBy.ADDRESS
    if token in (value.strip() for value in lookup.txt):
        return VerifiedBy.TXT
    return None


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def records_to_set(name: str, public_addresses: Sequence[str], token: str) -> list[Record]:
    """What the owner may add to verify: an A/AAAA record per public address, or the TXT."""
    records = []
    for address in public_addresses:
        kind = "AAAA" if ":" in address else "A"
        records.append(Record(kind, name, address))
    records.append(Record("TXT", challenge_name(name), token))
    return records


class CertState(StrEnum):
    """A domain's certificate as users see it."""

    UNVERIFIED = "unverified"  # not served, so no certificate is asked for
    NO_TLS = "no_tls"  # the router serves plain HTTP (router.tls is off)
    PENDING = "pending"  # served; the first HTTPS request makes Caddy obtain one
    ISSUED = "issued"
    EXPIRED = "expired"
    FAILED = "failed"  # none yet, and the last issuance failed (`error` says why); Caddy retries


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate the router holds for a name."""

    issuer: str
    not_before: datetime
    not_after: datetime


def cert_state(
    *,
    verified: bool,
    tls: bool,
    certificate: CertificateInfo | None,
    failed: bool,
    now: datetime,
) -> CertState:
    if not verified:
        return CertState.UNVERIFIED
    if not tls:
        return CertState.NO_TLS
    if certificate is not None:  # a failed renewal leaves it in place: the error says so
        return CertState.ISSUED if certificate.not_after > now else CertState.EXPIRED
    return CertState.FAILED if failed else CertState.PENDING
