"""Browser sessions of the dashboard, and the CSRF tokens of their forms.

The session cookie holds a random token; the store keeps only a hash of it, salted with a
purpose so the same string is worth nothing as an API refresh token. A form's CSRF token is an
HMAC of the browser's own random cookie and its session: a page on another site cannot read
either, and an app on a sibling host that plants a cookie still cannot compute the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ipaas.auth.tokens import hash_token
from ipaas.store.models import User
from ipaas.store.users import UserStore

SESSION_PURPOSE = "web-session:"


def new_browser_id() -> str:
    return secrets.token_urlsafe(24)


class WebSessions:
    def __init__(self, users: UserStore, key: str, ttl_s: int) -> None:
        self._users = users
        # A key of its own, derived: a CSRF token reveals nothing about the JWT key.
        self._csrf_key = hmac.new(key.encode(), b"ipaas csrf", hashlib.sha256).digest()
        self.ttl_s = ttl_s

    @staticmethod
    def _stored_hash(token: str) -> str:
        return hash_token(SESSION_PURPOSE + token)

    async def open(self, user: User) -> str:
        """A new session for the user: the token for their cookie."""
        token = secrets.token_urlsafe(32)
        await self._users.open_web_session(user.id, self._stored_hash(token), self.ttl_s)
        return token

    async def user(self, token: str | None) -> User | None:
        """The signed-in user of a live session, or None."""
        if not token or len(token) > 128:
            return None
        return await self._users.web_session_user(self._stored_hash(token))

    async def close(self, token: str | None) -> None:
        if token and len(token) <= 128:
            await self._users.revoke_family_of(self._stored_hash(token))

    def csrf_token(self, browser_id: str, session: str | None) -> str:
        message = f"{browser_id}|{session or ''}".encode()
        return hmac.new(self._csrf_key, message, hashlib.sha256).hexdigest()

    def csrf_ok(self, sent: str | None, browser_id: str | None, session: str | None) -> bool:
        if not sent or not browser_id:
            return False
        return hmac.compare_digest(sent, self.csrf_token(browser_id, session))
