"""The door of private apps: is the sender of a request to an app's host its owner or an admin?

Caddy asks this for every request to a private app; the answer decides whether the request
reaches the app, is sent to sign in, or is refused.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ipaas.auth.tokens import AppPasses
from ipaas.domain.access import Gate, gate
from ipaas.domain.domains import normalize
from ipaas.domain.hosts import HostNames
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.domains import DomainStore
from ipaas.store.models import Application


@dataclass(frozen=True)
class Verdict:
    gate: Gate
    app: Application | None  # None: the host names no app


class AppGate:
    def __init__(
        self, apps: AppStore, passes: AppPasses, hosts: HostNames, domains: DomainStore
    ) -> None:
        self.apps = apps
        self.passes = passes
        self.hosts = hosts
        self.domains = domains

    async def app_at(self, host_header: str) -> Application | None:
        """The app at `<name>.<base_domain>`, or the one a verified custom domain serves."""
        name = self.hosts.name_of(host_header)
        if name:
            return await self.apps.by_name(name)
        app_id = await self.domains.app_at(normalize(host_header.rsplit(":", 1)[0]))
        if app_id is None:
            return None
        with contextlib.suppress(NotFound):
            return await self.apps.get(app_id)
        return None

    async def check(self, host_header: str, pass_token: str | None) -> Verdict:
        app = await self.app_at(host_header)
        if app is None:
            return Verdict(Gate.DENY, None)
        holder = self.passes.verify(pass_token, app.id) if pass_token else None
        viewer = (holder.user_id, holder.role) if holder else (None, None)
        return Verdict(gate(app.visibility, app.owner_id, *viewer), app)

    def grant(self, app: Application, user_id: str, role: str) -> str | None:
        """A pass to `app` for a user who just signed in, or None when they may not enter."""
        if gate(app.visibility, app.owner_id, user_id, role) != Gate.ALLOW:
            return None
        return self.passes.issue(user_id, role, app.id)
