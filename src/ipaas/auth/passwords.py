"""Argon2id password hashes, and a bounded thread pool that checks them off the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")
_hasher = PasswordHasher()
# Verified against when the user does not exist, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("no such user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


class PoolBusy(Exception):
    """More hashes are waiting than the pool accepts: the caller should answer "try later"."""


def default_workers() -> int:
    # Half the cores: the event loop and the database keep the rest during a login flood.
    return max(1, (os.cpu_count() or 2) // 2)


class PasswordPool:
    """Argon2 runs in `workers` threads (argon2-cffi releases the GIL while hashing), so a
    flood of logins costs CPU but never blocks the event loop. At most `max_waiting` hashes
    queue; beyond that PoolBusy is raised at once instead of piling up memory and latency."""

    def __init__(self, workers: int | None = None, max_waiting: int = 256) -> None:
        self.workers = workers or default_workers()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self._max_pending = self.workers + max_waiting
        self._pending = 0

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Like verify_password; an unknown user (None) still costs one full verification."""
        return await self._run(verify_password, password_hash, password)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pending >= self._max_pending:
            raise PoolBusy
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
