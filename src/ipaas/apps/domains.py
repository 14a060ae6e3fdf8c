"""Custom domains of apps as users see them: add one (with its www/apex partner), prove it is
yours in DNS, get it served with a certificate from the ACME CA, remove it.

A domain is routed only once verified; Caddy asks `may_issue` before it requests a
certificate, so only verified domains of apps that have a route ever reach the CA. Caddy's
issuance results come back through `watch_once`: a failure is an event of the app with the
CA's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from typing import Any

import structlog

from ipaas.apps.deployer import Deployer
from ipaas.config import DomainSettings
from ipaas.dnslookup.base import DnsLookup
from ipaas.domain.domains import (
    CertificateInfo,
    CertState,
    Record,
    cert_state,
    counterpart,
    domain_problem,
    normalize,
    records_to_set,
    verified_by,
)
from ipaas.domain.errors import Conflict, InvalidInput, LimitReached, NotFoundError
from ipaas.router.base import Router
from ipaas.store.apps import AppStore
from ipaas.store.domains import DomainStore, DomainTaken, TooManyDomains
from ipaas.store.models import AppDomain, Application, utcnow

log = structlog.get_logger()


@dataclass(frozen=True)
class DomainView:
    """One domain with what it takes to be served, and its certificate."""

    row: AppDomain
    url: str
    missing: list[Record]  # records that would verify it (empty once verified)
    certificate: CertificateInfo | None
    cert_state: CertState


class DomainService:
    def __init__(
        self,
        domains: DomainStore,
        apps: AppStore,
        deployer: Deployer,
        router: Router,
        dns: DnsLookup,
        settings: DomainSettings,
        base_domain: str,
        tls: bool,
    ) -> None:
        self.domains = domains
        self.apps = apps
        self.deployer = deployer
        self.router = router
        self.dns = dns
        self.settings = settings
        self.base_domain = base_domain
        self.tls = tls
        self._watcher: asyncio.Task[None] | None = None

    # --- what users ask for -------------------------------------------------------------------
    async def add(self, app: Application, name: str, redirect_www: bool) -> list[DomainView]:
        """Claim the name (and its www/apex partner) for the app, then check its DNS at once."""
        host = self._usable(name)
        token = secrets.token_urlsafe(24)
        rows = [AppDomain(app_id=app.id, host=host, token=token, lookup={})]
        if redirect_www:
            partner = counterpart(host)
            if partner is None:
                raise InvalidInput(f"{host} has no www or apex partner", code="domain_invalid")
            self._usable(partner)
            rows.append(
                AppDomain(app_id=app.id, host=partner, redirect_to=host, token=token, lookup={})
            )
        await self._claim(rows, host)
        partner_note = f" ({rows[-1].host} redirects to it)" if redirect_www else ""
        await self.apps.note(app.id, f"domain {host} added{partner_note}")
        await self._check(app, rows)
        return [await self.get(app, row.host) for row in rows]

    def _usable(self, name: str) -> str:
        host = normalize(name)
        refusal = domain_problem(host, self.base_domain, self.settings.reserved)
        if refusal is not None:
            raise InvalidInput(f"{host!r} cannot be added: {refusal.why}", code=refusal.code)
        return host

    async def _claim(self, rows: list[AppDomain], host: str) -> None:
        try:
            await self.domains.add(rows, self.settings.max_per_app)
        except DomainTaken:
            names = " or ".join(row.host for row in rows)
            raise Conflict(f"{names} is already an app's domain", code="domain_taken") from None
        except TooManyDomains:
            raise LimitReached(
                f"an app has at most {self.settings.max_per_app} domains",
                code="too_many_domains",
            ) from None

    async def of_app(self, app: Application) -> list[DomainView]:
        return [self._view(row) for row in await self.domains.of_app(app.id)]

    async def get(self, app: Application, name: str) -> DomainView:
        return self._view(await self._row(app, name))

    async def _row(self, app: Application, name: str) -> AppDomain:
        row = await self.domains.get(app.id, normalize(name))
        if row is None:
            raise NotFoundError.of("domain")
        return row

    async def verify(self, app: Application, name: str) -> DomainView:
        """Look at the domain's DNS again (and its partner's)."""
        row = await self._row(app, name)
        partners = [d for d in await self.domains.of_app(app.id) if d.redirect_to == row.host]
        await self._check(app, [row, *partners])
        return await self.get(app, row.host)

    async def remove(self, app: Application, name: str) -> None:
        """Unclaim the domain and its partner: their routes go, then their certificates."""
        host = normalize(name)
        removed = await self.domains.remove(app.id, host)
        if not removed:
            raise NotFoundError.of("domain")
        await self.deployer.reroute(app.id, app.name)
        for gone in removed:
            self.router.forget_certificate(gone)
        await self.apps.note(app.id, f"domain {', '.join(removed)} removed")

    async def may_issue(self, name: str) -> bool:
        """Caddy's question before it asks the CA: is this a verified domain of a routed app?"""
        return await self.domains.routed(normalize(name))

    # --- verification -------------------------------------------------------------------------
    async def _check(self, app: Application, rows: list[AppDomain]) -> None:
        newly = []
        for row in rows:
            lookup = await self.dns.lookup(row.host)
            method = verified_by(lookup, self.settings.public_addresses, row.token)
            found: dict[str, Any] = {
                "addresses": list(lookup.addresses),
                "txt": list(lookup.txt),
                "error": lookup.error,
            }
            await self.domains.record_check(row.id, method, found)
            if method is not None and row.verified_at is None:
                newly.append(f"domain {row.host} verified ({method.value})")
        if newly:
            await self.deployer.reroute(app.id, app.name)  # served from now on
            for note in newly:
                await self.apps.note(app.id, note)

    def _view(self, row: AppDomain) -> DomainView:
        verified = row.verified_at is not None
        certificate = self.router.certificate(row.host) if verified and self.tls else None
        missing = [] if verified else records_to_set(
            row.host, self.settings.public_addresses, row.token
        )  # fmt: skip
        state = cert_state(
            verified=verified,
            tls=self.tls,
            certificate=certificate,
            failed=row.cert_error is not None,
            now=utcnow(),
        )
        return DomainView(row, self.router.url_for(row.host), missing, certificate, state)

    # --- certificates -------------------------------------------------------------------------
    async def watch_once(self) -> None:
        """Record what Caddy's ACME client did since the last look; a failure (or a success
        after one) is an event of the app."""
        for issuance in self.router.issuances():
            app_id = await self.domains.record_issuance(issuance.host, issuance.error, issuance.at)
            if app_id is None:
                continue
            if issuance.error is None:
                note = f"certificate for {issuance.host} issued"
            else:
                note = f"certificate for {issuance.host} failed: {issuance.error}"
            await self.apps.note(app_id, note)

    async def start(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="certificate-watch")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def _watch(self) -> None:
        while True:
            try:
                await self.watch_once()
            except Exception:  # noqa: BLE001 - a bad read must not end the watch
                log.exception("certificate watch failed")
            await asyncio.sleep(self.settings.watch_interval_s)
