"""The DNS seam: one lookup of what a custom domain's DNS says."""

from __future__ import annotations

from typing import Protocol

from ipaas.domain.domains import Lookup


class DnsLookup(Protocol):
    async def lookup(self, name: str) -> Lookup:
        """The name's addresses (A and AAAA, CNAMEs followed) and the TXT records of its
        challenge name. Never raises: a resolver that fails says so in `Lookup.error`."""
        ...
