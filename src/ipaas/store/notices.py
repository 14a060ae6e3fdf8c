"""Notices and the outbox: recorded inside the transaction of the event that causes them,
then turned into messages and sent by the notice sender. Also preferences and webhooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.domain.notices import (
    PREFERENCE_OF,
    CrashWindow,
    DeliveryStatus,
    NoticeKind,
    NoticeState,
    email_by_default,
    transition_notice,
)
from ipaas.store.models import (
    Application,
    Notice,
    NoticePreference,
    NoticeThrottle,
    OutboxMessage,
    User,
    Webhook,
    utcnow,
)


async def record_notice(
    s: AsyncSession, kind: NoticeKind, user_id: str, app_id: str | None, facts: dict[str, Any]
) -> None:
    """Add a notice to the caller's transaction: it exists exactly when the event does."""
    await s.execute(
        insert(Notice).values(
            kind=kind.value, user_id=user_id, app_id=app_id, facts=facts, state=NoticeState.NEW
        )
    )


async def record_transition_notice(
    s: AsyncSession, app_id: str, from_state: str | None, to_state: str, reason: str | None
) -> None:
    """The notice an application's state change makes, if it makes one."""
    kind = transition_notice(from_state, to_state, reason)
    if kind is None:
        return
    stmt = select(Application.owner_id, Application.name).where(Application.id == app_id)
    row = (await s.execute(stmt)).one_or_none()
    if row is None:
        return
    facts = {"app_name": row.name, "reason": reason or "", "from_state": from_state}
    await record_notice(s, kind, row.owner_id, app_id, facts)


@dataclass(frozen=True)
class Recipients:
    """Where one notice goes: the user's verified address (if e-mail is on for its kind) and
    the webhooks that take its kind."""

    username: str
    email: str | None
    webhooks: Sequence[Webhook]


class NoticeStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    # --- notices --------------------------------------------------------------------------
    async def due_notices(self, now: datetime, limit: int) -> Sequence[Notice]:
        stmt = (
            select(Notice)
            .where(Notice.state == NoticeState.NEW, Notice.not_before <= now)
            .order_by(Notice.id)
            .limit(limit)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def postpone(self, notice_id: int, until: datetime) -> None:
        async with self.sessions() as s:
            await s.execute(update(Notice).where(Notice.id == notice_id).values(not_before=until))
            await s.commit()

    async def settle(
        self,
        notice: Notice,
        state: NoticeState,
        messages: Sequence[OutboxMessage] = (),
        window: CrashWindow | None = None,
    ) -> bool:
        """In one transaction: the notice leaves `new`, its messages enter the outbox, and
        (for a crash) the app's throttle window is saved. False when it was settled already."""
        async with self.sessions() as s:
            moved = await s.execute(
                update(Notice)
                .where(Notice.id == notice.id, Notice.state == NoticeState.NEW)
                .values(state=state)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                await s.rollback()
                return False
            s.add_all(messages)
            if window is not None and notice.app_id is not None:
                await self._save_window(s, notice, window)
            await s.commit()
        return True

    @staticmethod
    async def _save_window(s: AsyncSession, notice: Notice, window: CrashWindow) -> None:
        row = await s.get(NoticeThrottle, notice.app_id)
        if row is None:
            row = NoticeThrottle(app_id=notice.app_id, user_id=notice.user_id)
            s.add(row)
        row.opened_at = window.opened_at
        row.suppressed = window.suppressed
        row.last_facts = notice.facts

    async def crash_window(self, app_id: str) -> CrashWindow:
        async with self.sessions() as s:
            row = await s.get(NoticeThrottle, app_id)
        return CrashWindow() if row is None else CrashWindow(row.opened_at, row.suppressed)

    async def windows_with_suppressed(self) -> Sequence[NoticeThrottle]:
        stmt = select(NoticeThrottle).where(NoticeThrottle.suppressed > 0)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def record_digest(self, throttle: NoticeThrottle, now: datetime) -> None:
        """The digest of a window's quiet crashes, and a new window from now, together."""
        facts = {**throttle.last_facts, "crashes": throttle.suppressed}
        async with self.sessions() as s:
            reset = await s.execute(
                update(NoticeThrottle)
                .where(
                    NoticeThrottle.app_id == throttle.app_id,
                    NoticeThrottle.suppressed == throttle.suppressed,
                )
                .values(opened_at=now, suppressed=0)
            )
            if reset.rowcount == 1:  # type: ignore[attr-defined]
                kind = NoticeKind.CRASH_DIGEST
                await record_notice(s, kind, throttle.user_id, throttle.app_id, facts)
            await s.commit()

    async def app_state(self, app_id: str) -> str | None:
        async with self.sessions() as s:
            stmt = select(Application.state).where(Application.id == app_id)
            return (await s.execute(stmt)).scalar_one_or_none()

    async def crashed_since(self, app_id: str, notice_id: int) -> bool:
        stmt = select(Notice.id).where(
            Notice.app_id == app_id, Notice.kind == NoticeKind.APP_CRASHED, Notice.id > notice_id
        )
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(1))).first() is not None

    async def recipients(self, user_id: str, kind: NoticeKind) -> Recipients | None:
        """None when the user is gone or disabled."""
        async with self.sessions() as s:
            user = await s.get(User, user_id)
            if user is None or user.disabled:
                return None
            wants_mail = await self._email_on(s, user_id, PREFERENCE_OF.get(kind, kind))
            hooks = (await s.execute(select(Webhook).where(Webhook.user_id == user_id))).scalars()
            webhooks = [h for h in hooks if not h.kinds or kind.value in h.kinds]
        address = user.email if user.email and user.email_verified and wants_mail else None
        return Recipients(user.username, address, webhooks)

    @staticmethod
    async def _email_on(s: AsyncSession, user_id: str, kind: NoticeKind) -> bool:
        row = await s.get(NoticePreference, (user_id, kind.value))
        return email_by_default(kind) if row is None else row.email

    # --- preferences ----------------------------------------------------------------------
    async def preferences(self, user_id: str) -> dict[str, bool]:
        """The user's choice where they made one (the defaults are the caller's to add)."""
        stmt = select(NoticePreference).where(NoticePreference.user_id == user_id)
        async with self.sessions() as s:
            return {p.kind: p.email for p in (await s.execute(stmt)).scalars()}

    async def set_preferences(self, user_id: str, email: Mapping[str, bool]) -> None:
        async with self.sessions() as s:
            for kind, on in email.items():
                row = await s.get(NoticePreference, (user_id, kind))
                if row is None:
                    s.add(NoticePreference(user_id=user_id, kind=kind, email=on))
                else:
                    row.email = on
            await s.commit()

    # --- webhooks -------------------------------------------------------------------------
    async def add_webhook(self, hook: Webhook) -> Webhook:
        async with self.sessions() as s:
            s.add(hook)
            await s.commit()
        return hook

    async def webhooks(self, user_id: str) -> Sequence[Webhook]:
        stmt = select(Webhook).where(Webhook.user_id == user_id).order_by(Webhook.created_at)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def webhook(self, user_id: str, webhook_id: str) -> Webhook | None:
        """The user's webhook; someone else's is None like a missing one."""
        async with self.sessions() as s:
            hook = await s.get(Webhook, webhook_id)
        return hook if hook is not None and hook.user_id == user_id else None

    async def delete_webhook(self, user_id: str, webhook_id: str) -> bool:
        async with self.sessions() as s:
            gone = await s.execute(
                delete(Webhook).where(Webhook.id == webhook_id, Webhook.user_id == user_id)
            )
            await s.commit()
        return bool(gone.rowcount)  # type: ignore[attr-defined]

    async def webhook_by_id(self, webhook_id: str) -> Webhook | None:
        async with self.sessions() as s:
            return await s.get(Webhook, webhook_id)

    # --- the outbox -----------------------------------------------------------------------
    async def due_messages(
        self, now: datetime, limit: int, channels: Sequence[str]
    ) -> Sequence[OutboxMessage]:
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == DeliveryStatus.PENDING,
                OutboxMessage.next_attempt_at <= now,
                OutboxMessage.channel.in_(channels),
            )
            .order_by(OutboxMessage.next_attempt_at)
            .limit(limit)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def claim(self, message: OutboxMessage, until: datetime) -> bool:
        """Take a due message for one attempt (counted); a sender that dies mid-way leaves
        it due again at `until`."""
        async with self.sessions() as s:
            taken = await s.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == message.id,
                    OutboxMessage.attempts == message.attempts,
                    OutboxMessage.status == DeliveryStatus.PENDING,
                )
                .values(attempts=OutboxMessage.attempts + 1, next_attempt_at=until)
            )
            await s.commit()
        return bool(taken.rowcount == 1)  # type: ignore[attr-defined]

    async def finish(
        self,
        message_id: str,
        status: DeliveryStatus,
        reply: str,
        next_attempt_at: datetime | None = None,
        scrub: bool = False,
    ) -> None:
        """Record an attempt's outcome: sent, failed for good, or pending until the next try.
        `scrub` drops the body once sent (it held a single-use link)."""
        values: dict[str, Any] = {"status": status, "last_reply": reply[:2000]}
        if status == DeliveryStatus.SENT:
            values["sent_at"] = utcnow()
        if status == DeliveryStatus.FAILED:
            values["error"] = reply[:2000]
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if scrub:
            values.update(body="(sent; the link is not kept)", body_html=None)
        async with self.sessions() as s:
            await s.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values)
            )
            await s.commit()

    async def messages_of(
        self, user_id: str, limit: int = 50, kind: str | None = None
    ) -> Sequence[OutboxMessage]:
        stmt = select(OutboxMessage).where(OutboxMessage.user_id == user_id)
        if kind is not None:
            stmt = stmt.where(OutboxMessage.kind == kind)
        stmt = stmt.order_by(OutboxMessage.created_at.desc()).limit(limit)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def add_message(self, message: OutboxMessage) -> None:
        async with self.sessions() as s:
            s.add(message)
            await s.commit()

    async def prune(self, before: datetime) -> None:
        """Forget settled notices, and sent or failed messages, written before `before`."""
        async with self.sessions() as s:
            await s.execute(
                delete(Notice).where(Notice.state != NoticeState.NEW, Notice.created_at < before)
            )
            await s.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.status != DeliveryStatus.PENDING,
                    OutboxMessage.created_at < before,
                )
            )
            await s.commit()

    async def pending_count(self) -> int:
        stmt = select(func.count()).where(OutboxMessage.status == DeliveryStatus.PENDING)
        async with self.sessions() as s:
            return int((await s.execute(stmt)).scalar_one())
