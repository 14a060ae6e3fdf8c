"""Per-user quotas in the store: limits (operator defaults + admin overrides), usage, and the
check that runs in the same transaction as the write it guards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.config import Settings
from ipaas.domain.notices import NoticeKind, nearly_used
from ipaas.domain.quotas import KINDS, Amounts, Decision, PerApp, decide, footprint, limits_for
from ipaas.store.models import Application, Database, User
from ipaas.store.notices import record_notice

Guard = Callable[[AsyncSession], Awaitable[None]]
_OVERRIDES = {kind: getattr(User, f"quota_{kind}") for kind in KINDS}


class QuotaExceeded(Exception):
    def __init__(self, decision: Decision) -> None:
        super().__init__(", ".join(decision.exceeded + decision.too_large))
        self.decision = decision


@dataclass(frozen=True)
class QuotaReport:
    limits: Amounts
    used: Amounts
    overrides: dict[str, float | None]


class QuotaStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        q = settings.quota
        self._defaults = Amounts(q.apps, q.memory_mb, q.cpus, q.volumes)
        self._per_app = PerApp(q.max_app_memory_mb, q.max_app_cpus)
        self._app_default = (settings.runtime.memory_mb, settings.runtime.cpus)
        self._warn_ratio = settings.notify.quota_warn_ratio

    def footprint(self, resources: Mapping[str, Any], volumes: list[Any]) -> Amounts:
        return footprint(resources, len(volumes), *self._app_default)

    async def usage(self, s: AsyncSession, user_id: str) -> Amounts:
        """What the user's apps count for (one query), and their databases' memory and CPUs
        (another)."""
        stmt = select(Application.resources, Application.volumes).where(
            Application.owner_id == user_id
        )
        total = Amounts()
        for resources, volumes in (await s.execute(stmt)).all():
            total += self.footprint(resources or {}, volumes or [])
        databases = select(
            func.coalesce(func.sum(Database.memory_mb), 0),
            func.coalesce(func.sum(Database.cpus), 0),
        ).where(Database.owner_id == user_id)
        memory_mb, cpus = (await s.execute(databases)).one()
        return total + Amounts(memory_mb=int(memory_mb), cpus=float(cpus))

    def database_guard(self, user_id: str, memory_mb: int, cpus: float) -> Guard:
        """The check for a new database: its memory and CPUs count like an app's (and no one
        database may be larger than one app may be); it is not an app."""
        size = Amounts(memory_mb=memory_mb, cpus=cpus)
        return self.guard(user_id, size, size)

    async def report(self, user_id: str) -> QuotaReport | None:
        """Limits, usage and the admin's overrides; None when there is no such user."""
        async with self.sessions() as s:
            overrides = await self._overrides(s, user_id)
            if overrides is None:
                return None
            used = await self.usage(s, user_id)
        return QuotaReport(limits_for(self._defaults, overrides), used, overrides)

    async def set_overrides(self, user_id: str, values: Mapping[str, float | None]) -> bool:
        """Replace the user's limits (None: the operator default). False: no such user."""
        columns = {f"quota_{kind}": values.get(kind) for kind in KINDS}
        async with self.sessions() as s:
            result = await s.execute(update(User).where(User.id == user_id).values(**columns))
            await s.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def create_guard(self, app: Application) -> Guard:
        size = self.footprint(app.resources, app.volumes)
        return self.guard(app.owner_id, size, size)

    def update_guard(self, app: Application, columns: Mapping[str, Any]) -> Guard | None:
        """The check for an update that writes `columns`; None when no quota kind changes."""
        if "resources" not in columns and "volumes" not in columns:
            return None
        old = self.footprint(app.resources, app.volumes)
        new = self.footprint(
            columns.get("resources", app.resources), columns.get("volumes", app.volumes)
        )
        return self.guard(app.owner_id, new - old, new)

    def guard(self, user_id: str, change: Amounts, app: Amounts | None = None) -> Guard:
        """A check for AppStore.create / set_fields, run inside their transaction before the
        write; raises QuotaExceeded (and the write is rolled back)."""

        async def check(s: AsyncSession) -> None:
            await _lock_owner(s, user_id)
            overrides = await self._overrides(s, user_id) or {}
            used = await self.usage(s, user_id)
            limits = limits_for(self._defaults, overrides)
            decision = decide(used, change, limits, app, self._per_app)
            if not decision.ok:
                raise QuotaExceeded(decision)
            await self._warn_when_nearly_used(s, user_id, used, used + change, limits)

        return check

    async def _warn_when_nearly_used(
        self, s: AsyncSession, user_id: str, before: Amounts, after: Amounts, limits: Amounts
    ) -> None:
        """A notice, with the write, when it takes a quota kind across the warning ratio."""
        crossed = nearly_used(before, after, limits, self._warn_ratio)
        if crossed:
            facts = {"kinds": crossed, "used": after.as_dict(), "limits": limits.as_dict()}
            await record_notice(s, NoticeKind.QUOTA_NEARLY_USED, user_id, None, facts)

    @staticmethod
    async def _overrides(s: AsyncSession, user_id: str) -> dict[str, float | None] | None:
        stmt = select(*_OVERRIDES.values()).where(User.id == user_id)
        row = (await s.execute(stmt)).one_or_none()
        return None if row is None else dict(zip(KINDS, row, strict=True))


async def _lock_owner(s: AsyncSession, user_id: str) -> None:
    """Serialise quota checks per user until the transaction ends: a write to the user's row
    is a row lock on PostgreSQL and takes SQLite's write lock before anything is read, so a
    second create waits and then counts the first one's app."""
    await s.execute(update(User).where(User.id == user_id).values(quota_apps=User.quota_apps))
