"""The databases pages: the list, the create form, and one database's tabs (Overview with its
attachments and events, Credentials shown on request and rotated, Data, Backups, Settings).
Every form calls the same services as `/api/v1/databases`; another user's id is a 404 page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from ipaas.api.deps import app_service
from ipaas.api.routes_databases import (
    DatabaseCreate,
    ScheduleRequest,
    backup_service,
    database_service,
    download_backup,
    rotation,
    set_backup_schedule,
)
from ipaas.apps.service import AppService
from ipaas.databases.backups import BackupService
from ipaas.databases.schedule import keep_of, plan_of
from ipaas.databases.service import DatabaseRequest, DatabaseService
from ipaas.domain.databases import DB_BUSY, ENGINES, Engine
from ipaas.domain.errors import IpaasError, NotFoundError
from ipaas.runtime.databases import host_name
from ipaas.store.models import Database
from ipaas.web.auth import Form, Visitor, checked_form, first, visitor
from ipaas.web.forms import Errors, error_of, errors_of, given, number
from ipaas.web.pages import redirect, render

router = APIRouter(prefix="/databases")
# What a redirect after a form says happened (never text from the request itself).
NOTES = {
    "attached": "Attached: the app restarts with the database's URL.",
    "detached": "Detached: the app restarts without it.",
    "restarted": "Restart requested.",
    "backup": "Backup started: it is listed as good once restored and checked in a scratch copy.",
    "restore": "Restore started: a safety backup is taken first (see Restores below).",
    "rotate": "Rotation started: attached apps move to the new login, then the old one is revoked.",
    "schedule": "Backup schedule saved.",
}
CREATE_FIELDS = ("name", "engine", "version", "memory_mb", "cpus")


async def owned(
    db_id: str, who: Visitor = Depends(visitor), svc: DatabaseService = Depends(database_service)
) -> Database:
    """The visitor's database; anyone else's is a 404 page like a missing one."""
    return await svc.get(who.principal, db_id[:64])


def engines() -> list[dict[str, Any]]:
    return [{"name": e.value, "versions": info.versions} for e, info in ENGINES.items()]


def page(
    request: Request,
    template: str,
    db: Database,
    tab: str,
    status: int = 200,
    **context: Any,
) -> Response:
    note = NOTES.get(request.query_params.get("done", ""))
    context.setdefault("errors", {})
    return render(
        request, template, status, db=db, tab=tab, notice=note, busy=db.state in DB_BUSY,
        host=host_name(db.id), **context,
    )  # fmt: skip


# --- the list and the create form ---------------------------------------------------------------
@router.get("")
async def databases_page(
    request: Request,
    who: Visitor = Depends(visitor),
    svc: DatabaseService = Depends(database_service),
) -> Response:
    dbs = await svc.list(who.principal)
    busy = any(db.state in DB_BUSY for db in dbs)
    return render(request, "databases.html", dbs=dbs, busy=busy)


@router.get("/new")
async def new_database_page(request: Request, _: Visitor = Depends(visitor)) -> Response:
    return render(request, "database_new.html", values={}, errors={}, engines=engines())


@router.post("/new")
async def create_database(
    request: Request,
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: DatabaseService = Depends(database_service),
) -> Response:
    values = given(form, *CREATE_FIELDS)
    errors: Errors
    try:
        fields: dict[str, Any] = {
            k: number(v) if k in ("memory_mb", "cpus") else v for k, v in values.items()
        }
        body = DatabaseCreate(**fields)
        request_ = DatabaseRequest(body.name, body.engine, body.version, body.memory_mb, body.cpus)
        db = await svc.create(who.principal, request_)
    except ValidationError as exc:
        errors = errors_of(exc)
    except IpaasError as exc:
        errors = error_of(exc)
    else:
        return redirect(f"/databases/{db.id}")
    context: dict[str, Any] = {"values": values, "errors": errors, "engines": engines()}
    return render(request, "database_new.html", 422, **context)


# --- one database ------------------------------------------------------------------------------
@router.get("/{db_id}")
async def overview(
    request: Request,
    db: Database = Depends(owned),
    who: Visitor = Depends(visitor),
    svc: DatabaseService = Depends(database_service),
    apps: AppService = Depends(app_service),
) -> Response:
    return await _overview(request, db, who, svc, apps)


async def _overview(
    request: Request,
    db: Database,
    who: Visitor,
    svc: DatabaseService,
    apps: AppService,
    status: int = 200,
    **context: Any,
) -> Response:
    attached = await svc.attachments(db)
    mine, _ = await apps.list_apps(who.principal, None, None, 500, 0)
    linked = {link.app_id for link, _ in attached}
    events = list(await svc.store.events(database_id=db.id))[-20:][::-1]
    return page(
        request, "database_overview.html", db, "overview", status, attached=attached,
        apps=[a for a in mine if a.id not in linked], events=events,
        env_default=ENGINES[Engine(db.engine)].env_name,
        **context,
    )  # fmt: skip


@router.get("/{db_id}/status")
async def status_fragment(
    request: Request,
    db_id: str,
    who: Visitor = Depends(visitor),
    svc: DatabaseService = Depends(database_service),
) -> Response:
    """The state badge, polled by htmx while the database is busy; once it rests (or is
    gone), htmx's "stop polling" status (286)."""
    try:
        db = await owned(db_id, who, svc)
    except NotFoundError:
        if not request.headers.get("hx-request"):
            raise
        return render(request, "_app_gone.html", 286)
    return render(request, "_db_status.html", 200 if db.state in DB_BUSY else 286, db=db)


@router.post("/{db_id}/attach")
async def attach(
    request: Request,
    db: Database = Depends(owned),
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: DatabaseService = Depends(database_service),
    apps: AppService = Depends(app_service),
) -> Response:
    env_name = first(form, "env_name", 64).strip() or None
    try:
        await svc.attach(who.principal, db, first(form, "app_id", 64), env_name)
    except IpaasError as exc:
        field = "env_name" if exc.code == "invalid_env_name" else "attach"
        errors = {field: exc.detail}
        return await _overview(request, db, who, svc, apps, 422, errors=errors)
    return redirect(f"/databases/{db.id}?done=attached")


@router.post("/{db_id}/detach")
async def detach(
    db: Database = Depends(owned),
    form: Form = Depends(checked_form),
    who: Visitor = Depends(visitor),
    svc: DatabaseService = Depends(database_service),
) -> Response:
    await svc.detach(who.principal, db, first(form, "app_id", 64))
    return redirect(f"/databases/{db.id}?done=detached")


def _action(path: str, then: str, act: Callable[[Request, Database], Awaitable[object]]) -> None:
    """POST /databases/{id}<path>: one call of a service on the database, then `then`."""

    async def handle(
        request: Request, db: Database = Depends(owned), _: Form = Depends(checked_form)
    ) -> Response:
        await act(request, db)
        return redirect(f"/databases/{db.id}{then}")

    router.add_api_route(f"/{{db_id}}{path}", handle, methods=["POST"], name=path)


_action("/restart", "?done=restarted", lambda r, db: database_service(r).restart(db))
_action("/credentials/rotate", "/credentials?done=rotate", lambda r, db: rotation(r).start(db))
_action("/backups", "/backups?done=backup", lambda r, db: backup_service(r).start(db))


# --- credentials ---------------------------------------------------------------------------------
@router.get("/{db_id}/credentials")
async def credentials_page(
    request: Request,
    db: Database = Depends(owned),
    backups: BackupService = Depends(backup_service),
) -> Response:
    return await _credentials(request, db, backups, None)


@router.post("/{db_id}/credentials")
async def reveal_credentials(
    request: Request,
    db: Database = Depends(owned),
    _: Form = Depends(checked_form),
    svc: DatabaseService = Depends(database_service),
    backups: BackupService = Depends(backup_service),
) -> Response:
    """Shown on request only (a POST: never in a URL, a history entry or a prefetch)."""
    return await _credentials(request, db, backups, svc.credentials(db))


async def _credentials(
    request: Request, db: Database, backups: BackupService, shown: Any
) -> Response:
    jobs = [j for j in await backups.jobs(db) if j.kind == "rotate"]
    return page(request, "database_credentials.html", db, "credentials", creds=shown, jobs=jobs)


# --- backups -------------------------------------------------------------------------------------
@router.get("/{db_id}/backups")
async def backups_page(
    request: Request,
    db: Database = Depends(owned),
    svc: DatabaseService = Depends(database_service),
    backups: BackupService = Depends(backup_service),
) -> Response:
    return await _backups(request, db, svc, backups)


async def _backups(
    request: Request,
    db: Database,
    svc: DatabaseService,
    backups: BackupService,
    status: int = 200,
    **context: Any,
) -> Response:
    listed = await backups.list(db)
    jobs = [j for j in await backups.jobs(db) if j.kind == "restore"]
    plan = plan_of(db, svc.settings)
    schedule = {
        "cron": plan.cron or "",
        "interval_h": "" if plan.cron else _hours(plan.interval_s),
        "keep": keep_of(db, svc.settings),
    }
    context.setdefault("schedule", schedule)
    running = any(b.status == "running" for b in listed) or any(j.status == "running" for j in jobs)
    return page(
        request, "database_backups.html", db, "backups", status, backups=listed, jobs=jobs,
        running=running, **context,
    )  # fmt: skip


def _hours(seconds: int) -> str:
    hours = seconds / 3600
    return f"{hours:g}"


@router.post("/{db_id}/backups/{backup_id}/restore")
async def restore(
    backup_id: str,
    db: Database = Depends(owned),
    _: Form = Depends(checked_form),
    backups: BackupService = Depends(backup_service),
) -> Response:
    await backups.start_restore(db, await backups.get(db, backup_id[:64]))
    return redirect(f"/databases/{db.id}/backups?done=restore")


@router.get("/{db_id}/backups/{backup_id}/download")
async def download(
    backup_id: str,
    db: Database = Depends(owned),
    backups: BackupService = Depends(backup_service),
) -> Response:
    return await download_backup(backup_id[:64], db, backups)


@router.post("/{db_id}/backups/schedule")
async def schedule(
    request: Request,
    db: Database = Depends(owned),
    form: Form = Depends(checked_form),
    svc: DatabaseService = Depends(database_service),
    backups: BackupService = Depends(backup_service),
) -> Response:
    """A cron expression, else every so many hours (0: none), as the API's `backup-schedule`
    takes them (it takes the interval in seconds)."""
    values = given(form, "cron", "interval_h", "keep")
    fields: dict[str, Any] = {"keep": number(values.get("keep", ""))}
    errors: Errors = {}
    if "cron" in values:
        fields["cron"] = values["cron"]
    else:
        hours = number(values.get("interval_h", ""))
        if isinstance(hours, int | float):
            fields["interval_s"] = round(hours * 3600)
        else:
            errors["interval_h"] = "a number of hours (0: no scheduled backups), or a cron line"
    if not errors:
        try:
            await set_backup_schedule(ScheduleRequest(**fields), db, svc)
        except ValidationError as exc:
            errors = {_SCHEDULE_FIELD.get(k, k): v for k, v in errors_of(exc).items()}
        except IpaasError as exc:
            # An interval too short is the hours' field's fault; everything else the cron's.
            field = "interval_h" if exc.extra.get("field") == "interval_s" else "cron"
            errors = {field: exc.detail}
        else:
            return redirect(f"/databases/{db.id}/backups?done=schedule")
    return await _backups(request, db, svc, backups, 422, errors=errors, schedule=values)


_SCHEDULE_FIELD = {"interval_s": "interval_h"}


# --- settings -----------------------------------------------------------------------------------
@router.get("/{db_id}/settings")
async def settings_page(request: Request, db: Database = Depends(owned)) -> Response:
    return page(request, "database_settings.html", db, "settings")


@router.post("/{db_id}/delete")
async def delete(
    request: Request,
    db: Database = Depends(owned),
    form: Form = Depends(checked_form),
    svc: DatabaseService = Depends(database_service),
) -> Response:
    if first(form, "confirm", 100).strip() != db.name:
        errors = {"confirm": f"type {db.name} to confirm"}
        return page(request, "database_settings.html", db, "settings", 422, errors=errors)
    try:
        await svc.delete(db, final_backup=bool(form.get("final_backup")))
    except IpaasError as exc:
        return page(request, "database_settings.html", db, "settings", 409, errors=error_of(exc))
    return redirect("/databases?deleted=1")
