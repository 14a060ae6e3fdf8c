"""/validate: check a name or a repository before creating an app (steps 1 and 5 of the seed)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ipaas.api.deps import app_service, current_user
from ipaas.api.schemas import NameCheck, NameCheckOut, RepoCheck, RepoCheckOut
from ipaas.apps.service import AppService, Principal
from ipaas.domain.repo_access import redact_url

router = APIRouter(prefix="/validate", tags=["validate"])


@router.post("/name", response_model=NameCheckOut)
async def validate_name(
    body: NameCheck, _: Principal = Depends(current_user), svc: AppService = Depends(app_service)
) -> NameCheckOut:
    problem = svc.name_problem(body.name)
    if problem:
        return NameCheckOut(name=body.name, valid=False, available=False, reason=problem)
    taken = await svc.name_taken(body.name)
    reason = "the name is taken" if taken else None
    return NameCheckOut(name=body.name, valid=True, available=not taken, reason=reason)


@router.post("/repo", response_model=RepoCheckOut)
async def validate_repo(
    body: RepoCheck, who: Principal = Depends(current_user), svc: AppService = Depends(app_service)
) -> RepoCheckOut:
    info = await svc.check_repo(who, body.repo)
    branch_exists = None if body.branch is None else body.branch in info.branches
    return RepoCheckOut(
        repo=redact_url(body.repo),  # a token pasted in the URL is not echoed back
        exists=True,
        default_branch=info.default_branch,
        branches=info.branches,
        branch_exists=branch_exists,
    )
