"""Queries on users, API tokens and refresh tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.store.models import ApiToken, RefreshToken, User, new_id, utcnow


class UsernameTaken(Exception):
    pass


class RefreshRejected(Exception):
    """Unknown, expired, revoked or reused refresh token (`code` says which)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class UserStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(
        self, username: str, password_hash: str | None, role: str = "user", email: str | None = None
    ) -> User:
        user = User(id=new_id(), username=username, password_hash=password_hash, role=role)
        user.email = email
        async with self.sessions() as s:
            s.add(user)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise UsernameTaken(username) from exc
        return user

    async def by_username(self, username: str) -> User | None:
        async with self.sessions() as s:
            stmt = select(User).where(User.username == username)
            return (await s.execute(stmt)).scalar_one_or_none()

    async def get(self, user_id: str) -> User | None:
        async with self.sessions() as s:
            return await s.get(User, user_id)

    async def count(self) -> int:
        async with self.sessions() as s:
            return len((await s.execute(select(User.id).limit(1))).all())

    # --- API tokens -------------------------------------------------------------------------
    async def add_api_token(
        self, user_id: str, name: str, token_hash: str, prefix: str, expires_at: datetime | None
    ) -> ApiToken:
        tok = ApiToken(
            id=new_id(),
            user_id=user_id,
            name=name,
            token_hash=token_hash,
            prefix=prefix,
            expires_at=expires_at,
            created_at=utcnow(),
        )
        async with self.sessions() as s:
            s.add(tok)
            await s.commit()
        return tok

    async def api_token_owner(self, token_hash: str) -> tuple[User, ApiToken] | None:
        stmt = (
            select(User, ApiToken)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == token_hash)
        )
        async with self.sessions() as s:
            row = (await s.execute(stmt)).one_or_none()
        return (row[0], row[1]) if row else None

    async def list_api_tokens(self, user_id: str) -> Sequence[ApiToken]:
        stmt = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def delete_api_token(self, user_id: str, token_id: str) -> str | None:
        """Delete the user's token; return its hash (to evict caches) or None if not theirs."""
        async with self.sessions() as s:
            tok = (
                await s.execute(
                    select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
                )
            ).scalar_one_or_none()
            if tok is None:
                return None
            await s.delete(tok)
            await s.commit()
            return tok.token_hash

    # --- refresh tokens ---------------------------------------------------------------------
    async def add_refresh_token(
        self, user_id: str, family_id: str, token_hash: str, ttl_s: int
    ) -> None:
        async with self.sessions() as s:
            s.add(
                RefreshToken(
                    id=new_id(),
                    user_id=user_id,
                    family_id=family_id,
                    token_hash=token_hash,
                    expires_at=utcnow() + timedelta(seconds=ttl_s),
                )
            )
            await s.commit()

    async def use_refresh_token(self, token_hash: str) -> RefreshToken:
        """Mark the token used (once). A second use revokes the family and is refused."""
        async with self.sessions() as s:
            tok = (
                await s.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
            ).scalar_one_or_none()
            if tok is None:
                raise RefreshRejected("invalid_token")
            if tok.revoked:
                raise RefreshRejected("token_revoked")
            if tok.used_at is not None:
                await self._revoke_family(s, tok.family_id)
                await s.commit()
                raise RefreshRejected("token_reused")
            if tok.expires_at < utcnow():
                raise RefreshRejected("token_expired")
            # Conditional: of two concurrent uses only one wins.
            result = await s.execute(
                update(RefreshToken)
                .where(RefreshToken.id == tok.id, RefreshToken.used_at.is_(None))
                .values(used_at=utcnow())
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await self._revoke_family(s, tok.family_id)
                await s.commit()
                raise RefreshRejected("token_reused")
            await s.commit()
            return tok

    async def revoke_family_of(self, token_hash: str) -> None:
        async with self.sessions() as s:
            tok = (
                await s.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
            ).scalar_one_or_none()
            if tok is not None:
                await self._revoke_family(s, tok.family_id)
                await s.commit()

    @staticmethod
    async def _revoke_family(s: AsyncSession, family_id: str) -> None:
        await s.execute(
            update(RefreshToken).where(RefreshToken.family_id == family_id).values(revoked=True)
        )

    async def purge_expired(self) -> None:
        async with self.sessions() as s:
            await s.execute(delete(RefreshToken).where(RefreshToken.expires_at < utcnow()))
            await s.commit()
