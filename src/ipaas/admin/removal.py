"""An admin deletes a user with everything they own.

The user is disabled first, so nothing new appears meanwhile; then their apps go (containers,
routes, images, volumes), then their databases (containers, volumes), then the account. Each
step finishes what an earlier, interrupted removal left, so asking again completes it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ipaas.apps.deployer import Deployer
from ipaas.databases.service import DatabaseService
from ipaas.domain.databases import DbState, IllegalDbTransition
from ipaas.domain.states import IllegalTransition, State
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.users import UserStore


@dataclass(frozen=True)
class Removed:
    apps: int
    databases: int


class AccountRemoval:
    def __init__(
        self, users: UserStore, apps: AppStore, deployer: Deployer, databases: DatabaseService
    ) -> None:
        self.users = users
        self.apps = apps
        self.deployer = deployer
        self.databases = databases

    async def remove(self, user_id: str) -> Removed:
        await self.users.set_disabled(user_id, True)
        apps = await self._remove_apps(user_id)
        databases = await self._remove_databases(user_id)
        await self.users.delete(user_id)
        return Removed(apps, databases)

    async def _remove_apps(self, user_id: str) -> int:
        removed = 0
        while True:
            page, _ = await self.apps.list(user_id, limit=100)
            if not page:
                return removed
            for app in page:
                with contextlib.suppress(IllegalTransition):  # already deleting: finish it
                    await self.apps.transition(app.id, State.DELETING, "the owner was deleted")
                with contextlib.suppress(NotFound):
                    await self.deployer.finish_delete(app.id, volumes=True)
                removed += 1

    async def _remove_databases(self, user_id: str) -> int:
        owned = await self.databases.store.list(user_id)
        for db in owned:
            with contextlib.suppress(IllegalDbTransition, NotFound):
                # No final backup: the admin confirmed, and its owner (who could restore it) goes.
                await self.databases.store.transition(
                    db.id, DbState.DELETING, "the owner was deleted", final_backup=False
                )
            await self.databases.finish_delete(db.id)
        return len(owned)
