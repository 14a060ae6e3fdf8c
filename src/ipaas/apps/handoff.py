"""Where a builder hands what it built: straight to the deployer in the process that owns the
runtime, or to the store alone in a separate builder (the control plane's warden picks the
release up there, starts it and routes it: builders never touch containers or the router)."""

from __future__ import annotations

import contextlib
from typing import Protocol

from ipaas.domain.states import IllegalTransition, State
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.models import Application


class Handoff(Protocol):
    async def deploy(self, app_id: str) -> None:
        """The app's target release is built: bring it up (or have it brought up)."""
        ...

    async def keep_serving(self, app: Application, what: str, reason: str) -> bool:
        """A rollout's build failed: fall back on the release that serves, if there is one."""
        ...


class ToControlPlane:
    """A separate builder's hand-off: the store says what is wanted, the control plane acts."""

    def __init__(self, apps: AppStore) -> None:
        self.apps = apps

    async def deploy(self, app_id: str) -> None:
        return None  # the app is `starting`/`rolling_out` with its target: the warden deploys

    async def keep_serving(self, app: Application, what: str, reason: str) -> bool:
        if app.state != State.ROLLING_OUT or app.current_release is None or not app.address:
            return False
        note = f"{what}: {reason}; release {app.current_release} still serves"
        with contextlib.suppress(IllegalTransition, NotFound):
            await self.apps.transition(
                app.id, State.RUNNING, note, expected=State.ROLLING_OUT, target_release=None
            )
            return True  # the warden checks that the container still answers
        return False
