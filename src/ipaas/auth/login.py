"""Password login: the throttle first (a refused attempt costs no hash), then the hash check
in the bounded pool, the same work whether or not the user exists."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from ipaas.auth.passwords import PasswordPool, PoolBusy
from ipaas.auth.throttle import LoginThrottle, ThrottlePolicy
from ipaas.config import AuthSettings
from ipaas.store.models import User


class UserLookup(Protocol):
    async def by_username(self, username: str) -> User | None: ...


class LoginRefused(Exception):
    """Too many failures for this username or client address: wait `retry_after_s`."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"retry after {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class BadCredentials(Exception):
    pass


@dataclass(frozen=True)
class LoginPolicies:
    per_username: ThrottlePolicy
    per_address: ThrottlePolicy

    def as_dict(self) -> dict[str, ThrottlePolicy]:
        return {"user": self.per_username, "ip": self.per_address}


class PasswordLogin:
    def __init__(
        self,
        users: UserLookup,
        pool: PasswordPool,
        throttle: LoginThrottle,
        refusal_delay_s: float = 1.0,
    ) -> None:
        self._users = users
        self.pool = pool  # also hashes new passwords (user creation)
        self._throttle = throttle
        # A refusal is held this long (a sleeping coroutine, no CPU): a client hammering a
        # locked account gets one answer a second per connection instead of thousands, which
        # would otherwise crowd every other request out of the event loop.
        self._refusal_delay_s = refusal_delay_s

    async def authenticate(self, username: str, password: str, address: str) -> User:
        """The enabled user with that password, or LoginRefused / BadCredentials / PoolBusy."""
        user_key = f"user:{username}"
        keys = (user_key, f"ip:{address}")
        wait = self._throttle.admit(keys)
        if wait is not None:
            held = min(wait, self._refusal_delay_s)
            await asyncio.sleep(held)
            raise LoginRefused(max(wait - held, 0.0))
        try:
            user = await self._users.by_username(username)
            ok = await self.pool.verify(user.password_hash if user else None, password)
        except PoolBusy:
            self._throttle.release(keys)
            raise
        except BaseException:
            self._throttle.failed(keys)
            raise
        if user is None or not ok or user.disabled:
            self._throttle.failed(keys)
            raise BadCredentials
        self._throttle.succeeded(keys, reset=(user_key,))
        return user


def password_login(settings: AuthSettings, users: UserLookup) -> PasswordLogin:
    """The login of one API process: its own hashing pool and throttle."""
    window = settings.login_window_s
    delays = {"base_delay_s": settings.login_lockout_s, "max_delay_s": settings.login_lockout_max_s}
    policies = LoginPolicies(
        per_username=ThrottlePolicy(settings.login_max_failures, window, **delays),
        per_address=ThrottlePolicy(settings.login_address_max_failures, window, **delays),
    )
    pool = PasswordPool(settings.hash_workers, settings.hash_max_waiting)
    throttle = LoginThrottle(policies.as_dict())
    return PasswordLogin(users, pool, throttle, settings.login_refusal_delay_s)
