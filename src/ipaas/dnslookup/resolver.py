"""DNS lookups with dnspython, at the configured name server (or the system's)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ipaas.config import DomainSettings
from ipaas.domain.domains import Lookup, challenge_name

if TYPE_CHECKING:
    from dns.asyncresolver import Resolver


class DnsResolver:
    """Asks one name server (`domains.nameserver`), else those of /etc/resolv.conf."""

    def __init__(self, settings: DomainSettings) -> None:
        self.settings = settings
        self._resolver: Resolver | None = None

    def _get(self) -> Resolver:
        if self._resolver is None:
            import dns.asyncresolver  # only when a domain is checked: the API starts lighter

            configured = self.settings.nameserver is not None
            resolver = dns.asyncresolver.Resolver(configure=not configured)
            if configured:
                resolver.nameservers = [str(self.settings.nameserver)]
                resolver.port = self.settings.nameserver_port
            resolver.lifetime = self.settings.lookup_timeout_s
            resolver.cache = None  # a record the owner just set must show at the next check
            self._resolver = resolver
        return self._resolver

    async def lookup(self, name: str) -> Lookup:
        answers = await asyncio.gather(
            self._records(name, "A"),
            self._records(name, "AAAA"),
            self._records(challenge_name(name), "TXT"),
        )
        errors = [error for _, error in answers if error]
        addresses = answers[0][0] + answers[1][0]
        txt = tuple(_txt_text(value) for value in answers[2][0])
        return Lookup(addresses, txt, errors[0] if errors else None)

    async def _records(self, name: str, kind: str) -> tuple[tuple[str, ...], str | None]:
        """The record values, and an error only when the resolver failed (no such name or no
        such record is an answer, not an error)."""
        import dns.exception
        import dns.resolver

        try:
            answer = await self._get().resolve(name, kind, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return (), None
        except dns.exception.Timeout:
            return (), f"no answer for {name} {kind} within {self.settings.lookup_timeout_s} s"
        except dns.exception.DNSException as exc:
            return (), f"{name} {kind}: {exc}"
        return tuple(rdata.to_text() for rdata in answer), None


def _txt_text(value: str) -> str:
    """A TXT record's strings, unquoted and joined (long values come in 255-byte pieces)."""
    parts = value.split('" "')
    return "".join(part.strip('"') for part in parts)
