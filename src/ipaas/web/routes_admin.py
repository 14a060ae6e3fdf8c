"""The admin pages (admins only; anyone else gets 403): users with their quotas, role,
disabling and removal; every app on the platform; the platform's health. The forms call the
API's own admin operations."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from ipaas.admin.health import PlatformHealth
from ipaas.admin.removal import AccountRemoval
from ipaas.api.deps import access_tokens, account_removal, quota_store, user_store
from ipaas.api.routes_accounts import (
    AdminUserChange,
    admin_change_user,
    admin_delete_user,
)
from ipaas.api.routes_quotas import QuotaSet, set_user_quota
from ipaas.auth.tokens import AccessTokens
from ipaas.domain.errors import IpaasError, NotFoundError
from ipaas.store.apps import AppStore
from ipaas.store.quotas import QuotaStore
from ipaas.store.users import UserStore
from ipaas.web.auth import Form, Visitor, admin, checked_form, first
from ipaas.web.forms import Errors, error_of, errors_of, given, number
from ipaas.web.pages import redirect, render

router = APIRouter(prefix="/admin", dependencies=[Depends(admin)])
PER_PAGE = 50
QUOTA_KINDS = ("apps", "memory_mb", "cpus", "volumes")
NOTES = {
    "quota": "Quota saved.",
    "disabled": "User disabled: their sessions and tokens stopped working.",
    "enabled": "User enabled.",
    "role": "Role changed: the user's sessions were ended so the new role applies.",
    "removed": "User removed, with their apps and databases.",
}


def health(request: Request) -> PlatformHealth:
    return cast(PlatformHealth, request.app.state.platform_health)


def app_store(request: Request) -> AppStore:
    return cast(AppStore, request.app.state.app_store)


def _page(request: Request, template: str, tab: str, status: int = 200, **context: Any) -> Response:
    note = NOTES.get(request.query_params.get("done", ""))
    return render(request, template, status, tab=tab, notice=note, **context)


@router.get("")
async def admin_home() -> Response:
    return redirect("/admin/users")


@router.get("/users")
async def users_page(
    request: Request,
    offset: int = Query(0, ge=0, le=10_000_000),
    users: UserStore = Depends(user_store),
) -> Response:
    rows, total = await users.list_users(PER_PAGE, offset)
    return _page(
        request, "admin_users.html", "users", users=rows, total=total, offset=offset,
        per_page=PER_PAGE,
    )  # fmt: skip


class OneUser:
    """What the forms on a user's page need: the admin, the stores, and the page again (with
    the form's errors) when a form is refused."""

    def __init__(
        self,
        request: Request,
        user_id: str,
        who: Visitor = Depends(admin),
        users: UserStore = Depends(user_store),
        quotas: QuotaStore = Depends(quota_store),
        tokens: AccessTokens = Depends(access_tokens),
    ) -> None:
        self.request = request
        self.user_id = user_id[:64]
        self.who = who
        self.users = users
        self.quotas = quotas
        self.tokens = tokens

    async def page(self, status: int = 200, **context: Any) -> Response:
        user = await self.users.get(self.user_id)
        report = await self.quotas.report(self.user_id)
        if user is None or report is None:
            raise NotFoundError.of("user")
        context.setdefault("errors", {})
        context.setdefault("values", {k: _shown(v) for k, v in report.overrides.items()})
        return _page(
            self.request, "admin_user.html", "users", status, user=user,
            limits=report.limits.as_dict(), used=report.used.as_dict(), **context,
        )  # fmt: skip

    def done(self, what: str) -> Response:
        return redirect(f"/admin/users/{self.user_id}?done={what}")


def _shown(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


@router.get("/users/{user_id}")
async def user_page(one: OneUser = Depends()) -> Response:
    return await one.page()


@router.post("/users/{user_id}/quota")
async def change_quota(form: Form = Depends(checked_form), one: OneUser = Depends()) -> Response:
    """Every kind: an empty field puts it back on the operator's default."""
    values = given(form, *QUOTA_KINDS)
    errors: Errors
    try:
        body = QuotaSet(**{k: number(v) for k, v in values.items()})
        await set_user_quota(one.user_id, body, one.who.principal, one.quotas)
    except ValidationError as exc:
        errors = errors_of(exc)
    except IpaasError as exc:
        errors = error_of(exc)
    else:
        return one.done("quota")
    return await one.page(422, errors=errors, values=values)


CHANGES = {
    "disable": (AdminUserChange(disabled=True), "disabled"),
    "enable": (AdminUserChange(disabled=False), "enabled"),
    "admin": (AdminUserChange(role="admin"), "role"),
    "user": (AdminUserChange(role="user"), "role"),
}


@router.post("/users/{user_id}/change")
async def change_user(form: Form = Depends(checked_form), one: OneUser = Depends()) -> Response:
    """Disable, enable, or change the role, as PATCH /admin/users/{id} does."""
    found = CHANGES.get(first(form, "what", 16))
    if found is None:
        return await one.page(422, errors={"form": "no such change"})
    change, done = found
    try:
        await admin_change_user(
            one.user_id, change, one.request, one.who.principal, one.users, one.tokens
        )
    except NotFoundError:
        raise
    except IpaasError as exc:
        return await one.page(409, errors=error_of(exc))
    return one.done(done)


@router.post("/users/{user_id}/remove")
async def remove_user(
    form: Form = Depends(checked_form),
    one: OneUser = Depends(),
    removal: AccountRemoval = Depends(account_removal),
) -> Response:
    """The user and everything they own, once their name is typed."""
    confirm = first(form, "confirm", 64).strip()
    try:
        await admin_delete_user(
            one.user_id, one.request, confirm, one.who.principal, one.users, one.tokens, removal
        )
    except NotFoundError:
        raise
    except IpaasError as exc:
        field = "confirm" if exc.code == "confirmation_mismatch" else "form"
        return await one.page(422, errors={field: exc.detail})
    return redirect("/admin/users?done=removed")


@router.get("/apps")
async def apps_page(
    request: Request,
    offset: int = Query(0, ge=0, le=10_000_000),
    apps: AppStore = Depends(app_store),
    users: UserStore = Depends(user_store),
) -> Response:
    rows, total = await apps.list(None, limit=PER_PAGE, offset=offset)
    owners = await users.usernames({a.owner_id for a in rows})
    return _page(
        request, "admin_apps.html", "apps", apps=rows, owners=owners, total=total,
        offset=offset, per_page=PER_PAGE,
    )  # fmt: skip


@router.get("/health")
async def health_page(request: Request, platform: PlatformHealth = Depends(health)) -> Response:
    checks = await platform.check()
    return _page(request, "admin_health.html", "health", checks=checks)
