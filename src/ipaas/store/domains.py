"""Queries on apps' custom domains. A name is unique on the whole platform (one row per host,
a unique index), so two users claiming it at once cannot both win."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.domain.states import State
from ipaas.store.models import AppDomain, Application, utcnow

# Apps whose route exists: their verified domains may get certificates.
ROUTED_STATES = (State.RUNNING.value, State.CRASHED.value, State.ROLLING_OUT.value)


class DomainTaken(Exception):
    """One of the names is some app's already (this one's, or another's)."""


class TooManyDomains(Exception):
    pass


class DomainStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def add(self, rows: Sequence[AppDomain], limit: int) -> None:
        """Insert a domain (and its partner) for one app, unless it would then have more than
        `limit`; all or nothing."""
        async with self.sessions() as s:
            app_id = rows[0].app_id
            count = select(func.count()).select_from(AppDomain).where(AppDomain.app_id == app_id)
            if (await s.execute(count)).scalar_one() + len(rows) > limit:
                raise TooManyDomains(app_id)
            s.add_all(rows)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise DomainTaken(rows[0].host) from exc

    async def taken(self, hosts: Sequence[str]) -> bool:
        stmt = select(AppDomain.id).where(AppDomain.host.in_(hosts)).limit(1)
        async with self.sessions() as s:
            return (await s.execute(stmt)).first() is not None

    async def of_app(self, app_id: str) -> Sequence[AppDomain]:
        stmt = (
            select(AppDomain)
            .where(AppDomain.app_id == app_id)
            .order_by(AppDomain.created_at, AppDomain.host)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def get(self, app_id: str, host: str) -> AppDomain | None:
        stmt = select(AppDomain).where(AppDomain.app_id == app_id, AppDomain.host == host)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def remove(self, app_id: str, host: str) -> list[str]:
        """Remove the domain and the partner redirecting to it; the hosts removed."""
        which = (AppDomain.app_id == app_id) & or_(
            AppDomain.host == host, AppDomain.redirect_to == host
        )
        async with self.sessions() as s:
            hosts = list((await s.execute(select(AppDomain.host).where(which))).scalars())
            await s.execute(delete(AppDomain).where(which))
            await s.commit()
        return hosts

    async def record_check(
        self, domain_id: str, verified_by: str | None, lookup: dict[str, Any]
    ) -> None:
        """What a DNS check found; a domain once verified stays verified."""
        values: dict[str, Any] = {"checked_at": utcnow(), "lookup": lookup}
        async with self.sessions() as s:
            await s.execute(update(AppDomain).where(AppDomain.id == domain_id).values(**values))
            if verified_by is not None:
                await s.execute(
                    update(AppDomain)
                    .where(AppDomain.id == domain_id, AppDomain.verified_at.is_(None))
                    .values(verified_at=utcnow(), verified_by=verified_by)
                )
            await s.commit()

    async def verified_by_app(self, app_ids: Sequence[str]) -> dict[str, list[AppDomain]]:
        """The verified domains of these apps (their routes), in one query."""
        stmt = (
            select(AppDomain)
            .where(AppDomain.app_id.in_(app_ids), AppDomain.verified_at.is_not(None))
            .order_by(AppDomain.host)
        )
        found: defaultdict[str, list[AppDomain]] = defaultdict(list)
        async with self.sessions() as s:
            for row in (await s.execute(stmt)).scalars():
                found[row.app_id].append(row)
        return dict(found)

    async def app_at(self, host: str) -> str | None:
        """The app a verified domain serves (whatever its state), or None."""
        stmt = select(AppDomain.app_id).where(
            AppDomain.host == host, AppDomain.verified_at.is_not(None)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def routed(self, host: str) -> bool:
        """Is the name a verified domain of an app that has a route (a certificate may be
        requested for it)?"""
        stmt = (
            select(AppDomain.id)
            .join(Application, Application.id == AppDomain.app_id)
            .where(
                AppDomain.host == host,
                AppDomain.verified_at.is_not(None),
                Application.state.in_(ROUTED_STATES),
                Application.address.is_not(None),
            )
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).first() is not None

    async def record_issuance(self, host: str, error: str | None, at: datetime) -> str | None:
        """A certificate was obtained (`error` None) or not; the app's id when this changes
        what the domain shows (so one failure repeated makes one event), else None."""
        changed = or_(AppDomain.cert_error.is_(None), AppDomain.cert_error != error)
        if error is None:
            changed = AppDomain.cert_error.is_not(None)
        stmt = (
            update(AppDomain)
            .where(AppDomain.host == host, changed)
            .values(cert_error=error, cert_error_at=at if error else None)
            .returning(AppDomain.app_id)
        )
        async with self.sessions() as s:
            app_id = (await s.execute(stmt)).scalar_one_or_none()
            await s.commit()
        return app_id
