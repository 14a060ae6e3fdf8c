"""/applications/{id}/domains: an app's custom domains, their DNS verification and their
certificates; and `/.ipaas/ask`, where Caddy asks before it requests a certificate."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from ipaas.api.deps import owned_app
from ipaas.api.errors import problem_response
from ipaas.api.schemas import Strict
from ipaas.apps.domains import DomainService, DomainView
from ipaas.domain.domains import MAX_DOMAIN_LENGTH
from ipaas.store.models import Application

router = APIRouter(prefix="/applications", tags=["domains"])
ask_router = APIRouter(include_in_schema=False)
DomainName = Path(description="the domain, e.g. shop.example.com")


def domain_service(request: Request) -> DomainService:
    return cast(DomainService, request.app.state.domain_service)


class DomainAdd(Strict):
    domain: str = Field(min_length=1, max_length=MAX_DOMAIN_LENGTH + 1)
    # Also claim the www/apex partner (`www.shop.com` ↔ `shop.com`), redirecting to `domain`.
    redirect_www: bool = False


class RecordOut(BaseModel):
    type: str
    name: str
    value: str


class CertificateOut(BaseModel):
    state: str  # unverified, no_tls, pending, issued, expired, failed
    issuer: str | None
    not_after: datetime | None
    error: str | None  # the CA's answer to the last failed request
    error_at: datetime | None


class DomainOut(BaseModel):
    domain: str
    redirect_to: str | None  # a www/apex partner: the domain it redirects to
    url: str
    verified: bool
    verified_by: str | None  # address | txt
    verified_at: datetime | None
    checked_at: datetime | None
    # What DNS said at the last check: {"addresses": [...], "txt": [...], "error": ...}.
    found: dict[str, Any]
    # Until verified: the records that would verify it (any one of them).
    missing: list[RecordOut]
    certificate: CertificateOut
    created_at: datetime


def domain_out(view: DomainView) -> DomainOut:
    row, cert = view.row, view.certificate
    return DomainOut(
        domain=row.host,
        redirect_to=row.redirect_to,
        url=view.url,
        verified=row.verified_at is not None,
        verified_by=row.verified_by,
        verified_at=row.verified_at,
        checked_at=row.checked_at,
        found=row.lookup,
        missing=[RecordOut(type=r.type, name=r.name, value=r.value) for r in view.missing],
        certificate=CertificateOut(
            state=view.cert_state.value,
            issuer=cert.issuer if cert else None,
            not_after=cert.not_after if cert else None,
            error=row.cert_error,
            error_at=row.cert_error_at,
        ),
        created_at=row.created_at,
    )


@router.post("/{app_id}/domains", status_code=201, response_model=list[DomainOut])
async def add_domain(
    body: DomainAdd,
    app: Application = Depends(owned_app),
    svc: DomainService = Depends(domain_service),
) -> list[DomainOut]:
    """The domain (and its partner with `redirect_www`), checked in DNS at once."""
    return [domain_out(v) for v in await svc.add(app, body.domain, body.redirect_www)]


@router.get("/{app_id}/domains", response_model=list[DomainOut])
async def list_domains(
    app: Application = Depends(owned_app), svc: DomainService = Depends(domain_service)
) -> list[DomainOut]:
    return [domain_out(v) for v in await svc.of_app(app)]


@router.get("/{app_id}/domains/{domain}", response_model=DomainOut)
async def get_domain(
    domain: str = DomainName,
    app: Application = Depends(owned_app),
    svc: DomainService = Depends(domain_service),
) -> DomainOut:
    return domain_out(await svc.get(app, domain))


@router.post("/{app_id}/domains/{domain}/verify", response_model=DomainOut)
async def verify_domain(
    domain: str = DomainName,
    app: Application = Depends(owned_app),
    svc: DomainService = Depends(domain_service),
) -> DomainOut:
    """Look at the domain's DNS again; a verified domain is served from then on."""
    return domain_out(await svc.verify(app, domain))


@router.delete("/{app_id}/domains/{domain}", status_code=204)
async def remove_domain(
    domain: str = DomainName,
    app: Application = Depends(owned_app),
    svc: DomainService = Depends(domain_service),
) -> Response:
    """The domain (and the partner redirecting to it) stops being served; its certificate
    is dropped."""
    await svc.remove(app, domain)
    return Response(status_code=204)


@ask_router.get("/.ipaas/ask")
async def may_issue(
    domain: str = Query("", max_length=MAX_DOMAIN_LENGTH + 1),
    svc: DomainService = Depends(domain_service),
) -> Response:
    """200: Caddy may request a certificate for the name (a verified domain of an app that
    has a route); anything else: it must not."""
    if domain and await svc.may_issue(domain):
        return Response(status_code=200)
    return problem_response(403, "not_allowed", "no certificate for this name")
