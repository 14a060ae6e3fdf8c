"""Push webhooks for apps: a secret per app, genuine deliveries only, each delivery handled
once, and a push to the app's branch rebuilding exactly the pushed commit."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ipaas.apps.previews import Previews
from ipaas.apps.service import AppService
from ipaas.auth.keys import Cipher
from ipaas.domain.errors import Conflict, InvalidInput, LimitReached, NotFoundError, Unauthenticated
from ipaas.domain.pushes import (
    Delivery,
    Outcome,
    decide_pull_request,
    decide_push,
    genuine,
    read_headers,
    signed_by_github,
)
from ipaas.domain.states import IllegalTransition, State
from ipaas.store.apps import AppStore, NotFound
from ipaas.store.deliveries import DeliveryStore
from ipaas.store.models import Application, WebhookDelivery

log = structlog.get_logger()


@dataclass(frozen=True)
class Handled:
    """What the sender is told: the outcome, why, and the build it started, if any."""

    outcome: str  # rebuild | ignored | pong | duplicate | preview_deploy | preview_delete
    reason: str
    commit: str | None = None
    build: int | None = None


class PushHooks:
    def __init__(
        self,
        apps: AppStore,
        deliveries: DeliveryStore,
        cipher: Cipher,
        service: AppService,
        previews: Previews,
        github_app_secret: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.apps = apps
        self.deliveries = deliveries
        self.cipher = cipher
        self.service = service
        self.previews = previews
        self.github_app_secret = github_app_secret  # the platform's GitHub App's webhook

    # --- the owner's side ---------------------------------------------------------------------
    async def secret(self, app: Application, rotate: bool = False) -> str:
        """The app's webhook secret, made on first use (or anew when rotating)."""
        if app.webhook_secret_encrypted and not rotate:
            return self.cipher.decrypt(app.webhook_secret_encrypted)
        secret = secrets.token_urlsafe(32)
        await self.apps.set_fields(app.id, webhook_secret_encrypted=self.cipher.encrypt(secret))
        return secret

    async def history(self, app: Application, limit: int) -> Sequence[WebhookDelivery]:
        return await self.deliveries.of_app(app.id, limit)

    # --- a delivery ---------------------------------------------------------------------------
    async def receive(self, app_id: str, headers: Mapping[str, str], body: bytes) -> Handled:
        """Unauthenticated (the signature is the proof): NotFoundError for an app without a
        webhook, Unauthenticated for a bad signature; nothing is recorded for either."""
        app = await self._app_with_secret(app_id)
        secret = self.cipher.decrypt(app.webhook_secret_encrypted or "")
        if not genuine(secret, body, headers):
            raise Unauthenticated(
                "the signature does not match the app's secret", code="bad_signature"
            )
        delivery = read_headers(headers)
        if delivery is None:
            raise InvalidInput("not a webhook of GitHub, Gitea or GitLab", code="unknown_sender")
        return await self._handle(app, delivery, body)

    async def receive_for_github_app(
        self, headers: Mapping[str, str], body: bytes
    ) -> list[tuple[str, Handled]]:
        """A delivery of the platform's GitHub App webhook (every repository it is installed
        on), signed with the App's webhook secret: handled for each app deployed from the
        repository as if it came to that app's own webhook. (app id, what it did) each."""
        secret = await self.github_app_secret() if self.github_app_secret else None
        if not secret:
            raise NotFoundError("this platform's GitHub App has no webhook", code="not_found")
        if not signed_by_github(secret, body, headers):
            raise Unauthenticated(
                "the signature does not match the GitHub App's secret", code="bad_signature"
            )
        delivery = read_headers(headers)
        if delivery is None or delivery.forge != "github":
            raise InvalidInput("not a webhook of GitHub", code="unknown_sender")
        payload = _payload(body)
        if delivery.event == "ping":
            return [("", Handled("pong", "ping answered"))]
        repository = payload.get("repository")
        full_name = repository.get("full_name") if isinstance(repository, dict) else None
        apps = await self.apps.of_github_repo(full_name) if isinstance(full_name, str) else []
        return [(app.id, await self._handle(app, delivery, body, payload)) for app in apps]

    async def _handle(
        self,
        app: Application,
        delivery: Delivery,
        body: bytes,
        payload: dict[str, Any] | None = None,
    ) -> Handled:
        """Once per delivery id and app: act, and record what was done."""
        delivery_id = delivery.delivery_id or hashlib.sha256(body).hexdigest()
        row = await self.deliveries.claim(app.id, delivery_id, delivery.forge, delivery.event)
        if row is None:
            return Handled("duplicate", f"delivery {delivery_id} was handled before")
        try:
            parsed = payload if payload is not None else _payload(body)
            handled = await self._act(app, delivery.event, parsed)
        except BaseException:
            await self.deliveries.settle(row, "error", "the platform failed to handle it")
            raise
        await self.deliveries.settle(
            row, handled.outcome, handled.reason, handled.commit, handled.build
        )
        log.info("webhook", app_id=app.id, kind=delivery.event, outcome=handled.outcome)
        return handled

    async def _app_with_secret(self, app_id: str) -> Application:
        try:
            app = await self.apps.get(app_id)
        except NotFound:
            app = None
        if app is None or not app.webhook_secret_encrypted or app.preview_of is not None:
            raise NotFoundError("no webhook for this app", code="not_found")
        return app

    async def _act(self, app: Application, event: str, payload: dict[str, Any]) -> Handled:
        if event == "ping":
            return Handled("pong", "ping answered")
        if event == "push":
            return await self._push(app, decide_push(payload, app.branch, app.root_directory))
        if event in ("pull_request", "merge_request"):
            outcome = decide_pull_request(
                payload, app.branch, previews=bool(app.previews), forks_allowed=False
            )
            return await self._pull_request(app, outcome)
        return Handled("ignored", f"event {event} is not acted on")

    async def _push(self, app: Application, outcome: Outcome) -> Handled:
        if outcome.action != "rebuild":
            return Handled(outcome.action, outcome.reason)
        reason = f"{outcome.reason} ({(outcome.commit or '')[:12]})"
        try:
            number = await self.service.rebuild(app.id, reason, commit=outcome.commit)
        except (IllegalTransition, NotFound):
            return Handled("ignored", f"the app is {State.DELETING.value}")
        return Handled("rebuild", outcome.reason, outcome.commit, number)

    async def _pull_request(self, app: Application, outcome: Outcome) -> Handled:
        if outcome.action == "preview_deploy":
            try:
                number = await self.previews.deploy(app, outcome)
            except (LimitReached, Conflict) as exc:
                return Handled("ignored", exc.detail)
            return Handled(outcome.action, outcome.reason, outcome.commit, number)
        if outcome.action == "preview_delete":
            await self.previews.delete(app, outcome.number or 0)
        return Handled(outcome.action, outcome.reason)


def _payload(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput("the payload is not JSON", code="bad_payload") from None
    if not isinstance(data, dict):
        raise InvalidInput("the payload is not a JSON object", code="bad_payload")
    return data
