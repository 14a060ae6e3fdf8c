"""Token formats. Access tokens are JWTs (no DB lookup); API and refresh tokens are random
strings stored as SHA-256 hashes (high-entropy, so a fast hash is enough)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

API_TOKEN_PREFIX = "ipaas_pat_"
REFRESH_TOKEN_PREFIX = "ipaas_rt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    role: str
    expires_at: float
    issued_at: float = 0.0


class InvalidAccessToken(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class AccessTokens:
    def __init__(self, key: str, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self._used: dict[str, float] = {}  # nonces redeemed, until their states expire
        # Verified tokens, so a client polling with one token pays the HMAC and JSON once.
        self._verified: dict[str, AccessClaims] = {}
        # user id -> the time their sessions were ended (password changed, account disabled):
        # tokens issued until then stop working at once, not when they expire.
        self._ended: dict[str, float] = {}

    def issue(self, user_id: str, role: str) -> str:
        now = time.time()  # to the microsecond: a token issued right after an end still works
        claims = {
            "sub": user_id,
            "role": role,
            "iat": now,
            "exp": int(now) + self.ttl_s,
            "typ": "a",
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def end_sessions(self, user_id: str, at: float) -> None:
        self._ended[user_id] = max(at, self._ended.get(user_id, 0.0))

    def verify(self, token: str) -> AccessClaims:
        claims = self._verified.get(token)
        if claims is None or claims.expires_at <= time.time():
            claims = self._decode(token)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = claims
        if claims.issued_at <= self._ended.get(claims.user_id, -1.0):
            raise InvalidAccessToken("session_ended")
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"], options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidAccessToken("token_expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken("invalid_token") from exc
        if claims.get("typ") != "a" or not isinstance(claims.get("sub"), str):
            raise InvalidAccessToken("invalid_token")
        role = str(claims.get("role", "user"))
        issued = float(claims.get("iat") or 0.0)
        return AccessClaims(claims["sub"], role, float(claims["exp"]), issued)


@dataclass(frozen=True)
class AppPass:
    user_id: str
    role: str
    app_id: str


class AppPasses:
    """Passes to one private app's URL: signed, bound to that app (the audience), and useless
    for the API (another type) — a pass a tenant's app could see opens nothing else."""

    def __init__(self, key: str, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self._used: dict[str, float] = {}  # nonces redeemed, until their states expire

    def issue(self, user_id: str, role: str, app_id: str) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "role": role,
            "aud": f"app:{app_id}",
            "iat": now,
            "exp": now + self.ttl_s,
            "typ": "p",
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, app_id: str) -> AppPass | None:
        """The pass's holder, or None when it is not a valid pass to this app."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=f"app:{app_id}",
                options={"require": ["exp", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        if claims.get("typ") != "p" or not isinstance(claims.get("sub"), str):
            return None
        return AppPass(claims["sub"], str(claims.get("role", "user")), app_id)


class InvalidState(Exception):
    """Why a state is refused (its message says it to the user)."""

    def __init__(self, why: str = "the state is not valid or expired") -> None:
        super().__init__(why)
        self.why = why


class SignedStates:
    """Short-lived signed values that make a round trip through another site (the OAuth
    `state`): whoever comes back with one did not make it up, and it says what was asked."""

    def __init__(self, key: str, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self._used: dict[str, float] = {}  # nonces redeemed, until their states expire

    def issue(self, nonce: str, purpose: str = "signin", **data: str) -> str:
        """A state for one purpose (`signin`, `app-manifest`): another flow refuses it."""
        claims = {
            **data,
            "n": nonce,
            "p": purpose,
            "typ": "s",
            "exp": int(time.time()) + self.ttl_s,
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, purpose: str = "signin") -> dict[str, str]:
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"])
        except jwt.PyJWTError:
            raise InvalidState from None
        if claims.get("typ") != "s" or not isinstance(claims.get("n"), str):
            raise InvalidState
        if claims.get("p") != purpose:
            raise InvalidState
        return {k: str(v) for k, v in claims.items() if k not in ("typ", "exp", "p")}

    def redeem(self, token: str, purpose: str, cookie_nonce: str | None) -> dict[str, str]:
        """The claims of a state coming back, once: it must be valid, of this purpose, and
        come back to the browser that started the round trip (its nonce is in a cookie)."""
        claims = self.verify(token, purpose)
        nonce = claims["n"]
        if cookie_nonce is None or not secrets.compare_digest(nonce, cookie_nonce):
            raise InvalidState("the flow was started by another browser")
        now = time.time()
        self._used = {n: t for n, t in self._used.items() if t > now}
        if nonce in self._used:
            raise InvalidState("this flow was completed already")
        self._used[nonce] = now + self.ttl_s
        return claims
