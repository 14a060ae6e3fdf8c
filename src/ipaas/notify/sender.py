"""The notice sender: turns recorded notices into outbox messages (preferences, the crash
throttle, "recovered" only when still true) and delivers the outbox by e-mail and webhooks,
retrying temporary failures with exponential backoff until they are too old."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from ipaas.auth.keys import Cipher
from ipaas.config import NotifySettings
from ipaas.domain.notices import (
    ACCOUNT_KINDS,
    Channel,
    CrashWindow,
    DeliveryStatus,
    NoticeKind,
    NoticeState,
    WebhookMode,
    digest_due,
    on_crash,
    recovery_holds,
    retry_delay_s,
)
from ipaas.notify.base import Mail, Mailer, Reply, WebhookPoster
from ipaas.notify.templates import Rendered, Renderer
from ipaas.notify.webhooks import WebhookGuard, encode, payload, signed_headers
from ipaas.store.models import Notice, OutboxMessage, Webhook, new_id, utcnow
from ipaas.store.notices import NoticeStore, Recipients

log = structlog.get_logger()
K = NoticeKind


class Links:
    """Where a notice points: the platform's API as its users reach it."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/") + "/api/v1"

    def context(self, app_id: str | None, database_id: str | None = None) -> dict[str, str]:
        app = f"{self.base}/applications/{app_id}" if app_id else ""
        db = f"{self.base}/databases/{database_id}" if database_id else ""
        return {
            "app_link": app, "builds_link": f"{app}/builds", "quota_link": self._quota,
            "database_link": db, "credentials_link": f"{db}/credentials" if db else "",
        }  # fmt: skip

    @property
    def _quota(self) -> str:
        return f"{self.base}/users/me/quota"


class NoticeSender:
    def __init__(
        self,
        notices: NoticeStore,
        mailer: Mailer | None,
        poster: WebhookPoster,
        guard: WebhookGuard,
        renderer: Renderer,
        cipher: Cipher,
        settings: NotifySettings,
        links: Links,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.notices = notices
        self.mailer = mailer  # None: no SMTP server configured; e-mail waits in the outbox
        self.poster = poster
        self.guard = guard  # webhook URLs are checked with it when saved (and by the poster)
        self.renderer = renderer
        self.cipher = cipher
        self.settings = settings
        self.links = links
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._pruned_at: datetime | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="notice-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the sender must outlive any one failure
                log.warning("notice sender round failed", error=repr(exc))
            await asyncio.sleep(self.settings.poll_interval_s)

    async def run_once(self) -> None:
        """One round: new notices become messages, digests fall due, due messages go out."""
        now = self.clock()
        for notice in await self.notices.due_notices(now, self.settings.batch):
            await self._expand_guarded(notice, now)
        await self._digests(now)
        await self.deliver_due()
        await self._prune(now)

    async def _prune(self, now: datetime) -> None:
        """Once an hour: what was settled more than `keep_s` ago goes."""
        if self._pruned_at is not None and now - self._pruned_at < timedelta(hours=1):
            return
        self._pruned_at = now
        await self.notices.prune(now - timedelta(seconds=self.settings.keep_s))

    # --- notices -> messages --------------------------------------------------------------
    async def _expand_guarded(self, notice: Notice, now: datetime) -> None:
        try:
            await self.expand(notice, now)
        except Exception as exc:  # noqa: BLE001 - one bad notice must not block the others
            log.warning("notice dropped", notice=notice.id, kind=notice.kind, error=repr(exc))
            await self.notices.settle(notice, NoticeState.DROPPED)

    async def expand(self, notice: Notice, now: datetime) -> None:
        kind = NoticeKind(notice.kind)
        extra: dict[str, Any] = {}
        window: CrashWindow | None = None
        if kind == K.APP_RECOVERED:
            wait = timedelta(seconds=self.settings.recovered_after_s)
            if notice.not_before - notice.created_at < wait:
                # First sight: look again once the app has had time to crash again.
                await self.notices.postpone(notice.id, now + wait)
                return
            if not await self._still_recovered(notice):
                await self.notices.settle(notice, NoticeState.DROPPED)
                return
        if kind == K.APP_CRASHED and notice.app_id is not None:
            verdict = on_crash(
                await self.notices.crash_window(notice.app_id),
                notice.created_at,
                self.settings.crash_throttle_s,
            )
            window, extra["earlier"] = verdict.window, verdict.earlier
            if not verdict.send:
                await self.notices.settle(notice, NoticeState.DROPPED, window=window)
                return
        to = await self.notices.recipients(notice.user_id, kind)
        if to is None:
            await self.notices.settle(notice, NoticeState.DROPPED, window=window)
            return
        messages = self.messages(notice, kind, to, extra)
        await self.notices.settle(notice, NoticeState.DONE, messages, window)

    async def _still_recovered(self, notice: Notice) -> bool:
        app_id = notice.app_id or ""
        state = await self.notices.app_state(app_id)
        return recovery_holds(state, await self.notices.crashed_since(app_id, notice.id))

    def messages(
        self, notice: Notice, kind: NoticeKind, to: Recipients, extra: dict[str, Any]
    ) -> list[OutboxMessage]:
        context = self._context(notice, to.username, extra)
        text = self.renderer.render(kind, context)
        out = []
        if to.email:
            out.append(self._mail_row(notice.user_id, kind, to.email, text, notice.id))
        for hook in to.webhooks:
            event = self._event(notice, to.username, text, context)
            out.append(self._hook_row(notice.user_id, kind, hook, text, event, notice.id))
        return out

    def _context(self, notice: Notice, username: str, extra: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        return {
            **self.links.context(notice.app_id, notice.facts.get("database_id")),
            "username": username,
            "app_id": notice.app_id,
            "throttle_minutes": round(s.crash_throttle_s / 60),
            "stable_minutes": round(s.recovered_after_s / 60),
            **notice.facts,
            **extra,
        }

    def _event(
        self, notice: Notice, username: str, text: Rendered, context: dict[str, Any]
    ) -> dict[str, Any]:
        """The JSON mode's body: what happened, to what, and where to look."""
        app = {"id": notice.app_id, "name": context.get("app_name")} if notice.app_id else None
        return {
            "id": notice.id,
            "kind": notice.kind,
            "created_at": notice.created_at.isoformat(),
            "user": username,
            "app": app,
            "subject": text.subject,
            "text": text.text,
            "facts": notice.facts,
            "link": context.get("app_link") or None,
        }

    @staticmethod
    def _mail_row(
        user_id: str, kind: NoticeKind, address: str, text: Rendered, notice_id: int | None
    ) -> OutboxMessage:
        return OutboxMessage(
            id=new_id(),
            user_id=user_id,
            kind=kind.value,
            notice_id=notice_id,
            channel=Channel.EMAIL,
            to_address=address,
            subject=text.subject,
            body=text.text,
            body_html=text.html,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )

    @staticmethod
    def _hook_row(
        user_id: str,
        kind: NoticeKind,
        hook: Webhook,
        text: Rendered,
        event: dict[str, Any],
        notice_id: int | None,
    ) -> OutboxMessage:
        summary = f"{text.subject}\n\n{text.text}".strip()
        body = payload(WebhookMode(hook.mode), event, summary)
        return OutboxMessage(
            id=new_id(),
            user_id=user_id,
            kind=kind.value,
            notice_id=notice_id,
            channel=Channel.WEBHOOK,
            webhook_id=hook.id,
            to_address="",
            subject=text.subject,
            body=encode(body).decode(),
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )

    async def _digests(self, now: datetime) -> None:
        throttle_s = self.settings.crash_throttle_s
        for row in await self.notices.windows_with_suppressed():
            if digest_due(CrashWindow(row.opened_at, row.suppressed), now, throttle_s):
                await self.notices.record_digest(row, now)

    # --- delivery -------------------------------------------------------------------------
    async def deliver_due(self) -> None:
        now = self.clock()
        channels = [Channel.WEBHOOK] + ([Channel.EMAIL] if self.mailer is not None else [])
        due = await self.notices.due_messages(now, self.settings.batch, channels)
        for message in due:
            # Held against other senders while it is tried; a sender killed mid-way leaves it
            # due again after the longest an attempt can take.
            lease = now + timedelta(seconds=2 * self._attempt_timeout_s() + 30)
            if await self.notices.claim(message, lease):
                await self._deliver(message, message.attempts + 1)

    def _attempt_timeout_s(self) -> float:
        return max(self.settings.webhook_timeout_s, 60.0)

    async def _deliver(self, message: OutboxMessage, attempt: int) -> None:
        try:
            reply = await self.attempt(message)
        except Exception as exc:  # noqa: BLE001 - a bug in one attempt is a temporary failure
            reply = Reply.later(f"{type(exc).__name__}: {exc}")
        await self._record(message, attempt, reply)

    async def attempt(self, message: OutboxMessage) -> Reply:
        if message.channel == Channel.EMAIL:
            assert self.mailer is not None
            mail = Mail(message.to_address, message.subject, message.body, message.body_html)
            return await self.mailer.send(mail)
        hook = await self.notices.webhook_by_id(message.webhook_id or "")
        if hook is None:
            return Reply.refused("the webhook was deleted")
        return await self.post(hook, message.body.encode(), message.kind or "", message.id)

    async def post(self, hook: Webhook, body: bytes, kind: str, delivery_id: str) -> Reply:
        secret = self.cipher.decrypt(hook.secret_encrypted)
        return await self.poster.post(
            hook.url, body, signed_headers(secret, body, kind, delivery_id)
        )

    async def _record(self, message: OutboxMessage, attempt: int, reply: Reply) -> None:
        now = self.clock()
        if reply.ok:
            scrub = message.kind in {k.value for k in ACCOUNT_KINDS}
            await self.notices.finish(message.id, DeliveryStatus.SENT, reply.text, scrub=scrub)
            return
        s = self.settings
        too_old = now - message.created_at >= timedelta(seconds=s.give_up_after_s)
        if not reply.temporary or too_old:
            why = (
                reply.text
                if not reply.temporary
                else f"gave up after {attempt} tries: {reply.text}"
            )
            await self.notices.finish(message.id, DeliveryStatus.FAILED, why)
            log.info("notice delivery failed", message=message.id, reply=why[:200])
            return
        later = now + timedelta(seconds=retry_delay_s(attempt, s.retry_base_s, s.retry_max_s))
        await self.notices.finish(message.id, DeliveryStatus.PENDING, reply.text, later)

    # --- "send a test" --------------------------------------------------------------------
    def test_text(self, username: str) -> Rendered:
        return self.renderer.render(K.TEST, {"username": username})

    async def test_mail(self, address: str, username: str) -> Reply:
        """Send the test notice now and answer with what the server said."""
        if self.mailer is None:
            return Reply.refused("no SMTP server is configured (settings smtp.host)")
        text = self.test_text(username)
        return await self.mailer.send(Mail(address, text.subject, text.text, text.html))

    async def test_webhook(self, hook: Webhook, username: str) -> Reply:
        text = self.test_text(username)
        event = {"id": None, "kind": K.TEST.value, "user": username, "subject": text.subject}
        body = payload(WebhookMode(hook.mode), event, f"{text.subject}\n\n{text.text}".strip())
        return await self.post(hook, encode(body), K.TEST.value, f"test-{new_id()}")
