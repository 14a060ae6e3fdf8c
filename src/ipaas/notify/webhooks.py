"""Outgoing webhooks: the payload in each mode, its HMAC-SHA256 signature, the address check
(a tenant's webhook must not reach the platform's own services) and the POST itself."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ipaas.builds import repo_guard
from ipaas.builds.base import BuildFailed
from ipaas.builds.repo_guard import Resolver, known_answer
from ipaas.config import NotifySettings
from ipaas.domain.addresses import AddressPolicy, host_refusal, literal_address
from ipaas.domain.errors import InvalidInput
from ipaas.domain.notices import WebhookMode, http_temporary
from ipaas.notify.base import Reply

if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-Ipaas-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`: the receiver recomputes it
    with the shared secret, and the timestamp lets it refuse replays of old deliveries."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def payload(mode: WebhookMode, event: Mapping[str, Any], summary: str) -> dict[str, Any]:
    """The body for the receiver's kind: the whole event as JSON, or a chat message."""
    if mode == WebhookMode.SLACK:
        return {"text": summary}
    if mode == WebhookMode.DISCORD:
        return {"content": summary[:2000]}
    return dict(event)


def signed_headers(secret: str, body: bytes, kind: str, delivery_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "ipaas-webhooks",
        "X-Ipaas-Event": kind,
        "X-Ipaas-Delivery": delivery_id,
        SIGNATURE_HEADER: signature(secret, int(time.time()), body),
    }


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Target:
    """Where a webhook's POST goes: the URL, and the checked address to connect to (None:
    the operator allowed the host by name)."""

    url: str
    host: str
    ip: str | None


class WebhookGuard:
    """Webhook URLs: http(s) only, and hosts that resolve to public addresses (the operator's
    allowed hosts and networks aside). Checked when a webhook is saved and before each POST."""

    def __init__(self, settings: NotifySettings, resolver: Resolver | None = None) -> None:
        self._policy = AddressPolicy.from_lists(
            settings.webhook_allowed_hosts, settings.webhook_allowed_networks
        )
        self._resolver = resolver
        self._timeout_s = settings.webhook_timeout_s

    async def target(self, url: str) -> Target:
        """The checked target, or InvalidInput saying why the URL may not be used."""
        parts = _parts(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if self._policy.host_allowed(host):
            return Target(url, host, None)
        addresses = await self._resolve(host, parts.port or _port(parts.scheme))
        refusal = host_refusal(host, addresses, self._policy)
        if refusal is not None:
            raise InvalidInput(f"webhook host refused: {refusal}", code="webhook_host_forbidden")
        if not addresses:
            raise InvalidInput(f"{host} does not resolve", code="webhook_host_unknown")
        return Target(url, host, addresses[0])

    async def _resolve(self, host: str, port: int) -> list[str]:
        known = known_answer(host)
        if known is not None:
            return known
        try:
            resolve = self._resolver or repo_guard.system_resolve
            return await asyncio.wait_for(resolve(host, port), self._timeout_s)
        except (TimeoutError, BuildFailed):
            raise InvalidInput(f"cannot resolve {host}", code="webhook_host_unknown") from None


def _parts(url: str) -> Any:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidInput("not a valid URL", code="invalid_webhook_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise InvalidInput(
            "a webhook URL is http(s)://host/path, without credentials",
            code="invalid_webhook_url",
        )
    return parts


def _port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class HttpWebhookPoster:
    """POSTs to the checked address (the host name stays in Host and TLS), no redirects."""

    def __init__(self, guard: WebhookGuard, timeout_s: float) -> None:
        self.guard = guard
        self.timeout_s = timeout_s

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        import httpx  # with the first webhook: the idle control plane stays lighter

        try:
            target = await self.guard.target(url)
        except InvalidInput as exc:
            return Reply.refused(exc.detail)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as c:
                response = await c.send(_pinned_request(c, target, body, headers))
        except httpx.HTTPError as exc:
            return Reply.later(f"{type(exc).__name__}: {exc}")
        text = f"HTTP {response.status_code} {response.text[:500]}".strip()
        if response.is_success:
            return Reply.sent(text)
        return Reply.later(text) if http_temporary(response.status_code) else Reply.refused(text)


def _pinned_request(
    client: httpx.AsyncClient, target: Target, body: bytes, headers: Mapping[str, str]
) -> httpx.Request:
    parts = urlsplit(target.url)
    url = target.url
    extensions: dict[str, Any] = {}
    if target.ip is not None and literal_address(target.host) is None:
        ip = f"[{target.ip}]" if ":" in target.ip else target.ip
        netloc = f"{ip}:{parts.port}" if parts.port else ip
        url = urlunsplit(parts._replace(netloc=netloc))
        extensions["sni_hostname"] = target.host
    request = client.build_request("POST", url, content=body, headers=dict(headers))
    request.headers["Host"] = parts.netloc
    request.extensions.update(extensions)
    return request
