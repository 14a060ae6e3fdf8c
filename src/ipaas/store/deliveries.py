"""Webhook deliveries received for apps: one row per delivery id, kept with its outcome."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.store.models import WebhookDelivery, new_id


class DeliveryStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def claim(self, app_id: str, delivery_id: str, forge: str, event: str) -> str | None:
        """Record a delivery as being handled; None when that id was received before (the
        unique key decides, so two copies arriving at once cannot both pass)."""
        row = WebhookDelivery(
            id=new_id(),
            app_id=app_id,
            delivery_id=delivery_id,
            forge=forge,
            event=event,
            outcome="received",
            reason="",
        )
        async with self.sessions() as s:
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                return None
        return row.id

    async def settle(
        self,
        row_id: str,
        outcome: str,
        reason: str,
        commit: str | None = None,
        build_number: int | None = None,
    ) -> None:
        values = {"outcome": outcome, "reason": reason[:2000], "commit": commit}
        async with self.sessions() as s:
            await s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == row_id)
                .values(**values, build_number=build_number)
            )
            await s.commit()

    async def of_app(self, app_id: str, limit: int = 50) -> Sequence[WebhookDelivery]:
        stmt = (
            select(WebhookDelivery)
            .where(WebhookDelivery.app_id == app_id)
            .order_by(WebhookDelivery.received_at.desc())
            .limit(limit)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()
