"""The door of private apps: is the sender of a request to an app's host its owner or an admin?

Caddy asks this for every request to a private app; the answer decides whether the request
reaches the app, is sent to sign in, or is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipaas.auth.tokens import AppPasses
from ipaas.domain.access import Gate, gate
from ipaas.domain.hosts import HostNames
from ipaas.store.apps import AppStore
from ipaas.store.models import Application


@dataclass(frozen=True)
class Verdict:
    gate: Gate
    app: Application | None  # None: the host names no app


class AppGate:
    def __init__(self, apps: AppStore, passes: AppPasses, hosts: HostNames) -> None:
        self.apps = apps
        self.passes = passes
        self.hosts = hosts

    async def app_at(self, host_header: str) -> Application | None:
        name = self.hosts.name_of(host_header)
        return await self.apps.by_name(name) if name else None

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
