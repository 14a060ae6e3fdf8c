"""The GitHub App made with the manifest flow (its secrets arrive encrypted)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.store.models import GitHubAppRecord


class GitHubAppStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, host: str) -> GitHubAppRecord | None:
        async with self.sessions() as s:
            return await s.get(GitHubAppRecord, host)

    async def save(self, record: GitHubAppRecord) -> None:
        """The App of its host, replacing one made before."""
        async with self.sessions() as s:
            await s.execute(delete(GitHubAppRecord).where(GitHubAppRecord.host == record.host))
            s.add(record)
            await s.commit()

    async def remove(self, host: str) -> bool:
        async with self.sessions() as s:
            result = await s.execute(delete(GitHubAppRecord).where(GitHubAppRecord.host == host))
            await s.commit()
            return bool(getattr(result, "rowcount", 0))

    async def made_by_flow(self, nonce: str) -> bool:
        """Did the flow with this nonce make an App already (a replayed state)?"""
        stmt = select(GitHubAppRecord.host).where(GitHubAppRecord.state_nonce == nonce)
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(1))).first() is not None
