"""Request dependencies: who is calling (at most one query per request), the one part of the
control plane a route uses, and the caller's own app (else 404)."""

from __future__ import annotations

import time
from typing import cast

from fastapi import Depends, Request

from ipaas.admin.removal import AccountRemoval
from ipaas.api.errors import Problem
from ipaas.apps.gate import AppGate
from ipaas.apps.service import AppService, Principal
from ipaas.auth.tokens import API_TOKEN_PREFIX, AccessTokens, InvalidAccessToken, hash_token
from ipaas.config import Settings
from ipaas.logs.service import LogService
from ipaas.notify.accounts import AccountMail
from ipaas.notify.sender import NoticeSender
from ipaas.store.models import Application, utcnow
from ipaas.store.notices import NoticeStore
from ipaas.store.quotas import QuotaStore
from ipaas.store.users import UserStore


# One part of the control plane each: a route names exactly what it uses.
def app_service(request: Request) -> AppService:
    return cast(AppService, request.app.state.app_service)


def log_service(request: Request) -> LogService:
    return cast(LogService, request.app.state.log_service)


def user_store(request: Request) -> UserStore:
    return cast(UserStore, request.app.state.users)


def access_tokens(request: Request) -> AccessTokens:
    return cast(AccessTokens, request.app.state.access_tokens)


def app_gate(request: Request) -> AppGate:
    return cast(AppGate, request.app.state.app_gate)


def quota_store(request: Request) -> QuotaStore:
    return cast(QuotaStore, request.app.state.quotas)


def notice_store(request: Request) -> NoticeStore:
    return cast(NoticeStore, request.app.state.notices)


def notice_sender(request: Request) -> NoticeSender:
    return cast(NoticeSender, request.app.state.notice_sender)


def account_removal(request: Request) -> AccountRemoval:
    return cast(AccountRemoval, request.app.state.account_removal)


def account_mail(request: Request) -> AccountMail:
    return cast(AccountMail, request.app.state.account_mail)


def settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


class TokenCache:
    """API token hash -> principal, for a short while: token checks cost no query when warm."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[Principal, float, float | None]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        who, cached_at, expires_at = entry
        now = time.time()
        if now - cached_at > self.ttl_s or (expires_at is not None and now >= expires_at):
            self._entries.pop(token_hash, None)
            return None
        return who

    def put(self, token_hash: str, who: Principal, expires_at: float | None) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token_hash] = (who, time.time(), expires_at)

    def evict(self, token_hash: str) -> None:
        self._entries.pop(token_hash, None)

    def evict_user(self, user_id: str) -> None:
        """Forget every token of the user (ended, or their role changed)."""
        for token_hash, (who, _, _) in list(self._entries.items()):
            if who.user_id == user_id:
                self._entries.pop(token_hash, None)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "unauthorized", "send Authorization: Bearer <token>")
    return token.strip()


async def current_user(request: Request) -> Principal:
    token = _bearer(request)
    if token.startswith(API_TOKEN_PREFIX):
        return await _api_token_user(request, token)
    try:
        claims = access_tokens(request).verify(token)
    except InvalidAccessToken as exc:
        raise Problem(401, exc.code, "the access token is not valid") from None
    return Principal(claims.user_id, claims.role)


async def _api_token_user(request: Request, token: str) -> Principal:
    cache: TokenCache = request.app.state.token_cache
    digest = hash_token(token)
    who = cache.get(digest)
    if who is not None:
        return who
    found = await user_store(request).api_token_owner(digest)
    if found is None:
        raise Problem(401, "invalid_token", "the API token is not valid")
    user, tok = found
    if user.disabled:
        raise Problem(401, "invalid_token", "the account is disabled")
    if tok.expires_at is not None and tok.expires_at <= utcnow():
        raise Problem(401, "token_expired", "the API token has expired")
    who = Principal(user.id, user.role)
    cache.put(digest, who, tok.expires_at.timestamp() if tok.expires_at else None)
    return who


async def admin_user(request: Request) -> Principal:
    who = await current_user(request)
    if not who.is_admin:
        raise Problem(403, "forbidden", "admins only")
    return who


async def owned_app(
    app_id: str,
    who: Principal = Depends(current_user),
    service: AppService = Depends(app_service),
) -> Application:
    """The app named in the path if the caller owns it; anyone else's answers 404."""
    return await service.get(who, app_id)
