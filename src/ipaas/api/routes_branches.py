"""Branches of any git repository: of a URL (`git ls-remote` through the platform's git runner
and repository rules), or of an app's repository with the credentials kept for it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from ipaas.api.deps import app_service, current_user, owned_app
from ipaas.api.routes_github import BranchOut, ListingOut
from ipaas.api.schemas import Strict
from ipaas.apps.service import AppService, Principal
from ipaas.providers.base import Branch, Page
from ipaas.store.models import Application

router = APIRouter(tags=["repositories"])


class GitBranchesQuery(Strict):
    # A URL as apps are created with: credentials in it are used for this listing only.
    repo: str = Field(min_length=1, max_length=2048)
    page: int = Field(default=1, ge=1, le=1000)
    per_page: int = Field(default=30, ge=1, le=100)


def _listing(found: Page[Branch]) -> ListingOut:
    items = [BranchOut(**b.__dict__).model_dump() for b in found.items]
    return ListingOut(
        items=items, page=found.page, per_page=found.per_page, has_next=found.has_next,
        rate_limit=None,
    )  # fmt: skip


@router.post("/providers/git/branches", response_model=ListingOut)
async def git_branches(
    body: GitBranchesQuery,
    who: Principal = Depends(current_user),
    svc: AppService = Depends(app_service),
) -> ListingOut:
    """A git repository's branches, the default one first, then by name (git tells no dates
    without fetching). POST: a URL may carry credentials, which stay out of access logs."""
    found = await svc.url_branches(who, body.repo, page=body.page, per_page=body.per_page)
    return _listing(found)


@router.get("/applications/{app_id}/branches", response_model=ListingOut)
async def app_branches(
    page: int = Query(1, ge=1, le=1000),
    per_page: int = Query(30, ge=1, le=100),
    app: Application = Depends(owned_app),
    who: Principal = Depends(current_user),
    svc: AppService = Depends(app_service),
) -> ListingOut:
    """The branches of the app's repository (to pick another one to track)."""
    return _listing(await svc.app_branches(who, app, page=page, per_page=per_page))
