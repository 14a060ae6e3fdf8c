"""/validate: check a name or a repository before creating an app (steps 1 and 5 of the seed)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends

from ipaas.api.deps import current_user, platform
from ipaas.api.schemas import DNS_LABEL, NameCheck, NameCheckOut, RepoCheck, RepoCheckOut
from ipaas.apps.service import AppService, Principal
from ipaas.domain.repos import redact_url
from ipaas.platform import Platform

router = APIRouter(prefix="/validate", tags=["validate"])
_LABEL = re.compile(DNS_LABEL)
RESERVED = frozenset({"api", "www", "admin", "ipaas", "dashboard", "static"})


def name_problem(name: str) -> str | None:
    if not 2 <= len(name) <= 63:
        return "a name has 2 to 63 characters"
    if not _LABEL.match(name):
        return "lowercase letters, digits and '-', not starting or ending with '-'"
    if name in RESERVED:
        return "this name is reserved"
    return None


@router.post("/name", response_model=NameCheckOut)
async def validate_name(
    body: NameCheck, _: Principal = Depends(current_user), p: Platform = Depends(platform)
) -> NameCheckOut:
    problem = name_problem(body.name)
    if problem:
        return NameCheckOut(name=body.name, valid=False, available=False, reason=problem)
    taken = await p.apps.names_exist(body.name)
    reason = "the name is taken" if taken else None
    return NameCheckOut(name=body.name, valid=True, available=not taken, reason=reason)


@router.post("/repo", response_model=RepoCheckOut)
async def validate_repo(
    body: RepoCheck, who: Principal = Depends(current_user), p: Platform = Depends(platform)
) -> RepoCheckOut:
    info = await AppService(p).check_repo(who, body.repo)
    branch_exists = None if body.branch is None else body.branch in info.branches
    return RepoCheckOut(
        repo=redact_url(body.repo),  # a token pasted in the URL is not echoed back
        exists=True,
        default_branch=info.default_branch,
        branches=info.branches,
        branch_exists=branch_exists,
    )
