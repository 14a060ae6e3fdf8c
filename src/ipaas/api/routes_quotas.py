"""/users/.../quota: a user's limits and usage; admins set them. And the 422 `quota_exceeded`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ipaas.api.deps import admin_user, current_user, quota_store
from ipaas.api.errors import problem_response
from ipaas.api.schemas import Strict
from ipaas.apps.service import Principal
from ipaas.domain.errors import NotFoundError
from ipaas.domain.quotas import Amounts, remaining
from ipaas.store.quotas import QuotaExceeded, QuotaReport, QuotaStore

router = APIRouter(tags=["quotas"])


class QuotaAmounts(BaseModel):
    apps: int
    memory_mb: int
    cpus: float
    volumes: int


class QuotaOut(BaseModel):
    limits: QuotaAmounts
    used: QuotaAmounts
    remaining: QuotaAmounts
    # The user's own limits set by an admin; null: the operator's default applies.
    overrides: dict[str, float | None]


class QuotaSet(Strict):
    """Every kind; null (or absent) puts that kind back on the operator's default."""

    apps: int | None = Field(default=None, ge=0, le=100_000)
    memory_mb: int | None = Field(default=None, ge=0, le=100_000_000)
    cpus: float | None = Field(default=None, ge=0, le=100_000)
    volumes: int | None = Field(default=None, ge=0, le=100_000)


def _amounts(a: Amounts) -> QuotaAmounts:
    return QuotaAmounts(**a.as_dict())  # type: ignore[arg-type]


def _out(report: QuotaReport) -> QuotaOut:
    return QuotaOut(
        limits=_amounts(report.limits),
        used=_amounts(report.used),
        remaining=_amounts(remaining(report.used, report.limits)),
        overrides=report.overrides,
    )


async def _report(quotas: QuotaStore, user_id: str) -> QuotaOut:
    report = await quotas.report(user_id)
    if report is None:
        raise NotFoundError.of("user")
    return _out(report)


# Before /users/{user_id}/quota, so "me" is not taken for an id.
@router.get("/users/me/quota", response_model=QuotaOut)
async def my_quota(
    who: Principal = Depends(current_user), quotas: QuotaStore = Depends(quota_store)
) -> QuotaOut:
    return await _report(quotas, who.user_id)


@router.get("/users/{user_id}/quota", response_model=QuotaOut)
async def user_quota(
    user_id: str, _: Principal = Depends(admin_user), quotas: QuotaStore = Depends(quota_store)
) -> QuotaOut:
    return await _report(quotas, user_id)


@router.put("/users/{user_id}/quota", response_model=QuotaOut)
async def set_user_quota(
    user_id: str,
    body: QuotaSet,
    _: Principal = Depends(admin_user),
    quotas: QuotaStore = Depends(quota_store),
) -> QuotaOut:
    if not await quotas.set_overrides(user_id, body.model_dump()):
        raise NotFoundError.of("user")
    return await _report(quotas, user_id)


async def _quota_exceeded(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaExceeded)
    d = exc.decision
    if d.too_large:
        detail = f"one application may not ask for this much: {', '.join(d.too_large)}"
    else:
        detail = f"this would go over your quota: {', '.join(d.exceeded)}"
    return problem_response(
        422,
        "quota_exceeded",
        detail,
        exceeded=list(d.exceeded),
        too_large=list(d.too_large),
        remaining=d.remaining.as_dict(),
    )


def install(app: FastAPI) -> None:
    app.include_router(router, prefix="/api/v1")
    app.add_exception_handler(QuotaExceeded, _quota_exceeded)
