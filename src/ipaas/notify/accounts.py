"""Account e-mail: a link that confirms an address, and one that sets a forgotten password.
Each link is single-use and expires; its mail enters the outbox in the transaction that
creates it, and the sender delivers it like any notice (then forgets the link's text)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from ipaas.auth.throttle import LoginThrottle, ThrottlePolicy
from ipaas.auth.tokens import hash_token
from ipaas.config import AuthSettings
from ipaas.domain.notices import Channel, DeliveryStatus, NoticeKind
from ipaas.notify.templates import Renderer
from ipaas.store.models import AccountToken, OutboxMessage, User, new_id, utcnow
from ipaas.store.users import UserStore

VERIFY = NoticeKind.VERIFY_EMAIL
RESET = NoticeKind.PASSWORD_RESET


class AccountMail:
    def __init__(
        self, users: UserStore, renderer: Renderer, settings: AuthSettings, base_url: str
    ) -> None:
        self.users = users
        self.renderer = renderer
        self.settings = settings
        self.base = base_url.rstrip("/") + "/api/v1/auth"
        # Reset requests per address asked for, and (ten times as many) per client.
        window = settings.reset_window_s
        delays = {"base_delay_s": window, "max_delay_s": 4 * window}
        per_email = ThrottlePolicy(settings.reset_max_requests, window, **delays)
        per_client = ThrottlePolicy(10 * settings.reset_max_requests, window, **delays)
        self.throttle = LoginThrottle({"email": per_email, "ip": per_client})

    async def send_verification(self, user: User, email: str) -> None:
        """The address becomes the user's (unconfirmed) and a confirmation link goes to it."""
        await self.users.set_email(user.id, email, verified=False)
        ttl = self.settings.verify_token_ttl_s
        await self._issue(user, email, VERIFY, ttl, valid_hours=round(ttl / 3600))

    def admit_reset(self, email: str, client: str) -> float | None:
        """None when a reset may be asked for, else how long to wait. Counted per address
        whether or not it exists, so the answer tells nothing."""
        keys = (f"email:{email.strip().lower()}", f"ip:{client}")
        wait = self.throttle.admit(keys)
        if wait is None:
            self.throttle.failed(keys)  # every request uses up some of the allowance
        return wait

    async def send_reset(self, email: str) -> None:
        """A reset link to the account with this confirmed address; nothing for others."""
        user = await self.users.by_email(email)
        if user is None or user.email is None:
            return
        ttl = self.settings.reset_token_ttl_s
        await self._issue(user, user.email, RESET, ttl, valid_minutes=round(ttl / 60))

    async def send_invitation(self, user: User) -> None:
        """A new account without a password: its first password is set through a reset link
        (valid as long as an address confirmation)."""
        ttl = self.settings.verify_token_ttl_s
        await self._issue(user, user.email or "", RESET, ttl, valid_minutes=round(ttl / 60))

    async def _issue(
        self, user: User, email: str, kind: NoticeKind, ttl_s: int, **context: object
    ) -> None:
        token = secrets.token_urlsafe(32)
        path = "verify-email" if kind == VERIFY else "password-reset"
        link = f"{self.base}/{path}?token={token}"
        text = self.renderer.render(
            kind,
            {
                "username": user.username,
                "link": link,
                "account_mail": True,
                **context,
            },
        )
        record = AccountToken(
            id=new_id(),
            user_id=user.id,
            purpose=kind.value,
            token_hash=hash_token(token),
            email=email,
            expires_at=utcnow() + timedelta(seconds=ttl_s),
        )
        mail = OutboxMessage(
            id=new_id(),
            user_id=user.id,
            kind=kind.value,
            channel=Channel.EMAIL,
            to_address=email,
            subject=text.subject,
            body=text.text,
            body_html=text.html,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )
        await self.users.issue_link(record, mail)
