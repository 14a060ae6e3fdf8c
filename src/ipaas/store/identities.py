"""Logins at external providers (GitHub) linked to local users, with their tokens encrypted."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.store.models import Identity, User, new_id


class IdentityTaken(Exception):
    """That provider account is linked to another local user."""


class IdentityStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def owner(self, provider: str, subject: str) -> User | None:
        """The local user a provider account is linked to."""
        stmt = (
            select(User)
            .join(Identity, Identity.user_id == User.id)
            .where(Identity.provider == provider, Identity.subject == subject)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def of_user(self, user_id: str, provider: str) -> Identity | None:
        stmt = select(Identity).where(Identity.user_id == user_id, Identity.provider == provider)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().first()

    async def link(
        self, user_id: str, provider: str, subject: str, login: str, token_encrypted: str
    ) -> None:
        """Link (or refresh the token of) the user's account at the provider; IdentityTaken
        when that account belongs to someone else. A user has one account per provider."""
        async with self.sessions() as s:
            row = (
                await s.execute(
                    select(Identity).where(
                        Identity.provider == provider, Identity.subject == subject
                    )
                )
            ).scalar_one_or_none()
            if row is not None and row.user_id != user_id:
                raise IdentityTaken(login)
            if row is None:
                await s.execute(
                    delete(Identity).where(
                        Identity.user_id == user_id, Identity.provider == provider
                    )
                )
                row = Identity(id=new_id(), user_id=user_id, provider=provider, subject=subject)
                s.add(row)
            row.login, row.token_encrypted = login, token_encrypted
            try:
                await s.commit()
            except IntegrityError:
                raise IdentityTaken(login) from None

    async def unlink(self, user_id: str, provider: str) -> bool:
        async with self.sessions() as s:
            result = await s.execute(
                delete(Identity).where(Identity.user_id == user_id, Identity.provider == provider)
            )
            await s.commit()
            return bool(getattr(result, "rowcount", 0))
