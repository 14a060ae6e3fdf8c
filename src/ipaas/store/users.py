"""Queries on users, API tokens and refresh tokens."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.store.models import (
    AccountToken,
    ApiToken,
    OutboxMessage,
    RefreshToken,
    User,
    new_id,
    utcnow,
)


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

    async def set_email(self, user_id: str, email: str | None, verified: bool) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(User).where(User.id == user_id).values(email=email, email_verified=verified)
            )
            await s.commit()

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

    # --- browser sessions ---------------------------------------------------------------------
    # A dashboard sign-in is a session family of one token that is never rotated (the browser
    # keeps it in a cookie); ending a user's sessions (password changed, account disabled)
    # revokes it like the refresh tokens, and signing out revokes its family.
    async def open_web_session(self, user_id: str, token_hash: str, ttl_s: int) -> None:
        await self.add_refresh_token(user_id, new_id(), token_hash, ttl_s)

    async def web_session_user(self, token_hash: str) -> User | None:
        """The enabled user whose live (unrevoked, unexpired) session this is."""
        stmt = (
            select(User)
            .join(RefreshToken, RefreshToken.user_id == User.id)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.revoked.is_(False),
                RefreshToken.expires_at > utcnow(),
                User.disabled.is_(False),
            )
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def purge_expired(self) -> None:
        async with self.sessions() as s:
            await s.execute(delete(RefreshToken).where(RefreshToken.expires_at < utcnow()))
            await s.commit()

    # --- accounts -------------------------------------------------------------------------
    async def list_users(self, limit: int, offset: int) -> tuple[Sequence[User], int]:
        stmt = select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
        async with self.sessions() as s:
            rows = (await s.execute(stmt)).scalars().all()
            total = (await s.execute(select(func.count()).select_from(User))).scalar_one()
        return rows, int(total)

    async def usernames(self, user_ids: Collection[str]) -> dict[str, str]:
        """The names of these users (one query), by id."""
        if not user_ids:
            return {}
        stmt = select(User.id, User.username).where(User.id.in_(list(user_ids)))
        async with self.sessions() as s:
            return {row.id: row.username for row in await s.execute(stmt)}

    async def by_email(self, email: str) -> User | None:
        """The enabled user with this confirmed address (addresses compare without case)."""
        stmt = select(User).where(
            func.lower(User.email) == email.strip().lower(),
            User.email_verified.is_(True),
            User.disabled.is_(False),
        )
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(1))).scalar_one_or_none()

    async def set_role(self, user_id: str, role: str) -> bool:
        return await self._update(user_id, role=role)

    async def delete(self, user_id: str) -> None:
        """The account and, by cascade, its tokens, preferences and webhooks."""
        async with self.sessions() as s:
            await s.execute(delete(User).where(User.id == user_id))
            await s.commit()

    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        """Disable (ending every session and API token at once) or enable the user."""
        async with self.sessions() as s:
            await s.execute(update(User).where(User.id == user_id).values(disabled=disabled))
            if disabled:
                await self._end_sessions(s, user_id, keep_token_id=None)
            await s.commit()

    async def change_password(
        self, user_id: str, password_hash: str, keep_token_id: str | None
    ) -> None:
        """The new password, and every other session ended (refresh tokens, access tokens
        issued until now, API tokens but the one in use)."""
        async with self.sessions() as s:
            await s.execute(
                update(User).where(User.id == user_id).values(password_hash=password_hash)
            )
            await self._end_sessions(s, user_id, keep_token_id)
            await s.commit()

    @staticmethod
    async def _end_sessions(s: AsyncSession, user_id: str, keep_token_id: str | None) -> None:
        await s.execute(update(User).where(User.id == user_id).values(sessions_ended_at=utcnow()))
        await s.execute(
            update(RefreshToken).where(RefreshToken.user_id == user_id).values(revoked=True)
        )
        doomed = delete(ApiToken).where(ApiToken.user_id == user_id)
        if keep_token_id is not None:
            doomed = doomed.where(ApiToken.id != keep_token_id)
        await s.execute(doomed)

    async def sessions_ended_since(self, since: datetime) -> dict[str, datetime]:
        """Users whose sessions were ended recently: access tokens may still be around."""
        stmt = select(User.id, User.sessions_ended_at).where(User.sessions_ended_at >= since)
        async with self.sessions() as s:
            return {row.id: row.sessions_ended_at for row in await s.execute(stmt)}

    async def _update(self, user_id: str, **values: object) -> bool:
        async with self.sessions() as s:
            done = await s.execute(update(User).where(User.id == user_id).values(**values))
            await s.commit()
        return bool(done.rowcount)  # type: ignore[attr-defined]

    async def issue_link(self, token: AccountToken, mail: OutboxMessage) -> None:
        """A single-use link and the mail that carries it, in one transaction. A new link
        for the same purpose makes the user's older ones useless."""
        async with self.sessions() as s:
            await s.execute(
                update(AccountToken)
                .where(
                    AccountToken.user_id == token.user_id,
                    AccountToken.purpose == token.purpose,
                    AccountToken.used_at.is_(None),
                )
                .values(used_at=utcnow())
            )
            s.add_all([token, mail])
            await s.commit()

    async def verify_email(self, token_hash: str) -> User | None:
        """Use a confirmation link: the address it was sent to becomes the user's confirmed
        one, if it is still their address. None for an unknown, used or expired link."""
        async with self.sessions() as s:
            token = await self._use_token(s, token_hash, "verify_email")
            user = None if token is None else await s.get(User, token.user_id)
            if user is None or token is None or user.email != token.email:
                await s.commit()  # a used link stays used
                return None
            user.email_verified = True
            await s.commit()
            return user

    async def reset_password(self, token_hash: str, password_hash: str) -> User | None:
        """Use a reset link: the new password, and every session ended."""
        async with self.sessions() as s:
            token = await self._use_token(s, token_hash, "password_reset")
            user = None if token is None else await s.get(User, token.user_id)
            if user is None or user.disabled:
                await s.commit()
                return None
            user.password_hash = password_hash
            await self._end_sessions(s, user.id, keep_token_id=None)
            await s.commit()
            return user

    @staticmethod
    async def _use_token(s: AsyncSession, token_hash: str, purpose: str) -> AccountToken | None:
        """Mark the link used, once: of two concurrent uses only one gets it."""
        token = (
            await s.execute(
                select(AccountToken).where(
                    AccountToken.token_hash == token_hash, AccountToken.purpose == purpose
                )
            )
        ).scalar_one_or_none()
        if token is None or token.used_at is not None or token.expires_at <= utcnow():
            return None
        used = await s.execute(
            update(AccountToken)
            .where(AccountToken.id == token.id, AccountToken.used_at.is_(None))
            .values(used_at=utcnow())
        )
        return token if used.rowcount == 1 else None  # type: ignore[attr-defined]
