"""Where an app answers: the one home for its host name and default URL."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostNames:
    base_domain: str

    def host(self, app_name: str) -> str:
        """`<name>.<base_domain>`: the app's DNS name."""
        return f"{app_name}.{self.base_domain}"

    def default_url(self, app_name: str) -> str:
        return f"http://{self.host(app_name)}/"
