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

    def name_of(self, host_header: str) -> str | None:
        """The app name a request's Host header names, or None when it is no app's host."""
        host = host_header.strip().lower()
        if host.startswith("["):
            return None
        host = host.rsplit(":", 1)[0] if ":" in host else host
        suffix = f".{self.base_domain.lower()}"
        if not host.endswith(suffix):
            return None
        name = host[: -len(suffix)]
        return name if name and "." not in name else None
