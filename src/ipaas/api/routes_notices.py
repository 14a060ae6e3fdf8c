"""/users/me/notices: what was sent (and what the server answered), the user's choices per
kind of notice, outgoing webhooks, and "send a test" answering with the real reply."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from ipaas.api.deps import current_user, notice_sender, notice_store, settings, user_store
from ipaas.api.schemas import Strict
from ipaas.apps.service import Principal
from ipaas.config import Settings
from ipaas.domain.errors import Conflict, LimitReached, NotFoundError
from ipaas.domain.notices import CHOOSABLE_KINDS, WebhookMode, email_by_default
from ipaas.notify.base import Reply
from ipaas.notify.sender import NoticeSender
from ipaas.store.models import Webhook, new_id
from ipaas.store.notices import NoticeStore
from ipaas.store.users import UserStore

router = APIRouter(prefix="/users/me", tags=["notices"])
KindName = Literal[tuple(k.value for k in CHOOSABLE_KINDS)]  # type: ignore[valid-type]


class MessageOut(BaseModel):
    id: str
    kind: str | None
    channel: str
    to_address: str
    webhook_id: str | None
    subject: str
    status: str
    attempts: int
    last_reply: str | None
    created_at: datetime
    sent_at: datetime | None


class Preferences(Strict):
    """Per kind of notice: e-mail on or off. Kinds left out keep their setting."""

    email: dict[KindName, bool] = Field(default_factory=dict)  # type: ignore[valid-type]


class TestRequest(Strict):
    channel: Literal["email"] = "email"


class TestReply(BaseModel):
    ok: bool
    temporary: bool
    reply: str  # what the SMTP server or the receiver answered


class WebhookCreate(Strict):
    url: str = Field(min_length=8, max_length=2048)
    mode: WebhookMode = WebhookMode.JSON
    kinds: list[KindName] = Field(default_factory=list, max_length=50)  # type: ignore[valid-type]


class WebhookOut(BaseModel):
    id: str
    url: str
    mode: str
    kinds: list[str]
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str  # shown once: receivers check X-Ipaas-Signature with it


def _reply(reply: Reply) -> TestReply:
    return TestReply(ok=reply.ok, temporary=reply.temporary, reply=reply.text)


@router.get("/notices", response_model=list[MessageOut])
async def my_messages(
    limit: int = Query(50, ge=1, le=500),
    who: Principal = Depends(current_user),
    notices: NoticeStore = Depends(notice_store),
) -> list[MessageOut]:
    rows = await notices.messages_of(who.user_id, limit)
    return [MessageOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/notice-preferences", response_model=Preferences)
async def my_preferences(
    who: Principal = Depends(current_user), notices: NoticeStore = Depends(notice_store)
) -> Preferences:
    chosen = await notices.preferences(who.user_id)
    return Preferences(
        email={k.value: chosen.get(k.value, email_by_default(k)) for k in CHOOSABLE_KINDS}
    )


@router.put("/notice-preferences", response_model=Preferences)
async def set_preferences(
    body: Preferences,
    who: Principal = Depends(current_user),
    notices: NoticeStore = Depends(notice_store),
) -> Preferences:
    await notices.set_preferences(who.user_id, body.email)
    return await my_preferences(who, notices)


@router.post("/notices/test", response_model=TestReply)
async def test_mail(
    body: TestRequest,
    who: Principal = Depends(current_user),
    users: UserStore = Depends(user_store),
    sender: NoticeSender = Depends(notice_sender),
) -> TestReply:
    """Sends now, to the confirmed address, and answers with the SMTP server's reply."""
    user = await users.get(who.user_id)
    if user is None:
        raise NotFoundError.of("user")
    if not user.email or not user.email_verified:
        raise Conflict("confirm an e-mail address first", "email_not_verified")
    return _reply(await sender.test_mail(user.email, user.username))


@router.get("/webhooks", response_model=list[WebhookOut])
async def my_webhooks(
    who: Principal = Depends(current_user), notices: NoticeStore = Depends(notice_store)
) -> list[WebhookOut]:
    return [
        WebhookOut.model_validate(h, from_attributes=True)
        for h in await notices.webhooks(who.user_id)
    ]


@router.post("/webhooks", response_model=WebhookCreated, status_code=201)
async def add_webhook(
    body: WebhookCreate,
    who: Principal = Depends(current_user),
    notices: NoticeStore = Depends(notice_store),
    sender: NoticeSender = Depends(notice_sender),
    config: Settings = Depends(settings),
) -> WebhookCreated:
    if len(await notices.webhooks(who.user_id)) >= config.notify.max_webhooks:
        raise LimitReached(f"at most {config.notify.max_webhooks} webhooks per user")
    await sender.guard.target(body.url)  # 422 for a URL that may not be used
    secret = secrets.token_urlsafe(32)
    hook = Webhook(
        id=new_id(),
        user_id=who.user_id,
        url=body.url,
        mode=body.mode.value,
        secret_encrypted=sender.cipher.encrypt(secret),
        kinds=list(body.kinds),
    )
    await notices.add_webhook(hook)
    out = WebhookOut.model_validate(hook, from_attributes=True)
    return WebhookCreated(**out.model_dump(), secret=secret)


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: str,
    who: Principal = Depends(current_user),
    notices: NoticeStore = Depends(notice_store),
) -> Response:
    if not await notices.delete_webhook(who.user_id, webhook_id):
        raise NotFoundError.of("webhook")
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/test", response_model=TestReply)
async def test_webhook(
    webhook_id: str,
    who: Principal = Depends(current_user),
    notices: NoticeStore = Depends(notice_store),
    users: UserStore = Depends(user_store),
    sender: NoticeSender = Depends(notice_sender),
) -> TestReply:
    """POSTs a signed test event now and answers with the receiver's HTTP reply."""
    hook = await notices.webhook(who.user_id, webhook_id)
    if hook is None:
        raise NotFoundError.of("webhook")
    user = await users.get(who.user_id)
    return _reply(await sender.test_webhook(hook, user.username if user else ""))
