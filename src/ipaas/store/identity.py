"""The store's identity: a random id made with the store, carried by every container started
for it. Only containers carrying it can be this store's strays: pointed at an empty or another
store, the platform finds no container of its own and removes none."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.store.models import PlatformMeta, new_id

KEY = "store_id"


class StoreIdentity:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._id: str | None = None
        self._lock = asyncio.Lock()

    async def id(self) -> str:
        """This store's id, made the first time any process asks (once for all of them)."""
        if self._id is None:
            async with self._lock:
                if self._id is None:
                    self._id = await self._load_or_make()
        return self._id

    async def _load_or_make(self) -> str:
        async with self.sessions() as s:
            row = await s.get(PlatformMeta, KEY)
            if row is not None:
                return row.value
            s.add(PlatformMeta(key=KEY, value=new_id()))
            try:
                await s.commit()
            except IntegrityError:  # another process made it first: theirs it is
                await s.rollback()
        async with self.sessions() as s:
            row = await s.get(PlatformMeta, KEY)
            assert row is not None
            return row.value
