"""Push webhooks: an app's webhook URL and secret (its owner's), and the deliveries endpoint
GitHub, Gitea/Forgejo and GitLab post to (no login: the signature is the proof)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ipaas.api.deps import owned_app, settings
from ipaas.apps.pushes import PushHooks
from ipaas.config import Settings
from ipaas.store.models import Application

router = APIRouter(tags=["webhooks"])


def push_hooks(request: Request) -> PushHooks:
    return cast(PushHooks, request.app.state.push_hooks)


class WebhookOut(BaseModel):
    url: str
    secret: str
    content_type: str = "application/json"
    events: list[str] = ["push", "pull_request"]


class DeliveryOut(BaseModel):
    delivery_id: str
    forge: str
    event: str
    outcome: str
    reason: str
    commit: str | None
    build_number: int | None
    received_at: datetime


def _webhook(config: Settings, app: Application, secret: str) -> WebhookOut:
    return WebhookOut(url=f"{config.api_url.rstrip('/')}/api/v1/hooks/{app.id}", secret=secret)


@router.get("/applications/{app_id}/webhook", response_model=WebhookOut)
async def get_webhook(
    app: Application = Depends(owned_app),
    hooks: PushHooks = Depends(push_hooks),
    config: Settings = Depends(settings),
) -> WebhookOut:
    """The URL and secret to give GitHub (content type JSON); the secret is made on first use."""
    return _webhook(config, app, await hooks.secret(app))


@router.post("/applications/{app_id}/webhook/rotate", response_model=WebhookOut)
async def rotate_webhook(
    app: Application = Depends(owned_app),
    hooks: PushHooks = Depends(push_hooks),
    config: Settings = Depends(settings),
) -> WebhookOut:
    return _webhook(config, app, await hooks.secret(app, rotate=True))


@router.get("/applications/{app_id}/webhook/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    limit: int = Query(50, ge=1, le=500),
    app: Application = Depends(owned_app),
    hooks: PushHooks = Depends(push_hooks),
) -> list[DeliveryOut]:
    rows = await hooks.history(app, limit)
    return [DeliveryOut.model_validate(r, from_attributes=True) for r in rows]


class AppHandledOut(BaseModel):
    app_id: str
    outcome: str
    reason: str
    commit: str | None
    build: int | None


class GitHubAppDeliveryOut(BaseModel):
    outcome: str  # pong | handled | ignored
    apps: list[AppHandledOut]


@router.post("/hooks/github", response_model=GitHubAppDeliveryOut)
async def receive_for_github_app(
    request: Request, hooks: PushHooks = Depends(push_hooks)
) -> JSONResponse:
    """A delivery of the platform's GitHub App (its webhook secret): acted on for every app
    deployed from the repository, each recorded with that app's deliveries."""
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    handled = await hooks.receive_for_github_app(headers, body)
    apps = [AppHandledOut(app_id=a, **h.__dict__) for a, h in handled if a]
    outcome = "pong" if handled and not handled[0][0] else ("handled" if apps else "ignored")
    status = 202 if any(a.build is not None for a in apps) else 200
    out = GitHubAppDeliveryOut(outcome=outcome, apps=apps)
    return JSONResponse(out.model_dump(), status_code=status)


@router.post("/hooks/{app_id}", status_code=200)
async def receive(
    app_id: str, request: Request, hooks: PushHooks = Depends(push_hooks)
) -> JSONResponse:
    """A delivery: 401 for a bad signature, 2xx with the outcome and the reason otherwise."""
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    handled = await hooks.receive(app_id, headers, body)
    status = 202 if handled.build is not None else 200
    return JSONResponse(handled.__dict__, status_code=status)
